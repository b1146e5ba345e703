"""Labelled crops for head training: one animal per image, folder-per-class (the demo's training set)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from pose_classifier_ros.labels import HEADING_DEG, VIEWPOINTS
from pose_classifier_ros.synthetic.animals import SPECIES, Animal, make_ground, render_animal


def render_crop(label: int, rng: np.random.Generator, size: int = 200) -> np.ndarray:
    """One labelled training crop (H, W, 3) uint8: an animal of class ``label`` on a random background."""
    ground = make_ground(size, size, rng)
    species = SPECIES[int(rng.integers(0, len(SPECIES)))]
    heading = HEADING_DEG[label] + rng.uniform(-17.0, 17.0)
    scale = rng.uniform(0.16, 0.26) * size / (1.0 if species == "zebra" else 1.4)
    elevation = rng.uniform(28.0, 55.0)
    animal = Animal(
        species,
        size / 2 + rng.uniform(-0.1, 0.1) * size,
        size * (0.62 if species == "zebra" else 0.78) + rng.uniform(-0.05, 0.05) * size,
        heading,
        scale,
        int(rng.integers(0, 1000)),
    )
    box = render_animal(ground, animal, elevation)
    assert box is not None
    pad = rng.uniform(0.03, 0.15)
    bw, bh = box[2] - box[0], box[3] - box[1]
    x1, y1 = int(max(0, box[0] - pad * bw)), int(max(0, box[1] - pad * bh))
    x2, y2 = int(min(size, box[2] + pad * bw)), int(min(size, box[3] + pad * bh))
    crop = ground[y1:y2, x1:x2]
    gain = rng.uniform(0.8, 1.15)  # lighting variation
    return np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def write_crops(
    crops_dir: str | os.PathLike,
    per_class: int | Sequence[int],
    seed: int = 0,
    progress: bool = True,
    *,
    render: Callable[..., np.ndarray] = render_crop,
    size: int | None = None,
) -> int:
    """Write labelled PNGs ``crops_dir/<class>/<class>_NNNN.png``: ``per_class`` of each class (one count, or
    one per class in VIEWPOINTS order), drawn by ``render(label, rng[, size])`` from one generator seeded
    with ``seed`` (``size`` None: the renderer's default). Returns the number written.

    render: ``render_crop`` (an animal: the demo's training set) or ``patterns.render_pattern``.
    """
    from tqdm import tqdm

    crops_dir = Path(crops_dir)
    counts = [per_class] * len(VIEWPOINTS) if isinstance(per_class, int) else [int(n) for n in per_class]
    if len(counts) != len(VIEWPOINTS):
        raise ValueError(f"per_class: one count, or one per class ({len(VIEWPOINTS)}); got {len(counts)}")
    rng = np.random.default_rng(seed)
    extra = {} if size is None else {"size": size}
    with tqdm(total=sum(counts), desc="rendering crops", unit="crop", disable=not progress) as bar:
        for label, name in enumerate(VIEWPOINTS):
            (crops_dir / name).mkdir(parents=True, exist_ok=True)
            for i in range(counts[label]):
                PILImage.fromarray(render(label, rng, **extra)).save(crops_dir / name / f"{name}_{i:04d}.png")
                bar.update()
    return sum(counts)
