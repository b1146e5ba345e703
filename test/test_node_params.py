"""The classifier node's parameter table, YAML, validation, path resolution, frame queue and QoS texts (no processes)."""

from __future__ import annotations

import threading

import pytest
import yaml
from helpers.paths import REPO, VENV
from rclpy.qos import QoSPolicyKind, ReliabilityPolicy

from pose_classifier_ros.ros.params import descriptor, resolve_path
from pose_classifier_ros.ros.qos import IncompatibleQosReporter, image_qos
from pose_classifier_ros.stream.node_config import config_from_values, node_parameters
from pose_classifier_ros.stream.threads import FrameQueue

VALID = {"model.checkpoint": "/models/m.pt"}


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_yaml_lists_every_parameter_with_its_default_and_type():
    values = _flatten(
        yaml.safe_load((REPO / "config" / "pose_classifier.yaml").read_text())["/**/pose_classifier"]["ros__parameters"]
    )
    table = {p.name: p for p in node_parameters()}
    assert set(values) == set(table)
    for name, p in table.items():
        assert type(values[name]) is type(p.default) and values[name] == p.default, name
    assert descriptor(table["model.checkpoint"]).read_only
    assert descriptor(table["voting.window"]).integer_range[0].from_value == 1
    assert "One of: stamp, arrival" in descriptor(table["sync.mode"]).description


def test_config_is_typed_and_invalid_values_are_all_named():
    cfg = config_from_values({**VALID, "voting.window": 5, "sync.mode": "arrival", "crop.padding": 0.2})
    assert (cfg.voting.window, cfg.sync.mode, cfg.crop.padding) == (5, "arrival", 0.2)
    assert cfg.processing.policy == "latest" and cfg.autostart is True and cfg.model.checkpoint == "/models/m.pt"
    with pytest.raises(ValueError) as err:
        config_from_values(
            {
                "model.checkpoint": " ",
                "voting.min_votes": 9,
                "processing.policy": "newest",
                "model.device": "gpu0",
                "model.backend": "fp16",
                "filter.class_ids": [0, 1],
            }
        )
    text = str(err.value)
    for part in (
        "model.checkpoint: is empty",
        "processing.policy: must be one of latest, all, got 'newest'",
        "model.device: must be cpu, cuda or cuda:<index>, got 'gpu0'",
        "voting.min_votes: must be <= voting.window (7), got 9",
        "filter.class_ids: expected a list of strings (quote numeric ones), got [0, 1]",
    ):
        assert part in text, text
    with pytest.raises(ValueError, match="model.backend: backend 'fp16' does not run on cpu"):
        config_from_values({**VALID, "model.backend": "fp16"})
    config_from_values({**VALID, "model.backend": "fp16", "model.device": "cuda:0"})  # valid for cuda


def test_checkpoint_paths_resolve_absolute_relative_and_package(tmp_path, monkeypatch):
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(VENV))
    assert resolve_path("/a/b/../m.pt") == resolve_path("/a/m.pt")
    assert resolve_path("models/m.pt", base=tmp_path) == tmp_path / "models" / "m.pt"
    monkeypatch.chdir(tmp_path)
    assert resolve_path("m.pt") == tmp_path / "m.pt"
    share = resolve_path("package://pose_classifier_ros/config/pose_classifier.yaml")
    assert share.is_file() and share.parent.parent.name == "pose_classifier_ros"
    with pytest.raises(FileNotFoundError, match="package 'no_such_pkg' is not installed"):
        resolve_path("package://no_such_pkg/model.pt")


def test_latest_queue_keeps_only_the_newest_frame_and_counts_drops():
    q = FrameQueue("latest", 100)
    assert [q.put(i) for i in range(4)] == [0, 1, 1, 1]
    assert q.get() == 3
    fifo = FrameQueue("all", 3)
    assert [fifo.put(i) for i in range(5)] == [0, 0, 0, 1, 1]
    assert [fifo.get() for _ in range(3)] == [2, 3, 4]
    got = []
    worker = threading.Thread(target=lambda: got.append(fifo.get()))
    worker.start()
    fifo.close()  # wakes a waiting worker with None
    worker.join(5)
    assert got == [None] and not worker.is_alive()


class _Endpoint:
    def __init__(self, reliability, name="camera_driver", ns="/"):
        self.qos_profile = image_qos()
        self.qos_profile.reliability = reliability
        self.node_name, self.node_namespace = name, ns


class _GraphNode:
    def get_publishers_info_by_topic(self, topic):
        return [_Endpoint(ReliabilityPolicy.BEST_EFFORT)]


def test_incompatible_qos_warning_names_topic_both_policies_and_fix():
    ours = image_qos()
    ours.reliability = ReliabilityPolicy.RELIABLE  # as after a qos_overrides ... reliability: reliable
    text = IncompatibleQosReporter(_GraphNode()).message("subscription", "/cam/image", ours, QoSPolicyKind.RELIABILITY)
    assert text.startswith(
        "incompatible QoS on subscription /cam/image: RELIABILITY policy - this node requests "
        "RELIABLE, publisher(s) offer BEST_EFFORT (/camera_driver)"
    )
    assert "qos_overrides./cam/image.subscription.reliability: best_effort" in text
    assert text.endswith("`ros2 topic info -v /cam/image`.")
