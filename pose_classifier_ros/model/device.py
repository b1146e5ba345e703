"""Which torch device a name means here: the one place that checks CUDA is there before it is used."""

from __future__ import annotations

import torch


class DeviceError(RuntimeError):
    """A device that cannot be used here; the message says why and what to use instead."""


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """torch.device for ``name``: "cpu", "cuda" or "cuda:N"; None or "auto": cuda when available, else cpu.

    Raises DeviceError for cuda without CUDA (torch.cuda.is_available() is False) and for any other
    device type.
    """
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {str(name)!r}; use 'cpu' or 'cuda'") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"unsupported device {str(name)!r}; use 'cpu' or 'cuda'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {str(name)!r} was requested but CUDA is not available here "
            "(torch.cuda.is_available() is False); use 'cpu'"
        )
    return device


__all__ = ["DeviceError", "resolve_device"]
