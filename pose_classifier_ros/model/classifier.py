"""ViewpointClassifier: crops or frame + boxes -> viewpoint probabilities, with inference backends.

Backends (the ``backend`` argument) change only how the backbone runs; the head (~0.01% of the
FLOPs) always runs in fp32 eager, which keeps it out of any label disagreement.

    CPU:  "eager" fp32 | "bf16" autocast bfloat16 | "int8" dynamic int8 Linear layers |
          "onnx" ONNX Runtime fp32 | "onnx-int8" ONNX Runtime with dynamic int8 MatMuls
    CUDA: "eager" fp32 | "fp16" / "bf16" autocast
    "auto" (the default): CUDA -> "fp16"; CPU with AVX512-BF16 or AMX -> "bf16" (about 1.5x the
          fp32 speed, features at cosine 0.9999+); other CPUs -> "onnx-int8" (about 2x; "int8"
          without onnxruntime): there bf16 is emulated, 6.6x SLOWER than fp32 (measured on the
          AVX2-only EPYC of this project's CI). ``resolve_backend`` says which one runs.

Measured figures (speed, label agreement with fp32) are printed by ``bench/benchmark.py``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .device import resolve_device
from .preprocess import CropConfig, crop_batch, preprocess_mixed

logger = logging.getLogger(__name__)

CPU_BACKENDS: tuple[str, ...] = ("auto", "eager", "bf16", "int8", "onnx", "onnx-int8")
CUDA_BACKENDS: tuple[str, ...] = ("auto", "eager", "fp16", "bf16")
ALL_BACKENDS: tuple[str, ...] = tuple(dict.fromkeys(CPU_BACKENDS + CUDA_BACKENDS))
ONNX_OPSET = 17


@dataclass
class FramePrediction:
    """probs: (N, C) float32 (NaN rows for invalid boxes); valid: (N,) bool;
    timings_ms: {"preprocess", "backbone", "head"} wall-clock milliseconds."""

    probs: np.ndarray
    valid: np.ndarray
    timings_ms: dict = field(default_factory=dict)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bfloat16 matmul (AVX512-BF16 or AMX); Linux /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_backend(backend: str, device: str | torch.device = "cpu") -> str:
    """The concrete backend for `backend` on `device` ("auto" resolved); ValueError if unknown."""
    device_type = torch.device(device).type
    choices = CUDA_BACKENDS if device_type == "cuda" else CPU_BACKENDS
    if backend not in ALL_BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r}; choose one of {', '.join(ALL_BACKENDS)} "
            f"({device_type}: {', '.join(choices)})"
        )
    if backend not in choices:
        raise ValueError(f"backend {backend!r} does not run on {device_type}; choose one of {', '.join(choices)}")
    if backend != "auto":
        return backend
    if device_type == "cuda":
        return "fp16"
    if cpu_has_fast_bf16():
        return "bf16"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "int8"
    return "onnx-int8"


def _quiet_quantization_warnings():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    # torch.ao.quantization is deprecated in favour of torchao, which is not installed here;
    # the eager dynamic-quantisation kernels still ship and work in this torch.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
    warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*")
    warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*")
    warnings.filterwarnings("ignore", message=r".*quantized.*deprecated.*")
    return ctx


class _TorchRunner:
    """Backbone in PyTorch, optionally under autocast or with dynamically quantised Linear layers."""

    def __init__(self, backbone: torch.nn.Module, device: torch.device, backend: str):
        self.device = device
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(backend)
        if backend == "int8":
            ctx = _quiet_quantization_warnings()
            try:
                from torch.ao.quantization import quantize_dynamic

                backbone = quantize_dynamic(backbone, {torch.nn.Linear}, dtype=torch.qint8)
            finally:
                ctx.__exit__(None, None, None)
        self.backbone = backbone

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.autocast_dtype is None:
            return self.backbone(images).float()
        with torch.autocast(self.device.type, dtype=self.autocast_dtype):
            return self.backbone(images).float()


class _DropRecordsFrom(logging.Filter):
    def __init__(self, path_part: str):
        super().__init__()
        self.path_part = path_part

    def filter(self, record: logging.LogRecord) -> bool:
        return self.path_part not in record.pathname


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 hex of a module's state_dict (names, shapes, dtypes, values)."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pose_classifier_ros" / "onnx"


def export_backbone_onnx(
    backbone: torch.nn.Module, crop_size: int, cache_dir: str | os.PathLike | None = None, quantize: bool = False
) -> Path:
    """Path of the ONNX file of `backbone` ((N,3,crop,crop) -> (N,D)); exported once per weights.

    The file name holds a hash of the weights, crop size, opset and torch version, so a cached
    file never outlives the weights it came from. quantize: also write an int8 (dynamic, MatMul
    weights) version with onnxruntime.quantization and return that.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{weights_digest(backbone)}|{crop_size}|{ONNX_OPSET}|{torch.__version__}".encode())
    stem = f"backbone-{key.hexdigest()[:20]}"
    fp32_path = cache / f"{stem}.onnx"
    if not fp32_path.is_file():
        logger.info("exporting the backbone to %s (once per weights)", fp32_path)
        tmp = fp32_path.with_suffix(f".tmp{os.getpid()}")
        dummy = torch.zeros(2, 3, crop_size, crop_size)
        backbone = backbone.cpu().eval()
        grid = crop_size // backbone.patch_size
        with torch.no_grad():
            pos_embed = backbone.pos_embed_for(grid, grid).clone()
        # The trace records the interpolated position embedding as a constant (the bicubic
        # resize of the 518 px grid does not trace); the instance attribute shadows the method.
        backbone.pos_embed_for = lambda gh, gw: pos_embed
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
                with torch.no_grad():
                    torch.onnx.export(
                        backbone,
                        (dummy,),
                        str(tmp),
                        dynamo=False,
                        input_names=["images"],
                        output_names=["features"],
                        dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                        opset_version=ONNX_OPSET,
                        do_constant_folding=True,
                    )
        finally:
            del backbone.pos_embed_for
        os.replace(tmp, fp32_path)
    if not quantize:
        return fp32_path
    int8_path = cache / f"{stem}-int8.onnx"
    if not int8_path.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        logger.info("quantising %s to int8", fp32_path.name)
        tmp = int8_path.with_suffix(f".tmp{os.getpid()}")
        # onnxruntime.quantization logs one root-logger line per tensor; keep them out of our logs.
        root = logging.getLogger()
        quiet = _DropRecordsFrom("onnxruntime")
        root.addFilter(quiet)
        try:
            quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        finally:
            root.removeFilter(quiet)
        os.replace(tmp, int8_path)
    return int8_path


