"""The real-frame example: a 5472x3078 DJI JPEG through the node's decode + crop path and the overlay.

Reads ../shared/real-samples (beside the repository, as in CI); a random-weight test-tiny model, so the
labels are noise and only sizes, files and drawing are checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pose_classifier_ros.visualization.annotate import (
    annotate_image,
    load_boxes_csv,
    padded_crops,
    random_tiny_classifier,
)
from pose_classifier_ros.visualization.annotations import viewpoint_color

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
IMAGE, BOXES = SAMPLES / "mixed_herd6.jpg", SAMPLES / "boxes.csv"
pytestmark = pytest.mark.skipif(
    not IMAGE.exists() or not BOXES.exists(),
    reason=f"real sample frame not found at {SAMPLES} (../shared/real-samples)",
)


def test_real_frame_crops_and_overlay(tmp_path):
    boxes = load_boxes_csv(BOXES)
    assert len(boxes) == 3
    summary = annotate_image(IMAGE, boxes, random_tiny_classifier(), tmp_path, preview_width=800)
    assert (summary["width"], summary["height"]) == (5472, 3078) and summary["skipped"] == 0
    # crops: the box plus 10 % padding on each side, whole pixels (e.g. 220x270 -> 264x324)
    assert [d["crop_size"] for d in summary["detections"]] == [[264, 324], [216, 336], [456, 384]]
    for det in summary["detections"]:
        crop = Image.open(tmp_path / "crops" / f"{det['track_id']}.jpg")
        assert list(crop.size) == det["crop_size"]
        assert abs(sum(det["probs"].values()) - 1.0) < 1e-3
    assert summary["line_width_px"] == 9.0  # 5472 / 640, rounded
    original = np.asarray(Image.open(IMAGE).convert("RGB"), np.float32)
    overlay = np.asarray(Image.open(tmp_path / "overlay.jpg"), np.float32)
    assert overlay.shape == original.shape
    assert Image.open(tmp_path / "overlay_preview.jpg").size == (800, 450)
    for det in summary["detections"]:
        x1, y1, x2, y2 = (int(v) for v in det["box"])
        colour = 255 * np.array(viewpoint_color(det["label"]))
        edge = overlay[(y1 + y2) // 2, x1 + 2]  # on the left edge of the box (9 px wide line)
        assert np.abs(edge - colour).max() < 40, (det, edge, colour)
        inside = overlay[(y1 + y2) // 2 - 20 : (y1 + y2) // 2 + 20, (x1 + x2) // 2 - 20 : (x1 + x2) // 2 + 20]
        ref = original[(y1 + y2) // 2 - 20 : (y1 + y2) // 2 + 20, (x1 + x2) // 2 - 20 : (x1 + x2) // 2 + 20]
        assert np.abs(inside - ref).mean() < 6  # the animal itself is not painted over
    assert json.loads((tmp_path / "results.json").read_text())["overlay_segments"] == summary["overlay_segments"]


def test_padded_crops_are_clamped_at_the_frame_edge():
    frame = np.zeros((3078, 5472, 3), np.uint8)
    from pose_classifier_ros.visualization.annotate import BoxRow

    crops = padded_crops(frame, [BoxRow(np.array([0, 2900, 200, 3078], np.float32), "edge")])
    assert crops["edge"].shape == (178 + 18, 200 + 20, 3)  # padded only where the frame allows
