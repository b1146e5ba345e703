"""Pose-labelled image sets: folder/CSV loading, splits, training transforms, balanced sampling.

Two layouts are read (class names as in ``labels.VIEWPOINTS``; '_' or ' ' for '-' and any case
accepted):
  folder per class   DIR/front/*.jpg, DIR/front-left/*.png, ... DIR/back/*
  CSV                a file with header ``image_path,pose``; relative paths are relative to the
                     CSV's folder. Any further columns (species, site, ...) are kept per sample as
                     ``Sample.meta`` (evaluation groups by them).
A folder with ``train/`` and ``val/`` subfolders (each folder-per-class) is a ready-made split.

Missing files (CSV) and unreadable images are logged and skipped with counts; an unknown class
name raises ``DataError`` naming the folder or CSV line.

Validation / evaluation images are NOT transformed here: ``ViewpointDataset`` returns the raw
(H, W, 3) uint8 image and ``collate_eval`` batches them with ``preprocess.preprocess_images``,
the node's own tensor path, so training, evaluation and the node cannot drift apart.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from pose_classifier_ros.labels import NUM_CLASSES, VIEWPOINTS, flip_label, normalize_label

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CSV_PATH_COLUMN = "image_path"
CSV_LABEL_COLUMN = "pose"


class DataError(ValueError):
    """A data set that cannot be used as given (unknown class, bad CSV, nothing to train on)."""


class Sample(NamedTuple):
    path: Path
    label: int  # class index into VIEWPOINTS
    meta: tuple[tuple[str, str], ...] = ()  # extra CSV columns as (column, value) pairs, in CSV order

    @property
    def metadata(self) -> dict[str, str]:
        """Extra CSV columns of this sample as {column: value} (empty for folder data sets)."""
        return dict(self.meta)


@dataclass
class SampleList:
    """Samples that can be read, plus what was skipped and why."""

    samples: list[Sample]
    source: str = ""
    missing: list[str] = field(default_factory=list)  # listed in a CSV but not on disk
    unreadable: list[str] = field(default_factory=list)  # present but not decodable as an image

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, k):
        return self.samples[k]

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 class indices."""
        return np.asarray([s.label for s in self.samples], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples)
        return {name: counts.get(i, 0) for i, name in enumerate(VIEWPOINTS)}

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.class_counts().items())
        skipped = ""
        if self.missing or self.unreadable:
            skipped = f"; skipped {len(self.missing)} missing, {len(self.unreadable)} unreadable"
        return f"{self.source}: {len(self)} images ({counts}){skipped}"


def read_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of an image file (any PIL mode is converted)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _readable(path: Path) -> bool:
    """Fully decode once: a truncated or non-image file fails here, not mid-training."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return im.width > 0 and im.height > 0
    except Exception:  # PIL raises many types for bad files
        return False


def _class_of_folder(name: str, root: Path) -> int:
    try:
        return normalize_label(name)
    except ValueError:
        raise DataError(
            f"{root}: folder {name!r} is not a viewpoint class; expected folders named {', '.join(VIEWPOINTS)}"
        ) from None


def _check_and_report(
    samples: list[Sample], missing: list[str], source: str, check_images: bool, progress: bool
) -> SampleList:
    unreadable: list[str] = []
    if check_images:
        from tqdm import tqdm

        kept = []
        for s in tqdm(samples, desc=f"checking {Path(source).name}", unit="img", disable=not progress, leave=False):
            if _readable(s.path):
                kept.append(s)
            else:
                unreadable.append(str(s.path))
        samples = kept
    result = SampleList(samples, source, missing, unreadable)
    for what, paths in (("missing", missing), ("unreadable", unreadable)):
        if paths:
            shown = ", ".join(paths[:5]) + (f" (+{len(paths) - 5} more)" if len(paths) > 5 else "")
            logger.warning("%s: skipped %d %s image(s): %s", source, len(paths), what, shown)
    return result


def _load_folder(root: Path) -> list[Sample]:
    samples = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = _class_of_folder(sub.name, root)
        for f in sorted(sub.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                samples.append(Sample(f, label))
    return samples


def _load_csv(path: Path) -> tuple[list[Sample], list[str]]:
    samples, missing = [], []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if CSV_PATH_COLUMN not in columns or CSV_LABEL_COLUMN not in columns:
            raise DataError(
                f"{path}: expected a header with columns {CSV_PATH_COLUMN},{CSV_LABEL_COLUMN}; "
                f"got {','.join(columns) or '(empty file)'}"
            )
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not row.get(CSV_PATH_COLUMN):
                raise DataError(f"{path}:{line}: empty {CSV_PATH_COLUMN}")
            try:
                label = normalize_label(row[CSV_LABEL_COLUMN])
            except ValueError as exc:
                raise DataError(f"{path}:{line}: {exc}") from None
            image = Path(row[CSV_PATH_COLUMN]).expanduser()
            image = image if image.is_absolute() else path.parent / image
            meta = tuple((k, v) for k, v in row.items() if k and k not in (CSV_PATH_COLUMN, CSV_LABEL_COLUMN))
            if image.is_file():
                samples.append(Sample(image, label, meta))
            else:
                missing.append(str(image))
    return samples, missing


def load_samples(source: str | os.PathLike, *, check_images: bool = True, progress: bool = False) -> SampleList:
    """Samples of a folder-per-class directory or an ``image_path,pose`` CSV.

    check_images: decode every image once and skip (with a warning and a count) those that fail.
    Raises DataError for an unknown class name, a CSV without the expected header, or a path that
    does not exist.
    """
    src = Path(source).expanduser()
    if src.is_dir():
        samples, missing = _load_folder(src), []
    elif src.is_file():
        samples, missing = _load_csv(src)
    else:
        raise DataError(f"{src}: no such folder or CSV file")
    return _check_and_report(samples, missing, str(src), check_images, progress)


def has_split_folders(root: str | os.PathLike) -> bool:
    """True when `root` holds train/ and val/ folder-per-class subsets."""
    root = Path(root)
    return (root / "train").is_dir() and (root / "val").is_dir()


def split_samples(samples: SampleList, val_fraction: float = 0.2, seed: int = 0) -> tuple[SampleList, SampleList]:
    """Seeded stratified split: about `val_fraction` of each class goes to validation.

    Every class with at least two images keeps at least one on each side.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    train, val = [], []
    for label in sorted(by_class):
        group = by_class[label]
        order = rng.permutation(len(group))
        n_val = int(round(val_fraction * len(group)))
        if len(group) >= 2:
            n_val = min(max(n_val, 1), len(group) - 1)
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    # Keep file order inside each subset: stable, and readable in reports.
    train.sort(key=lambda s: str(s.path))
    val.sort(key=lambda s: str(s.path))
    return (
        SampleList(train, f"{samples.source} (train split)", samples.missing, samples.unreadable),
        SampleList(val, f"{samples.source} (val split)"),
    )


