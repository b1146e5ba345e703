"""`pose-classifier train`: train a viewpoint head on a frozen DINOv2 backbone.

The reference recipe: folder-per-class or CSV data, seeded stratified 80/20 split when no
validation set is given; training augmentation Resize(256)/RandomCrop(224)/ColorJitter/
RandomRotation(15)/symmetry-aware horizontal flip; class-balanced WeightedRandomSampler; only the
head trains, with AdamW(1e-3, wd 0.01), CrossEntropy(label_smoothing 0.1) and CosineAnnealingLR;
mixed precision on CUDA, fp32 on the CPU; the best-validation-accuracy checkpoint is kept.

Beyond the reference:
  --cache-features   run the frozen backbone once (val + K augmented views per training image,
                     ``features.py``) and train the head on cached features (default on).
  --head linear      a linear probe instead of the MLP head.
  --mixup-alpha A    manifold mixup on the MLP's hidden layers (the input features for a linear head).

The reference script's flags work too (``--data_dir``, ``--train_csv``, ``--val_csv``, ``--model_size``,
``--batch_size``, ``--epochs``, ``--lr``; same meanings, same argparse dests as ours), and
``--save-format reference`` writes exactly the reference's file (``checkpoint.save_reference_checkpoint``).

Validation always uses ``preprocess.preprocess_images`` (the node's tensor path). RUN_DIR gets
best_pose_model.pth (``checkpoint.save_checkpoint``, loadable by ViewpointClassifier),
summary.csv (per epoch), metrics.json / report.txt / confusion_matrix.png of the best epoch on the
validation set, val_predictions.csv and args.yaml (the resolved arguments; reusable with -c).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pose_classifier_ros.training.config_file import add_config_option
from pose_classifier_ros.training.head_trainer import fit
from pose_classifier_ros.training.train_setup import TrainError, TrainRun, setup_data, setup_run

logger = logging.getLogger(__name__)

BACKBONE_SIZES = ("small", "base", "large", "test-tiny")
CHECKPOINT_NAME = "best_pose_model.pth"


# ------------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser, help="YAML file of option defaults (e.g. config/train.yaml); flags override it")
    data = parser.add_argument_group("data")
    # Second spellings (--data_dir, --train_csv, --val_csv, --model_size, --batch_size) are the reference
    # script's flags: same dests, so both parse to the same configuration (docs/migrating.md).
    data.add_argument(
        "--data",
        "--data_dir",
        dest="data",
        type=Path,
        default=None,
        help="folder per class (split --val-split, stratified), a folder with train/ and val/, "
        "or an image_path,pose CSV; with --train-csv: the folder the CSVs' relative "
        "image paths are under (the reference's --data_dir)",
    )
    data.add_argument(
        "--train-csv",
        "--train_csv",
        dest="train_csv",
        type=Path,
        default=None,
        help="training CSV (image_path,pose); relative paths: under --data if given, else next to the CSV",
    )
    data.add_argument(
        "--val-csv",
        "--val_csv",
        dest="val_csv",
        type=Path,
        default=None,
        help="validation CSV; without it the training set is split",
    )
    data.add_argument("--val-split", type=float, default=0.2, help="validation fraction when splitting")
    data.add_argument("--out", type=Path, default=Path("runs/train"), help="run directory")

    model = parser.add_argument_group("model")
    model.add_argument(
        "--size",
        "--model_size",
        dest="size",
        choices=BACKBONE_SIZES,
        default="small",
        help="DINOv2 backbone size (test-tiny: tests only)",
    )
    model.add_argument("--backbone-weights", type=Path, default=None, help="DINOv2 backbone weights file")
    model.add_argument(
        "--hub-dir", type=Path, default=None, help="torch hub directory holding checkpoints/dinov2_vit*14_pretrain.pth"
    )
    model.add_argument(
        "--random-backbone",
        action="store_true",
        help="no pretrained weights: seeded random backbone (saved inside the checkpoint)",
    )
    model.add_argument("--head", choices=("mlp", "linear"), default="mlp", help="head type")
    model.add_argument(
        "--head-only-checkpoint",
        action="store_true",
        help="store only the head (~0.5 MB); loading then needs the backbone weights",
    )
    model.add_argument(
        "--save-format",
        choices=("ours", "reference"),
        default="ours",
        help="best_pose_model.pth as ours (config, metrics, metadata) or exactly the reference "
        "script's file (a plain backbone.* + head.* state_dict)",
    )

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=30)
    opt.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
    opt.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (cosine-annealed)")
    opt.add_argument("--weight-decay", type=float, default=0.01)
    opt.add_argument("--label-smoothing", type=float, default=0.1)
    opt.add_argument(
        "--mixup-alpha",
        type=float,
        default=0.0,
        help="> 0: manifold mixup on the MLP hidden layer with Beta(alpha, alpha)",
    )
    opt.add_argument("--no-balance", action="store_true", help="plain shuffling instead of class-balanced sampling")

    cache = parser.add_argument_group("feature cache")
    cache.add_argument(
        "--cache-features",
        dest="cache_features",
        action="store_true",
        default=True,
        help="run the backbone once and train the head on cached features",
    )
    cache.add_argument(
        "--no-cache-features",
        dest="cache_features",
        action="store_false",
        help="the reference loop: backbone forward on every batch of every epoch",
    )
    cache.add_argument(
        "--aug-views", type=int, default=8, help="augmented views cached per training image (one drawn per epoch)"
    )

    rt = parser.add_argument_group("runtime")
    rt.add_argument("--seed", type=int, default=0)
    rt.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    rt.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loader processes")
    rt.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    from pose_classifier_ros.evaluation.validation import add_training_arguments

    add_training_arguments(parser)  # --fit-temperature, --group-by, --target-accuracy (validation report)


@dataclass
class TrainResult:
    """What `train` produced. val_*: the best epoch's predictions on the validation set, in order."""

    out_dir: Path
    checkpoint: Path
    best_epoch: int
    best_val_acc: float
    val_paths: list[str]
    val_labels: np.ndarray
    val_probs: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def val_predictions(self) -> np.ndarray:
        return self.val_probs.argmax(axis=1)


