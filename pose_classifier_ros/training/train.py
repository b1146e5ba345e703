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
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)

BACKBONE_SIZES = ("small", "base", "large", "test-tiny")
CHECKPOINT_NAME = "best_pose_model.pth"


# ------------------------------------------------------------------------------------------------
# Command line


def _install_config_defaults(parser: argparse.ArgumentParser) -> None:
    """Make ``-c/--config FILE.yaml`` supply defaults that explicit flags still override (timm style)."""
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("-c", "--config", default=None)
        known, _ = pre.parse_known_args(args)
        if known.config:
            parser.set_defaults(**load_config_defaults(parser, known.config))
        return original(args, namespace)

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def load_config_defaults(parser: argparse.ArgumentParser, path: str | os.PathLike) -> dict[str, Any]:
    """Keys of a YAML mapping (option names with '-' or '_') as parser defaults; unknown keys are an error."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        parser.error(f"cannot read config {path}: {exc}")
    if not isinstance(data, dict):
        parser.error(f"config {path} must be a YAML mapping of option: value")
    dests = {a.dest for a in parser._actions}
    out, unknown = {}, []
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        (out.__setitem__(dest, value) if dest in dests else unknown.append(str(key)))
    if unknown:
        parser.error(f"config {path}: unknown option(s) {', '.join(unknown)}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        metavar="FILE.yaml",
        help="YAML file of option defaults (e.g. config/train.yaml); flags override it",
    )
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
    _install_config_defaults(parser)


# ------------------------------------------------------------------------------------------------
# Core


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


class TrainError(RuntimeError):
    """A run that cannot start (bad data, missing weights); the message says what to fix."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resolve_device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda asked for but CUDA is not available")
    return torch.device(name)


def load_splits(args) -> tuple[Any, Any]:
    """(train SampleList, val SampleList) from --data / --train-csv / --val-csv."""
    from pose_classifier_ros.training import data as D

    progress = not args.no_progress
    if args.data is None and args.train_csv is None:
        raise TrainError("no training data: pass --data DIR|CSV or --train-csv FILE [--val-csv FILE]")
    image_root = None
    if args.data is not None and args.train_csv is not None:
        if not Path(args.data).is_dir():
            raise TrainError(
                "with --train-csv, --data/--data_dir must be the image folder the CSV paths are "
                f"relative to; {args.data} is not a folder"
            )
        image_root = Path(args.data)
    if image_root is None and args.data is not None and Path(args.data).is_dir() and D.has_split_folders(args.data):
        train = D.load_samples(Path(args.data) / "train", progress=progress)
        val = D.load_samples(Path(args.data) / "val", progress=progress)
    else:
        train = D.load_samples(
            _csv_under(args.train_csv, image_root, args.out)
            if image_root
            else (args.data if args.data is not None else args.train_csv),
            progress=progress,
        )
        if args.val_csv is not None:
            val = D.load_samples(
                _csv_under(args.val_csv, image_root, args.out) if image_root else args.val_csv, progress=progress
            )
        else:
            train, val = D.split_samples(train, args.val_split, args.seed)
    for part, name in ((train, "training"), (val, "validation")):
        logger.info("%s: %s", name, part.summary())
        if len(part) == 0:
            raise TrainError(f"the {name} set is empty ({part.source})")
    return train, val


def _csv_under(csv_path: Path, image_root: Path, out_dir: Path) -> Path:
    """The reference's ``--data_dir D --train_csv C``: C's relative image paths are under D (not next to
    C). Writes OUT/<C's name> with those paths resolved (also the run's record of its data) -> its path."""
    from pose_classifier_ros.training.data import CSV_PATH_COLUMN, DataError

    csv_path = Path(csv_path).expanduser()
    try:
        with csv_path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot read ({exc})") from None
    path_key = next((f for f in fields if f.strip() == CSV_PATH_COLUMN), None)
    for row in rows if path_key else []:
        image = Path((row.get(path_key) or "").strip()).expanduser()
        if str(image) not in ("", ".") and not image.is_absolute():
            row[path_key] = str((image_root / image).resolve())
    out = Path(out_dir) / f"{csv_path.stem}.resolved.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


