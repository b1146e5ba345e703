"""`pose-classifier annotate IMAGE --boxes CSV`: classify the boxes of one still image, write the overlay and crops.

The real-frame example (docs/real_frame_example.md) runs it on the DJI giraffe frame of
``../shared/real-samples``. It takes the node's crop path (``ViewpointClassifier.predict_frame`` on the
decoded JPEG) and draws the same ImageMarker overlay the node publishes (``stream.annotations``). A single
image has no track history, so the "voted" label is the image's own label (one vote).

Writes into ``--out``: ``overlay.jpg`` (full size), ``overlay_preview.jpg`` (``--preview-width`` px wide),
``crops/<track>.jpg`` (the padded, clamped crop the classifier resizes to 224 px) and ``results.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_logger = logging.getLogger(__name__)


@dataclass
class BoxRow:
    """One box of the boxes CSV: (4,) float32 xyxy px and its track id."""

    box: np.ndarray
    track_id: str


def load_boxes_csv(path: str | Path) -> list[BoxRow]:
    """Boxes CSV with columns x1,y1,x2,y2 (pixels) and optionally track_id; rows without one get "box-<i>"."""
    rows: list[BoxRow] = []
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"x1", "y1", "x2", "y2"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"boxes CSV {str(path)!r} lacks column(s) {sorted(missing)}; it has {reader.fieldnames}")
        for i, row in enumerate(reader):
            box = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")], np.float32)
            rows.append(BoxRow(box, (row.get("track_id") or "").strip() or f"box-{i}"))
    if not rows:
        raise ValueError(f"boxes CSV {str(path)!r} has no boxes")
    return rows


def random_tiny_classifier(seed: int = 0, backend: str = "eager"):
    """A ViewpointClassifier on the random-weight `test-tiny` backbone: exercises the whole path, predicts noise."""
    import torch

    from pose_classifier_ros.model.backbone import build_backbone
    from pose_classifier_ros.model.classifier import ViewpointClassifier
    from pose_classifier_ros.model.head import build_head
    from pose_classifier_ros.model.viewpoint_model import ModelConfig, ViewpointModel

    torch.manual_seed(seed)
    model = ViewpointModel(build_backbone("test-tiny", pretrained=False), build_head("mlp", 64)).eval()
    return ViewpointClassifier(model, ModelConfig(backbone="test-tiny"), backend=backend)


def classify_image(classifier, frame: np.ndarray, boxes: list[BoxRow], stamp_ns: int = 0):
    """FrameResult of one image: each valid box with its label; voted = the image's own label (one vote)."""
    from pose_classifier_ros.stream.pipeline_types import FrameResult, ViewpointResult
    from pose_classifier_ros.stream.voting import SmoothedLabel

    pred = classifier.predict_frame(frame, np.stack([b.box for b in boxes]))
    results = []
    for row, probs, valid in zip(boxes, np.asarray(pred.probs), np.asarray(pred.valid)):
        if not valid:
            continue
        label = int(np.argmax(probs))
        results.append(
            ViewpointResult(
                track_id=row.track_id,
                box=row.box,
                detection_score=0.0,
                label=label,
                probs=probs.astype(np.float32),
                smoothed=SmoothedLabel(label, float(probs[label]), 1, True),
            )
        )
    return FrameResult(
        stamp_ns=stamp_ns,
        width=frame.shape[1],
        height=frame.shape[0],
        results=results,
        skipped=len(boxes) - len(results),
        timings_ms=dict(pred.timings_ms),
    )


def padded_crops(frame: np.ndarray, boxes: list[BoxRow], crop_cfg=None) -> dict[str, np.ndarray]:
    """track id -> (h, w, 3) uint8 crop as the classifier takes it (padded, rounded outward, clamped)."""
    from pose_classifier_ros.model.preprocess import expand_and_clamp_boxes

    ints, valid = expand_and_clamp_boxes(np.stack([b.box for b in boxes]), frame.shape[1], frame.shape[0], crop_cfg)
    return {b.track_id: frame[y1:y2, x1:x2].copy() for b, (x1, y1, x2, y2), ok in zip(boxes, ints, valid) if ok}