class _OnnxRunner:
    """Backbone in ONNX Runtime (CPU execution provider)."""

    def __init__(
        self,
        backbone: torch.nn.Module,
        crop_size: int,
        quantize: bool,
        cache_dir: str | os.PathLike | None,
        num_threads: int | None,
    ):
        import onnxruntime as ort

        path = export_backbone_onnx(backbone, crop_size, cache_dir, quantize)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # No busy-waiting between operators: on a 2-core companion computer the spinning threads would take
        # the CPU from the node's publishing path (scheduled mode) between inference calls.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"images": x})[0])


class ViewpointClassifier:
    """Crops or frame + boxes -> viewpoint classes and probabilities.

    model: a ViewpointModel (``.backbone``, ``.head``) and config: its ModelConfig (class names and
    preprocessing); or instead weight_path: a checkpoint file (any layout ``load_checkpoint`` reads;
    a path given as `model` is taken as weight_path), with model_size: the backbone size the caller
    expects ("small", "base", "large"; None: the checkpoint's), a CheckpointError ("must match the
    trained checkpoint") when it differs, and backbone_weights / hub_dir for head-only checkpoints.
    device: "cpu" or "cuda". backend: see the module docstring ("auto" by default;
    ``self.backend`` is the resolved one). batch_size: crops per forward pass. crop: box padding and
    minimum size. num_threads: torch (and ONNX Runtime) CPU threads, None leaves torch's setting.
    onnx_cache_dir: where exported ONNX files go (default ~/.cache/pose_classifier_ros/onnx).
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
        if self.backend in ("onnx", "onnx-int8"):
            self._backbone = _OnnxRunner(
                self.model.backbone, config.crop_size, self.backend == "onnx-int8", onnx_cache_dir, num_threads
            )
        else:
            self._backbone = _TorchRunner(self.model.backbone, self.device, self.backend)
        logger.info(
            "ViewpointClassifier on %s, backend %s (asked %s), batch %d",
            self.device,
            self.backend,
            backend,
            self.batch_size,
        )

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
    "ViewpointClassifier",
    "ViewPointClassifier",
    "FramePrediction",
    "resolve_backend",
    "cpu_has_fast_bf16",
    "export_backbone_onnx",
    "CPU_BACKENDS",
    "CUDA_BACKENDS",
]
