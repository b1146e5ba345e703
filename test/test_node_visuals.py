"""pose_classifier_node's visual outputs as real processes: annotations (one per processed frame, the image's
stamp), TrackSummary when a track expires, saved best views, and JPEG debug images only while subscribed.

The node loads the colour-coded test-tiny checkpoint (ros_helpers/colour_model), so every label is known.
"""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
from helpers.waiting import wait_for
from ros_helpers import HELPERS, scenario
from ros_helpers.cli import classifier_node_args

from pose_classifier_ros.labels import INDEX
from pose_classifier_ros.visualization.annotations import VIEWPOINT_COLORS

pytestmark = pytest.mark.ros  # every test here starts ROS processes


def _record(processes, ros_env, tmp_path, name, ns, expect, debug):
    out = tmp_path / f"{name}.json"
    args = [str(HELPERS / "record_visuals.py"), str(out), ns, "--expect", str(expect), "--timeout", "120"]
    recorder = processes.python(args + (["--debug"] if debug else []), ros_env, name)
    wait_for(
        lambda: (tmp_path / f"{name}.json.ready").exists() or recorder.poll() is not None,
        90,
        message=f"{name} matched to the node's publishers (node active)",
    )
    return recorder, out


def _play(processes, ros_env, ns, name):
    player = processes.python(
        [str(HELPERS / "play_frames.py"), "--image", f"{ns}/image", "--detections", f"{ns}/detections"], ros_env, name
    )
    assert player.wait(90) == 0, processes.output(player)


def _wait_json(out, recorder, processes, node, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not out.exists() and recorder.poll() in (None, 0):
        time.sleep(0.2)
    if not out.exists():
        pytest.fail(
            f"no recording\nrecorder: {processes.output(recorder)[-2000:]}\nnode: {processes.output(node)[-4000:]}"
        )
    return json.loads(out.read_text())


def _last_value(rec, key):
    values = [s.get(key) for arr in rec["diagnostics"] for s in arr if key in s]
    return values[-1] if values else None


@pytest.mark.slow
def test_annotations_summaries_and_lazy_debug_images(ros_env, processes, tmp_path, colour_checkpoint):
    ns = "/vis"
    views = tmp_path / "views"
    node = processes.start(
        classifier_node_args(
            ns,
            colour_checkpoint,
            "schedule.mode:=every_frame",
            "processing.policy:=all",
            "publish_debug_image:=true",
            "diagnostics_period_s:=0.3",
            "voting.track_timeout_s:=0.25",
            f"best_views.save_dir:={views}",
        ),
        ros_env,
        "node",
    )
    frames, _ = scenario.main_scenario()
    expected = {
        tuple(scenario.sec_nanosec(f.stamp_ns)): f for f in frames if f.expect_output
    }  # (sec, nanosec) -> frame

    # 1. nobody subscribes to a debug image: annotations for every processed frame, no debug image drawn.
    # (Under load a best-effort camera frame can be lost: compare with what the node says it processed.)
    recorder, out = _record(processes, ros_env, tmp_path, "plain", ns, len(expected), debug=False)
    _play(processes, ros_env, ns, "player1")
    rec = _wait_json(out, recorder, processes, node)
    log = processes.output(node)
    stamps = [m["stamp"] for m in rec["annotations"]]
    processed = int(_last_value(rec, "frames_processed"))
    assert len(stamps) == processed >= len(expected) - 3, (stamps, log)
    assert stamps == sorted(stamps) and all(tuple(s) in expected for s in stamps), stamps
    assert all(m["frame_id"] == scenario.FRAME_ID and m["type"] == 2 for m in rec["annotations"])
    by_index = {expected[tuple(m["stamp"])].index: m for m in rec["annotations"]}
    for empty in {3, 13} & set(by_index):
        assert by_index[empty]["points"] == []  # a frame without animals clears the drawing
    first = by_index[min(set(by_index) - {3, 7, 13})]
    elk = next(b for b in frames[min(set(by_index) - {3, 7, 13})].boxes if b.track_id == "elk-1")
    assert first["points"][0] == [float(elk.xyxy[0]), float(elk.xyxy[1])]
    assert first["colors"][0][:3] == pytest.approx(VIEWPOINT_COLORS[elk.label], abs=1e-6)
    assert len(first["colors"]) == len(first["points"]) and first["scale"] == 1.0
    assert _last_value(rec, "debug_images_encoded") == "0", rec["diagnostics"][-1:]

    # Track summaries: the mono tracks live on frame 7 only and expire on the first frame processed more than
    # 0.25 s later; every summary is a finished track, saved with a sightings.csv row.
    summaries = rec["summaries"]
    assert int(_last_value(rec, "track_summaries_published")) == len(summaries) > 0
    if 7 in by_index:
        mono = {s["track_id"]: s for s in summaries if s["track_id"].startswith("mono")}
        assert set(mono) == {"mono-1", "mono-2"}, summaries
        assert (
            mono["mono-1"]["stamp"]
            == scenario.sec_nanosec(frames[7].stamp_ns)
            == mono["mono-1"]["first"]
            == mono["mono-1"]["last"]
        )
        assert mono["mono-1"]["frames"] == 1 and mono["mono-1"]["histogram"][INDEX["back"]] == 1
        assert mono["mono-1"]["best_label"] == INDEX["back"] and mono["mono-1"]["best_score"] > 0
        assert mono["mono-1"]["best_left_score"] == 0.0
    with (views / "sightings.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["track_id"] for r in rows] == [s["track_id"] for s in summaries]
    assert [int(r["frames"]) for r in rows] == [s["frames"] for s in summaries]
    assert all((views / r["best_file"]).exists() for r in rows)

    # 2. someone subscribes to debug_image/compressed: a JPEG per processed frame, with the image's stamp
    recorder, out = _record(processes, ros_env, tmp_path, "debug", ns, len(expected), debug=True)
    _play(processes, ros_env, ns, "player2")
    rec2 = _wait_json(out, recorder, processes, node)
    jpegs = rec2["debug_jpegs"]
    assert [j["stamp"] for j in jpegs] == [m["stamp"] for m in rec2["annotations"]], processes.output(node)
    assert int(_last_value(rec2, "frames_processed")) - processed == len(jpegs) > 0
    assert int(_last_value(rec2, "debug_images_encoded")) == len(jpegs)
    assert all(j["format"] == "jpeg" and j["size"] == [scenario.WIDTH, scenario.HEIGHT] for j in jpegs)
    assert np.median([j["bytes"] for j in jpegs]) < scenario.WIDTH * scenario.HEIGHT  # well under raw rgb8
    assert node.poll() is None, processes.output(node)
