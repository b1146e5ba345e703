"""pose_classifier_node in schedule.mode scheduled, as real processes, with a deliberately slow model
(every batch sleeps 300 ms, so the model manages at most ~3 cycles/s against a 10 Hz camera).

The publishing path must still answer every paired frame, in order, while labels age between
inference cycles and refresh; a track is UNKNOWN until its first classification; votes count fresh
labels only. No timing assertions: the checks are on message content.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from ros_helpers import HELPERS
from ros_helpers.cli import classifier_node_args, reliable_images, start_stream

pytestmark = pytest.mark.ros  # every test here starts ROS processes

FRAMES, NEW_TRACK_AT, BASE_NS, PERIOD_NS = 50, 25, 2000 * 10**9, 100_000_000


def test_scheduled_node_publishes_every_frame_with_a_slow_model(ros_env, processes, tmp_path, colour_checkpoint):
    ns = "/sched"
    node = processes.start(
        classifier_node_args(
            ns,
            colour_checkpoint,
            "schedule.mode:=scheduled",
            "schedule.max_crops:=4",
            *reliable_images(ns),
            node=[sys.executable, str(HELPERS / "slow_node.py"), "0.3"],
        ),
        ros_env,
        "node",
    )
    out = tmp_path / "stream.json"
    stream = start_stream(
        processes,
        ros_env,
        "schedule_stream.py",
        out,
        ns,
        "--frames",
        str(FRAMES),
        "--new-track-at",
        str(NEW_TRACK_AT),
        message=f"the stream's recording; node log:\n{processes.output(node)[-3000:]}",
    )
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert out.exists(), processes.output(stream) + processes.output(node)[-3000:]
    rec = json.loads(out.read_text())
    log = processes.output(node)
    msgs = rec["viewpoints"]

    # Publishing never waits for the model: one ViewpointArray per frame, in frame order.
    assert [m["stamp"] for m in msgs] == [BASE_NS + i * PERIOD_NS for i in range(FRAMES)], log[-3000:]
    assert "schedule scheduled" in log and "Traceback" not in log

    # Frame 0 is published before any classification: UNKNOWN, no scores, no votes, no made-up label.
    assert [
        (v["label"], v["label_name"], v["num_votes"], v["score_sum"], v["label_stamp"]) for v in msgs[0]["viewpoints"]
    ] == [(255, "unknown", 0, 0.0, 0)] * 2
    expected = {"elk-1": "left", "deer-2": "back", "fox-3": "front-right"}
    series: dict[str, list[tuple[int, dict]]] = {}
    for m in msgs:
        for v in m["viewpoints"]:
            series.setdefault(v["track_id"], []).append((m["stamp"], v))
    assert set(series) == set(expected)
    for track, obs in series.items():
        known = [(stamp, v) for stamp, v in obs if v["label"] != 255]
        assert known, track
        first_known = obs.index(known[0])
        assert all(v["label"] == 255 and v["num_votes"] == 0 for _, v in obs[:first_known])  # UNKNOWN until then
        assert all(v["label_name"] == expected[track] for _, v in known)  # the right label, never a guess
        # Labels come from earlier frames (live, the label is computed after the frame is published), they age
        # between cycles and refresh: several distinct label stamps, each older than the frame it is shown on.
        stamps = [v["label_stamp"] for _, v in known]
        assert all(BASE_NS <= ls < stamp for (stamp, _), ls in zip(known, stamps))
        assert not any(v["fresh"] for _, v in known)
        refreshes = sorted(set(stamps))
        assert len(refreshes) >= 2 and stamps == sorted(stamps), (track, refreshes)
        assert any(stamp - ls > PERIOD_NS for (stamp, _), ls in zip(known, stamps))  # a cached, aged label
        # Votes count fresh classifications only: num_votes = distinct label stamps so far (window 7).
        assert [v["num_votes"] for _, v in known] == [min(len(set(stamps[: k + 1])), 7) for k in range(len(known))]
    # The new track appeared at frame 25 and was classified later: first UNKNOWN, then its colour.
    fox = series["fox-3"]
    assert fox[0][0] == BASE_NS + NEW_TRACK_AT * PERIOD_NS and fox[0][1]["label"] == 255
    assert processes.stop(node) == 0, log[-3000:]
