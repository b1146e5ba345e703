"""One training run before its first epoch: checked arguments, run directory, data splits, the frozen
backbone with a fresh head, and the data the epochs read (the feature cache or an image loader)."""

from __future__ import annotations

import argparse
import csv
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)


class TrainError(RuntimeError):
    """A run that cannot start (bad data, missing weights); the message says what to fix."""


@dataclass
class TrainRun:
    """What the stages of one training run share (built by ``setup_run``, completed by ``setup_data``)."""

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


def check_args(args) -> None:
    """TrainError for option values no run can start with."""
    if args.epochs < 1 or args.batch_size < 1 or args.aug_views < 1:
        raise TrainError("--epochs, --batch-size and --aug-views must be >= 1")
    if getattr(args, "save_format", "ours") == "reference" and args.head_only_checkpoint:
        raise TrainError(
            "--save-format reference writes the full model, as the reference script does; "
            "drop --head-only-checkpoint (or use --save-format ours)"
        )


def plain_args(args) -> dict[str, Any]:
    """The parsed options as a YAML/JSON-ready dict (paths as str): args.yaml and the checkpoint's metadata."""
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in sorted(vars(args).items())
        if not k.startswith("_") and not callable(v)
    }


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup_run(args) -> TrainRun:
    """Run directory and args.yaml, data splits, model (frozen backbone + fresh head), seeded."""
    import yaml

    from pose_classifier_ros.model.device import DeviceError, resolve_device
    from pose_classifier_ros.model.head import build_head
    from pose_classifier_ros.model.viewpoint_model import ModelConfig, ViewpointModel

    check_args(args)
    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        raise TrainError(f"--device: {exc}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.yaml").write_text(yaml.safe_dump(plain_args(args), sort_keys=True))

    seed_everything(args.seed)
    train_set, val_set = load_splits(args)
    config = ModelConfig(backbone=args.size, head_type=args.head)
    backbone, weights_note = build_backbone_for(args)
    if weights_note.startswith("random") and args.head_only_checkpoint:
        raise TrainError("--head-only-checkpoint needs a pretrained backbone: a random one must be saved")
    torch.manual_seed(args.seed)  # the head's init does not depend on how the backbone was built
    model = ViewpointModel(backbone, build_head(args.head, backbone.embed_dim)).to(device)
    amp = device.type == "cuda"
    return TrainRun(
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


def setup_data(run: TrainRun) -> None:
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


__all__ = [
    "TrainError",
    "TrainRun",
    "check_args",
    "plain_args",
    "seed_everything",
    "setup_run",
    "load_splits",
    "build_backbone_for",
    "setup_data",
]
