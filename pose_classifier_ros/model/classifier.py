"""ViewpointClassifier: crops or frame + boxes -> viewpoint probabilities, with inference backends.

Backends (the ``backend`` argument, backends.py) change only how the backbone runs; the head (~0.01%
of the FLOPs) always runs in fp32 eager, which keeps it out of any label disagreement.

    CPU:  "eager" fp32 | "bf16" autocast bfloat16 | "int8" dynamic int8 Linear layers |
          "onnx" ONNX Runtime fp32 | "onnx-int8" ONNX Runtime with dynamic int8 MatMuls
    CUDA: "eager" fp32 | "fp16" / "bf16" autocast
    "auto" (the default): measured (backend_selection.py): on the first activation with a model on a
          machine every candidate runs on a small calibration batch; the fastest whose labels and
          probabilities agree with fp32 eager is chosen and cached (``backend_cache_dir``), so later
          activations start at once. ``self.backend`` is the backend that runs,
          ``self.backend_choice`` the figures (None for a fixed backend).

Measured figures (speed, label agreement with fp32) are printed by ``bench/benchmark.py`` and
``bench/backend_choice.py``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backend_selection import BackendChoice, select_backend
from .backends import (
    ALL_BACKENDS,
    CPU_BACKENDS,
    CUDA_BACKENDS,
    BackendFactory,
    RunnerSpec,
    build_runner,
    cpu_has_fast_bf16,
    default_cache_dir,
    export_backbone_onnx,
    resolve_backend,
    weights_digest,
)
from .device import resolve_device
from .preprocess import CropConfig, crop_batch, preprocess_mixed

logger = logging.getLogger(__name__)


@dataclass
class FramePrediction:
    """probs: (N, C) float32 (NaN rows for invalid boxes); valid: (N,) bool;
    timings_ms: {"preprocess", "backbone", "head"} wall-clock milliseconds."""

    probs: np.ndarray
    valid: np.ndarray
    timings_ms: dict = field(default_factory=dict)


class ViewpointClassifier:
    """Crops or frame + boxes -> viewpoint classes and probabilities.

    model: a ViewpointModel (``.backbone``, ``.head``) and config: its ModelConfig (class names and
    preprocessing); or instead weight_path: a checkpoint file (any layout ``load_checkpoint`` reads;
    a path given as `model` is taken as weight_path), with model_size: the backbone size the caller
    expects ("small", "base", "large"; None: the checkpoint's), a CheckpointError ("must match the
    trained checkpoint") when it differs, and backbone_weights / hub_dir for head-only checkpoints.
    device: "cpu" or "cuda". backend: see the module docstring ("auto" by default;
    ``self.backend`` is the one that runs). batch_size: crops per forward pass. crop: box padding and
    minimum size. num_threads: torch (and ONNX Runtime) CPU threads, None leaves torch's setting.
    onnx_cache_dir: where exported ONNX files go (default: <backend_cache_dir>/onnx).

    For backend "auto" only: backend_cache_dir: where the measured choice is cached (default
    $XDG_CACHE_HOME/pose_classifier_ros, else ~/.cache/pose_classifier_ros); calibration_crops: the
    crops to measure on (images as for predict_proba, e.g. from the first frames, or an (N, 3, S, S)
    normalised tensor; or a function returning them, called only when no cached choice exists; None: a
    deterministic synthetic batch); backend_candidates: the backends to
    measure, names or {name: factory} (None: ``backends.auto_candidates(device)``); workload_crops: crops
    per forward pass the caller will run, what candidates are timed on (None: batch_size).
    """

    def __init__(
        self,
        model=None,
        config=None,
        device: str | torch.device = "cpu",
        backend: str = "auto",
        batch_size: int = 32,
        crop: CropConfig | None = None,
        num_threads: int | None = None,
        onnx_cache_dir: str | os.PathLike | None = None,
        *,
        weight_path: str | os.PathLike | None = None,
        model_size: str | None = None,
        backbone_weights: str | os.PathLike | None = None,
        hub_dir: str | os.PathLike | None = None,
        backend_cache_dir: str | os.PathLike | None = None,
        calibration_crops=None,
        backend_candidates: Mapping[str, BackendFactory] | Sequence[str] | None = None,
        workload_crops: int | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        model, config = _model_and_config(
            model, config, weight_path, model_size, backbone_weights, hub_dir, self.device
        )
        self.backend = resolve_backend(backend, self.device)
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.config = config
        self.class_names: tuple[str, ...] = tuple(config.class_names)
        # Softmax temperature of the checkpoint (ModelConfig.temperature; 1.0 when absent):
        # rescales confidences for every backend, never changes the argmax label.
        self.temperature = float(getattr(config, "temperature", 1.0) or 1.0)
        self.batch_size = int(batch_size)
        self.crop = crop or CropConfig()
        self.model = model.to(self.device).eval()
        self.head = self.model.head
        if onnx_cache_dir is None and backend_cache_dir is not None:
            onnx_cache_dir = Path(backend_cache_dir) / "onnx"
        spec = RunnerSpec(
            self.model.backbone,
            self.device,
            config.crop_size,
            Path(onnx_cache_dir) if onnx_cache_dir is not None else None,
            num_threads,
        )
        self.backend_choice: BackendChoice | None = None
        if self.backend == "auto":
            selection = select_backend(
                self.model,
                config,
                spec,
                candidates=backend_candidates,
                calibration=lambda: self._calibration_batch(
                    calibration_crops() if callable(calibration_crops) else calibration_crops
                ),
                calibration_source="caller's crops" if calibration_crops is not None else "",
                cache_dir=backend_cache_dir,
                workload_crops=min(int(workload_crops or batch_size), int(batch_size)),
            )
            self.backend, self._backbone, self.backend_choice = (
                selection.choice.backend,
                selection.runner,
                selection.choice,
            )
        else:
            self._backbone = build_runner(self.backend, spec)
        logger.info(
            "ViewpointClassifier on %s, backend %s (asked %s), batch %d",
            self.device,
            self.backend,
            backend,
            self.batch_size,
        )

    def _calibration_batch(self, crops) -> torch.Tensor | None:
        """(N, 3, S, S) normalised tensor of the caller's calibration crops (None: none given)."""
        if crops is None:
            return None
        if isinstance(crops, torch.Tensor) and crops.ndim == 4 and crops.is_floating_point():
            return crops
        images = self._as_image_list(crops)
        if not images:
            return None
        return preprocess_mixed(images, self.config, device=self.device)

    @classmethod
    def from_checkpoint(
        cls,
        path,
        device: str | torch.device = "cpu",
        backend: str = "auto",
        backbone_weights=None,
        hub_dir=None,
        **kwargs: Any,
    ) -> ViewpointClassifier:
        """Load a checkpoint (see checkpoint.build_model_from_checkpoint) and wrap it; the same as
        ``cls(weight_path=path, ...)``."""
        return cls(
            weight_path=path,
            device=device,
            backend=backend,
            backbone_weights=backbone_weights,
            hub_dir=hub_dir,
            **kwargs,
        )

    # ---------------------------------------------------------------------------------------

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _probs(self, images: torch.Tensor, timings: dict[str, float]) -> np.ndarray:
        """(M,3,S,S) normalised -> (M, C) float32 probabilities, in chunks of batch_size."""
        out = np.empty((len(images), len(self.class_names)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size].to(self.device, non_blocking=True)
                t0 = time.perf_counter()
                feats = self._backbone(chunk).to(self.device)
                self._sync()
                t1 = time.perf_counter()
                probs = torch.softmax(self.head(feats.float()) / self.temperature, dim=1)
                out[start : start + len(chunk)] = probs.cpu().numpy()
                t2 = time.perf_counter()
                timings["backbone"] += (t1 - t0) * 1e3
                timings["head"] += (t2 - t1) * 1e3
        return out

    def predict_frame(self, frame, boxes) -> FramePrediction:
        """frame: (H, W, 3) uint8 RGB; boxes: (N, 4) float xyxy px -> FramePrediction.

        Boxes are padded and clamped (self.crop); invalid ones (outside, too small, NaN) get NaN rows.
        """
        timings = {"preprocess": 0.0, "backbone": 0.0, "head": 0.0}
        t0 = time.perf_counter()
        images, valid = crop_batch(frame, boxes, self.crop, self.config, device=self.device)
        self._sync()
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        probs = np.full((len(valid), len(self.class_names)), np.nan, dtype=np.float32)
        if valid.any():
            probs[valid] = self._probs(images, timings)
        return FramePrediction(probs=probs, valid=valid, timings_ms=timings)

    @staticmethod
    def _as_image_list(crops) -> list:
        if isinstance(crops, (list, tuple)):
            return list(crops)
        if isinstance(crops, np.ndarray) and crops.ndim == 4:
            return list(crops)  # (N, H, W, 3)
        if isinstance(crops, torch.Tensor) and crops.ndim == 4:
            return list(crops)  # (N, 3, H, W)
        return [crops]

    def predict_proba(self, crops) -> np.ndarray:
        """crops: a PIL image, (H, W, 3) uint8 array or (3, H, W) tensor, or a list of them
        -> (N, C) float32 probabilities in ``self.class_names`` order.

        PIL images go through the reference transforms exactly (``preprocess.pil_preprocess``: Pillow
        Resize(256) -> CenterCrop(224) -> ToTensor -> Normalize, bit-identical inputs), so with backend
        "eager" the probabilities equal the reference scripts' on the same checkpoint (test: within 1e-6).
        Arrays and tensors take the fast tensor path (``preprocess.preprocess_images``, the resize
        kernel of the node's ``crop_batch``): pixels within one uint8 step of the reference, which moved
        probabilities (max |diff| to the PIL path, random-weight models, crops of 7-1000 px from a noisy
        textured frame) by up to 5e-4 (test-tiny, 40 crops, confident head), 3e-6 (ViT-S/14, 16 crops,
        near-uniform head) and 1.4e-3 (ViT-S/14, head scaled to confident outputs); mean |diff| 1e-5 to
        3e-5; argmax unchanged in all of them. Pass PIL images where reference numbers matter.
        """
        images = self._as_image_list(crops)
        if not images:
            return np.empty((0, len(self.class_names)), dtype=np.float32)
        batch = preprocess_mixed(images, self.config, device=self.device)
        return self._probs(batch, {"backbone": 0.0, "head": 0.0})

    def __call__(self, crops) -> list[str]:
        """crops (see predict_proba) -> one class name per crop."""
        return [self.class_names[i] for i in self.predict_proba(crops).argmax(axis=1)]


def _model_and_config(model, config, weight_path, model_size, backbone_weights, hub_dir, device):
    """(model, config) from the constructor's arguments: given directly, or loaded from weight_path."""
    from .backbone import BACKBONE_SPECS

    if isinstance(model, (str, os.PathLike)):
        if weight_path is not None:
            raise TypeError("give the checkpoint once: as the first argument or as weight_path=, not both")
        model, weight_path = None, model
    if model_size is not None and model_size not in BACKBONE_SPECS:
        raise ValueError(f"model_size must be one of {', '.join(BACKBONE_SPECS)}, got {model_size!r}")
    if weight_path is None:
        if model is None or config is None:
            raise TypeError("ViewpointClassifier needs a model and its config, or weight_path=CHECKPOINT")
        if model_size is not None and model_size != config.backbone:
            from .checkpoint import CheckpointError

            raise CheckpointError(
                f"model_size {model_size!r} but the model has a {config.backbone!r} backbone; "
                "model_size must match the trained checkpoint"
            )
        return model, config
    if model is not None or config is not None:
        raise TypeError("give either weight_path or a model and config, not both")
    from .checkpoint import build_model_from_checkpoint

    return build_model_from_checkpoint(
        weight_path, backbone=model_size, backbone_weights=backbone_weights, hub_dir=hub_dir, device=device
    )


class ViewPointClassifier(ViewpointClassifier):
    """The reference scripts' classifier (``pose_classifier.ViewPointClassifier``), as a drop-in.

    ``ViewPointClassifier(weight_path, model_size="small", device="cpu")``; ``clf(crops) -> list[str]``,
    ``clf.predict_proba(crops) -> (N, 8)``. weight_path: the reference ``best_pose_model.pth`` or any
    checkpoint ``load_checkpoint`` reads. model_size: "small" | "base" | "large" ("test-tiny" for
    tests); a checkpoint of another size raises CheckpointError ("... must match the trained
    checkpoint"), as the reference does. Exact fp32 numerics by default (backend "eager"; PIL crops
    through the reference transforms bit for bit); every ViewpointClassifier keyword (backend="auto"
    for the fast backends, batch_size, crop, num_threads, ...) is accepted as well.
    """

    def __init__(
        self,
        weight_path: str | os.PathLike,
        model_size: str = "small",
        device: str | torch.device = "cpu",
        *,
        backend: str = "eager",
        **kwargs: Any,
    ):
        super().__init__(weight_path=weight_path, model_size=model_size, device=device, backend=backend, **kwargs)


__all__ = [
    "ALL_BACKENDS",
    "BackendChoice",
    "ViewpointClassifier",
    "ViewPointClassifier",
    "FramePrediction",
    "resolve_backend",
    "cpu_has_fast_bf16",
    "export_backbone_onnx",
    "CPU_BACKENDS",
    "CUDA_BACKENDS",
    "default_cache_dir",
    "weights_digest",
]
