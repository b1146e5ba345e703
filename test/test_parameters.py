"""One parameter schema: the same YAML mistake fails the same way in the nodes and in the offline tools."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from helpers.paths import REPO, VENV
from helpers.waiting import wait_for

from pose_classifier_ros.navigation.policy import PolicyNodeConfig, load_params_file, policy_schema
from pose_classifier_ros.parameters import (
    Parameter,
    ParameterDoc,
    ParameterError,
    ParameterSchema,
    config_defaults,
    config_values,
    params_files_from_args,
    read_params_file,
    replace_values,
    section_applies,
    unapplied_sections,
)
from pose_classifier_ros.stream.node_config import NodeConfig, load_node_config, node_schema

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
        "mode: must be one of x, y, got 'z'",
        "on: expected bool, got str 'yes'",
        "a.rate: must be in [0.0, 10.0], got 11.0",
        "ids: expected a list of strings (quote numeric ones), got '3'",
    ):
        assert part in text, text
    assert schema.check({"use_sim_time": True})["on"] is True  # rclpy's own parameters are never unknown
    assert schema.check({"qos_overrides./camera/image_raw.subscription.reliability": "reliable"})["on"] is True


@dataclass
class _Rate:
    hz: float = 1.0
    ids: tuple[str, ...] = ()
    internal: int = 3


@dataclass
class _Config:
    rate: _Rate = field(default_factory=_Rate)
    mode: str = "x"


def test_schema_from_config_takes_defaults_from_the_dataclass_and_builds_it():
    docs = [ParameterDoc("rate.hz", "Hz", 0.0, 10.0), ParameterDoc("rate.ids", "ids"), ParameterDoc("mode", "m")]
    schema = ParameterSchema.from_config("n", _Config, docs, fixed=["rate.internal"])
    assert schema.defaults() == {"rate.hz": 1.0, "rate.ids": [], "mode": "x"}
    cfg = schema.build({"rate.hz": 2, "rate.ids": ["a"]})
    assert cfg == _Config(rate=_Rate(hz=2.0, ids=("a",)))  # int -> float, list -> the field's tuple
    with pytest.raises(ParameterError, match=r"rate.hz: must be in \[0.0, 10.0\], got 11.0"):
        schema.build({"rate.hz": 11.0})
    assert replace_values(cfg, {"mode": "y"}) == _Config(rate=_Rate(hz=2.0, ids=("a",)), mode="y")
    with pytest.raises(ValueError, match=r"no parameter for field \['rate.internal'\]"):
        ParameterSchema.from_config("n", _Config, docs)  # a field without a parameter is a table out of step
    with pytest.raises(ValueError, match=r"no such field \['rate.hx'\]"):
        ParameterSchema.from_config("n", _Config, [*docs, ParameterDoc("rate.hx", "typo")], fixed=["rate.internal"])


def _other_value(p: Parameter):
    """A valid value of `p` that differs from its default."""
    special = {"model.device": "cuda:1"}  # a free-form string with a pattern
    if p.name in special:
        return special[p.name]
    if isinstance(p.default, bool):
        return not p.default
    if p.choices:
        return next(c for c in p.choices if c != p.default)
    if isinstance(p.default, list):
        return ["elk", "deer"]
    if isinstance(p.default, str):
        return f"/data/{p.name}"
    if isinstance(p.default, int):
        return p.default + 1 if p.default + 1 <= p.high else p.default - 1
    return (p.default + p.high) / 2


@pytest.mark.parametrize("schema", [node_schema(), policy_schema()], ids=["pose_classifier", "side_profile_policy"])
def test_every_parameter_round_trips_to_its_attribute_path(schema):
    values = {p.name: _other_value(p) for p in schema.parameters}
    assert all(values[p.name] != p.default for p in schema.parameters)
    built = config_values(schema.build(values))
    for name, value in values.items():
        got = list(built[name]) if isinstance(value, list) else built[name]
        assert got == value, name
    # ... and the dataclass defaults are the schema's (one statement of each default).
    defaults = config_defaults(schema.config_type)
    assert {p.name: p.default for p in schema.parameters} == {
        p.name: list(defaults[p.name]) if isinstance(p.default, list) else defaults[p.name] for p in schema.parameters
    }


def test_repository_yaml_files_state_the_schema_defaults():
    for schema, path, default in (
        (node_schema(), REPO / "config" / "pose_classifier.yaml", NodeConfig()),
        (policy_schema(), REPO / "config" / "side_profile_policy.yaml", PolicyNodeConfig()),
    ):
        values = read_params_file(path, schema.node_name)
        assert set(values) == set(schema.by_name), path
        for p in schema.parameters:
            assert type(values[p.name]) is type(p.default) and values[p.name] == p.default, p.name
        assert schema.build_file(path) == default


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
def test_misspelt_key_fails_the_same_for_classifier_node_and_replay(ros_env, processes, tmp_path):
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
    proc = processes.start(node, ros_env, "node")  # stopped at teardown, with its process group
    # autostart configures at once; the failure is logged (one whole line) before spinning
    wait_for(
        lambda: re.search("configure failed.*\n", processes.output(proc)) or proc.poll() is not None,
        60,
        message="the node's configure failure",
    )
    out = processes.output(proc)
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


@pytest.mark.parametrize(
    ("key", "node", "applies"),
    [
        ("pose_classifier", "/pose_classifier", True),
        ("pose_classifier", "/drone1/pose_classifier", False),  # no leading slash: still the root namespace
        ("/**/pose_classifier", "/drone1/pose_classifier", True),
        ("/**/pose_classifier", "/pose_classifier", True),
        ("/*/pose_classifier", "/a/b/pose_classifier", False),
        ("/*/pose_classifier", "/a/pose_classifier", True),
        ("/**", "/a/b", True),
        ("/drone2/pose_classifier", "/drone1/pose_classifier", False),
    ],
)
def test_params_file_sections_apply_as_ros_applies_them(key, node, applies):
    assert section_applies(key, node) is applies


def test_a_section_ros_would_not_apply_is_named(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("pose_classifier:\n  ros__parameters:\n    voting: {window: 5}\n")
    assert unapplied_sections(path, "pose_classifier", "/drone1/pose_classifier") == ["pose_classifier"]
    assert unapplied_sections(path, "pose_classifier", "/pose_classifier") == []
    # The shipped files apply in any namespace.
    for name in ("pose_classifier", "side_profile_policy"):
        assert unapplied_sections(REPO / "config" / f"{name}.yaml", name, f"/drone1/{name}") == []
