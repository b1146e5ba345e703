"""One parameter schema: the same YAML mistake fails the same way in the nodes and in the offline tools."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.paths import VENV

from pose_classifier_ros.navigation.policy import load_params_file
from pose_classifier_ros.parameters import Parameter, ParameterError, ParameterSchema, params_files_from_args
from pose_classifier_ros.stream.node_config import load_node_config

CLASSIFIER_TYPO = "pose_classifier:\n  ros__parameters:\n    voting:\n      windw: 5\n"
POLICY_TYPO = "side_profile_policy:\n  ros__parameters:\n    approach:\n      speeed: 0.4\n"


def test_schema_checks_unknown_keys_types_ranges_and_choices(tmp_path):
    schema = ParameterSchema(
        "n",
        [
            Parameter("a.rate", 1.0, "Hz", 0.0, 10.0),
            Parameter("mode", "x", "m", choices=("x", "y")),
            Parameter("ids", [""], "class ids"),
            Parameter("on", True, "flag"),
        ],
    )
    assert schema.check({"a.rate": 2, "ids": ["3"]}) == {"a.rate": 2.0, "mode": "x", "ids": ["3"], "on": True}
    with pytest.raises(ParameterError) as err:
        schema.check({"a.rte": 1.0, "mode": "z", "on": "yes", "a.rate": 11.0, "ids": "3"}, source="f.yaml")
    text = str(err.value)
    for part in (
        "f.yaml: invalid parameters for n",
        "unknown parameter 'a.rte' (did you mean 'a.rate'?)",
        "mode='z' is not one of x, y",
        "on has type str, expected bool",
        "a.rate=11.0 is outside",
        "ids has type str, expected a list",
    ):
        assert part in text, text
    assert schema.check({"use_sim_time": True})["on"] is True  # rclpy's own parameters are never unknown
    assert schema.check({"qos_overrides./camera/image_raw.subscription.reliability": "reliable"})["on"] is True


def test_wildcard_and_namespaced_sections_apply(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    voting: {window: 4}\n"
        "/drone1/pose_classifier:\n  ros__parameters:\n    voting: {min_votes: 2}\n"
        "other:\n  ros__parameters:\n    nonsense: 1\n"
    )
    cfg = load_node_config(path)
    assert (cfg.voting.window, cfg.voting.min_votes) == (4, 2)
    assert params_files_from_args(["x", "--ros-args", "--params-file", "a.yaml", "-p", "b:=1"]) == ["a.yaml"]


def _run(cmd, env, timeout=90):
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.ros
def test_misspelt_key_fails_the_same_for_classifier_node_and_replay(ros_env, tmp_path):
    params = tmp_path / "typo.yaml"
    params.write_text(CLASSIFIER_TYPO)
    with pytest.raises(ParameterError) as err:
        load_node_config(params)
    expected = str(err.value)
    assert str(params) in expected and "unknown parameter 'voting.windw' (did you mean 'voting.window'?)" in expected

    rc, out = _run(
        [
            sys.executable,
            "-m",
            "pose_classifier_ros.cli",
            "replay",
            str(tmp_path / "no_bag"),
            "--checkpoint",
            str(tmp_path / "none.pt"),
            "--params",
            str(params),
        ],
        ros_env,
    )
    assert rc == 1 and expected in out, out

    node = [
        str(VENV / "lib" / "pose_classifier_ros" / "pose_classifier_node"),
        "--ros-args",
        "--params-file",
        str(params),
        "-p",
        f"model.checkpoint:={tmp_path / 'none.pt'}",
    ]
    proc = subprocess.Popen(node, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:  # autostart configures at once; the failure is logged before spinning
            lines.append(line)
            if "configure failed" in line:
                break
    finally:
        proc.terminate()
        proc.wait(10)
    out = "".join(lines)
    assert "configure failed" in out and expected in out, out


@pytest.mark.ros
def test_misspelt_key_fails_the_same_for_policy_node_and_policy_eval(ros_env, tmp_path):
    params = tmp_path / "typo.yaml"
    params.write_text(POLICY_TYPO)
    with pytest.raises(ParameterError) as err:
        load_params_file(params)
    expected = str(err.value)
    assert "unknown parameter 'approach.speeed' (did you mean 'approach.speed'?)" in expected

    rc, out = _run(
        [
            sys.executable,
            "-m",
            "pose_classifier_ros.cli",
            "policy-eval",
            str(tmp_path / "no_bag"),
            "--out",
            str(tmp_path / "o"),
            "--params",
            str(params),
        ],
        ros_env,
    )
    assert rc != 0 and expected in out, out
    rc, out = _run(
        [
            str(VENV / "lib" / "pose_classifier_ros" / "side_profile_policy_node"),
            "--ros-args",
            "--params-file",
            str(params),
        ],
        ros_env,
    )
    assert rc != 0 and expected in out and "Traceback" not in out, out
