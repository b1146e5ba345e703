"""Annotated debug frame: each classified box with its track id and voted viewpoint (PIL, no OpenCV)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from pose_classifier_ros.labels import VIEWPOINTS

# Stable (unstable) smoothed labels are drawn green (yellow); boxes are xyxy pixels.
_STABLE, _UNSTABLE = (40, 220, 40), (240, 200, 0)


def _name(label) -> str:
    return VIEWPOINTS[label] if isinstance(label, (int, np.integer)) and 0 <= label < len(VIEWPOINTS) else str(label)


def draw_viewpoints(frame: np.ndarray, result) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of `frame` with the boxes and labels of a FrameResult drawn on it."""
    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    width = max(1, round(max(image.size) / 640))
    for r in result.results:
        x1, y1, x2, y2 = (float(v) for v in np.asarray(r.box, dtype=np.float32)[:4])
        smoothed = r.smoothed
        colour = _STABLE if getattr(smoothed, "is_stable", False) else _UNSTABLE
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=colour, width=width)
        text = f"{r.track_id} {_name(getattr(smoothed, 'label', r.label))} ({_name(r.label)})"
        left, top, right, bottom = draw.textbbox((x1, y1), text)
        y_text = y1 - (bottom - top) - 2 if y1 - (bottom - top) - 2 >= 0 else y1 + 1
        draw.rectangle([x1, y_text, x1 + (right - left) + 2, y_text + (bottom - top) + 2], fill=(0, 0, 0))
        draw.text((x1 + 1, y_text), text, fill=colour)
    return np.asarray(image)