# ------------------------------------------------------------------------------------------------
# The run: setup (train_setup), epochs (head_trainer), then the best epoch's report


def _write_results(run: TrainRun, ckpt_path: Path, best: dict[str, Any]) -> dict[str, Any]:
    """metrics.json / report.txt / confusion_matrix.png and val_predictions.csv of the best epoch."""
    from pose_classifier_ros.labels import VIEWPOINTS
    from pose_classifier_ros.metrics import classification_report
    from pose_classifier_ros.report import format_text_report, write_report

    args, train_set, val_set = run.args, run.train_set, run.val_set
    report = classification_report(best["labels"], best["probs"].argmax(1))
    report.update(
        best_epoch=best["epoch"],
        best_val_acc=best["acc"],
        backbone=args.size,
        backbone_weights=run.weights_note,
        head=args.head,
        mixup_alpha=args.mixup_alpha,
        cache_features=args.cache_features,
        aug_views=args.aug_views if args.cache_features else None,
        train_images=len(train_set),
        val_images=len(val_set),
        skipped_images={
            "missing": len(train_set.missing) + len(val_set.missing),
            "unreadable": len(train_set.unreadable) + len(val_set.unreadable),
        },
        timings=run.timings,
    )
    from pose_classifier_ros.evaluation.validation import validation_analysis

    # Temperature fit (stored in the checkpoint) + intervals, groups, calibration, selective prediction.
    report.update(validation_analysis(args, val_set, best["labels"], best["probs"], ckpt_path, run.out))
    title = f"Validation of {ckpt_path} (best epoch {best['epoch']})"
    write_report(run.out, report, title)
    with (run.out / "val_predictions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_path", "pose", "predicted", "confidence"])
        for s, p in zip(val_set, best["probs"]):
            w.writerow([s.path, VIEWPOINTS[s.label], VIEWPOINTS[int(p.argmax())], f"{float(p.max()):.4f}"])
    print(format_text_report(report, title, appendix=False), end="")  # per-group reports: report.txt
    return report


def train(args) -> TrainResult:
    """Run one training as configured by `args` (the parsed CLI namespace); see the module docstring."""
    t_start = time.perf_counter()
    run = setup_run(args)
    setup_data(run)
    ckpt_path = run.out / CHECKPOINT_NAME
    history, best = fit(run, ckpt_path)
    epoch_times = [h["epoch_s"] for h in history]
    run.timings.update(
        mean_epoch_s=float(np.mean(epoch_times)),
        total_s=time.perf_counter() - t_start,
        epochs_s=float(np.sum(epoch_times)),
    )
    report = _write_results(run, ckpt_path, best)
    return TrainResult(
        run.out,
        ckpt_path,
        best["epoch"],
        best["acc"],
        [str(s.path) for s in run.val_set],
        best["labels"],
        best["probs"],
        history,
        run.timings,
        report,
    )


def run(args: argparse.Namespace) -> int:
    from pose_classifier_ros.training.data import DataError

    try:
        result = train(args)
    except (TrainError, DataError) as exc:
        print(f"pose-classifier train: error: {exc}", file=sys.stderr)
        return 2
    print(f"best val acc {result.best_val_acc:.4f} at epoch {result.best_epoch}; checkpoint {result.checkpoint}")
    return 0


__all__ = ["add_arguments", "run", "train", "TrainResult", "TrainError", "CHECKPOINT_NAME"]
