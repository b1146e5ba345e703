"""pose_classifier_node as real processes: a scripted camera + detector, the node, a recording consumer.

The node loads a test-tiny checkpoint whose label is the colour of the crop (ros_helpers/colour_model),
so the test knows every per-frame label in advance, including through bgra8 and mono8 decoding.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from helpers.paths import REPO
from helpers.waiting import wait_for
from ros_helpers import HELPERS, scenario
from ros_helpers.cli import classifier_node_args, lifecycle, wait_state

pytestmark = pytest.mark.ros  # every test here starts ROS processes


def _wait_record(out, recorder, timeout: float, processes, node) -> dict:
    """The recorder's JSON; on timeout fail with what it had so far and the node's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not out.exists() and recorder.poll() in (None, 0):
        time.sleep(0.2)
    if out.exists():
        return json.loads(out.read_text())
    partial = out.parent / (out.name + ".partial")
    so_far = json.loads(partial.read_text()) if partial.exists() else {}
    pytest.fail(
        f"no recording after {timeout:.0f} s; stamps so far "
        f"{[m['stamp'] for m in so_far.get('viewpoints', [])]}\nrecorder: {processes.output(recorder)[-2000:]}"
        f"\nnode: {processes.output(node)[-4000:]}"
    )


def test_end_to_end_stream(ros_env, processes, tmp_path, colour_checkpoint):
    ns = "/e2e"
    # processing.policy all with a reliable image reader, as the docs say for offline use: the test checks every
    # frame's output, and a best-effort depth-1 reader loses frames whenever a loaded machine stalls the executor.
    node = processes.start(
        classifier_node_args(
            ns,
            colour_checkpoint,
            "schedule.mode:=every_frame",
            "processing.policy:=all",
            f"qos_overrides.{ns}/image.subscription.reliability:=reliable",
            f"qos_overrides.{ns}/image.subscription.depth:=20",
            "publish_debug_image:=true",
            "diagnostics_period_s:=0.5",
        ),
        ros_env,
        "node",
    )
    frames, _ = scenario.main_scenario()
    expected = [f for f in frames if f.expect_output]
    out = tmp_path / "record.json"
    recorder = processes.python(
        [str(HELPERS / "record_viewpoints.py"), str(out), ns, "--expect", str(len(expected)), "--durable-viewpoints"],
        ros_env,
        "recorder",
    )
    wait_for(
        lambda: (tmp_path / "record.json.ready").exists() or recorder.poll() is not None,
        90,
        message="recorder matched to the node's viewpoints publisher (node active)",
    )
    player = processes.python(
        [
            str(HELPERS / "play_frames.py"),
            "--image",
            f"{ns}/image",
            "--detections",
            f"{ns}/detections",
            "--best-effort-detections",
        ],
        ros_env,
        "player",
    )
    assert player.wait(90) == 0, processes.output(player)
    rec = _wait_record(out, recorder, 60, processes, node)
    log = processes.output(node)
    assert node.poll() is None, log  # alive after the bad frames

    # One ViewpointArray per paired frame, with the image's header, in order; nothing for the frame with an
    # unknown encoding, the frame without detections or the detections without frame.
    got = rec["viewpoints"]
    assert [m["stamp"] for m in got] == [scenario.sec_nanosec(f.stamp_ns) for f in expected], log
    assert all(
        m["frame_id"] == scenario.FRAME_ID and (m["width"], m["height"]) == (scenario.WIDTH, scenario.HEIGHT)
        for m in got
    )
    by_index = dict(zip((f.index for f in expected), got))
    for f in expected:
        msg = by_index[f.index]
        want = [(b.track_id, b.label) for b in f.boxes if b.inside]
        have = [(v["track_id"] if not v["track_id"].startswith("iou-") else "", v["label"]) for v in msg["viewpoints"]]
        assert have == want, (f.index, f.encoding, have, want)  # bgra8/mono8 decoded right, outside box skipped
        assert all(abs(v["prob_sum"] - 1.0) < 1e-3 and v["score"] == pytest.approx(0.9) for v in msg["viewpoints"])
    assert by_index[3]["viewpoints"] == [] and by_index[13]["viewpoints"] == []

    # Voting: elk-1 flickers to "right" on single frames, its voted viewpoint stays "left".
    elk = [(f.index, v) for f in expected for v in by_index[f.index]["viewpoints"] if v["track_id"] == "elk-1"]
    assert {i for i, v in elk if v["label"] == "right"} == scenario.FLICKER
    assert all(v["smoothed"] == "left" for _, v in elk)
    assert [v["votes"] for _, v in elk][:4] == [1, 2, 3, 4] and elk[-1][1]["votes"] == 7
    assert [v["stable"] for _, v in elk][:3] == [False, False, True]
    iou_ids = {v["track_id"] for m in got for v in m["viewpoints"] if v["track_id"].startswith("iou-")}
    assert len(iou_ids) == 1  # the id-less detection kept one IoU track across frames

    assert rec["label_info"] and [name for _, name in rec["label_info"][-1]][:2] == ["front", "front-left"]
    assert rec["debug_images"] and rec["debug_images"][0][:3] == [scenario.WIDTH, scenario.HEIGHT, "rgb8"]
    values = rec["diagnostics"][-1][0]["values"]
    assert int(values["frames_processed"]) == len(expected)
    assert int(values["frames_paired"]) == len(expected) + 1  # + the undecodable frame, dropped in the worker
    assert int(values["dropped_undecodable"]) == 1 and int(values["dropped_detections_unmatched"]) >= 1
    assert int(values["dropped_image_unmatched"]) >= 1  # frame 10 had no detections message
    assert float(values["latency_ms.p95"]) >= float(values["latency_ms.median"]) > 0
    assert "stage_ms.inference.backbone" in values and int(values["tracks"]) >= 3

    # Logged once each, with what to do about it.
    assert len(re.findall(r"/e2e/image: cannot decode image \(encoding 'weird16'\)", log)) == 1, log
    assert re.search(
        r"incompatible QoS on subscription /e2e/detections: RELIABILITY policy - this node requests "
        r"RELIABLE, publisher\(s\) offer BEST_EFFORT.*ros2 topic info -v "
        r"/e2e/detections",
        log,
    ), log
    assert re.search(
        r"incompatible QoS on publisher /e2e/viewpoints: DURABILITY policy - this node offers "
        r"VOLATILE, subscriber\(s\) request TRANSIENT_LOCAL.*Fix: subscribe with durability VOLATILE",
        log,
    ), log
    assert "Traceback" not in log
    assert processes.stop(node) == 0, processes.output(node)


