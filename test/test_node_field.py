"""Issue 14 in real processes: lost frames are loud (and quiet again), failures say why, detections are
filtered by class and score, truncated boxes are flagged and do not vote.

The node loads the colour test-tiny checkpoint (ros_helpers/colour_model): the label is the crop's colour.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from helpers.waiting import wait_for
from ros_helpers import HELPERS
from ros_helpers.cli import classifier_node_args, lifecycle, wait_state
from ros_helpers.colour_model import build_colour_model

from pose_classifier_ros.model.checkpoint import save_checkpoint

pytestmark = pytest.mark.ros  # every test here starts ROS processes

LOST = "frames lost on "


def _record(path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _env_without_profile(ros_env: dict) -> dict:
    env = dict(ros_env)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # default Fast DDS transports, as a new user has them
    env.pop("RMW_IMPLEMENTATION", None)
    return env


@pytest.mark.slow
def test_lost_1080p_frames_over_default_transport_warn_once(ros_env, processes, tmp_path, colour_checkpoint):
    """A reliable 1 Hz 1920x1080 rgb8 camera, the node's best-effort subscription, no Fast DDS profile."""
    env = _env_without_profile(ros_env)
    node = processes.start(classifier_node_args("/field", colour_checkpoint, "diagnostics_period_s:=0.5"), env, "node")
    out = tmp_path / "field.json"
    pub = processes.python(
        [str(HELPERS / "field_publisher.py"), str(out), "/field", "--rate", "1", "--count", "16"], env, "camera"
    )
    assert pub.wait(150) == 0, processes.output(pub) + processes.output(node)
    rec, log = _record(out), processes.output(node)
    received = int(rec["diagnostics"]["values"].get("images_received", "0"))
    print(f"1080p over default transport: {received} of {rec['published']} frames reached the node")
    if received <= rec["published"] // 4:  # frames lost here, as in the field: one warning that says why
        assert log.count(LOST) == 1, log
        line = log[log.index(LOST) :].splitlines()[0]
        for part in (
            "/field/image",
            "/field_publisher",
            "best-effort",
            "large_images:=true",
            "image_transport: compressed",
            "qos_overrides./field/image.subscription.reliability",
        ):
            assert part in line, (part, line)
        assert rec["diagnostics"]["level"] == 1 and rec["diagnostics"]["values"].get("frames_lost") == "true", rec
        assert LOST.split()[0] in rec["diagnostics"]["message"] or "no image" in rec["diagnostics"]["message"]
    else:  # frames flow on this machine: then the node must not cry wolf (the forced test covers the warning)
        assert LOST not in log, log
    assert node.poll() is None and "Traceback" not in log, log
    assert processes.stop(node) == 0


