"""`ros2 launch pose_classifier_ros pose_classifier.launch.py` as a user runs it.

One launch serves three checks: the node reaches active by itself (autostart), output appears on
the namespaced topics while the inputs are remapped from other names, and a camera + detector that
never stamp their headers give one clear warning (not one per frame). SIGINT ends the launch.
"""

from __future__ import annotations

import ast
import json
import re

import pytest
from helpers.paths import REPO, VENV
from helpers.waiting import wait_for
from ros_helpers import HELPERS, scenario
from ros_helpers.cli import ROS2, lifecycle, param
from ros_helpers.colour_model import save_colour_checkpoint

LAUNCH = REPO / "launch" / "pose_classifier.launch.py"


def test_launch_file_arguments_are_documented():
    """Every argument has a description; enum arguments list their choices (parsed, not imported)."""
    tree = ast.parse(LAUNCH.read_text())
    declared = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument":
            kw = {k.arg: k.value for k in call.keywords}
            declared[call.args[0].value] = kw
    assert {
        "namespace",
        "params_file",
        "checkpoint",
        "device",
        "backend",
        "image_topic",
        "detections_topic",
        "policy_state_topic",
        "image_transport",
        "autostart",
        "use_sim_time",
    } <= set(declared)
    for name, kw in declared.items():
        assert "description" in kw, name
    from pose_classifier_ros.model.classifier import ALL_BACKENDS

    backend_choices = {c.value for c in declared["backend"]["choices"].elts}
    assert backend_choices == {"", *ALL_BACKENDS}
    assert {c.value for c in declared["autostart"]["choices"].elts} == {"true", "false"}


@pytest.mark.ros
def test_ros2_launch_activates_remaps_and_warns_once_on_zero_stamps(ros_env, processes, tmp_path):
    if not (VENV / "share" / "pose_classifier_ros" / "launch" / LAUNCH.name).exists():
        pytest.fail("launch file not installed: run `bash scripts/setup.sh`")
    checkpoint = save_colour_checkpoint(tmp_path / "colour.pt")
    # The shipped parameters plus a reliable image reader: the test counts every frame, and a best-effort
    # reader may lose one on a loaded machine (qos_overrides in a params file, as a user would write it).
    params = tmp_path / "params.yaml"
    shipped = (REPO / "config" / "pose_classifier.yaml").read_text()
    assert "    diagnostics_period_s: 1.0 " in shipped
    params.write_text(
        shipped.replace("    diagnostics_period_s: 1.0 ", "    diagnostics_period_s: 0.5 ")
        + "    qos_overrides:\n      /camera/image_raw:\n        subscription:\n"
        + "          reliability: reliable\n          depth: 20\n"
    )
    launch = processes.start(
        [
            ROS2,
            "launch",
            "pose_classifier_ros",
            "pose_classifier.launch.py",
            f"checkpoint:={checkpoint}",
            f"params_file:={params}",
            "namespace:=drone1",
            "backend:=eager",
            "image_topic:=/camera/image_raw",
            "detections_topic:=/detector/detections",
        ],
        ros_env,
        "launch",
    )
    out = tmp_path / "record.json"
    frames, _ = scenario.zero_stamp_scenario()
    recorder = processes.python(
        [str(HELPERS / "record_viewpoints.py"), str(out), "/drone1", "--expect", str(len(frames))], ros_env, "recorder"
    )
    wait_for(
        lambda: (tmp_path / "record.json.ready").exists() or launch.poll() is not None,
        90,
        message="the launched node's viewpoints publisher",
    )
    state = lifecycle(ros_env, "/drone1/pose_classifier", "get")
    assert state.startswith("active"), state + processes.output(launch)
    # The shipped file's '/**/pose_classifier' section applies in the namespace (a plain 'pose_classifier:'
    # would configure /pose_classifier only, silently).
    assert "0.5" in param(ros_env, "/drone1/pose_classifier", "get", "diagnostics_period_s"), processes.output(launch)
    assert "does not apply" not in processes.output(launch)

    player = processes.python(
        [
            str(HELPERS / "play_frames.py"),
            "--image",
            "/camera/image_raw",
            "--detections",
            "/detector/detections",
            "--scenario",
            "zero",
        ],
        ros_env,
        "player",
    )
    assert player.wait(90) == 0, processes.output(player)
    wait_for(lambda: out.exists() or recorder.poll() not in (None, 0), 60, message="recorded outputs")
    rec = json.loads(out.read_text())
    # Zero stamps pair (0 == 0) and the output copies them: the consumer sees what the camera sent.
    assert len(rec["viewpoints"]) == len(frames), processes.output(launch)
    assert all(m["stamp"] == [0, 0] and len(m["viewpoints"]) == 1 for m in rec["viewpoints"])
    # Scheduled mode (the launch default) publishes every frame at once: "unknown" until the track's first
    # classification, then the classified label, never another one.
    labels = [m["viewpoints"][0]["label"] for m in rec["viewpoints"]]
    assert set(labels) <= {"left", "unknown"} and "left" in labels, labels
    assert labels == sorted(labels, key=lambda name: name != "unknown"), labels

    assert processes.stop(launch) == 0, processes.output(launch)  # SIGINT: the launch and its node end
    log = processes.output(launch)
    assert len(re.findall(r"zero header stamp", log)) == 1, log
    assert re.search(
        r"pairing on /camera/image_raw and /detector/detections: \d+ message\(s\) had a zero header "
        r"stamp .*use sync.mode arrival",
        log,
    ), log
    assert "[pose_classifier_node-1]: process has finished cleanly" in log, log