def annotate_image(
    image_path: str | Path, boxes: list[BoxRow], classifier, out_dir: str | Path, preview_width: int = 1600
) -> dict:
    """Decode `image_path` (the node's JPEG decoder), classify `boxes`, write overlay, crops and results.json."""
    from PIL import Image

    from pose_classifier_ros.stream.image_codec import decode_compressed
    from pose_classifier_ros.visualization.annotations import build_overlay, render_overlay

    out = Path(out_dir)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    data = Path(image_path).read_bytes()
    frame = decode_compressed("jpeg" if data[:2] == b"\xff\xd8" else "png", data)
    result = classify_image(classifier, frame, boxes)
    overlay = build_overlay(result)
    drawn = render_overlay(frame, overlay)
    Image.fromarray(drawn).save(out / "overlay.jpg", quality=90)
    preview = Image.fromarray(drawn)
    if preview.width > preview_width:
        preview = preview.resize(
            (preview_width, round(preview.height * preview_width / preview.width)), Image.Resampling.LANCZOS
        )
    preview.save(out / "overlay_preview.jpg", quality=90)
    crop_cfg = getattr(classifier, "crop", None)
    crops = padded_crops(frame, boxes, crop_cfg)
    for track, crop in crops.items():
        Image.fromarray(crop).save(out / "crops" / f"{track}.jpg", quality=92)
    summary = {
        "image": str(image_path),
        "width": result.width,
        "height": result.height,
        "overlay_segments": int(len(overlay.segments)),
        "line_width_px": overlay.thickness,
        "timings_ms": result.timings_ms,
        "skipped": result.skipped,
        "detections": [
            {
                "track_id": r.track_id,
                "box": [float(v) for v in r.box],
                "label": r.label_name,
                "confidence": float(r.probs[r.label]),
                "crop_size": list(crops[r.track_id].shape[1::-1]),
                "probs": {n: round(float(p), 4) for n, p in zip(_names(), r.probs)},
            }
            for r in result.results
        ],
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _names():
    from pose_classifier_ros.labels import VIEWPOINTS

    return VIEWPOINTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="image file (JPEG or PNG)")
    parser.add_argument("--boxes", type=Path, required=True, help="CSV with x1,y1,x2,y2 pixel boxes (+ track_id)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="model checkpoint (see `pose-classifier train`)")
    model.add_argument(
        "--random-tiny",
        action="store_true",
        help="random-weight test-tiny model: runs the whole path offline, labels are noise",
    )
    parser.add_argument("--backbone-weights", type=Path, default=None, help="backbone weights (head-only ckpt)")
    parser.add_argument("--backend", default="eager", help="inference backend (see ViewpointClassifier)")
    parser.add_argument("--preview-width", type=int, default=1600, help="width of overlay_preview.jpg, px")


def run(args: argparse.Namespace) -> int:
    try:
        boxes = load_boxes_csv(args.boxes)
        if args.random_tiny:
            classifier = random_tiny_classifier(backend=args.backend)
        else:
            from pose_classifier_ros.model.classifier import ViewpointClassifier

            classifier = ViewpointClassifier.from_checkpoint(
                args.checkpoint,
                backend=args.backend,
                backbone_weights=str(args.backbone_weights) if args.backbone_weights else None,
            )
        summary = annotate_image(args.image, boxes, classifier, args.out, args.preview_width)
    except (OSError, ValueError) as exc:
        print(f"pose-classifier annotate: {exc}", file=sys.stderr)
        return 1
    for det in summary["detections"]:
        print(f"{det['track_id']:>10}  {det['label']:<12} {det['confidence']:.2f}  crop {det['crop_size']}")
    print(f"wrote {args.out / 'overlay.jpg'}, overlay_preview.jpg, crops/ and results.json")
    return 0


__all__ = (
    "BoxRow",
    "add_arguments",
    "annotate_image",
    "classify_image",
    "load_boxes_csv",
    "padded_crops",
    "random_tiny_classifier",
    "run",
)
