"""pose_classifier_node's focus (issue 24, item 2), as real processes: a publisher sends the navigation policy's
PolicyState with a target id for the middle third of the stream only, against the node in scheduled mode with
a deliberately slow model (200 ms per batch) and 2 crops per cycle for 6 tracks.

An inference cycle classifies its crops on one frame, so every label it computes carries that frame's stamp:
the distinct label stamps of the published ViewpointArrays are the cycles. While the focus is fresh the
target's label is refreshed in every cycle; before the first PolicyState and once the focus is stale
(schedule.focus_timeout_s after the last one) the behaviour is today's: the target shares the cycles with the
other five tracks. No timing assertions: the checks are on message content.
"""

from __future__ import annotations

import json
import sys

import pytest
from helpers.waiting import wait_for
from ros_helpers import HELPERS
from ros_helpers.cli import classifier_node_args, reliable_images, start_stream

from pose_classifier_ros.labels import VIEWPOINTS

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FRAMES, FOCUS_FROM, FOCUS_TO, PERIOD_NS, BASE_NS = 110, 40, 70, 100_000_000, 3000 * 10**9
TIMEOUT_S = 0.5
TARGET, TRACKS = "t3", 6


def stamp_of(frame: int) -> int:
    return BASE_NS + frame * PERIOD_NS


def test_the_policy_target_is_classified_every_cycle_while_focused(ros_env, processes, tmp_path, colour_checkpoint):
    ns = "/focus"
    node = processes.start(
        classifier_node_args(
            ns,
            colour_checkpoint,
            "schedule.mode:=scheduled",
            "schedule.max_crops:=2",
            f"schedule.focus_timeout_s:={TIMEOUT_S}",
            "diagnostics_period_s:=0.5",
            *reliable_images(ns),
            node=[sys.executable, str(HELPERS / "slow_node.py"), "0.2"],
        ),
        ros_env,
        "node",
    )
    out = tmp_path / "stream.json"
    start_stream(
        processes,
        ros_env,
        "focus_stream.py",
        out,
        ns,
        "--frames",
        str(FRAMES),
        "--tracks",
        str(TRACKS),
        "--focus",
        TARGET,
        "--focus-frames",
        f"{FOCUS_FROM}:{FOCUS_TO}",
        message=f"the stream's recording; node log:\n{processes.output(node)[-3000:]}",
    )
    wait_for(out.exists, 10, message="the recording file")
    rec = json.loads(out.read_text())
    log = processes.output(node)
    msgs = rec["viewpoints"]
    assert [m["stamp"] for m in msgs] == [stamp_of(i) for i in range(FRAMES)], log[-3000:]
    assert f"focus (0.25 of each cycle) from {ns}/policy_state" in log and "Traceback" not in log, log[-3000:]

    classified: dict[int, set[str]] = {}  # cycle (its frame's stamp) -> tracks whose label it computed
    for m in msgs:
        for v in m["viewpoints"]:
            if v["label"] != 255:
                classified.setdefault(v["label_stamp"], set()).add(v["track_id"])
                assert v["label_name"] == VIEWPOINTS[int(v["track_id"][1:]) % 8], v  # its colour, never a guess
    cycles = sorted(classified)
    first = cycles[0]
    assert classified[first] == {f"t{k}" for k in range(TRACKS)}  # the 6 new tracks at once, past max_crops 2

    def target_in(lo: int, hi: int) -> list[bool]:
        return [TARGET in classified[c] for c in cycles if lo <= c < hi and c != first]

    # Before any PolicyState: today's schedule, the target shares 2 crops per cycle with 5 others.
    before = target_in(stamp_of(0), stamp_of(FOCUS_FROM))
    assert len(before) >= 3 and not all(before), (before, cycles)
    # Focused (a margin of 2 frames for the first PolicyState to arrive): the target in every cycle.
    during = target_in(stamp_of(FOCUS_FROM + 2), stamp_of(FOCUS_TO))
    assert len(during) >= 3 and all(during), (during, cycles)
    # The last PolicyState is older than focus_timeout_s: today's schedule again.
    stale_from = stamp_of(FOCUS_TO - 1) + int(TIMEOUT_S * 1e9) + 2 * PERIOD_NS
    after = target_in(stale_from, stamp_of(FRAMES))
    assert len(after) >= 3 and not all(after), (after, cycles)

    diag = rec["diagnostics"]
    assert int(diag["focus_updates"]) > 0 and int(diag["crops_focus"]) >= len(during), diag
    assert diag["focus"].startswith(f"{TARGET} (stamp "), diag
    assert processes.stop(node) == 0, log[-3000:]
