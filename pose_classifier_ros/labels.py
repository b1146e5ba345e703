"""The 8 viewpoint classes, their horizontal-flip symmetry, coarse bins and nominal headings.

Class order is the reference training order and is part of every checkpoint and message.
Headings are the direction the animal faces, in degrees counter-clockwise from "facing the camera":
front 0, front-left 45, left 90, back-left 135, back 180, back-right 225 (-135), right 270 (-90),
front-right 315 (-45). "left" means the animal's left flank is seen (it faces image-left).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

VIEWPOINTS: tuple[str, ...] = (
    "front",
    "front-left",
    "front-right",
    "left",
    "right",
    "back-left",
    "back-right",
    "back",
)
NUM_CLASSES = len(VIEWPOINTS)
INDEX: dict[str, int] = {name: i for i, name in enumerate(VIEWPOINTS)}
UNKNOWN_LABEL = 255  # Viewpoint.UNKNOWN: no class (a track seen but not classified yet)
UNKNOWN_NAME = "unknown"  # Viewpoint.label_name with UNKNOWN

# Mirror image of each class (horizontal flip): left <-> right, front/back unchanged.
_FLIP_NAME = {
    "front": "front",
    "back": "back",
    "left": "right",
    "right": "left",
    "front-left": "front-right",
    "front-right": "front-left",
    "back-left": "back-right",
    "back-right": "back-left",
}
FLIP_INDEX: tuple[int, ...] = tuple(INDEX[_FLIP_NAME[name]] for name in VIEWPOINTS)

# Coarse bins used for front/side/back accuracy and by the navigation policy.
COARSE_BINS: tuple[str, ...] = ("front", "side", "back")
_COARSE_NAME = {
    "front": "front",
    "front-left": "front",
    "front-right": "front",
    "left": "side",
    "right": "side",
    "back-left": "back",
    "back-right": "back",
    "back": "back",
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


def label_name(label: int) -> str:
    """Name of a class index; UNKNOWN_NAME ("unknown", as messages spell it) for any index outside 0..7
    (UNKNOWN_LABEL included)."""
    label = int(label)
    return VIEWPOINTS[label] if 0 <= label < NUM_CLASSES else UNKNOWN_NAME


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


def heading_from_probs(probs) -> tuple[np.ndarray, np.ndarray]:
    """Continuous heading estimate from class probabilities: the probability-weighted circular mean.

    probs: (..., 8) class probabilities in VIEWPOINTS order. Returns (heading_deg, spread_deg), each of
    shape (...): heading in [-180, 180) with this module's convention (0 = facing the camera, +90 = left
    flank seen, -90 = right flank, -180 = back); spread is the circular standard deviation in degrees
    (0 for a one-hot vector, large when the mass is spread round the ring). NaN where probs sum to 0.
    """
    p = np.asarray(probs, dtype=np.float64)
    rad = np.deg2rad(np.asarray(HEADING_DEG))
    total = p.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (p * np.cos(rad)).sum(axis=-1) / total
        s = (p * np.sin(rad)).sum(axis=-1) / total
        r = np.clip(np.hypot(c, s), 1e-12, 1.0)
        heading = np.rad2deg(np.arctan2(s, c))
        spread = np.rad2deg(np.sqrt(-2.0 * np.log(r)))
    heading = (heading + 180.0) % 360.0 - 180.0  # arctan2 gives (-180, 180]; 180 maps to -180
    bad = ~(total > 0)
    heading = np.where(bad, np.nan, heading)
    spread = np.where(bad, np.nan, np.where(r >= 1.0 - 1e-12, 0.0, spread))
    return heading, spread
