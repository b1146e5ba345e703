"""labels.heading_from_probs: the probability-weighted circular mean of the class headings, and its spread."""

import numpy as np
import pytest

from pose_classifier_ros.labels import HEADING_DEG, INDEX, NUM_CLASSES, VIEWPOINTS, heading_from_probs


def mix(**weights) -> np.ndarray:
    probs = np.zeros(NUM_CLASSES, np.float32)
    for name, w in weights.items():
        probs[INDEX[name.replace("_", "-")]] = w
    return probs


EXPECTED_ONE_HOT = {
    "front": 0.0,
    "front-left": 45.0,
    "front-right": -45.0,
    "left": 90.0,
    "right": -90.0,
    "back-left": 135.0,
    "back-right": -135.0,
    "back": -180.0,
}


@pytest.mark.parametrize("name", VIEWPOINTS)
def test_one_hot_is_the_class_heading_with_zero_spread(name):
    heading, spread = heading_from_probs(np.eye(NUM_CLASSES)[INDEX[name]])
    assert float(heading) == pytest.approx(EXPECTED_ONE_HOT[name], abs=1e-9)
    assert -180.0 <= float(heading) < 180.0
    assert float(spread) == 0.0
    # the nominal table and the published convention agree (mod 360)
    assert (HEADING_DEG[INDEX[name]] - EXPECTED_ONE_HOT[name]) % 360.0 == pytest.approx(0.0)


def test_two_class_mix_lies_between_them():
    heading, spread = heading_from_probs(mix(front=0.5, front_left=0.5))
    assert float(heading) == pytest.approx(22.5)
    # circular std of two unit vectors 45 deg apart: sqrt(-2 ln cos 22.5 deg)
    assert float(spread) == pytest.approx(np.rad2deg(np.sqrt(-2 * np.log(np.cos(np.deg2rad(22.5))))))
    heading, _ = heading_from_probs(mix(left=0.75, front_left=0.25))
    assert 45.0 < float(heading) < 90.0 and float(heading) > 67.5  # pulled towards the heavier class


def test_wrap_between_back_left_and_back_right():
    # 135 and -135 are 90 deg apart across the back, not 270 deg across the front: the mean is the back.
    heading, spread = heading_from_probs(mix(back_left=0.5, back_right=0.5))
    assert float(heading) == pytest.approx(-180.0)
    assert float(spread) == pytest.approx(np.rad2deg(np.sqrt(-2 * np.log(np.cos(np.deg2rad(45.0))))))
    towards_left, _ = heading_from_probs(mix(back_left=0.7, back_right=0.3))
    towards_right, _ = heading_from_probs(mix(back_left=0.3, back_right=0.7))
    expected = 180.0 - np.rad2deg(np.arctan2(0.4 * np.sin(np.deg2rad(135)), 1.0 * np.cos(np.deg2rad(45))))
    assert float(towards_left) == pytest.approx(expected)  # ~158.2: on the back-left side of 180
    assert float(towards_right) == pytest.approx(-expected)  # ~-158.2: mirror image
    assert abs(float(towards_left)) > 135 and abs(float(towards_right)) > 135  # never through the front


def test_batched_unnormalised_and_unknown():
    probs = np.stack([mix(left=2.0), mix(right=0.2, back=0.2), np.zeros(NUM_CLASSES, np.float32)])
    heading, spread = heading_from_probs(probs)
    assert heading.shape == spread.shape == (3,)
    assert heading[0] == pytest.approx(90.0) and spread[0] == 0.0  # the scale does not matter
    assert heading[1] == pytest.approx(-135.0)  # -90 and -180 average to -135
    assert np.isnan(heading[2]) and np.isnan(spread[2])  # nothing known
    heading, spread = heading_from_probs(mix(front=0.5, back=0.5))  # opposite: no direction at all
    assert float(spread) > 180.0
    uniform_heading, uniform_spread = heading_from_probs(np.full(NUM_CLASSES, 1 / NUM_CLASSES))
    assert float(uniform_spread) > 180.0
