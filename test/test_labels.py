"""Label symmetry, coarse bins and angular errors (labels.py)."""

import numpy as np
import pytest

from pose_classifier_ros import labels
from pose_classifier_ros.labels import (
    COARSE_BINS,
    FLIP_INDEX,
    INDEX,
    NUM_CLASSES,
    UNKNOWN_LABEL,
    VIEWPOINTS,
    angular_error_deg,
    coarse_label,
    flip_label,
    is_side_view,
    label_name,
    normalize_label,
)


def test_class_order_is_the_reference_order():
    assert VIEWPOINTS == ("front", "front-left", "front-right", "left", "right", "back-left", "back-right", "back")
    assert NUM_CLASSES == 8 and all(INDEX[n] == i for i, n in enumerate(VIEWPOINTS))


def test_flip_is_an_involution_and_a_permutation():
    assert sorted(FLIP_INDEX) == list(range(NUM_CLASSES))
    for i in range(NUM_CLASSES):
        assert flip_label(flip_label(i)) == i


def test_flip_swaps_exactly_the_left_right_pairs():
    swapped = {frozenset((VIEWPOINTS[i], VIEWPOINTS[flip_label(i)])) for i in range(NUM_CLASSES) if flip_label(i) != i}
    assert swapped == {
        frozenset(p) for p in [("left", "right"), ("front-left", "front-right"), ("back-left", "back-right")]
    }
    assert flip_label(INDEX["front"]) == INDEX["front"]
    assert flip_label(INDEX["back"]) == INDEX["back"]


def test_flip_mirrors_the_heading():
    heading = np.asarray(labels.HEADING_DEG)
    for i in range(NUM_CLASSES):
        assert heading[flip_label(i)] == pytest.approx((-heading[i]) % 360.0)


def test_coarse_bins():
    coarse = {name: COARSE_BINS[coarse_label(INDEX[name])] for name in VIEWPOINTS}
    assert coarse == {
        "front": "front",
        "front-left": "front",
        "front-right": "front",
        "left": "side",
        "right": "side",
        "back-left": "back",
        "back-right": "back",
        "back": "back",
    }
    # Flipping never changes the coarse bin.
    assert all(coarse_label(i) == coarse_label(flip_label(i)) for i in range(NUM_CLASSES))


def test_angular_error_values():
    i = INDEX
    assert angular_error_deg(i["front"], i["front"]) == 0
    assert angular_error_deg(i["front"], i["back"]) == 180
    assert angular_error_deg(i["left"], i["right"]) == 180
    assert angular_error_deg(i["front-left"], i["front-right"]) == 90
    assert angular_error_deg(i["front-right"], i["front"]) == 45
    assert angular_error_deg(i["back-right"], i["right"]) == 45
    err = angular_error_deg([i["front"], i["left"], i["back-left"]], [i["front-right"], i["back"], i["front-right"]])
    np.testing.assert_array_equal(err, [45, 90, 180])
    full = angular_error_deg(np.arange(8)[:, None], np.arange(8)[None, :])
    assert full.shape == (8, 8) and (full == full.T).all() and full.max() == 180 and (np.diag(full) == 0).all()


def test_normalize_label_and_side_views():
    assert normalize_label("Front_Left") == INDEX["front-left"]
    assert normalize_label(" back right ") == INDEX["back-right"]
    assert normalize_label(np.int64(7)) == 7
    with pytest.raises(ValueError, match="unknown viewpoint"):
        normalize_label("sideways")
    with pytest.raises(ValueError):
        normalize_label(8)
    assert is_side_view("left") and is_side_view(INDEX["right"]) and not is_side_view("front-left")


def test_label_name_has_one_answer_for_every_index_outside_the_classes():
    assert [label_name(i) for i in range(NUM_CLASSES)] == list(VIEWPOINTS)
    assert label_name(np.int64(3)) == "left"
    # UNKNOWN (a track not classified yet), a negative sentinel and any other byte: the message's "unknown"
    assert {label_name(i) for i in (UNKNOWN_LABEL, -1, NUM_CLASSES, 254)} == {"unknown"}