def build_backbone_for(args) -> tuple[nn.Module, str]:
    """Frozen backbone and a note on where its weights came from."""
    from pose_classifier_ros.model.backbone import BackboneWeightsError, BackboneWeightsNotFound, build_backbone

    random_init = args.random_backbone or (args.size == "test-tiny" and args.backbone_weights is None)
    if random_init:
        if args.backbone_weights is not None:
            raise TrainError("--random-backbone and --backbone-weights exclude each other")
        torch.manual_seed(args.seed)
        return build_backbone(args.size, pretrained=False), f"random init (seed {args.seed})"
    try:
        bb = build_backbone(args.size, weights=args.backbone_weights, hub_dir=args.hub_dir)
    except BackboneWeightsNotFound as exc:
        raise TrainError(
            f"{exc}\nPass --backbone-weights PATH or --hub-dir DIR, or --random-backbone "
            "for a pipeline test without pretrained weights."
        ) from None
    except BackboneWeightsError as exc:
        raise TrainError(str(exc)) from None
    return bb, str(args.backbone_weights or f"torch hub cache ({args.hub_dir or torch.hub.get_dir()})")


def _hidden_split_points(head: nn.Module) -> list[int]:
    """Indices k such that head[:k] ends a hidden layer of the MLP (after each GELU+Dropout block);
    [0] (mix the input features) for a head without hidden layers."""
    if not isinstance(head, nn.Sequential):
        return [0]
    points = [k + 1 for k, m in enumerate(head) if isinstance(m, nn.Dropout)]
    return points or [0]


