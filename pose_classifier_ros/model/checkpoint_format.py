"""What checkpoint files look like and how their pieces are read (used by ``checkpoint.py``).

Reading without executing code (``torch_load``: weights_only, plus a short allow-list of harmless
globals), metadata as plain values (``plain_value``), key remapping of any supported layout to upstream
DINOv2 backbone keys + ``0.weight``-style head keys (``split_model_state_dict``), the head's layout
(``head_layout``) and what metadata says about class order and backbone size. Every problem raises
CheckpointError naming the file and what is wrong.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..labels import VIEWPOINTS, normalize_label
from . import backbone as _backbone

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
    "s": "small",
    "vits14": "small",
    "vit_small": "small",
    "dinov2_vits14": "small",
    "b": "base",
    "vitb14": "base",
    "vit_base": "base",
    "dinov2_vitb14": "base",
    "l": "large",
    "vitl14": "large",
    "vit_large": "large",
    "dinov2_vitl14": "large",
}


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and what is wrong."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


def _resolve(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def torch_load(path: Path) -> Any:
    """The object stored in `path` (CPU tensors), read with weights_only; CheckpointError if unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        first_error = exc
    # weights_only refused some globals: allow a small list of harmless ones, refuse the rest.
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not even a readable torch file
        needed = None
    if not needed:
        raise CheckpointError(f"cannot read checkpoint {path}: {unreadable_file(path)}") from first_error
    unsafe = [n for n in needed if n not in _SAFE_GLOBAL_NAMES]
    if unsafe:
        raise CheckpointError(
            f"checkpoint {path} stores pickled Python objects ({', '.join(unsafe[:5])}) that are not "
            "loaded for safety; re-save it as a state_dict (e.g. torch.save(model.state_dict(), path))"
        ) from first_error
    allowed: list = [(_resolve(_SAFE_GLOBAL_NAMES[n]), n) for n in needed]
    if any(n.startswith("numpy") for n in needed):  # numpy scalars also rebuild their dtype class
        import numpy as np

        allowed += [
            type(np.dtype(t))
            for t in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "U", "S")
        ]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {first_line(exc)}") from exc


def unreadable_file(path: Path) -> str:
    """What a file torch.load cannot read is, from its first bytes, and what to do (never torch's own advice
    on weights_only, which is about trusted pickles, not damaged files)."""
    todo = (
        "use the file `pose-classifier train` or torch.save(model.state_dict(), path) wrote, and copy it again "
        "if it was being written or transferred"
    )
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        size = os.path.getsize(path)
    except OSError as exc:
        return f"cannot open it ({exc})"
    if size == 0:
        return f"the file is empty (0 bytes), not a PyTorch checkpoint: it is corrupt or truncated; {todo}"
    if head == b"PK\x03\x04":
        return (
            f"a zip archive (the format torch.save writes, {size} bytes) that cannot be read: the file is "
            f"corrupt or truncated (an interrupted save or copy?); {todo}"
        )
    if head[:1] == b"\x80":
        return (
            f"a Python pickle ({size} bytes) that is not a readable PyTorch checkpoint: corrupt or truncated, or "
            f"not written by torch.save; {todo}"
        )
    return (
        f"not a PyTorch checkpoint: neither the zip archive torch.save writes nor a legacy pickle (starts with "
        f"{head!r}, {size} bytes), so it is some other file or corrupt or truncated; {todo}"
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def plain_value(value: Any, depth: int = 0) -> Any:
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
        out = {str(k): plain_value(v, depth + 1) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None}
    if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1):
        items = [plain_value(v, depth + 1) for v in (value.tolist() if hasattr(value, "tolist") else value)]
        return items if all(v is not None for v in items) else None
    return None


def _strip_common_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed and sd:
        changed = False
        for pfx in _STRIP_PREFIXES:
            if all(k.startswith(pfx) for k in sd):
                sd = {k[len(pfx) :]: v for k, v in sd.items()}
                changed = True
    return sd


def _backbone_prefix(sd: Mapping[str, torch.Tensor]) -> str | None:
    """The prefix holding cls_token + blocks (usually "backbone."); None when there is no backbone."""
    for k in sd:
        if k.endswith("cls_token"):
            p = k[: -len("cls_token")]
            if any(x.startswith(p + "blocks.") for x in sd):
                return p
    return None