class HorizontalFlipWithLabel:
    """Mirror the image with probability p and swap the label to its mirror class (left <-> right)."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, label: int):
        from torchvision.transforms import functional as TF

        if torch.rand(1).item() < self.p:
            return TF.hflip(image), flip_label(label)
        return image, label


class TrainTransform:
    """Reference training augmentation: (PIL image, label) -> ((3, crop, crop) float32, label).

    Resize(resize) -> RandomCrop(crop) -> symmetry-aware horizontal flip (p) -> ColorJitter(0.3,
    0.3, 0.2) -> RandomRotation(15) -> ToTensor -> Normalize(mean, std). Randomness comes from
    torch's global generator (seeded by the trainer; per-worker seeds come from the DataLoader).
    """

    def __init__(self, model_cfg=None, flip_p: float = 0.5):
        from torchvision import transforms as T

        if model_cfg is None:
            from pose_classifier_ros.model.viewpoint_model import ModelConfig

            model_cfg = ModelConfig()
        self.spatial = T.Compose(
            [
                T.Resize(model_cfg.resize_size, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                T.RandomCrop(model_cfg.crop_size),
            ]
        )
        self.flip = HorizontalFlipWithLabel(flip_p)
        self.photometric = T.Compose(
            [
                T.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.2),
                T.RandomRotation(15),
                T.ToTensor(),
                T.Normalize(list(model_cfg.mean), list(model_cfg.std)),
            ]
        )

    def __call__(self, image, label: int):
        image = self.spatial(image)
        image, label = self.flip(image, label)
        return self.photometric(image), label


def train_transform(model_cfg=None, flip_p: float = 0.5) -> TrainTransform:
    """The training augmentation for `model_cfg` (resize/crop sizes, mean/std)."""
    return TrainTransform(model_cfg, flip_p)


class ViewpointDataset(Dataset):
    """Images + class indices.

    transform: a (PIL image, label) -> (tensor, label) callable such as ``train_transform()``;
    None returns (image (H, W, 3) uint8 numpy, label) for ``collate_eval``.
    """

    def __init__(self, samples: Sequence[Sample] | SampleList, transform: Callable | None = None):
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index][:2]
        if self.transform is None:
            return read_image(path), label
        from PIL import Image

        with Image.open(path) as im:
            image = im.convert("RGB")
        return self.transform(image, label)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([s.label for s in self.samples], dtype=np.int64)


class EvalCollate:
    """Batch raw images with the reference transforms, as ViewpointClassifier.predict_proba does for image
    files (PIL): list of (image, label) -> ((B,3,S,S), (B,)). Decoded arrays go back to PIL first, so
    validation and `evaluate` see exactly what the reference's evaluation sees."""

    def __init__(self, model_cfg=None):
        self.model_cfg = model_cfg

    def __call__(self, batch):
        from PIL import Image

        from pose_classifier_ros.model.preprocess import preprocess_mixed

        images, labels = zip(*batch)
        images = [Image.fromarray(im) if isinstance(im, np.ndarray) else im for im in images]
        return preprocess_mixed(images, self.model_cfg), torch.as_tensor(labels, dtype=torch.int64)


def collate_eval(model_cfg=None) -> EvalCollate:
    """collate_fn for a ViewpointDataset without transform (picklable for worker processes)."""
    return EvalCollate(model_cfg)


def class_weights(labels: Sequence[int], num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes,) float64: 1 / class frequency (0 for absent classes)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    return np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)


def make_balanced_sampler(
    labels: Sequence[int], num_samples: int | None = None, generator: torch.Generator | None = None
) -> WeightedRandomSampler:
    """WeightedRandomSampler drawing every present class equally often (with replacement).

    labels: (N,) class indices; each sample's weight is 1 / (its class count); num_samples per
    epoch defaults to N.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise DataError("cannot sample from an empty training set")
    weights = class_weights(labels)[labels]
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double),
        num_samples=int(num_samples or len(labels)),
        replacement=True,
        generator=generator,
    )


__all__ = [
    "DataError",
    "Sample",
    "SampleList",
    "load_samples",
    "has_split_folders",
    "split_samples",
    "read_image",
    "HorizontalFlipWithLabel",
    "TrainTransform",
    "train_transform",
    "ViewpointDataset",
    "collate_eval",
    "class_weights",
    "make_balanced_sampler",
]
