"""A fake classifier whose prediction is painted into the frame, for tests of the stream and replay."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np


class ColourClassifier:
    """predict_frame(frame (H, W, 3) uint8, boxes (N, 4) xyxy px): probability 0.9 on class red // 20 (mod 8)
    at each box centre, the rest spread evenly; every box valid. `calls` counts predict_frame calls."""

    def __init__(self):
        self.calls = 0

    def predict_frame(self, frame, boxes):
        self.calls += 1
        probs = np.full((len(boxes), 8), 0.1 / 7, np.float32)
        for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes)):
            probs[i, int(frame[int((y1 + y2) / 2), int((x1 + x2) / 2), 0]) // 20 % 8] = 0.9
        return SimpleNamespace(probs=probs, valid=np.ones(len(boxes), bool), timings_ms={})