def _take_backbone(sd: dict[str, torch.Tensor], path: Path) -> tuple[dict, dict]:
    """(backbone sd with upstream keys or {}, the remaining keys)."""
    prefix = _backbone_prefix(sd)
    if prefix is None:
        return {}, sd
    backbone = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    rest = {k: v for k, v in sd.items() if not k.startswith(prefix)}
    chunked = re.compile(r"^blocks\.\d+\.(\d+)\.")
    if any(chunked.match(k) for k in backbone):  # block_chunks > 0 training layout
        backbone = {chunked.sub(r"blocks.\1.", k): v for k, v in backbone.items()}
    if prefix == "" and not rest:
        raise CheckpointError(
            f"{path} holds only DINOv2 backbone weights, no classifier head; pass it as the "
            "backbone weights (backbone_weights= / --backbone-weights) together with a checkpoint"
        )
    return backbone, rest


def _take_head(rest: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Head sd with "0.weight"... keys from "head.*" (or another single prefix such as "classifier.*")
    or bare "0.weight"... keys."""
    if set(rest) in (_MLP_HEAD_KEYS, _LINEAR_HEAD_KEYS):
        return dict(rest)
    prefixes = {k.split(".", 1)[0] for k in rest}
    if len(prefixes) == 1:
        pfx = prefixes.pop() + "."
        cand = {k[len(pfx) :]: v for k, v in rest.items()}
        if set(cand) in (_MLP_HEAD_KEYS, _LINEAR_HEAD_KEYS):
            return cand
    keys = sorted(rest)
    raise CheckpointError(
        f"{path}: unknown state_dict key layout; expected backbone.* (DINOv2) + head.0/1/4/7.* "
        f"(MLP head) or head.0.* (linear probe), or a head alone, but found "
        f"{len(keys)} non-backbone keys: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
    )


def split_model_state_dict(sd: dict[str, torch.Tensor], path: Path) -> tuple[dict, dict]:
    """(backbone upstream-keyed sd or {}, head sd with "0.weight"... keys) from any supported layout
    ("module." / "_orig_mod." wrappers stripped, chunked blocks un-chunked)."""
    backbone, rest = _take_backbone(_strip_common_prefix(sd), path)
    return backbone, _take_head(rest, path)


def head_layout(head: Mapping[str, torch.Tensor], path: Path) -> tuple[str, int, int]:
    """(head_type, in_dim, num_classes), checking shapes are consistent."""
    try:
        if set(head) == _MLP_HEAD_KEYS and head["0.weight"].ndim == 1:
            in_dim, ncls = head["0.weight"].shape[0], head["7.weight"].shape[0]
            expect = {
                "0.weight": (in_dim,),
                "0.bias": (in_dim,),
                "1.weight": (256, in_dim),
                "1.bias": (256,),
                "4.weight": (128, 256),
                "4.bias": (128,),
                "7.weight": (ncls, 128),
                "7.bias": (ncls,),
            }
            kind = "mlp"
        elif set(head) == _LINEAR_HEAD_KEYS and head["0.weight"].ndim == 2:
            ncls, in_dim = head["0.weight"].shape
            expect = {"0.weight": (ncls, in_dim), "0.bias": (ncls,)}
            kind = "linear"
        else:
            raise KeyError
    except (KeyError, IndexError, ValueError):
        raise CheckpointError(
            f"{path}: head weights have an unknown layout: "
            + ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(head.items()))
        ) from None
    wrong = [f"{k} {tuple(head[k].shape)} (expected {s})" for k, s in expect.items() if tuple(head[k].shape) != s]
    if wrong:
        raise CheckpointError(f"{path}: {kind} head weights have inconsistent shapes: {', '.join(wrong)}")
    return kind, int(in_dim), int(ncls)


def _nested(meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The metadata and the argument/config dicts training scripts nest in it."""
    return [meta] + [
        meta[k] for k in ("args", "config", "hparams", "hyper_parameters") if isinstance(meta.get(k), Mapping)
    ]


def class_names_from(meta: Mapping[str, Any]) -> tuple[str, ...] | None:
    for value in (m.get(k) for m in _nested(meta) for k in _CLASS_NAME_KEYS):
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


def check_class_names(names: tuple[str, ...], path: Path, where: str) -> None:
    try:
        normalized = tuple(VIEWPOINTS[normalize_label(n)] for n in names)
    except ValueError:
        normalized = None
    if normalized != VIEWPOINTS:
        raise CheckpointError(
            f"{path}: class list in {where} {list(names)} differs from the supported order "
            f"{list(VIEWPOINTS)}; the head's outputs would be mislabelled"
        )


def size_from_metadata(meta: Mapping[str, Any]) -> str | None:
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


def size_for_dim(dim: int) -> str | None:
    return next((n for n, s in _backbone.BACKBONE_SPECS.items() if s.embed_dim == dim), None)


def describe_sizes() -> str:
    return ", ".join(f"{n}: dim {s.embed_dim}, {s.depth} blocks" for n, s in _backbone.BACKBONE_SPECS.items())
