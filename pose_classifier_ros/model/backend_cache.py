"""The on-disk cache of ``auto``'s backend choice: its key, and reading / writing one entry.

One JSON file per key, ``<cache dir>/backend-choice-<sha256 of the key>.json``:

    {"format": CACHE_FORMAT, "key": {...}, "choice": {"backend": ..., "crops_per_s": {...}, ...}}

The key holds everything that can change which backend is fastest or whether it agrees with fp32:
the device (CPU model name and the speed-relevant flags, or the GPU's name), torch's thread count,
the candidate list, the torch and onnxruntime versions, the agreement bounds and the model's content
hash (every weight of backbone and head plus the ModelConfig: a checkpoint saved again with other
weights or another temperature gets a new entry, one copied elsewhere keeps its entry). Entries are
written to a temporary file in the same directory and renamed, so a reader never sees half a file;
a file that does not parse or does not match its key is reported and ignored (measured again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .backends import SPEED_FLAGS, cpu_flags, cpu_model_name, onnxruntime_version, weights_digest

logger = logging.getLogger(__name__)

CACHE_FORMAT = "pose_classifier_ros/backend-choice/v1"


def model_digest(model: torch.nn.Module, config: Any) -> str:
    """sha256 hex of the model's weights (backbone and head) and its ModelConfig (``to_dict()``)."""
    cfg = config.to_dict() if hasattr(config, "to_dict") else vars(config)
    h = hashlib.sha256(weights_digest(model).encode())
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    return h.hexdigest()


def device_description(device: torch.device) -> dict[str, Any]:
    """What about the device decides backend speed: CPU model + flags + threads, or the GPU's name."""
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "threads": torch.get_num_threads()}
    return {
        "type": "cpu",
        "name": cpu_model_name(),
        "flags": sorted(cpu_flags() & set(SPEED_FLAGS)),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
    }


def choice_key(
    model: torch.nn.Module, config: Any, device: torch.device, candidates: list[str], bounds: dict[str, float]
) -> dict[str, Any]:
    """The cache key (a JSON-able dict) of one backend choice."""
    return {
        "device": device_description(device),
        "candidates": list(candidates),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime_version(),
        "bounds": dict(bounds),
        "model": model_digest(model, config),
    }


def cache_path_for(cache_dir: str | os.PathLike, key: dict[str, Any]) -> Path:
    """The file of `key` in `cache_dir`."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return Path(cache_dir) / f"backend-choice-{digest}.json"


def read_choice(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The cached choice dict at `path` for `key`; None when there is none, or (with a warning) when
    the file is corrupt, of another format or holds another key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read the backend-choice cache %s (%s); measuring again", path, exc)
        return None
    try:
        payload = json.loads(text)
        if payload.get("format") != CACHE_FORMAT:
            raise ValueError(f"format {payload.get('format')!r}, expected {CACHE_FORMAT!r}")
        if payload.get("key") != json.loads(json.dumps(key)):
            raise ValueError("its key differs from this machine / model / candidate list")
        choice = payload["choice"]
        if choice["backend"] not in key["candidates"]:
            raise ValueError(f"backend {choice['backend']!r} is not a candidate")
        for field in ("crops_per_s", "agreement", "max_abs_dp", "rejected"):
            if not isinstance(choice[field], dict):
                raise ValueError(f"{field} is not a mapping")
        if choice["backend"] in choice["rejected"]:
            raise ValueError(f"backend {choice['backend']!r} is listed as rejected")
        return choice
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("ignoring the corrupt backend-choice cache %s (%s); measuring again", path, exc)
        return None


def write_choice(path: Path, key: dict[str, Any], choice: dict[str, Any]) -> bool:
    """Write one entry atomically (temporary file in the same directory, then rename). False, with a
    warning, when the directory cannot be written: the choice then holds for this process only."""
    payload = {"format": CACHE_FORMAT, "key": key, "choice": choice}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        logger.warning("cannot write the backend-choice cache %s (%s); the choice is not cached", path, exc)
        return False
    return True


__all__ = [
    "CACHE_FORMAT",
    "cache_path_for",
    "choice_key",
    "device_description",
    "model_digest",
    "read_choice",
    "write_choice",
]
