"""The 8 viewpoint classes, their horizontal-flip symmetry, coarse bins and nominal headings.

Class order is the reference training order and is part of every checkpoint and message.
Headings are the direction the animal faces, in degrees counter-clockwise from "facing the camera":
front 0, front-left 45, left 90, back-left 135, back 180, back-right 225 (-135), right 270 (-90),
front-right 315 (-45). "left" means the animal's left flank is seen (it faces image-left).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

VIEWPOINTS: tuple[str, ...] = (
    "front", "front-left", "front-right", "left", "right", "back-left", "back-right", "back",
)
NUM_CLASSES = len(VIEWPOINTS)
INDEX: dict[str, int] = {name: i for i, name in enumerate(VIEWPOINTS)}

# Mirror image of each class (horizontal flip): left <-> right, front/back unchanged.
_FLIP_NAME = {
    "front": "front", "back": "back",
    "left": "right", "right": "left",
    "front-left": "front-right", "front-right": "front-left",
    "back-left": "back-right", "back-right": "back-left",
}
FLIP_INDEX: tuple[int, ...] = tuple(INDEX[_FLIP_NAME[name]] for name in VIEWPOINTS)

# Coarse bins used for front/side/back accuracy and by the navigation policy.
COARSE_BINS: tuple[str, ...] = ("front", "side", "back")
_COARSE_NAME = {
    "front": "front", "front-left": "front", "front-right": "front",
    "left": "side", "right": "side",
    "back-left": "back", "back-right": "back", "back": "back",
}
COARSE_INDEX: tuple[int, ...] = tuple(COARSE_BINS.index(_COARSE_NAME[name]) for name in VIEWPOINTS)
SIDE_VIEWS: frozenset[str] = frozenset({"left", "right"})

HEADING_DEG: tuple[float, ...] = (0.0, 45.0, 315.0, 90.0, 270.0, 135.0, 225.0, 180.0)


def normalize_label(label: str | int) -> int:
    """Class index of a label given as index or name (case-insensitive; '_' or ' ' for '-')."""
    if isinstance(label, (int, np.integer)):
        if not 0 <= int(label) < NUM_CLASSES:
            raise ValueError(f"viewpoint index {label} is outside 0..{NUM_CLASSES - 1}")
        return int(label)
    key = str(label).strip().lower().replace("_", "-").replace(" ", "-")
    if key not in INDEX:
        raise ValueError(f"unknown viewpoint {label!r}; expected one of {', '.join(VIEWPOINTS)}")
    return INDEX[key]


def flip_label(label: int) -> int:
    """Class index seen after a horizontal flip of the image."""
    return FLIP_INDEX[label]


def coarse_label(label: int) -> int:
    """Index into COARSE_BINS (front/side/back) of a class index."""
    return COARSE_INDEX[label]


def is_side_view(label: str | int) -> bool:
    return VIEWPOINTS[normalize_label(label)] in SIDE_VIEWS


def angular_error_deg(pred: Iterable[int] | int, true: Iterable[int] | int) -> np.ndarray:
    """Absolute heading difference in degrees, 0..180, between predicted and true class indices."""
    heading = np.asarray(HEADING_DEG)
    diff = np.abs(heading[np.asarray(pred)] - heading[np.asarray(true)]) % 360.0
    return np.minimum(diff, 360.0 - diff)


def check_class_names(names: Sequence[str]) -> None:
    """Raise ValueError unless `names` is exactly the supported class order."""
    if tuple(names) != VIEWPOINTS:
        raise ValueError(
            f"class list {list(names)} differs from the supported order {list(VIEWPOINTS)}")
