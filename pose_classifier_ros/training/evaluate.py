"""`pose-classifier evaluate`: metrics of a checkpoint on a labelled folder or CSV.

Images go through ``ViewpointClassifier`` (the node's preprocessing and backends), so the figures
are the ones the node would give on the same crops. OUT gets metrics.json, report.txt,
confusion_matrix.png (``report.write_report``), predictions.csv (one row per image) and
results.json|csv (the headline row, timm validate.py style); the headline JSON is echoed to stdout.

Beyond one accuracy (``evaluation.analysis``): seeded bootstrap 95% intervals for overall, per-class
and per-group accuracy; per-group reports (``--group-by species,site``: extra CSV columns,
``--metadata FILE.csv`` joined by file name, or ``--group-from-path site=1``); pass / fail / not enough
data against targets (``--targets card``); ECE before/after the checkpoint's temperature with
reliability.png; the accuracy-coverage curve (accuracy_coverage.png/.csv) and the
``voting.min_confidence`` that reaches ``--target-accuracy``; the share of adjacent / mirror / opposite errors.
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
    from pose_classifier_ros.training.config_file import add_config_option

    add_config_option(parser)
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, default=None, help="folder per class, or an image_path,pose CSV")
    data.add_argument("--csv", type=Path, default=None, help="image_path,pose CSV (same as --data FILE)")
    data.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="report directory")
    groups = parser.add_argument_group("groups and targets")
    groups.add_argument(
        "--group-by",
        default=None,
        metavar="COL[,COL...]",
        help="report per value of these metadata columns (each one and their combination)",
    )
    groups.add_argument(
        "--metadata",
        type=Path,
        default=None,
        metavar="FILE.csv",
        help="per-image metadata (image_path or file column + any others), joined by path "
        "relative to the data root, else by file name; for folder data sets",
    )
    groups.add_argument(
        "--group-from-path",
        default=None,
        metavar="NAME=INDEX[,...]",
        help="metadata from a path component relative to the data root, e.g. site=1 "
        "(0-based; -2 = the image's folder); implies --group-by NAME",
    )
    groups.add_argument(
        "--targets",
        default=None,
        metavar="card|NAME=ACC[,...]",
        help="pass/fail against targets: 'card' = overall > 85%%, front > 90%%, back > 90%%; "
        "or e.g. overall=0.9,left=0.8",
    )
    groups.add_argument(
        "--target-accuracy",
        type=float,
        default=None,
        metavar="A",
        help="confidence threshold (voting.min_confidence) whose kept crops reach accuracy A",
    )
    groups.add_argument("--confidence-level", type=float, default=0.95, help="confidence interval level")
    groups.add_argument("--bootstrap-resamples", type=int, default=2000, help="bootstrap resamples per interval")
    groups.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    groups.add_argument("--calibration-bins", type=int, default=15, help="equal-width bins of ECE / reliability")
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", type=Path, required=False, default=None, help="checkpoint (.pth)")
    model.add_argument("--backbone-weights", type=Path, default=None, help="DINOv2 weights for a head-only checkpoint")
    model.add_argument("--hub-dir", type=Path, default=None, help="torch hub directory with DINOv2 weights")
    rt = parser.add_argument_group("runtime")
    rt.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    rt.add_argument(
        "--backend", default="eager", help="classifier backend: eager (fp32), bf16, int8, onnx, auto; fp16 on cuda"
    )
    rt.add_argument("--batch-size", type=int, default=32)
    rt.add_argument("--results-format", choices=("json", "csv"), default="json", help="format of OUT/results.<fmt>")
    rt.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def analysis_options(args, path_fields: dict[str, int]):
    """AnalysisOptions from the CLI arguments (ValueError for bad values)."""
    from pose_classifier_ros.evaluation.analysis import AnalysisOptions, parse_targets
    from pose_classifier_ros.evaluation.groups import default_factors, parse_columns

    if args.target_accuracy is not None and not 0.0 < args.target_accuracy <= 1.0:
        raise ValueError(f"--target-accuracy must be in (0, 1], got {args.target_accuracy}")
    if not 0.0 < args.confidence_level < 1.0 or args.bootstrap_resamples < 100 or args.calibration_bins < 1:
        raise ValueError("--confidence-level must be in (0, 1), --bootstrap-resamples >= 100, --calibration-bins >= 1")
    columns = parse_columns(args.group_by) + [n for n in path_fields if n not in parse_columns(args.group_by)]
    return AnalysisOptions(
        factors=default_factors(columns),
        targets=parse_targets(args.targets),
        target_accuracy=args.target_accuracy,
        level=args.confidence_level,
        resamples=args.bootstrap_resamples,
        seed=args.seed,
        bins=args.calibration_bins,
    )


def _predict(clf, samples, args) -> np.ndarray:
    """(N, 8) float32 probabilities (with the checkpoint's temperature) of every sample, in order."""
    from tqdm import tqdm

    from pose_classifier_ros.labels import VIEWPOINTS
    from pose_classifier_ros.training.data import read_image

    probs = np.empty((len(samples), len(VIEWPOINTS)), dtype=np.float32)
    for start in tqdm(range(0, len(samples), args.batch_size), desc="evaluate", unit="batch", disable=args.no_progress):
        chunk = samples[start : start + args.batch_size]
        probs[start : start + len(chunk)] = clf.predict_proba([read_image(s.path) for s in chunk])
    return probs


def _write_predictions(path: Path, samples, probs: np.ndarray, metadata: list[dict[str, str]]) -> None:
    from pose_classifier_ros.labels import VIEWPOINTS

    columns = list(dict.fromkeys(k for m in metadata for k in m))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_path", "pose", "predicted", "confidence", *VIEWPOINTS, *columns])
        for s, p, meta in zip(samples, probs, metadata):
            w.writerow(
                [
                    s.path,
                    VIEWPOINTS[s.label],
                    VIEWPOINTS[int(p.argmax())],
                    f"{float(p.max()):.4f}",
                    *(f"{v:.5f}" for v in p),
                    *(meta.get(c, "") for c in columns),
                ]
            )


def evaluate(args) -> dict:
    """Classify every image of the labelled set; write the report; return the report dict."""
    from pose_classifier_ros.evaluation import groups as G
    from pose_classifier_ros.evaluation.analysis import analyse, write_figures
    from pose_classifier_ros.evaluation.calibration import apply_temperature
    from pose_classifier_ros.metrics import classification_report
    from pose_classifier_ros.model.classifier import ViewpointClassifier
    from pose_classifier_ros.report import write_report
    from pose_classifier_ros.training.data import DataError, load_samples

    source = args.csv if args.csv is not None else args.data
    if source is None or (args.csv is not None and args.data is not None):
        raise DataError("give exactly one of --data DIR|CSV or --csv FILE")
    if args.checkpoint is None:
        raise DataError("--checkpoint is required")
    path_fields = G.parse_path_fields(args.group_from_path)
    options = analysis_options(args, path_fields)
    samples = load_samples(source, progress=not args.no_progress)
    if len(samples) == 0:
        raise DataError(f"{source}: no images to evaluate")
    metadata = G.sample_metadata(samples, G.data_root(source), args.metadata, path_fields)
    G.group_indices(metadata, options.factors)  # unknown columns fail before the slow part
    clf = ViewpointClassifier.from_checkpoint(
        args.checkpoint,
        device=args.device,
        backend=args.backend,
        backbone_weights=args.backbone_weights,
        hub_dir=args.hub_dir,
        batch_size=args.batch_size,
    )
    t0 = time.perf_counter()
    probs = _predict(clf, samples, args)
    seconds = time.perf_counter() - t0
    labels = samples.labels
    report = classification_report(labels, probs.argmax(1))
    report.update(
        checkpoint=str(args.checkpoint),
        data=str(source),
        backend=clf.backend,
        device=str(clf.device),
        images_per_s=len(samples) / seconds if seconds > 0 else None,
        skipped_images={"missing": len(samples.missing), "unreadable": len(samples.unreadable)},
    )
    raw = apply_temperature(probs, 1.0 / clf.temperature)  # the head's own probabilities (T = 1)
    report.update(analyse(labels, raw, temperature=clf.temperature, metadata=metadata, options=options))
    out = Path(args.out)
    title = f"Evaluation of {args.checkpoint} on {source}"
    write_report(out, report, title)
    write_figures(out, labels, raw, report)
    _write_predictions(out / "predictions.csv", samples, probs, metadata)
    return report


def summary_lines(report: dict) -> list[str]:
    """The few lines a user acts on: target verdicts and the node's confidence threshold."""
    from pose_classifier_ros.evaluation.selective import NODE_PARAMETER

    lines = []
    targets = report.get("targets")
    if targets:
        for r in targets["rows"]:
            lines.append(
                f"target {r['scope']} {r['metric']} > {r['target']:.0%}: {r['decision'].upper()} "
                f"({100 * r['estimate']:.1f}% [{100 * r['low']:.1f}, {100 * r['high']:.1f}], n={r['n']})"
                if r["n"]
                else f"target {r['scope']} {r['metric']} > {r['target']:.0%}: NOT ENOUGH DATA (n=0)"
            )
    chosen = (report.get("selective") or {}).get("chosen")
    if chosen is not None and chosen["reached"]:
        lines.append(
            f"{NODE_PARAMETER}: {chosen['min_confidence']:g}   # {chosen['target']:.0%} accuracy target: "
            f"keeps {chosen['coverage']:.1%} of crops at {chosen['accuracy']:.1%}"
            + ("" if chosen.get("supported", True) else " (WARNING: its 95% interval reaches below the target)")
        )
    elif chosen is not None:
        lines.append(f"no {NODE_PARAMETER} reaches {chosen['target']:.0%} accuracy on this data")
    return lines


def headline(report: dict) -> dict:
    """The one-row summary echoed to stdout and written to results.json|csv."""
    keys = (
        "checkpoint",
        "data",
        "num_samples",
        "accuracy",
        "coarse_accuracy",
        "mean_angular_error_deg",
        "backend",
        "device",
        "images_per_s",
    )
    row = {k: report.get(k) for k in keys}
    row.update({f"acc_{name}": pc["accuracy"] for name, pc in report["per_class"].items()})
    if report.get("intervals"):
        ci = report["intervals"]["overall"]
        row.update(accuracy_ci_low=ci["low"], accuracy_ci_high=ci["high"])
    if report.get("calibration"):
        cal = report["calibration"]
        row.update(temperature=cal["temperature"], ece=cal["ece_after"], ece_uncalibrated=cal["ece_before"])
    chosen = (report.get("selective") or {}).get("chosen")
    if chosen is not None:
        row.update(
            target_accuracy=chosen["target"],
            min_confidence=chosen["min_confidence"] if chosen["reached"] else None,
            coverage=chosen["coverage"] if chosen["reached"] else None,
        )
    return row


def run(args: argparse.Namespace) -> int:
    from pose_classifier_ros.model.checkpoint import CheckpointError
    from pose_classifier_ros.model.device import DeviceError
    from pose_classifier_ros.report import to_jsonable
    from pose_classifier_ros.training.data import DataError

    try:
        report = evaluate(args)
    except (DataError, CheckpointError, DeviceError, FileNotFoundError, ValueError) as exc:
        print(f"pose-classifier evaluate: error: {exc}", file=sys.stderr)
        return 2
    row = to_jsonable(headline(report))
    for line in summary_lines(report):
        print(line)
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


__all__ = ["add_arguments", "run", "evaluate", "headline", "summary_lines", "analysis_options"]
