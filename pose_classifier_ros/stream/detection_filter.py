"""Which detector boxes are classified, and which crops can be trusted: class/score filter, truncation.

The model card asks users to hold out predictions they cannot trust; like DeepStream's and Autoware's
classifier stages, the pipeline classifies only boxes of the wanted detector classes above a score, and
marks boxes whose padded crop is cut by the frame edge (the animal is partly outside the picture, so the
crop shows only part of it). No ROS imports; boxes are (N, 4) float32 xyxy pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class DetectionFilterConfig:
    """class_ids: detector class ids (vision_msgs ObjectHypothesis.class_id, strings) to classify; empty =
    every class. min_score: detections with a lower detector score are not classified (0 = all)."""

    class_ids: tuple[str, ...] = ()
    min_score: float = 0.0

    def __post_init__(self):
        if isinstance(self.class_ids, str):
            raise ValueError(f"filter.class_ids must be a list of strings, got the string {self.class_ids!r}")
        # [""] is how a ROS string-array parameter can say "empty"; blanks never name a class.
        self.class_ids = tuple(str(c).strip() for c in self.class_ids if str(c).strip())
        if not (np.isfinite(self.min_score) and 0.0 <= self.min_score):
            raise ValueError(f"filter.min_score must be a finite score >= 0, got {self.min_score!r}")
        self.min_score = float(self.min_score)


def keep_mask(class_ids: Sequence[str | None], scores: Sequence[float], cfg: DetectionFilterConfig) -> np.ndarray:
    """(N,) bool: True for detections to classify.

    class_ids: each detection's class id (None or "" when the detector gives none: such a detection
    passes only when cfg.class_ids is empty); scores: detector scores (N,).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = np.ones(scores.shape[0], bool)
    if cfg.min_score > 0.0:
        keep &= np.nan_to_num(scores, nan=-np.inf) >= cfg.min_score
    if cfg.class_ids:
        wanted = set(cfg.class_ids)
        keep &= np.array([(c or "").strip() in wanted for c in class_ids], bool).reshape(-1)
    return keep


def truncated_mask(boxes: np.ndarray, width: int, height: int, padding: float) -> np.ndarray:
    """(N,) bool: the box, grown by `padding` x its width/height on each side (the crop), reaches outside
    the width x height frame. A box touching the edge without padding counts as cut when padding > 0."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    x1, x2 = boxes[:, 0] - padding * w, boxes[:, 2] + padding * w
    y1, y2 = boxes[:, 1] - padding * h, boxes[:, 3] + padding * h
    with np.errstate(invalid="ignore"):
        return (x1 < 0) | (y1 < 0) | (x2 > width) | (y2 > height)


__all__ = ["DetectionFilterConfig", "keep_mask", "truncated_mask"]
