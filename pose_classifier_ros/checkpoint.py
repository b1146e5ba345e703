"""Load reference and our own checkpoints; save ours.

Accepted layouts (all read with ``torch.load(weights_only=True)``; nothing executes code):

- ours: ``{"format": "pose_classifier_ros/v1", "config": ModelConfig.to_dict(), "state_dict": {...},
  "metrics": {...}, "metadata": {...}}``;
- a full model state_dict: upstream DINOv2 keys under ``backbone.`` + head keys ``head.0/1/4/7.*``
  (the reference ``best_pose_model.pth``, ~88 MB for the small backbone);
- a head-only state_dict: ``head.*`` keys or bare ``0.weight``, ``1.weight``, ...;
- a dict wrapping either under ``model_state_dict`` / ``state_dict`` / ``model`` next to metadata
  (``epoch``, ``val_acc`` / ``best_acc``, ``class_names`` / ``classes``, ``model_size``, ...).

``LoadedCheckpoint.state_dict`` always uses ViewpointModel keys: ``backbone.<upstream key>`` (if
the file has backbone weights) and ``head.<i>.*``. Every problem raises CheckpointError naming the
file and what disagrees.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from . import backbone as _backbone
from .head import build_head
from .labels import VIEWPOINTS, normalize_label
from .model import ModelConfig, ViewpointModel

logger = logging.getLogger(__name__)

FORMAT = "pose_classifier_ros/v1"
WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
_STRIP_PREFIXES = ("module.", "_orig_mod.")
_MLP_HEAD_KEYS = frozenset(f"{i}.{p}" for i in (0, 1, 4, 7) for p in ("weight", "bias"))
_LINEAR_HEAD_KEYS = frozenset({"0.weight", "0.bias"})
_CLASS_NAME_KEYS = ("class_names", "classes", "idx_to_class", "class_to_idx", "label_names")
_SIZE_KEYS = ("model_size", "backbone", "backbone_size", "arch", "model_name")
# Harmless globals that training scripts often pickle beside tensors (argparse args, numpy
# scalars such as a best accuracy). Anything else is refused rather than unpickled.
_SAFE_GLOBAL_NAMES = {
    "argparse.Namespace": "argparse:Namespace",
    "numpy.dtype": "numpy:dtype",
    "numpy.ndarray": "numpy:ndarray",
    "numpy._core.multiarray.scalar": "numpy._core.multiarray:scalar",
    "numpy.core.multiarray.scalar": "numpy._core.multiarray:scalar",
    "numpy._core.multiarray._reconstruct": "numpy._core.multiarray:_reconstruct",
    "numpy.core.multiarray._reconstruct": "numpy._core.multiarray:_reconstruct",
}
_SIZE_ALIASES = {
    "s": "small", "vits14": "small", "vit_small": "small", "dinov2_vits14": "small",
    "b": "base", "vitb14": "base", "vit_base": "base", "dinov2_vitb14": "base",
    "l": "large", "vitl14": "large", "vit_large": "large", "dinov2_vitl14": "large",
}


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and what is wrong."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


@dataclass
class LoadedCheckpoint:
    """state_dict: ViewpointModel keys ("backbone.*" if present, "head.*"), float tensors on CPU.
    config: stored (ours) or inferred from the weights and metadata. source_format: one of
    "pose_classifier_ros/v1", "full_state_dict", "head_state_dict", "wrapped_full_state_dict",
    "wrapped_head_state_dict"."""

    state_dict: dict[str, torch.Tensor]
    config: ModelConfig | None
    metadata: dict[str, Any]
    source_format: str
    metrics: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def has_backbone(self) -> bool:
        return any(k.startswith("backbone.") for k in self.state_dict)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        return {k[len("head."):]: v for k, v in self.state_dict.items() if k.startswith("head.")}

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        return {k[len("backbone."):]: v for k, v in self.state_dict.items() if k.startswith("backbone.")}


# --------------------------------------------------------------------------------------------
# Reading


def _resolve(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        first_error = exc
    # weights_only refused some globals: allow a small list of harmless ones, refuse the rest.
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not even a readable torch file
        needed = None
    if not needed:
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a PyTorch checkpoint, or the file is corrupt or "
            f"truncated ({type(first_error).__name__}: {_first_line(first_error)})") from first_error
    unsafe = [n for n in needed if n not in _SAFE_GLOBAL_NAMES]
    if unsafe:
        raise CheckpointError(
            f"checkpoint {path} stores pickled Python objects ({', '.join(unsafe[:5])}) that are not "
            "loaded for safety; re-save it as a state_dict (e.g. torch.save(model.state_dict(), path))"
        ) from first_error
    allowed: list = [(_resolve(_SAFE_GLOBAL_NAMES[n]), n) for n in needed]
    if any(n.startswith("numpy") for n in needed):  # numpy scalars also rebuild their dtype class
        import numpy as np
        allowed += [type(np.dtype(t)) for t in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
                                                 "f2", "f4", "f8", "U", "S")]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _plain(value: Any, depth: int = 0) -> Any:
    """JSON-like copy of metadata values (numpy/torch scalars -> Python); None if not representable."""
    if value is None or type(value) in (str, bool, int, float):
        return value
    for kind in (bool, str, int, float):  # subclasses (e.g. TorchVersion) would need unpickling
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalar
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if depth > 3:
        return None
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        out = {str(k): _plain(v, depth + 1) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None}
    if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1):
        items = [_plain(v, depth + 1) for v in (value.tolist() if hasattr(value, "tolist") else value)]
        return items if all(v is not None for v in items) else None
    return None


def _strip_common_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed and sd:
        changed = False
        for pfx in _STRIP_PREFIXES:
            if all(k.startswith(pfx) for k in sd):
                sd = {k[len(pfx):]: v for k, v in sd.items()}
                changed = True
    return sd


def _split_model_state_dict(sd: dict[str, torch.Tensor], path: Path) -> tuple[dict, dict]:
    """(backbone upstream-keyed sd or {}, head sd with "0.weight"... keys) from any supported layout."""
    sd = _strip_common_prefix(sd)
    # The backbone sits under whatever prefix holds cls_token + blocks (usually "backbone.").
    bb_prefix = None
    for k in sd:
        if k.endswith("cls_token"):
            p = k[: -len("cls_token")]
            if any(x.startswith(p + "blocks.") for x in sd):
                bb_prefix = p
                break
    backbone: dict[str, torch.Tensor] = {}
    rest = sd
    if bb_prefix is not None:
        backbone = {k[len(bb_prefix):]: v for k, v in sd.items() if k.startswith(bb_prefix)}
        rest = {k: v for k, v in sd.items() if not k.startswith(bb_prefix)}
        chunked = re.compile(r"^blocks\.\d+\.(\d+)\.")
        if any(chunked.match(k) for k in backbone):  # block_chunks > 0 training layout
            backbone = {chunked.sub(r"blocks.\1.", k): v for k, v in backbone.items()}
        if bb_prefix == "" and not rest:
            raise CheckpointError(
                f"{path} holds only DINOv2 backbone weights, no classifier head; pass it as the "
                "backbone weights (backbone_weights= / --backbone-weights) together with a checkpoint")
    # The head: "head.*" (or another single prefix such as "classifier.*"), or bare "0.weight"...
    head: dict[str, torch.Tensor] | None = None
    if set(rest) in (_MLP_HEAD_KEYS, _LINEAR_HEAD_KEYS):
        head = dict(rest)
    else:
        prefixes = {k.split(".", 1)[0] for k in rest}
        if len(prefixes) == 1:
            pfx = prefixes.pop() + "."
            cand = {k[len(pfx):]: v for k, v in rest.items()}
            if set(cand) in (_MLP_HEAD_KEYS, _LINEAR_HEAD_KEYS):
                head = cand
    if head is None:
        keys = sorted(rest)
        raise CheckpointError(
            f"{path}: unknown state_dict key layout; expected backbone.* (DINOv2) + head.0/1/4/7.* "
            f"(MLP head) or head.0.* (linear probe), or a head alone, but found "
            f"{len(keys)} non-backbone keys: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}")
    return backbone, head


def _head_type(head: Mapping[str, torch.Tensor], path: Path) -> tuple[str, int, int]:
    """(head_type, in_dim, num_classes), checking shapes are consistent."""
    try:
        if set(head) == _MLP_HEAD_KEYS and head["0.weight"].ndim == 1:
            in_dim, ncls = head["0.weight"].shape[0], head["7.weight"].shape[0]
            expect = {"0.weight": (in_dim,), "0.bias": (in_dim,), "1.weight": (256, in_dim), "1.bias": (256,),
                      "4.weight": (128, 256), "4.bias": (128,), "7.weight": (ncls, 128), "7.bias": (ncls,)}
            kind = "mlp"
        elif set(head) == _LINEAR_HEAD_KEYS and head["0.weight"].ndim == 2:
            ncls, in_dim = head["0.weight"].shape
            expect = {"0.weight": (ncls, in_dim), "0.bias": (ncls,)}
            kind = "linear"
        else:
            raise KeyError
    except (KeyError, IndexError, ValueError):
        raise CheckpointError(f"{path}: head weights have an unknown layout: "
                              + ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(head.items()))) from None
    wrong = [f"{k} {tuple(head[k].shape)} (expected {s})" for k, s in expect.items() if tuple(head[k].shape) != s]
    if wrong:
        raise CheckpointError(f"{path}: {kind} head weights have inconsistent shapes: {', '.join(wrong)}")
    return kind, int(in_dim), int(ncls)


def _nested(meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The metadata and the argument/config dicts training scripts nest in it."""
    return [meta] + [meta[k] for k in ("args", "config", "hparams", "hyper_parameters")
                     if isinstance(meta.get(k), Mapping)]


