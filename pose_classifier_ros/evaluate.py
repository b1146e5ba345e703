"""`pose-classifier evaluate`: metrics of a checkpoint on a labelled folder or CSV.

Images go through ``ViewpointClassifier`` (the node's preprocessing and backends), so the figures
are the ones the node would give on the same crops. OUT gets metrics.json, report.txt,
confusion_matrix.png (``report.write_report``), predictions.csv (one row per image) and
results.json|csv (the headline row, timm validate.py style); the headline JSON is echoed to stdout.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pose_classifier_ros.train import _install_config_defaults

    parser.add_argument("-c", "--config", default=None, metavar="FILE.yaml", help="YAML file of option defaults")
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, default=None, help="folder per class, or an image_path,pose CSV")
    data.add_argument("--csv", type=Path, default=None, help="image_path,pose CSV (same as --data FILE)")
    data.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="report directory")
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", type=Path, required=False, default=None, help="checkpoint (.pth)")
    model.add_argument("--backbone-weights", type=Path, default=None,
                       help="DINOv2 weights for a head-only checkpoint")
    model.add_argument("--hub-dir", type=Path, default=None, help="torch hub directory with DINOv2 weights")
    rt = parser.add_argument_group("runtime")
    rt.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    rt.add_argument("--backend", default="eager",
                    help="classifier backend: eager (fp32), bf16, int8, onnx, auto; fp16 on cuda")
    rt.add_argument("--batch-size", type=int, default=32)
    rt.add_argument("--results-format", choices=("json", "csv"), default="json",
                    help="format of OUT/results.<fmt>")
    rt.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    _install_config_defaults(parser)


def evaluate(args) -> dict:
    """Classify every image of the labelled set; write the report; return the report dict."""
    from tqdm import tqdm

    from pose_classifier_ros.classifier import ViewpointClassifier
    from pose_classifier_ros.data import DataError, load_samples, read_image
    from pose_classifier_ros.labels import VIEWPOINTS
    from pose_classifier_ros.metrics import classification_report
    from pose_classifier_ros.report import write_report

    source = args.csv if args.csv is not None else args.data
    if source is None or (args.csv is not None and args.data is not None):
        raise DataError("give exactly one of --data DIR|CSV or --csv FILE")
    if args.checkpoint is None:
        raise DataError("--checkpoint is required")
    samples = load_samples(source, progress=not args.no_progress)
    if len(samples) == 0:
        raise DataError(f"{source}: no images to evaluate")
    clf = ViewpointClassifier.from_checkpoint(args.checkpoint, device=args.device, backend=args.backend,
                                              backbone_weights=args.backbone_weights, hub_dir=args.hub_dir,
                                              batch_size=args.batch_size)
    probs = np.empty((len(samples), len(VIEWPOINTS)), dtype=np.float32)
    t0 = time.perf_counter()
    for start in tqdm(range(0, len(samples), args.batch_size), desc="evaluate", unit="batch",
                      disable=args.no_progress):
        chunk = samples[start:start + args.batch_size]
        probs[start:start + len(chunk)] = clf.predict_proba([read_image(s.path) for s in chunk])
    seconds = time.perf_counter() - t0
    labels = samples.labels
    report = classification_report(labels, probs.argmax(1))
    report.update(checkpoint=str(args.checkpoint), data=str(source), backend=clf.backend, device=str(clf.device),
                  images_per_s=len(samples) / seconds if seconds > 0 else None,
                  skipped_images={"missing": len(samples.missing), "unreadable": len(samples.unreadable)})
    out = Path(args.out)
    write_report(out, report, f"Evaluation of {args.checkpoint} on {source}")
    with (out / "predictions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_path", "pose", "predicted", "confidence", *VIEWPOINTS])
        for s, p in zip(samples, probs):
            w.writerow([s.path, VIEWPOINTS[s.label], VIEWPOINTS[int(p.argmax())], f"{float(p.max()):.4f}",
                        *(f"{v:.5f}" for v in p)])
    return report


def headline(report: dict) -> dict:
    """The one-row summary echoed to stdout and written to results.json|csv."""
    keys = ("checkpoint", "data", "num_samples", "accuracy", "coarse_accuracy", "mean_angular_error_deg",
            "backend", "device", "images_per_s")
    row = {k: report.get(k) for k in keys}
    row.update({f"acc_{name}": pc["accuracy"] for name, pc in report["per_class"].items()})
    return row


def run(args: argparse.Namespace) -> int:
    from pose_classifier_ros.checkpoint import CheckpointError
    from pose_classifier_ros.data import DataError
    from pose_classifier_ros.report import to_jsonable

    try:
        report = evaluate(args)
    except (DataError, CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"pose-classifier evaluate: error: {exc}", file=sys.stderr)
        return 2
    row = to_jsonable(headline(report))
    out = Path(args.out)
    if args.results_format == "csv":
        with (out / "results.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            w.writeheader()
            w.writerow(row)
    else:
        (out / "results.json").write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))
    return 0


__all__ = ["add_arguments", "run", "evaluate", "headline"]
