"""Load reference and our own checkpoints; save ours (or the reference layout).

Accepted layouts (all read with ``torch.load(weights_only=True)``; nothing executes code):

- ours: ``{"format": "pose_classifier_ros/v1", "config": ModelConfig.to_dict(), "state_dict": {...},
  "metrics": {...}, "metadata": {...}}``;
- a full model state_dict: upstream DINOv2 keys under ``backbone.`` + head keys ``head.0/1/4/7.*``
  (the reference ``best_pose_model.pth``, ~88 MB for the small backbone; ``save_reference_checkpoint``
  writes exactly this);
- a head-only state_dict: ``head.*`` keys or bare ``0.weight``, ``1.weight``, ...;
- a dict wrapping either under ``model_state_dict`` / ``state_dict`` / ``model`` next to metadata
  (``epoch``, ``val_acc`` / ``best_acc``, ``class_names`` / ``classes``, ``model_size``, ...).

``LoadedCheckpoint.state_dict`` always uses ViewpointModel keys: ``backbone.<upstream key>`` (if
the file has backbone weights) and ``head.<i>.*``. Every problem raises CheckpointError naming the
file and what disagrees. How the layouts are recognised and remapped: ``checkpoint_format.py``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..labels import VIEWPOINTS
from . import backbone as _backbone
from .checkpoint_format import (
    WRAPPER_KEYS,
    CheckpointError,
    CheckpointNotFound,
    check_class_names,
    class_names_from,
    describe_sizes,
    first_line,
    head_layout,
    is_tensor_dict,
    plain_value,
    size_for_dim,
    size_from_metadata,
    split_model_state_dict,
    torch_load,
)
from .head import build_head
from .viewpoint_model import ModelConfig, ViewpointModel

logger = logging.getLogger(__name__)

FORMAT = "pose_classifier_ros/v1"


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
        return {k[len("head.") :]: v for k, v in self.state_dict.items() if k.startswith("head.")}

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        return {k[len("backbone.") :]: v for k, v in self.state_dict.items() if k.startswith("backbone.")}


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class _Payload:
    """What a file holds before validation: the raw state_dict and whatever describes it."""

    raw: dict[str, torch.Tensor]
    source_format: str  # FORMAT, "state_dict" or "wrapped_state_dict"
    config: ModelConfig | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def _detect_format(obj: Any, path: Path) -> _Payload:
    """Format detection: ours, a plain state_dict, or a state_dict wrapped with metadata."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict or checkpoint dict")
    if obj.get("format") == FORMAT:
        if not is_tensor_dict(obj.get("state_dict")) or not isinstance(obj.get("config"), Mapping):
            raise CheckpointError(f"{path}: {FORMAT} checkpoint lacks its state_dict or config")
        try:
            config = ModelConfig.from_dict(obj["config"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: invalid model config: {exc}") from exc
        check_class_names(config.class_names, path, "its config")
        return _Payload(
            dict(obj["state_dict"]),
            FORMAT,
            config,
            metadata=plain_value(obj.get("metadata") or {}) or {},
            metrics=plain_value(obj.get("metrics") or {}) or {},
        )
    if isinstance(obj.get("format"), str):
        raise CheckpointError(f"{path}: unsupported checkpoint format {obj['format']!r} (this version reads {FORMAT})")
    if is_tensor_dict(obj):
        return _Payload(dict(obj), "state_dict")
    wrapper = next((k for k in WRAPPER_KEYS if is_tensor_dict(obj.get(k))), None)
    if wrapper is None:
        keys = [str(k) for k in obj][:10]
        raise CheckpointError(
            f"{path} is not a model checkpoint: no tensors at the top level nor under "
            f"{' / '.join(WRAPPER_KEYS)} (top-level keys: {', '.join(keys)})"
        )
    metadata = {
        str(k): v
        for k, v in (
            (k, plain_value(v))
            for k, v in obj.items()
            if k not in WRAPPER_KEYS and "optimizer" not in str(k) and "scheduler" not in str(k)
        )
        if v is not None
    }
    metadata["wrapper_key"] = wrapper
    return _Payload(dict(obj[wrapper]), "wrapped_state_dict", metadata=metadata)


def _backbone_size(
    path: Path,
    backbone_sd: Mapping[str, torch.Tensor],
    in_dim: int,
    config: ModelConfig | None,
    metadata: Mapping[str, Any],
    requested: str | None,
) -> str:
    """The backbone size: the weights decide; config, metadata and the caller must agree with them."""
    weights_size = None
    if backbone_sd:
        weights_size = _backbone.infer_backbone_size(backbone_sd)
        if weights_size is None:
            raise CheckpointError(
                f"{path}: backbone weights ({_backbone.describe_state_dict(backbone_sd)}) "
                f"match no supported size ({describe_sizes()})"
            )
    claims = [
        (weights_size, "its backbone weights"),
        (size_for_dim(in_dim), f"its head input dim {in_dim}"),
        (config.backbone if config else None, "its config"),
        (size_from_metadata(metadata), "its metadata"),
        (requested, "the requested backbone"),
    ]
    if claims[1][0] is None:
        raise CheckpointError(f"{path}: head input dim {in_dim} matches no backbone ({describe_sizes()})")
    known = [(s, why) for s, why in claims if s is not None]
    sizes = {s for s, _ in known}
    if len(sizes) > 1:
        own = {s for s, why in known if why != "the requested backbone"}
        hint = ""
        if len(own) == 1 and requested is not None:  # the file is consistent; only the caller's size differs
            hint = (
                f"; the requested size (model_size / backbone) must match the trained checkpoint, "
                f"which is {own.pop()!r}"
            )
        raise CheckpointError(
            f"{path}: backbone size disagrees: " + ", ".join(f"{why} says {s!r}" for s, why in known) + hint
        )
    return known[0][0]


def _checked_weights(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """Validation of the values: float dtypes, no NaN or inf."""
    bad = [k for k, v in state_dict.items() if not v.is_floating_point()]
    if bad:
        raise CheckpointError(f"{path}: non-float weights: {', '.join(bad[:5])}")
    for k, v in state_dict.items():
        if not torch.isfinite(v).all():
            raise CheckpointError(f"{path}: weights {k} contain NaN or inf")


def load_checkpoint(path: str | os.PathLike, *, backbone_size: str | None = None) -> LoadedCheckpoint:
    """Read any supported checkpoint layout (module docstring). `backbone_size`, if given, is the
    size the caller wants: a checkpoint built for another size raises CheckpointError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointNotFound(
            f"checkpoint {path} does not exist" if not path.exists() else f"checkpoint {path} is not a file"
        )
    payload = _detect_format(torch_load(path), path)
    backbone_sd, head_sd = split_model_state_dict(payload.raw, path)
    head_type, in_dim, num_classes = head_layout(head_sd, path)
    if num_classes != len(VIEWPOINTS):
        raise CheckpointError(
            f"{path}: head outputs {num_classes} classes, the supported viewpoints "
            f"are {len(VIEWPOINTS)}: {', '.join(VIEWPOINTS)}"
        )
    source_format = payload.source_format
    if source_format != FORMAT:
        source_format = source_format.replace("state_dict", "full_state_dict" if backbone_sd else "head_state_dict")
    size = _backbone_size(path, backbone_sd, in_dim, payload.config, payload.metadata, backbone_size)

    config, metadata = payload.config, payload.metadata
    if config is None:
        names = class_names_from(metadata)
        if names is not None:
            check_class_names(names, path, "its metadata")
        config = ModelConfig(backbone=size, head_type=head_type)
        metadata.setdefault("config_inferred", True)
    elif config.head_type != head_type:
        raise CheckpointError(f"{path}: config says head {config.head_type!r} but the weights are a {head_type!r} head")

    state_dict = {f"backbone.{k}": v for k, v in backbone_sd.items()}
    state_dict.update({f"head.{k}": v for k, v in head_sd.items()})
    _checked_weights(state_dict, path)
    return LoadedCheckpoint(
        state_dict=state_dict,
        config=config,
        metadata=metadata,
        source_format=source_format,
        metrics=payload.metrics,
        path=str(path),
    )


# --------------------------------------------------------------------------------------------
# Building


def build_model_from_checkpoint(
    path: str | os.PathLike,
    *,
    backbone: str | None = None,
    backbone_weights: str | os.PathLike | None = None,
    hub_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> tuple[ViewpointModel, ModelConfig]:
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
                + "."
            ) from exc
        except _backbone.BackboneWeightsError as exc:
            raise CheckpointError(f"{path} is head-only and its backbone weights cannot be used: {exc}") from exc
    head = build_head(config.head_type, spec.embed_dim, len(config.class_names))
    try:
        head.load_state_dict(ckpt.head_state_dict(), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: head weights do not fit: {first_line(exc)}") from exc
    model = ViewpointModel(bb, head).to(device).eval()
    logger.info("loaded %s (%s, backbone %s, head %s)", path, ckpt.source_format, config.backbone, config.head_type)
    return model, config


# --------------------------------------------------------------------------------------------
# Writing


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same folder, then rename: readers never see half a file.
    The file gets the usual permissions (0666 less the umask, as torch.save gives), not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0o022)  # read the process umask (and put it back at once)
    os.umask(umask)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _check_config_matches(model: ViewpointModel, config: ModelConfig) -> None:
    if tuple(config.class_names) != VIEWPOINTS:
        raise ValueError(f"config class list {list(config.class_names)} differs from {list(VIEWPOINTS)}")
    head_dim = getattr(model.head, "in_dim", None)
    spec = _backbone.BACKBONE_SPECS[config.backbone]
    bb_size = _backbone.infer_backbone_size(model.backbone.state_dict())
    if bb_size is not None and bb_size != config.backbone or head_dim not in (None, spec.embed_dim):
        raise ValueError(
            f"config backbone {config.backbone!r} does not match the model "
            f"(backbone {bb_size!r}, head input dim {head_dim})"
        )


def save_checkpoint(
    path: str | os.PathLike,
    model: ViewpointModel,
    config: ModelConfig,
    *,
    metrics: Mapping[str, Any] | None = None,
    include_backbone: bool = True,
    **metadata: Any,
) -> Path:
    """Write our format atomically (temp file + rename); returns the path.

    include_backbone=False stores only the head (~0.5 MB); loading it then needs backbone weights.
    metrics / metadata must be plain values (numbers, strings, lists, dicts); numpy/torch scalars
    are converted, anything else raises TypeError so the file always loads with weights_only.
    """
    path = Path(path).expanduser()
    _check_config_matches(model, config)
    state = {
        k: v.detach().to("cpu", copy=True).contiguous()
        for k, v in model.state_dict().items()
        if include_backbone or k.startswith("head.")
    }
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "state_dict": state,
        "metrics": _checked_plain(dict(metrics or {}), "metrics"),
        "metadata": _checked_plain(
            {
                "saved_at_unix": time.time(),
                "torch_version": torch.__version__,
                "includes_backbone": include_backbone,
                **metadata,
            },
            "metadata",
        ),
    }
    _atomic_torch_save(payload, path)
    logger.info("saved checkpoint %s (%d tensors)", path, len(state))
    return path


def save_reference_checkpoint(path: str | os.PathLike, model: ViewpointModel, config: ModelConfig) -> Path:
    """Write what the reference training script saves: ``model.state_dict()`` and nothing else
    (an OrderedDict of CPU tensors, ``backbone.*`` upstream DINOv2 keys + ``head.*``), atomically.

    The file carries no config: loaders infer the backbone size and head type from the weights
    (``load_checkpoint``), and the reference ``ViewPointClassifier`` loads it with ``load_state_dict``.
    """
    path = Path(path).expanduser()
    _check_config_matches(model, config)
    state = OrderedDict((k, v.detach().to("cpu", copy=True).contiguous()) for k, v in model.state_dict().items())
    _atomic_torch_save(state, path)
    logger.info("saved reference-format checkpoint %s (%d tensors)", path, len(state))
    return path


def _checked_plain(values: dict[str, Any], what: str) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        plain = plain_value(value)
        if plain is None and value is not None:
            raise TypeError(
                f"{what}[{key!r}] of type {type(value).__name__} cannot be stored; use numbers, strings, lists or dicts"
            )
        out[str(key)] = plain
    return out