def _class_names_from(meta: Mapping[str, Any]) -> tuple[str, ...] | None:
    for key, value in ((k, m.get(k)) for m in _nested(meta) for k in _CLASS_NAME_KEYS):
        if value is None:
            continue
        if isinstance(value, Mapping):  # idx_to_class {0: "front"} or class_to_idx {"front": 0}
            items = list(value.items())
            if all(isinstance(v, (int, float)) for _, v in items):
                return tuple(str(k) for k, _ in sorted(items, key=lambda kv: kv[1]))
            return tuple(str(v) for _, v in sorted(items, key=lambda kv: int(kv[0])))
        if isinstance(value, (list, tuple)):
            return tuple(str(v) for v in value)
    return None


def _check_class_names(names: tuple[str, ...], path: Path, where: str) -> None:
    try:
        normalized = tuple(VIEWPOINTS[normalize_label(n)] for n in names)
    except ValueError:
        normalized = None
    if normalized != VIEWPOINTS:
        raise CheckpointError(
            f"{path}: class list in {where} {list(names)} differs from the supported order "
            f"{list(VIEWPOINTS)}; the head's outputs would be mislabelled")


def _size_from_metadata(meta: Mapping[str, Any]) -> str | None:
    for value in (m.get(k) for m in _nested(meta) for k in _SIZE_KEYS):
        if isinstance(value, str):
            v = value.strip().lower()
            if v in _backbone.BACKBONE_SPECS:
                return v
            v = v.replace("-", "_")
            for alias, size in _SIZE_ALIASES.items():
                if v == alias or (len(alias) > 1 and v.endswith(alias)):
                    return size
    return None


