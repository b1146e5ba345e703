"""Backbone feature cache for head training.

The backbone is frozen, so its features of an image under a given augmentation never change
between epochs. Running it once over the validation set and over K augmented views of every
training image, then training only the head on the cached (N, D) features, removes the backbone
(nearly all of the compute) from every epoch. Each epoch draws one of the K views per image, so the
head still sees augmentation; K trades cache-building time and memory (K * N * D * 4 bytes)
against augmentation diversity.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)


def autocast_for(device: torch.device, enabled: bool = True):
    """fp16 autocast on CUDA (the reference's mixed precision); a no-op (fp32) anywhere else."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    loader: DataLoader,
    device: str | torch.device = "cpu",
    amp: bool = True,
    desc: str = "features",
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `backbone` over every batch of `loader` ((B,3,S,S) images, (B,) labels).

    Returns (features (N, D) float32 on the CPU, labels (N,) int64) in loader order.
    amp: fp16 autocast when `device` is CUDA (features are stored as float32 either way).
    """
    from tqdm import tqdm

    device = torch.device(device)
    backbone.eval()
    feats, labels = [], []
    for images, y in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        with autocast_for(device, amp):
            f = backbone(images.to(device, non_blocking=True))
        feats.append(f.float().cpu())
        labels.append(torch.as_tensor(y, dtype=torch.int64))
    if not feats:
        dim = getattr(backbone, "embed_dim", 0)
        return torch.empty((0, dim)), torch.empty((0,), dtype=torch.int64)
    return torch.cat(feats), torch.cat(labels)


@dataclass
class FeatureCache:
    """Cached backbone features.

    train: (K, N, D) float32, view k of training image n; train_labels: (K, N) int64 (a flipped
    view carries the mirrored label); val: (M, D) float32; val_labels: (M,) int64;
    build_s: seconds it took to build.
    """

    train: torch.Tensor
    train_labels: torch.Tensor
    val: torch.Tensor
    val_labels: torch.Tensor
    build_s: float

    @property
    def views(self) -> int:
        return int(self.train.shape[0])

    def sample_epoch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One view per training image: (features (N, D), labels (N,)) for this epoch."""
        n = self.train.shape[1]
        view = torch.randint(self.views, (n,), generator=generator)
        idx = torch.arange(n)
        return self.train[view, idx], self.train_labels[view, idx]

    def nbytes(self) -> int:
        return self.train.numel() * self.train.element_size() + self.val.numel() * self.val.element_size()


def build_feature_cache(
    backbone: nn.Module,
    train_dataset,
    val_loader: DataLoader,
    views: int,
    *,
    batch_size: int = 32,
    workers: int = 0,
    device: str | torch.device = "cpu",
    amp: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> FeatureCache:
    """Features of `views` augmented passes over `train_dataset` (a ViewpointDataset with the
    training transform, read in order) and of one pass over `val_loader`.

    View k is reproducible: torch's global generator (used by the transforms in this process) is
    reseeded with seed + k and the DataLoader's worker seeds come from a generator seeded alike.
    """
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    start = time.perf_counter()
    train_feats, train_labels = [], []
    for k in range(views):
        torch.manual_seed(seed + k)
        gen = torch.Generator().manual_seed(seed + k)
        loader = DataLoader(
            train_dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=workers,
            generator=gen,
            pin_memory=torch.device(device).type == "cuda",
        )
        f, y = extract_features(
            backbone, loader, device, amp, desc=f"caching train view {k + 1}/{views}", progress=progress
        )
        train_feats.append(f)
        train_labels.append(y)
    val_f, val_y = extract_features(backbone, val_loader, device, amp, desc="caching val", progress=progress)
    cache = FeatureCache(torch.stack(train_feats), torch.stack(train_labels), val_f, val_y, time.perf_counter() - start)
    logger.info(
        "feature cache: %d train images x %d views + %d val, dim %d, %.1f MB, built in %.1f s",
        cache.train.shape[1],
        views,
        len(val_y),
        cache.train.shape[-1],
        cache.nbytes() / 1e6,
        cache.build_s,
    )
    return cache


__all__ = ["autocast_for", "extract_features", "FeatureCache", "build_feature_cache"]
