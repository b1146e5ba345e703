"""detection_filter: class/score filter and truncation by the frame edge after padding."""

import numpy as np
import pytest

from pose_classifier_ros.stream.detection_filter import DetectionFilterConfig, keep_mask, truncated_mask


def test_keep_by_class_and_score():
    ids = ["elk", "person", None, "elk", " deer "]
    scores = [0.9, 0.95, 0.9, 0.2, 0.6]
    assert keep_mask(ids, scores, DetectionFilterConfig()).tolist() == [True] * 5
    assert keep_mask(ids, scores, DetectionFilterConfig(min_score=0.5)).tolist() == [True, True, True, False, True]
    by_class = DetectionFilterConfig(class_ids=("elk", "deer"))
    assert keep_mask(ids, scores, by_class).tolist() == [True, False, False, True, True]
    both = DetectionFilterConfig(class_ids=["elk"], min_score=0.5)
    assert keep_mask(ids, scores, both).tolist() == [True, False, False, False, False]
    assert keep_mask(["elk"], [float("nan")], DetectionFilterConfig(min_score=0.1)).tolist() == [False]


def test_config_normalises_the_ros_empty_list_spelling():
    assert DetectionFilterConfig(class_ids=[""]).class_ids == ()
    assert DetectionFilterConfig(class_ids=["", "elk "]).class_ids == ("elk",)
    for bad in (dict(min_score=-0.1), dict(min_score=float("nan")), dict(class_ids="elk")):
        with pytest.raises(ValueError):
            DetectionFilterConfig(**bad)


def test_truncated_after_padding():
    boxes = np.array(
        [
            [100, 100, 200, 200],  # well inside
            [5, 100, 105, 200],  # 10 % padding (10 px) reaches x = -5: cut
            [10, 100, 110, 200],  # padding reaches exactly x = 0: not cut
            [500, 400, 600, 475],  # padded bottom 482.5 > 480: cut
            [-50, -50, 40, 40],
        ],  # partly outside
        np.float32,
    )
    assert truncated_mask(boxes, 640, 480, 0.1).tolist() == [False, True, False, True, True]
    assert truncated_mask(boxes, 640, 480, 0.0).tolist() == [False, False, False, False, True]
    assert truncated_mask(np.zeros((0, 4)), 640, 480, 0.1).shape == (0,)
