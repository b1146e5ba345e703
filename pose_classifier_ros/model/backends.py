"""Inference backends of the backbone: names, what the machine offers, and the runners that execute them.

A runner is a callable ``images (N, 3, S, S) float32 normalised -> features (N, D) float32`` on the
classifier's device; the head always runs in fp32 eager beside it (classifier.py).

    CPU:  "eager" fp32 | "bf16" autocast bfloat16 | "int8" dynamic int8 Linear layers |
          "onnx" ONNX Runtime fp32 | "onnx-int8" ONNX Runtime with dynamic int8 MatMuls
    CUDA: "eager" fp32 | "fp16" / "bf16" autocast
    "auto": measured per machine and checkpoint (backend_selection.py).

``BACKEND_FACTORIES`` maps each concrete name to a factory ``RunnerSpec -> runner``;
``auto_candidates(device)`` names the ones ``auto`` measures on a device.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

CPU_BACKENDS: tuple[str, ...] = ("auto", "eager", "bf16", "int8", "onnx", "onnx-int8")
CUDA_BACKENDS: tuple[str, ...] = ("auto", "eager", "fp16", "bf16")
ALL_BACKENDS: tuple[str, ...] = tuple(dict.fromkeys(CPU_BACKENDS + CUDA_BACKENDS))
ONNX_OPSET = 17
# CPU flags that decide which low-precision kernels exist (part of the backend-choice cache key).
SPEED_FLAGS: tuple[str, ...] = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

Runner = Callable[[torch.Tensor], torch.Tensor]


def _cpuinfo_field(name: str) -> str:
    """The first value of `name` in Linux /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith(name) and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    return frozenset(_cpuinfo_field("flags").split())


def cpu_model_name() -> str:
    """The CPU's model name ("unknown CPU" where /proc/cpuinfo has none)."""
    return _cpuinfo_field("model name") or "unknown CPU"


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bfloat16 matmul (AVX512-BF16 or AMX)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def onnxruntime_version() -> str | None:
    """onnxruntime's version, None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


def resolve_backend(backend: str, device: str | torch.device = "cpu") -> str:
    """`backend` checked for `device` (ValueError names the valid ones). "auto" stays "auto": the
    classifier resolves it by measurement (backend_selection.select_backend)."""
    device_type = torch.device(device).type
    choices = CUDA_BACKENDS if device_type == "cuda" else CPU_BACKENDS
    if backend not in ALL_BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r}; choose one of {', '.join(ALL_BACKENDS)} "
            f"({device_type}: {', '.join(choices)})"
        )
    if backend not in choices:
        raise ValueError(f"backend {backend!r} does not run on {device_type}; choose one of {', '.join(choices)}")
    return backend


def auto_candidates(device: str | torch.device = "cpu") -> tuple[str, ...]:
    """The backends ``auto`` measures on `device`, eager first.

    CPU: eager, bf16 (only with native bf16: emulated it was 5-6.6x slower than fp32 on AVX2-only
    CPUs, a measurement not worth its seconds), int8, and onnx + onnx-int8 where onnxruntime is
    installed. CUDA: eager, fp16, and bf16 where the GPU supports it.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return ("eager", "fp16") + (("bf16",) if torch.cuda.is_bf16_supported() else ())
    names = ["eager"] + (["bf16"] if cpu_has_fast_bf16() else []) + ["int8"]
    if onnxruntime_version() is not None:
        names += ["onnx", "onnx-int8"]
    return tuple(names)


@dataclass(frozen=True)
class RunnerSpec:
    """What a backend factory needs: the fp32 backbone (on `device`, eval mode; factories must not
    change it), the input size `crop_size` px, where ONNX exports go (None: default_cache_dir())
    and the CPU threads for ONNX Runtime (None: torch's)."""

    backbone: torch.nn.Module
    device: torch.device
    crop_size: int
    onnx_cache_dir: Path | None = None
    num_threads: int | None = None


BackendFactory = Callable[[RunnerSpec], Runner]


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


class TorchRunner:
    """Backbone in PyTorch, optionally under autocast or with dynamically quantised Linear layers
    (a quantised copy: the given backbone stays fp32)."""

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


def default_cache_root() -> Path:
    """$XDG_CACHE_HOME/pose_classifier_ros, else ~/.cache/pose_classifier_ros."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pose_classifier_ros"


def default_cache_dir() -> Path:
    """Where ONNX exports go by default: <default_cache_root()>/onnx."""
    return default_cache_root() / "onnx"


def export_backbone_onnx(
    backbone: torch.nn.Module, crop_size: int, cache_dir: str | os.PathLike | None = None, quantize: bool = False
) -> Path:
    """Path of the ONNX file of `backbone` ((N,3,crop,crop) -> (N,D)); exported once per weights.

    The file name holds a hash of the weights, crop size, opset and torch version, so a cached
    file never outlives the weights it came from. quantize: also write an int8 (dynamic, MatMul
    weights) version with onnxruntime.quantization and return that. Files are written to a
    temporary name and renamed, so a concurrent reader never sees half a file.
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
        # quantize_dynamic writes "<input>-inferred.onnx" beside its input: in the shared cache, workers that
        # quantise at once (a batch's first inputs) read and delete each other's. Each works in its own folder.
        with tempfile.TemporaryDirectory(dir=cache, prefix=f".quantise-{os.getpid()}-") as work:
            source, tmp = Path(work) / fp32_path.name, Path(work) / int8_path.name
            try:
                os.link(fp32_path, source)
            except OSError:  # a file system without hard links
                shutil.copyfile(fp32_path, source)
            # onnxruntime.quantization logs one root-logger line per tensor; keep them out of our logs.
            root = logging.getLogger()
            quiet = _DropRecordsFrom("onnxruntime")
            root.addFilter(quiet)
            try:
                quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
            finally:
                root.removeFilter(quiet)
            os.replace(tmp, int8_path)
    return int8_path


class OnnxRunner:
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


def _torch_factory(backend: str) -> BackendFactory:
    return lambda spec: TorchRunner(spec.backbone, spec.device, backend)


def _onnx_factory(quantize: bool) -> BackendFactory:
    def build(spec: RunnerSpec) -> Runner:
        if spec.device.type != "cpu":
            raise ValueError("the ONNX backends run on the CPU only")
        return OnnxRunner(spec.backbone, spec.crop_size, quantize, spec.onnx_cache_dir, spec.num_threads)

    return build


BACKEND_FACTORIES: dict[str, BackendFactory] = {
    "eager": _torch_factory("eager"),
    "bf16": _torch_factory("bf16"),
    "fp16": _torch_factory("fp16"),
    "int8": _torch_factory("int8"),
    "onnx": _onnx_factory(quantize=False),
    "onnx-int8": _onnx_factory(quantize=True),
}


def build_runner(backend: str, spec: RunnerSpec) -> Runner:
    """The runner of a concrete backend name (not "auto"); KeyError for a name without a factory."""
    return BACKEND_FACTORIES[backend](spec)


__all__ = [
    "ALL_BACKENDS",
    "BACKEND_FACTORIES",
    "CPU_BACKENDS",
    "CUDA_BACKENDS",
    "BackendFactory",
    "OnnxRunner",
    "Runner",
    "RunnerSpec",
    "TorchRunner",
    "auto_candidates",
    "build_runner",
    "cpu_flags",
    "cpu_has_fast_bf16",
    "cpu_model_name",
    "default_cache_dir",
    "default_cache_root",
    "export_backbone_onnx",
    "onnxruntime_version",
    "resolve_backend",
    "weights_digest",
]
