"""Frame + detections -> per-detection viewpoints: track ids, one batched classifier call, voting.

Shared by the live node and the offline replay so both give the same answers. No ROS imports.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.stream.voting import IouTracker, SmoothedLabel, TrackVoter, VotingConfig


@dataclass
class Detection:
    """One detector box. box: (4,) float32 xyxy pixels; score: detector confidence (0 if none);
    track_id: the detector/tracker's id, or None to let the pipeline assign an "iou-<n>" id."""

    box: np.ndarray
    score: float = 0.0
    track_id: str | None = None

    def __post_init__(self):
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)
        if self.track_id == "":
            self.track_id = None


@dataclass
class ViewpointResult:
    """Viewpoint of one detection. label: per-frame argmax class index; probs: (8,) float32 softmax;
    smoothed: the track's vote including this frame."""

    track_id: str
    box: np.ndarray
    detection_score: float
    label: int
    probs: np.ndarray
    smoothed: SmoothedLabel

    @property
    def label_name(self) -> str:
        return VIEWPOINTS[self.label]


@dataclass
class FrameResult:
    """All results of one frame, in detector order. skipped: detections with no result (box invalid,
    too small or outside the frame); timings_ms: classifier stages plus "vote" and "total"."""

    stamp_ns: int
    width: int
    height: int
    results: list[ViewpointResult] = field(default_factory=list)
    skipped: int = 0
    timings_ms: dict = field(default_factory=dict)


class ViewpointPipeline:
    """Classifies every detection of a frame in one batch and smooths labels per track over time.

    classifier: any object with predict_frame(frame, boxes) -> FramePrediction(probs (N, C),
    valid (N,), timings_ms) (ViewpointClassifier, or a fake in tests).
    """

    def __init__(self, classifier, voting: VotingConfig | None = None, iou_threshold: float = 0.3):
        self.classifier = classifier
        self.voting = voting or VotingConfig()
        self.voter = TrackVoter(self.voting)
        self.tracker = IouTracker(iou_threshold=iou_threshold, timeout_s=self.voting.track_timeout_s,
                                  max_tracks=max(self.voting.max_tracks, 1))

    def reset(self) -> None:
        """Forget all tracks and votes (e.g. after a bag loop or when the camera changes)."""
        self.voter.reset()
        self.tracker.reset()

    def process(self, frame: np.ndarray, detections: list[Detection], stamp_ns: int) -> FrameResult:
        """Classify `detections` on `frame` ((H, W, 3) uint8 RGB) captured at stamp_ns (int ns)."""
        start = time.perf_counter()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            desc = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"frame must be an (H, W, 3) uint8 RGB array, got {desc}")
        height, width = frame.shape[:2]
        stamp_s = int(stamp_ns) * 1e-9
        n = len(detections)
        boxes = (np.stack([d.box for d in detections]).astype(np.float32, copy=False) if n
                 else np.zeros((0, 4), np.float32))
        finite = np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])

        # Ids: keep the detector's; give the others IoU-associated ids. The tracker runs every frame
        # (even with nothing to track) so its tracks expire on time.
        need_id = [i for i, d in enumerate(detections) if d.track_id is None and finite[i]]
        assigned = self.tracker.assign(boxes[need_id], stamp_s)
        track_ids: list[str | None] = [d.track_id for d in detections]
        for i, tid in zip(need_id, assigned):
            track_ids[i] = tid

        probs = np.full((n, 0), np.nan, np.float32)
        valid = np.zeros(n, bool)
        timings: dict = {}
        idx = np.flatnonzero(finite)
        if idx.size:  # one batched call per frame; degenerate boxes never reach the classifier
            pred = self.classifier.predict_frame(frame, boxes[idx])
            p = np.asarray(pred.probs, dtype=np.float32)
            v = np.asarray(pred.valid, dtype=bool).reshape(-1)
            if p.ndim != 2 or p.shape[0] != idx.size or v.shape[0] != idx.size:
                raise RuntimeError(f"classifier returned probs {p.shape} / valid {v.shape} "
                                   f"for {idx.size} boxes")
            probs = np.full((n, p.shape[1]), np.nan, np.float32)
            probs[idx] = p
            valid[idx] = v & np.all(np.isfinite(p), axis=1)
            timings.update({k: float(t) for k, t in dict(getattr(pred, "timings_ms", {}) or {}).items()})

        vote_start = time.perf_counter()
        self.voter.expire(stamp_s)  # before voting: a track back after the timeout starts afresh
        results: list[ViewpointResult] = []
        for i, det in enumerate(detections):
            if not valid[i]:
                continue
            smoothed = self.voter.update(track_ids[i], probs[i], stamp_s)
            results.append(ViewpointResult(
                track_id=track_ids[i], box=det.box, detection_score=det.score,
                label=int(np.argmax(probs[i])), probs=probs[i].copy(), smoothed=smoothed))
        now = time.perf_counter()
        timings["vote"] = (now - vote_start) * 1e3
        timings["total"] = (now - start) * 1e3
        return FrameResult(stamp_ns=int(stamp_ns), width=int(width), height=int(height), results=results,
                           skipped=n - len(results), timings_ms=timings)


__all__ = ("Detection", "ViewpointResult", "FrameResult", "ViewpointPipeline")
