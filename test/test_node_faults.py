"""pose_classifier_node under the faults found by fault injection on a live node, as real processes.

One node (schedule.mode scheduled, voting.track_timeout_s 1 s) gets a stream with an image that makes the
image callback raise, a 2 s camera outage and stamps jumping back 60 s; then `ros2 param set` on it while
active, and after cleanup. The checks are on the published messages and the node's log.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
from ros_helpers import HELPERS
from ros_helpers.cli import classifier_node_args, lifecycle, param, reliable_images, start_stream

pytestmark = [pytest.mark.ros, pytest.mark.slow]
FRAMES, OUTAGE_AT, JUMP_AT, BAD_AT = 40, 15, 30, 5


def test_faults_are_survived_and_said(ros_env, processes, tmp_path, colour_checkpoint):
    ns = "/faults"
    node_name = f"{ns}/pose_classifier"
    args = classifier_node_args(
        ns,
        colour_checkpoint,
        "schedule.mode:=scheduled",
        "voting.track_timeout_s:=1.0",
        *reliable_images(ns),
        node=[sys.executable, str(HELPERS / "faulty_node.py")],
    )
    node = processes.start(args, ros_env, "node")
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
        str(FRAMES),
        "--bad-image-at",
        str(BAD_AT),
        "--outage-at",
        str(OUTAGE_AT),
        "--outage-s",
        "2.0",
        "--jump-back-at",
        str(JUMP_AT),
        "--jump-back-s",
        "60",
    )
    assert out.exists(), processes.output(stream) + processes.output(node)[-3000:]
    msgs = json.loads(out.read_text())["viewpoints"]
    log = processes.output(node)
    assert node.poll() is None, log[-3000:]  # alive after all of it
    assert len(msgs) == FRAMES, (len(msgs), log[-3000:])  # every paired frame published, the faulty image aside

    # The image callback's error is logged with its cause (type, message, traceback), once.
    assert len(re.findall(r"image callback failed: RuntimeError: injected fault", log)) == 1, log[-3000:]
    assert "Traceback" in log and "faulty_image_received" in log

    # A track back after voting.track_timeout_s starts afresh: the first frame after the 2 s outage is
    # published from track state before any classification of it, so every track is UNKNOWN, without votes.
    before = msgs[OUTAGE_AT - 1]["viewpoints"]
    assert any(v["num_votes"] >= 2 for v in before), before  # they had labels and votes before
    after = msgs[OUTAGE_AT]["viewpoints"]
    assert [(v["label"], v["num_votes"]) for v in after] == [(255, 0)] * 2, after

    # Stamps 60 s back (59.9 s before the newest frame): logged once, at INFO, through the node's logger, with what was forgotten.
    resets = [line for line in log.splitlines() if "stamps went back" in line]
    assert len(resets) == 1 and "[INFO]" in resets[0] and "(bag loop or clock reset)" in resets[0], resets
    assert re.search(r"stamps went back 59\.900 s .*forgot 2 track\(s\)", resets[0]), resets
    assert [(v["label"], v["num_votes"]) for v in msgs[JUMP_AT]["viewpoints"]] == [(255, 0)] * 2

    # Parameters are read at configure: while configured a change is refused, saying how to apply it.
    text = param(ros_env, node_name, "set", "voting.window", "5")
    assert "Setting parameter failed: voting.window is read at configure" in text, text
    assert "cleanup + configure" in text and param(ros_env, node_name, "get", "voting.window").strip().endswith("7")
    assert "Set parameter successful" in param(ros_env, node_name, "set", "use_sim_time", "false")
    assert "Transitioning successful" in lifecycle(ros_env, node_name, "set", "deactivate")
    assert "Transitioning successful" in lifecycle(ros_env, node_name, "set", "cleanup")
    assert "Set parameter successful" in param(ros_env, node_name, "set", "voting.window", "5")
    assert "Transitioning successful" in lifecycle(ros_env, node_name, "set", "configure")
    assert "Setting parameter failed" in param(ros_env, node_name, "set", "voting.window", "6")
    assert param(ros_env, node_name, "get", "voting.window").strip().endswith("5")
    assert processes.stop(node) == 0, processes.output(node)[-3000:]
