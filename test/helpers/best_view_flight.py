"""One animal's flight past the camera for the best-view tests: striped frames, per-frame results and the
FLIGHT script whose frame 3 is the best left view."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from pose_classifier_ros.labels import INDEX
from pose_classifier_ros.stream.pipeline import FrameResult, ViewpointResult
from pose_classifier_ros.stream.voting import SmoothedLabel
from pose_classifier_ros.visualization.best_views import BestViewTracker

W, H = 640, 360
PERIOD = 100_000_000
L, R, F = INDEX["left"], INDEX["right"], INDEX["front"]


def striped_frame(box, blur: float = 0.0) -> np.ndarray:
    """Savanna-brown frame with a black/white striped animal filling `box` (xyxy px), optionally blurred."""
    frame = np.full((H, W, 3), (150, 120, 80), np.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    stripes = ((np.arange(x2 - x1) // 4) % 2 * 255).astype(np.uint8)
    frame[y1:y2, x1:x2] = stripes[None, :, None]
    if blur:
        frame = np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(blur)))
    return frame


def result(stamp, track, box, label, conf=0.9, voted=None, fresh=True) -> ViewpointResult:
    """A classified ViewpointResult: `conf` on `label`, the rest spread evenly; voted label stable with 3 votes."""
    probs = np.full(8, (1 - conf) / 7, np.float32)
    probs[label] = conf
    voted = label if voted is None else voted
    r = ViewpointResult(
        track_id=track,
        box=np.asarray(box, np.float32),
        detection_score=0.8,
        label=label,
        probs=probs,
        smoothed=SmoothedLabel(voted, 1.0, 3, True),
    )
    r.fresh = fresh  # classified on this frame (scheduled mode may carry labels of older frames)
    return r


# The flight of one animal: (box, per-frame label, confidence, blur). Frame 3 is sharp, large and side-on.
FLIGHT = [
    ((100, 100, 180, 160), L, 0.9, 0.0),  # small
    ((100, 100, 300, 250), L, 0.9, 3.0),  # large but blurred
    ((100, 100, 300, 250), F, 0.95, 0.0),  # sharp and large, but front-on
    ((120, 90, 340, 260), L, 0.85, 0.0),  # <- the best left view
    ((0, 100, 260, 300), L, 0.9, 0.0),  # large and sharp but truncated at the left edge
    ((100, 100, 300, 250), L, 0.4, 0.0),  # unsure
]


def run_flight(tracker: BestViewTracker, flight=FLIGHT, track="z1", start=0) -> list:
    """Feeds `flight` (box, label, confidence, blur per frame) to `tracker` as one track; returns what expired."""
    expired = []
    for i, (box, label, conf, blur) in enumerate(flight):
        stamp = start + i * PERIOD
        frame = striped_frame(box, blur)
        expired += tracker.update(frame, FrameResult(stamp, W, H, [result(stamp, track, box, label, conf)]), "cam")
    return expired