def head_loss(
    head: nn.Module,
    feats: torch.Tensor,
    labels: torch.Tensor,
    criterion: nn.Module,
    mixup_alpha: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of one batch; with mixup_alpha > 0 manifold mixup at a random hidden layer.

    Mixup: lam ~ Beta(alpha, alpha), h = lam * h + (1 - lam) * h[perm] at the chosen layer,
    loss = lam * CE(y) + (1 - lam) * CE(y[perm]).
    """
    if mixup_alpha <= 0 or len(feats) < 2:
        logits = head(feats)
        return criterion(logits, labels), logits
    lam = float(
        np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator))).beta(mixup_alpha, mixup_alpha)
    )
    points = _hidden_split_points(head)
    k = points[int(torch.randint(len(points), (1,), generator=generator))]
    perm = torch.randperm(len(feats), generator=generator).to(feats.device)
    layers = list(head) if isinstance(head, nn.Sequential) else [head]
    h = feats
    for layer in layers[:k]:  # not head[:k]: slicing re-instantiates the Sequential subclass
        h = layer(h)
    h = lam * h + (1.0 - lam) * h[perm]
    for layer in layers[k:]:
        h = layer(h)
    logits = h
    loss = lam * criterion(logits, labels) + (1.0 - lam) * criterion(logits, labels[perm])
    return loss, logits


def _write_summary(path: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


def _plain_args(args) -> dict[str, Any]:
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in sorted(vars(args).items())
        if not k.startswith("_") and not callable(v)
    }


@dataclass
class _Run:
    """What the stages of one training run share (built by ``_setup_run``)."""

    args: argparse.Namespace
    out: Path
    device: torch.device
    amp: bool
    config: Any
    model: Any
    weights_note: str
    train_set: Any
    val_set: Any
    gen: torch.Generator
    timings: dict[str, Any]
    val_loader: Any = None
    train_ds: Any = None
    train_loader: Any = None
    cache: Any = None

    @property
    def progress(self) -> bool:
        return not self.args.no_progress


def _check_args(args) -> None:
    if args.epochs < 1 or args.batch_size < 1 or args.aug_views < 1:
        raise TrainError("--epochs, --batch-size and --aug-views must be >= 1")
    if getattr(args, "save_format", "ours") == "reference" and args.head_only_checkpoint:
        raise TrainError(
            "--save-format reference writes the full model, as the reference script does; "
            "drop --head-only-checkpoint (or use --save-format ours)"
        )


def _setup_run(args) -> _Run:
    """Run directory and args.yaml, data splits, model (frozen backbone + fresh head), seeded."""
    import yaml

    from pose_classifier_ros.model.head import build_head
    from pose_classifier_ros.model.viewpoint_model import ModelConfig, ViewpointModel

    _check_args(args)
    device = _resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.yaml").write_text(yaml.safe_dump(_plain_args(args), sort_keys=True))

    seed_everything(args.seed)
    train_set, val_set = load_splits(args)
    config = ModelConfig(backbone=args.size, head_type=args.head)
    backbone, weights_note = build_backbone_for(args)
    if weights_note.startswith("random") and args.head_only_checkpoint:
        raise TrainError("--head-only-checkpoint needs a pretrained backbone: a random one must be saved")
    torch.manual_seed(args.seed)  # the head's init does not depend on how the backbone was built
    model = ViewpointModel(backbone, build_head(args.head, backbone.embed_dim)).to(device)
    amp = device.type == "cuda"
    return _Run(
        args,
        out,
        device,
        amp,
        config,
        model,
        weights_note,
        train_set,
        val_set,
        gen=torch.Generator().manual_seed(args.seed),
        timings={"device": str(device), "mixed_precision": amp},
    )


def _setup_data(run: _Run) -> None:
    """Validation loader, training dataset, and either the feature cache or the image loader."""
    from pose_classifier_ros.training import data as D
    from pose_classifier_ros.training.features import build_feature_cache

    args, device = run.args, run.device
    run.val_loader = DataLoader(
        D.ViewpointDataset(run.val_set),
        batch_size=args.batch_size,
        shuffle=False,
        num_workers=args.workers,
        collate_fn=D.collate_eval(run.config),
        persistent_workers=args.workers > 0 and not args.cache_features,
    )
    run.train_ds = D.ViewpointDataset(run.train_set, D.train_transform(run.config))
    if args.cache_features:
        run.cache = build_feature_cache(
            run.model.backbone,
            run.train_ds,
            run.val_loader,
            args.aug_views,
            batch_size=args.batch_size,
            workers=args.workers,
            device=device,
            amp=run.amp,
            seed=args.seed,
            progress=run.progress,
        )
        run.timings["cache_build_s"] = run.cache.build_s
        return
    sampler = None if args.no_balance else D.make_balanced_sampler(run.train_set.labels, generator=run.gen)
    run.train_loader = DataLoader(
        run.train_ds,
        batch_size=args.batch_size,
        sampler=sampler,
        shuffle=sampler is None,
        generator=run.gen,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )


class _HeadTrainer:
    """AdamW + cosine schedule + label-smoothed CE on the head; one epoch of batches, validation."""

    def __init__(self, run: _Run):
        args = run.args
        self.run, self.head = run, run.model.head
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=args.epochs)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        self.eval_criterion = nn.CrossEntropyLoss()
        self.scaler = torch.amp.GradScaler("cuda", enabled=run.amp)

    def step(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
        """One optimiser step -> (summed loss, correct predictions) of the batch."""
        from pose_classifier_ros.training.features import autocast_for

        with autocast_for(self.run.device, self.run.amp):
            loss, logits = head_loss(self.head, feats, labels, self.criterion, self.run.args.mixup_alpha, self.run.gen)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach()) * len(labels), int((logits.argmax(1) == labels).sum())

    def _batches(self, epoch: int):
        """(features (B, D), labels (B,)) on the device: from the cache, or the backbone on images."""
        from tqdm import tqdm

        from pose_classifier_ros.training import data as D
        from pose_classifier_ros.training.features import autocast_for

        run, args, device = self.run, self.run.args, self.run.device
        desc = f"epoch {epoch}/{args.epochs}"
        if run.cache is not None:
            feats_all, labels_all = run.cache.sample_epoch(run.gen)
            if args.no_balance:
                order = torch.randperm(len(labels_all), generator=run.gen)
            else:
                order = torch.as_tensor(list(D.make_balanced_sampler(run.train_set.labels, generator=run.gen)))
            batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
            for idx in tqdm(batches, desc=desc, unit="batch", disable=not run.progress, leave=False):
                yield feats_all[idx].to(device, non_blocking=True), labels_all[idx].to(device, non_blocking=True)
            return
        for images, labels in tqdm(run.train_loader, desc=desc, unit="batch", disable=not run.progress, leave=False):
            images = images.to(device, non_blocking=True)
            with torch.no_grad(), autocast_for(device, run.amp):
                feats = run.model.backbone(images)
            yield feats.float(), torch.as_tensor(labels).to(device, non_blocking=True)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of head training, then the scheduler step -> {"lr", "train_loss", "train_acc"}."""
        self.head.train()
        total_loss, correct, seen = 0.0, 0, 0
        for feats, labels in self._batches(epoch):
            loss_sum, ok = self.step(feats, labels)
            total_loss, correct, seen = total_loss + loss_sum, correct + ok, seen + len(labels)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return {"lr": lr, "train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1)}

    @torch.no_grad()
    def validate(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(loss, probs (N, C), labels (N,)) of the head on the validation set."""
        from pose_classifier_ros.training.features import autocast_for, extract_features

        run = self.run
        self.head.eval()
        if run.cache is not None:
            feats, labels = run.cache.val.to(run.device), run.cache.val_labels
        else:
            feats, labels = extract_features(
                run.model.backbone, run.val_loader, run.device, run.amp, desc="val", progress=False
            )
            feats = feats.to(run.device)
        with autocast_for(run.device, run.amp):
            logits = self.head(feats).float().cpu()
        loss = float(self.eval_criterion(logits, labels)) if len(labels) else float("nan")
        return loss, torch.softmax(logits, 1).numpy(), labels.numpy()


def _save_best(run: _Run, path: Path, metrics: dict[str, Any]) -> None:
    """The best epoch's checkpoint: ours (config, metrics, metadata) or the reference's plain state_dict."""
    from pose_classifier_ros.model.checkpoint import save_checkpoint, save_reference_checkpoint

    if getattr(run.args, "save_format", "ours") == "reference":
        save_reference_checkpoint(path, run.model, run.config)
        return
    save_checkpoint(
        path,
        run.model,
        run.config,
        metrics=metrics,
        include_backbone=not run.args.head_only_checkpoint,
        train_args=_plain_args(run.args),
        backbone_weights=run.weights_note,
    )


def _fit(run: _Run, ckpt_path: Path) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """The epoch loop: train, validate, keep the best-validation-accuracy checkpoint -> (history, best)."""
    args = run.args
    trainer = _HeadTrainer(run)
    torch.manual_seed(args.seed)  # dropout / augmentation stream of the epochs
    history: list[dict[str, float]] = []
    best = {"acc": -1.0, "epoch": 0, "probs": None, "labels": None}
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        stats = trainer.train_epoch(epoch)
        t_train = time.perf_counter() - t0
        val_loss, val_probs, val_labels = trainer.validate()
        val_acc = float((val_probs.argmax(1) == val_labels).mean())
        epoch_s = time.perf_counter() - t0
        history.append(
            {
                "epoch": epoch,
                **stats,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "train_s": round(t_train, 4),
                "epoch_s": round(epoch_s, 4),
            }
        )
        improved = val_acc > best["acc"]
        if improved:
            best.update(acc=val_acc, epoch=epoch, probs=val_probs, labels=val_labels)
            _save_best(run, ckpt_path, {"val_acc": val_acc, "val_loss": val_loss, "epoch": epoch})
        logger.info(
            "epoch %d/%d  train loss %.4f acc %.3f | val loss %.4f acc %.3f%s | %.2f s",
            epoch,
            args.epochs,
            stats["train_loss"],
            stats["train_acc"],
            val_loss,
            val_acc,
            "  (best, saved)" if improved else "",
            epoch_s,
        )
        _write_summary(run.out / "summary.csv", history)
    return history, best


def _write_results(run: _Run, ckpt_path: Path, best: dict[str, Any]) -> dict[str, Any]:
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
    run = _setup_run(args)
    _setup_data(run)
    ckpt_path = run.out / CHECKPOINT_NAME
    history, best = _fit(run, ckpt_path)
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


__all__ = ["add_arguments", "run", "train", "TrainResult", "TrainError", "head_loss", "load_config_defaults"]