def _size_for_dim(dim: int) -> str | None:
    return next((n for n, s in _backbone.BACKBONE_SPECS.items() if s.embed_dim == dim), None)


def load_checkpoint(path: str | os.PathLike, *, backbone_size: str | None = None) -> LoadedCheckpoint:
    """Read any supported checkpoint layout (module docstring). `backbone_size`, if given, is the
    size the caller wants: a checkpoint built for another size raises CheckpointError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointNotFound(f"checkpoint {path} does not exist" if not path.exists()
                                 else f"checkpoint {path} is not a file")
    obj = _torch_load(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict or checkpoint dict")

    config: ModelConfig | None = None
    metrics: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if obj.get("format") == FORMAT:
        source_format = FORMAT
        if not _is_tensor_dict(obj.get("state_dict")) or not isinstance(obj.get("config"), Mapping):
            raise CheckpointError(f"{path}: {FORMAT} checkpoint lacks its state_dict or config")
        try:
            config = ModelConfig.from_dict(obj["config"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: invalid model config: {exc}") from exc
        raw = dict(obj["state_dict"])
        metrics = _plain(obj.get("metrics") or {}) or {}
        metadata = _plain(obj.get("metadata") or {}) or {}
        _check_class_names(config.class_names, path, "its config")
    elif isinstance(obj.get("format"), str):
        raise CheckpointError(f"{path}: unsupported checkpoint format {obj['format']!r} (this version reads {FORMAT})")
    elif _is_tensor_dict(obj):
        raw = dict(obj)
        source_format = "state_dict"
    else:
        wrapper = next((k for k in WRAPPER_KEYS if _is_tensor_dict(obj.get(k))), None)
        if wrapper is None:
            keys = [str(k) for k in obj][:10]
            raise CheckpointError(
                f"{path} is not a model checkpoint: no tensors at the top level nor under "
                f"{' / '.join(WRAPPER_KEYS)} (top-level keys: {', '.join(keys)})")
        raw = dict(obj[wrapper])
        source_format = "wrapped_state_dict"
        metadata = {str(k): v for k, v in ((k, _plain(v)) for k, v in obj.items()
                                           if k not in WRAPPER_KEYS and "optimizer" not in str(k)
                                           and "scheduler" not in str(k)) if v is not None}
        metadata["wrapper_key"] = wrapper

    backbone_sd, head_sd = _split_model_state_dict(raw, path)
    head_type, in_dim, num_classes = _head_type(head_sd, path)
    if num_classes != len(VIEWPOINTS):
        raise CheckpointError(f"{path}: head outputs {num_classes} classes, the supported viewpoints "
                              f"are {len(VIEWPOINTS)}: {', '.join(VIEWPOINTS)}")
    if source_format != FORMAT:
        source_format = source_format.replace("state_dict", "full_state_dict" if backbone_sd else "head_state_dict")

    # Backbone size: the weights decide; config/metadata/caller must agree with them.
    weights_size = None
    if backbone_sd:
        weights_size = _backbone.infer_backbone_size(backbone_sd)
        if weights_size is None:
            raise CheckpointError(f"{path}: backbone weights ({_backbone.describe_state_dict(backbone_sd)}) "
                                  f"match no supported size ({_describe_sizes()})")
    claims = [(weights_size, "its backbone weights"),
              (_size_for_dim(in_dim), f"its head input dim {in_dim}"),
              (config.backbone if config else None, "its config"),
              (_size_from_metadata(metadata), "its metadata"),
              (backbone_size, "the requested backbone")]
    if claims[1][0] is None:
        raise CheckpointError(f"{path}: head input dim {in_dim} matches no backbone ({_describe_sizes()})")
    known = [(s, why) for s, why in claims if s is not None]
    if len({s for s, _ in known}) > 1:
        raise CheckpointError(f"{path}: backbone size disagrees: "
                              + ", ".join(f"{why} says {s!r}" for s, why in known))
    size = known[0][0]

    if config is None:
        names = _class_names_from(metadata)
        if names is not None:
            _check_class_names(names, path, "its metadata")
        config = ModelConfig(backbone=size, head_type=head_type)
        metadata.setdefault("config_inferred", True)
    elif config.head_type != head_type:
        raise CheckpointError(f"{path}: config says head {config.head_type!r} but the weights are a {head_type!r} head")

    state_dict = {f"backbone.{k}": v for k, v in backbone_sd.items()}
    state_dict.update({f"head.{k}": v for k, v in head_sd.items()})
    bad = [k for k, v in state_dict.items() if not v.is_floating_point()]
    if bad:
        raise CheckpointError(f"{path}: non-float weights: {', '.join(bad[:5])}")
    for k, v in state_dict.items():
        if not torch.isfinite(v).all():
            raise CheckpointError(f"{path}: weights {k} contain NaN or inf")
    return LoadedCheckpoint(state_dict=state_dict, config=config, metadata=metadata,
                            source_format=source_format, metrics=metrics, path=str(path))


def _describe_sizes() -> str:
    return ", ".join(f"{n}: dim {s.embed_dim}, {s.depth} blocks" for n, s in _backbone.BACKBONE_SPECS.items())


# --------------------------------------------------------------------------------------------
# Building


def build_model_from_checkpoint(path: str | os.PathLike, *, backbone: str | None = None,
                                backbone_weights: str | os.PathLike | None = None,
                                hub_dir: str | os.PathLike | None = None,
                                device: str | torch.device = "cpu") -> tuple[ViewpointModel, ModelConfig]:
    """(model in eval mode on `device`, config) from a checkpoint.

    backbone: the size the caller expects ("small", ...), None to take the checkpoint's.
    The backbone weights come from the checkpoint itself when it has them; otherwise (head-only
    checkpoints) from `backbone_weights` or the torch.hub cache under `hub_dir` (see build_backbone).
    """
    ckpt = load_checkpoint(path, backbone_size=backbone)
    config = ckpt.config
    assert config is not None
    spec = _backbone.BACKBONE_SPECS[config.backbone]
    if ckpt.has_backbone:
        if backbone_weights is not None:
            logger.info("%s has its own backbone weights; not using %s", path, backbone_weights)
        try:
            bb = _backbone.backbone_from_state_dict(config.backbone, ckpt.backbone_state_dict(), source=str(path))
        except _backbone.BackboneWeightsError as exc:
            raise CheckpointError(str(exc)) from exc
    else:
        try:
            bb = _backbone.build_backbone(config.backbone, weights=backbone_weights, hub_dir=hub_dir)
        except _backbone.BackboneWeightsNotFound as exc:
            tried = "\n".join(f"  {p}" for p in exc.tried) or "  (no path: no upstream weights for this size)"
            hub_file = spec.weights_filename
            raise CheckpointError(
                f"{path} is head-only (no backbone weights inside) and no {config.backbone!r} backbone "
                f"weights were found offline. Tried:\n{tried}\nFix: pass the DINOv2 weights with "
                "backbone_weights=PATH (--backbone-weights PATH)"
                + (f", or put {hub_file} into <torch hub dir>/checkpoints/ (hub_dir / --hub-dir)" if hub_file else "")
                + ".") from exc
        except _backbone.BackboneWeightsError as exc:
            raise CheckpointError(f"{path} is head-only and its backbone weights cannot be used: {exc}") from exc
    head = build_head(config.head_type, spec.embed_dim, len(config.class_names))
    try:
        head.load_state_dict(ckpt.head_state_dict(), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: head weights do not fit: {_first_line(exc)}") from exc
    model = ViewpointModel(bb, head).to(device).eval()
    logger.info("loaded %s (%s, backbone %s, head %s)", path, ckpt.source_format, config.backbone, config.head_type)
    return model, config


# --------------------------------------------------------------------------------------------
# Writing


def save_checkpoint(path: str | os.PathLike, model: ViewpointModel, config: ModelConfig, *,
                    metrics: Mapping[str, Any] | None = None, include_backbone: bool = True,
                    **metadata: Any) -> Path:
    """Write our format atomically (temp file + rename); returns the path.

    include_backbone=False stores only the head (~0.5 MB); loading it then needs backbone weights.
    metrics / metadata must be plain values (numbers, strings, lists, dicts); numpy/torch scalars
    are converted, anything else raises TypeError so the file always loads with weights_only.
    """
    path = Path(path).expanduser()
    if tuple(config.class_names) != VIEWPOINTS:
        raise ValueError(f"config class list {list(config.class_names)} differs from {list(VIEWPOINTS)}")
    head_dim = getattr(model.head, "in_dim", None)
    spec = _backbone.BACKBONE_SPECS[config.backbone]
    bb_size = _backbone.infer_backbone_size(model.backbone.state_dict())
    if bb_size is not None and bb_size != config.backbone or head_dim not in (None, spec.embed_dim):
        raise ValueError(f"config backbone {config.backbone!r} does not match the model "
                         f"(backbone {bb_size!r}, head input dim {head_dim})")
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()
             if include_backbone or k.startswith("head.")}
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "state_dict": state,
        "metrics": _checked_plain(dict(metrics or {}), "metrics"),
        "metadata": _checked_plain({"saved_at_unix": time.time(), "torch_version": torch.__version__,
                                    "includes_backbone": include_backbone, **metadata}, "metadata"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    logger.info("saved checkpoint %s (%d tensors)", path, len(state))
    return path


def _checked_plain(values: dict[str, Any], what: str) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        plain = _plain(value)
        if plain is None and value is not None:
            raise TypeError(f"{what}[{key!r}] of type {type(value).__name__} cannot be stored; "
                            "use numbers, strings, lists or dicts")
        out[str(key)] = plain
    return out
