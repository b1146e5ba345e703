"""Mirror-consistent stripe patterns: labelled images whose class even a random backbone's features
separate (fast training tests; ``crops.write_crops(..., render=render_pattern)`` writes a data set)."""

from __future__ import annotations

import numpy as np

from pose_classifier_ros.labels import VIEWPOINTS

# Per class: body stripe colour (red = facing the camera, green = side, blue = facing away), stripe
# direction ("|" for front/back, "/" facing left, "\\" facing right) and the x of a head marker on
# the side the animal faces. Mirroring turns "/" into "\\" and x into 1 - x: exactly flip_label's class.
# Stripes are chiral at the scale of a ViT patch, so even a random backbone's features separate them.
_PATTERN = {  # name: (rgb, stripe direction sign for x, marker x)
    "front": ((220, 40, 40), 0, 0.5),
    "back": ((40, 70, 220), 0, 0.5),
    "front-left": ((220, 40, 40), 1, 0.3),
    "front-right": ((220, 40, 40), -1, 0.7),
    "left": ((40, 200, 60), 1, 0.15),
    "right": ((40, 200, 60), -1, 0.85),
    "back-left": ((40, 70, 220), 1, 0.3),
    "back-right": ((40, 70, 220), -1, 0.7),
}


def render_pattern(label: int, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """(size, size, 3) uint8 image whose class is readable from a striped body and a head marker.

    ``np.fliplr(render_pattern(c))`` is a valid image of ``flip_label(c)`` (see _PATTERN).
    """
    rgb, sign, marker_x = _PATTERN[VIEWPOINTS[label]]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = rng.normal(110, 18, (size, size, 3)).clip(0, 255)
    body = ((xx - 0.5) / 0.42) ** 2 + ((yy - 0.55) / 0.3) ** 2 <= 1.0
    period = rng.uniform(0.07, 0.1)
    phase = rng.uniform(0, 1)
    # sign 0: vertical stripes (mirror-symmetric); +1: "/" ; -1: "\\"
    coord = xx + sign * yy if sign else xx
    stripe = ((coord / period + phase) % 1.0) < 0.5
    colour = np.clip(np.array(rgb) + rng.normal(0, 15, 3), 0, 255)
    img[body & stripe] = colour
    img[body & ~stripe] = colour * 0.35
    cx = marker_x + rng.uniform(-0.03, 0.03)
    cy = 0.3 + rng.uniform(-0.04, 0.04)
    r = 0.1 + rng.uniform(-0.015, 0.015)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (235, 225, 200)
    return img.astype(np.uint8)


__all__ = ["render_pattern"]
