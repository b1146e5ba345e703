"""What goes into the track pipeline and what comes out of it: detections, per-detection viewpoints, frames.

No logic beyond field checks; stream/pipeline.py fills these, conversions.frame_result_to_msg turns a
FrameResult into a ViewpointArray. Boxes are (4,) float32 xyxy pixels, stamps int nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pose_classifier_ros.labels import UNKNOWN_LABEL, label_name
from pose_classifier_ros.stream.voting import SmoothedLabel


@dataclass
class Detection:
    """One detector box. box: (4,) float32 xyxy pixels; score: detector confidence (0 if none);
    track_id: the detector/tracker's id, or None to let the pipeline assign an "iou-<n>" id;
    class_id: the detector's class of the box (its best hypothesis), None if it gives none."""

    box: np.ndarray
    score: float = 0.0
    track_id: str | None = None
    class_id: str | None = None

    def __post_init__(self):
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)
        if self.track_id == "":
            self.track_id = None


@dataclass
class ViewpointResult:
    """Viewpoint of one detection. label: the track's latest per-frame argmax class index (UNKNOWN_LABEL
    before its first classification); probs: (8,) float32 softmax of that classification (zeros when
    unknown); smoothed: the track's vote (None while it has none); label_stamp_ns: stamp of the frame the
    label was computed on (None when unknown); fresh: computed on this frame; voted: this frame's
    prediction was counted as a vote; truncated: the padded crop is cut by the frame edge."""

    track_id: str
    box: np.ndarray
    detection_score: float
    label: int
    probs: np.ndarray
    smoothed: SmoothedLabel | None
    label_stamp_ns: int | None = None
    fresh: bool = True
    voted: bool = True
    truncated: bool = False
    heading_deg: float | None = None  # of `probs`, when already computed (None: conversions computes it)
    heading_spread_deg: float | None = None

    @property
    def label_name(self) -> str:
        return label_name(self.label)

    @property
    def known(self) -> bool:
        return self.label != UNKNOWN_LABEL


@dataclass
class FrameResult:
    """All results of one frame, in detector order. skipped: detections with no result (box invalid,
    too small or outside the frame; every_frame: also those not classified on this frame); filtered:
    detections left out by filter.class_ids / filter.min_score (not in `results`, not in `skipped`);
    timings_ms: stage times, ms ("observe", "schedule", classifier stages, "update", "total")."""

    stamp_ns: int
    width: int
    height: int
    results: list[ViewpointResult] = field(default_factory=list)
    skipped: int = 0
    timings_ms: dict = field(default_factory=dict)
    filtered: int = 0


@dataclass
class ObservedFrame:
    """A frame as observe() saw it; classify() classifies crops of it.

    track_ids: per detection (None for a non-finite box); valid: (N,) bool, box usable (finite, inside the
    frame, at least crop.min_box_size); generation: the pipeline's reset count when it was observed;
    truncated: (N,) bool, padded crop cut by the frame edge (None: none); filtered: detections left out by
    the input filter (not in `detections`); timings_ms: {"observe": ms}."""

    stamp_ns: int
    width: int
    height: int
    detections: list[Detection]
    track_ids: list[str | None]
    valid: np.ndarray
    generation: int = 0
    truncated: np.ndarray | None = None
    filtered: int = 0
    timings_ms: dict = field(default_factory=dict)

    def is_truncated(self, i: int) -> bool:
        return bool(self.truncated[i]) if self.truncated is not None else False


@dataclass
class InferenceCycle:
    """One classify() call: the frame it classified, the tracks it picked (Choice: id + reason), how many
    got a valid classification, and timings_ms (classifier stages, "schedule", "update", "total")."""

    stamp_ns: int
    choices: list = field(default_factory=list)
    classified: int = 0
    timings_ms: dict = field(default_factory=dict)


__all__ = ("UNKNOWN_LABEL", "Detection", "ViewpointResult", "FrameResult", "ObservedFrame", "InferenceCycle")
