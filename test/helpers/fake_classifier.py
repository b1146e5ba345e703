"""Fake classifiers whose prediction is painted into the frame, for tests of the stream and replay."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from pose_classifier_ros.synthetic.frame_code import read_frame_code


@dataclass
class Prediction:
    """What a classifier's predict_frame returns to TrackPipeline: probs (N, C), valid (N,), timings_ms."""

    probs: np.ndarray
    valid: np.ndarray
    timings_ms: dict = field(default_factory=dict)


class ColourClassifier:
    """predict_frame(frame (H, W, 3) uint8, boxes (N, 4) xyxy px): probability 0.9 on class red // 20 (mod 8)
    at each box centre, the rest spread evenly; every box valid. `calls` counts predict_frame calls; `batches`
    keeps the boxes (float32) of every call."""

    def __init__(self):
        self.calls = 0
        self.batches: list[np.ndarray] = []

    def predict_frame(self, frame, boxes):
        self.calls += 1
        self.batches.append(np.asarray(boxes, np.float32).copy())
        probs = np.full((len(boxes), 8), 0.1 / 7, np.float32)
        for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes)):
            probs[i, int(frame[int((y1 + y2) / 2), int((x1 + x2) / 2), 0]) // 20 % 8] = 0.9
        return SimpleNamespace(probs=probs, valid=np.ones(len(boxes), bool), timings_ms={})


class RedChannelClassifier:
    """predict_frame(frame (H, W, 3) uint8, boxes (N, 4) xyxy px): probability 0.86 on class red (mod 8) at
    each box centre, 0.02 on the others; every box valid; each Prediction carries `timings_ms`. `calls` counts
    predict_frame calls; `batches` keeps the boxes (float32, (N, 4)) of every call."""

    def __init__(self, timings_ms: dict | None = None):
        self.calls = 0
        self.batches: list[np.ndarray] = []
        self.timings_ms = timings_ms or {}

    def predict_frame(self, frame, boxes):
        self.calls += 1
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.batches.append(boxes.copy())
        probs = np.full((len(boxes), 8), 0.02, np.float32)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            probs[i, int(frame[int((y1 + y2) / 2), int((x1 + x2) / 2), 0]) % 8] = 0.86
        return Prediction(probs, np.ones(len(boxes), bool), dict(self.timings_ms))


class FrameCodeClassifier:
    """predict_frame(frame (H, W, 3) uint8, boxes (N, 4) xyxy px): a box exactly around a frame code
    (synthetic.frame_code) gets probability 0.9 on class code % 8 and its code appended to `codes`; a box
    whose crop holds no readable code is invalid (not classified) and counted in `unreadable`; boxes of
    another size (the animals) get 0.9 on class 0."""

    def __init__(self, code_size: tuple[int, int]):
        self.code_size = code_size  # (width, height) px
        self.codes: list[int] = []
        self.unreadable = 0

    def predict_frame(self, frame, boxes):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        probs = np.full((len(boxes), 8), 0.1 / 7, np.float32)
        valid = np.ones(len(boxes), bool)
        for i, box in enumerate(boxes):
            x1, y1, x2, y2 = (int(v) for v in np.round(box))
            if (x2 - x1, y2 - y1) != self.code_size:
                probs[i, 0] = 0.9
                continue
            code = read_frame_code(frame[y1:y2, x1:x2])
            if code is None:
                valid[i] = False
                self.unreadable += 1
                continue
            self.codes.append(code)
            probs[i, code % 8] = 0.9
        return SimpleNamespace(probs=probs, valid=valid, timings_ms={})
