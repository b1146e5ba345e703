"""config/foxglove_layout.json: a well-formed layout whose topics and message paths are the ones we write."""

from __future__ import annotations

import inspect
import json
import re

from helpers.paths import REPO

from pose_classifier_ros.bags.replay_visuals import ReplayVisualsConfig
from pose_classifier_ros.replay.bag_replay import replay_bag

LAYOUT = REPO / "config" / "foxglove_layout.json"


def _leaves(node):
    if isinstance(node, str):
        return [node]
    assert set(node) >= {"first", "second", "direction"} and 0 < node.get("splitPercentage", 50) < 100
    return _leaves(node["first"]) + _leaves(node["second"])


def test_layout_panels_topics_and_fields():
    layout = json.loads(LAYOUT.read_text())
    assert sorted(_leaves(layout["layout"])) == sorted(layout["configById"])
    cfg = layout["configById"]
    defaults = {k: p.default for k, p in inspect.signature(replay_bag).parameters.items()}
    image = cfg["Image!camera"]["imageMode"]
    assert image["imageTopic"] == defaults["image_topic"]
    assert list(image["annotations"]) == [ReplayVisualsConfig().annotations_topic]
    assert cfg["RawMessages!track_summaries"]["topicPath"] == ReplayVisualsConfig().summaries_topic
    viewpoint_fields = set(re.findall(r"^\w+\[?\d*\]?\s+(\w+)", (REPO / "msg" / "Viewpoint.msg").read_text(), re.M))
    paths = [
        p["value"] for key in ("StateTransitions!viewpoint_timeline", "Plot!vote_confidence") for p in cfg[key]["paths"]
    ]
    for path in paths:
        topic, rest = path.split(".", 1)
        assert topic == defaults["viewpoints_topic"]
        assert rest.startswith("viewpoints[:]{track_id==$track}.")
        assert rest.rsplit(".", 1)[1] in viewpoint_fields, path
    assert "track" in layout["globalVariables"]
