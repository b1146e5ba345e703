"""ViewpointModel (frozen DINOv2 backbone + trainable head) and its ModelConfig."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..labels import VIEWPOINTS
from . import backbone as _backbone
from .head import HEAD_TYPES

logger = logging.getLogger(__name__)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass
class ModelConfig:
    """What a checkpoint needs besides weights: architecture, class order and preprocessing.

    resize_size / crop_size: px (Resize shorter side, then CenterCrop); mean / std: per RGB
    channel on [0, 1] pixel values. temperature: softmax temperature T (probabilities =
    softmax(logits / T), labels unchanged); fitted on the validation split by ``train
    --fit-temperature``; 1.0 for reference checkpoints and ours saved before it existed.
    """

    backbone: str = "small"
    head_type: str = "mlp"
    class_names: tuple[str, ...] = VIEWPOINTS
    resize_size: int = 256
    crop_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    temperature: float = 1.0

    def __post_init__(self) -> None:
        self.class_names = tuple(str(c) for c in self.class_names)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.resize_size = int(self.resize_size)
        self.crop_size = int(self.crop_size)
        self.temperature = float(self.temperature)
        if not (self.temperature > 0.0 and self.temperature < float("inf")):
            raise ValueError(f"temperature must be a positive finite number, got {self.temperature}")
        if self.backbone not in _backbone.BACKBONE_SPECS:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; expected one of {', '.join(_backbone.BACKBONE_SPECS)}"
            )
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"unknown head type {self.head_type!r}; expected one of {', '.join(HEAD_TYPES)}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need 3 values (R, G, B)")
        if self.crop_size % _backbone.PATCH_SIZE:
            raise ValueError(f"crop_size {self.crop_size} is not a multiple of the patch size {_backbone.PATCH_SIZE}")

    @property
    def embed_dim(self) -> int:
        return _backbone.BACKBONE_SPECS[self.backbone].embed_dim

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of to_dict; unknown keys are ignored with a warning (newer writers)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            logger.warning("ignoring unknown model config keys: %s", ", ".join(unknown))
        return cls(**{k: v for k, v in data.items() if k in names})


def infer_backbone_size(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Backbone size ("small", ...) of a model or backbone state_dict from embed dim + depth;
    None when it holds no (recognised) backbone weights. Keys may carry a "backbone." prefix."""
    for prefix in ("backbone.", ""):
        if prefix + "cls_token" in state_dict:
            return _backbone.infer_backbone_size(state_dict, prefix)
    return None


class ViewpointModel(nn.Module):
    """Frozen backbone + head. forward(images (N,3,H,W) float32 normalized) -> logits (N, C).

    The backbone's parameters never require grad and it stays in eval mode even after
    ``model.train()``: only the head trains (its dropout follows train/eval).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = _backbone.freeze(backbone)
        self.head = head

    def train(self, mode: bool = True) -> ViewpointModel:
        super().train(mode)
        self.backbone.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) -> (N, D) backbone CLS features."""
        return self.backbone(images)

    def classify_features(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) features -> (N, C) logits."""
        return self.head(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def build_model(config: ModelConfig, *, backbone_weights=None, hub_dir=None, pretrained: bool = True) -> ViewpointModel:
    """ViewpointModel for `config` with a freshly initialised head (see build_backbone for weights)."""
    from .head import build_head

    bb = _backbone.build_backbone(config.backbone, weights=backbone_weights, hub_dir=hub_dir, pretrained=pretrained)
    return ViewpointModel(bb, build_head(config.head_type, bb.embed_dim, len(config.class_names)))