@pytest.mark.slow
def test_lifecycle_with_ros2_cli_and_failed_configure(ros_env, processes, tmp_path, colour_checkpoint):
    managed = processes.start(classifier_node_args("/lc", colour_checkpoint, "autostart:=false"), ros_env, "managed")
    missing = processes.start(classifier_node_args("/broken", "models/missing.pt"), ros_env, "missing")
    invalid = processes.start(
        classifier_node_args("/invalid", colour_checkpoint, "voting.min_votes:=9"), ros_env, "invalid"
    )
    node = "/lc/pose_classifier"

    wait_state(ros_env, node, "unconfigured")
    assert "Transitioning successful" in lifecycle(ros_env, node, "set", "configure")  # -> inactive
    assert "Transitioning successful" in lifecycle(ros_env, node, "set", "activate")
    assert lifecycle(ros_env, node, "get").startswith("active")
    assert "Transitioning successful" in lifecycle(ros_env, node, "set", "deactivate")
    assert "Transitioning successful" in lifecycle(ros_env, node, "set", "cleanup")
    assert lifecycle(ros_env, node, "get").startswith("unconfigured")
    log = processes.output(managed)
    assert "configured: checkpoint" in log and "active: eager on cpu" in log and "inactive: model released" in log, log

    # A missing checkpoint fails configure with the resolved absolute path; the node stays up, unconfigured.
    resolved = (REPO / "models" / "missing.pt").resolve()
    wait_for(lambda: "configure failed" in processes.output(missing), 30, message="configure failure logged")
    assert f"cannot load checkpoint {resolved}" in processes.output(missing)
    assert lifecycle(ros_env, "/broken/pose_classifier", "get").startswith("unconfigured")
    wait_for(lambda: "configure failed" in processes.output(invalid), 30, message="invalid parameters logged")
    assert "voting.min_votes: must be <= voting.window (7), got 9" in processes.output(invalid)
    for proc in (managed, missing, invalid):
        assert proc.poll() is None, processes.output(proc)
        assert processes.stop(proc) == 0, processes.output(proc)
