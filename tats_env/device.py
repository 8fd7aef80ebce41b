"""The ``--device`` option of every command: ``auto`` (the default everywhere) picks CUDA when available, else the CPU.

:func:`check_device` says why a device name cannot be used on this machine (for the up-front checks of a command
line); :func:`resolve_device` turns a name into a ``torch.device``. torch is imported on first use, so a config
module can name the default without importing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["AUTO", "check_device", "resolve_device"]

AUTO = "auto"
"""The default ``--device`` of every command: cuda when available, else cpu."""


def resolve_device(name: "str | torch.device" = AUTO) -> "torch.device":
    """``auto`` -> ``cuda`` when available, else ``cpu``; any other name as ``torch.device(name)``."""
    import torch

    if isinstance(name, str) and name == AUTO:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def check_device(name: str) -> str | None:
    """Why ``--device name`` cannot be used here, or None when it can."""
    if name == AUTO:
        return None
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return "unknown device; use auto, cpu, cuda, cuda:N or mps"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine (use --device cpu or auto)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"this machine has {torch.cuda.device_count()} CUDA device(s)"
    elif device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available on this machine"
    elif device.type not in ("cpu", "cuda", "mps"):
        return "unsupported device type; use auto, cpu, cuda, cuda:N or mps"
    return None