@pytest.mark.slow
def test_forced_frame_loss_warns_recovers_and_filters(ros_env, processes, tmp_path, colour_checkpoint):
    """Images a reliable subscription cannot hear (best-effort publisher) while detections flow, then fixed."""
    ns = "/forced"
    node = processes.start(
        classifier_node_args(
            ns,
            colour_checkpoint,
            "diagnostics_period_s:=0.5",
            "lost_frames_timeout_s:=3.0",
            f"qos_overrides.{ns}/image.subscription.reliability:=reliable",
            "filter.class_ids:=[elk]",
            "filter.min_score:=0.5",
            "voting.min_votes:=1",
        ),
        ros_env,
        "node",
    )
    out = tmp_path / "forced.json"
    pub = processes.python(
        [
            str(HELPERS / "field_publisher.py"),
            str(out),
            ns,
            "--width",
            "640",
            "--height",
            "480",
            "--rate",
            "4",
            "--count",
            "44",
            "--image-reliability",
            "best_effort",
            "--fix-after",
            "20",
        ],
        ros_env,
        "camera",
    )
    assert pub.wait(150) == 0, processes.output(pub) + processes.output(node)
    rec, log = _record(out), processes.output(node)
    assert log.count(LOST) == 1, log
    lost = log[log.index(LOST) :].splitlines()[0]
    assert f"{LOST}{ns}/image: detections keep arriving but no image was received" in lost, lost
    assert "/field_publisher" in lost and "no frame received yet" in lost, lost
    assert len(re.findall(rf"frames flow again on {ns}/image", log)) == 1, log
    assert log.index(LOST) < log.index("frames flow again")

    # Only elk-1 (elk, 0.9) and elk-3 (elk, 0.8, cut by the left edge) are classified and published.
    got = [m for m in rec["viewpoints"] if m["viewpoints"]]
    assert got, rec
    assert all(sorted(v["track_id"] for v in m["viewpoints"]) == ["elk-1", "elk-3"] for m in got), got
    elk1 = [v for m in got for v in m["viewpoints"] if v["track_id"] == "elk-1"]
    elk3 = [v for m in got for v in m["viewpoints"] if v["track_id"] == "elk-3"]
    known = [v for v in elk1 if v["label"] != "unknown"]  # scheduled: unknown until first classified
    assert known and all(v["label"] == "left" and v["heading"] == pytest.approx(90.0, abs=5.0) for v in known)
    # (scheduled mode publishes before classifying, so `voted` is rarely set here; the vote count shows it)
    assert not any(v["truncated"] for v in elk1) and max(v["votes"] for v in elk1) >= 2
    assert all(v["truncated"] and not v["voted"] and v["votes"] == 0 for v in elk3), elk3
    assert any(v["label"] == "front" for v in elk3)  # its own prediction is published, it just does not vote
    values = rec["diagnostics"]["values"]
    assert int(values["filtered"]) == 2 * int(values["frames_processed"]) > 0, values  # person-1 and elk-2
    assert values.get("frames_lost") == "false" and rec["diagnostics"]["level"] == 0, rec["diagnostics"]
    assert node.poll() is None and processes.stop(node) == 0, log


@pytest.mark.slow
def test_broken_model_files_say_why(ros_env, processes, tmp_path):
    model, config = build_colour_model()
    head_only = save_checkpoint(tmp_path / "head_only.pt", model, config, include_backbone=False)
    weights = tmp_path / "backbone.pth"
    torch.save(model.backbone.state_dict(), weights)

    # A head-only checkpoint without backbone weights fails configure (not activate), naming the fix.
    nobackbone = processes.start(classifier_node_args("/nobb", head_only), ros_env, "nobackbone")
    # One whose backbone file vanishes between configure and activate: activate fails, the cause is logged.
    vanishing = processes.start(
        classifier_node_args("/vanish", head_only, f"model.backbone_weights:={weights}", "autostart:=false"),
        ros_env,
        "vanishing",
    )
    wait_state(ros_env, "/vanish/pose_classifier", "unconfigured")
    assert "Transitioning successful" in lifecycle(ros_env, "/vanish/pose_classifier", "set", "configure")
    weights.unlink()
    lifecycle(ros_env, "/vanish/pose_classifier", "set", "activate")
    wait_for(lambda: "activate failed" in processes.output(vanishing), 30, message="activate failure logged")
    log = processes.output(vanishing)
    assert re.search(r"activate failed: .*CheckpointError: .*head_only.pt is head-only", log), log
    assert "Traceback (most recent call last)" in log and "backbone.pth" in log, log
    assert not lifecycle(ros_env, "/vanish/pose_classifier", "get").startswith("active")

    wait_for(lambda: "configure failed" in processes.output(nobackbone), 60, message="configure failure logged")
    log = processes.output(nobackbone)
    assert re.search(
        r"configure failed: cannot load checkpoint .*head_only.pt .*head-only \(no backbone weights "
        r"inside\) and no 'test-tiny' backbone weights were found",
        log,
    ), log
    assert "Fix: pass the DINOv2 weights with backbone_weights=PATH" in log, log
    assert lifecycle(ros_env, "/nobb/pose_classifier", "get").startswith("unconfigured")
    for proc in (nobackbone, vanishing):
        assert proc.poll() is None and processes.stop(proc) == 0, processes.output(proc)
