"""Small shared utilities: atomic file writes, non-finite checks, bf16 autocast on CUDA, the process's peak memory.

Every file this project writes that a user would be sorry to lose half-written (checkpoints,
exports, benchmark cells, summaries) goes through :func:`atomic_write`: a temporary file in the
same folder, flushed and ``fsync``-ed, then moved over the target with ``os.replace``. A kill
mid-write leaves the old file intact plus at most a hidden ``.<name>.*.tmp`` file, which
:func:`remove_stale_temporaries` cleans up.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

__all__ = [
    "atomic_write", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "replace_dir",
    "remove_stale_temporaries", "nonfinite_tensors", "autocast_context", "peak_rss_mb", "seeded_torch",
    "package_versions", "git_commit", "git_dirty",
]


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, then move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(data: Any, path: str | os.PathLike[str], indent: int = 2) -> Path:
    """Write ``data`` as JSON (plus a final newline) to ``path`` atomically."""
    return atomic_write_text(json.dumps(data, indent=indent) + "\n", path)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files a killed :func:`atomic_write` to ``path`` left behind; returns them."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def _is_nonfinite(value: Any) -> bool:
    """True for a floating-point tensor, array or number holding NaN or +-inf."""
    if isinstance(value, torch.Tensor):
        return (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all())
    if isinstance(value, np.ndarray):
        return np.issubdtype(value.dtype, np.inexact) and not bool(np.isfinite(value).all())
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(value)
    return False


def nonfinite_tensors(tree: Any, prefix: str = "") -> list[str]:
    """Dotted names of the NaN/inf-holding tensors, arrays and floats in ``tree`` (nested dicts, lists, tuples).

    Integer data (counters, RNG states) is never flagged. ``[]`` means everything is finite.
    """
    if isinstance(tree, dict):
        return [name for key, value in tree.items() for name in nonfinite_tensors(value, f"{prefix}{key}.")]
    if isinstance(tree, (list, tuple)):
        return [name for i, value in enumerate(tree) for name in nonfinite_tensors(value, f"{prefix}{i}.")]
    return [prefix.rstrip(".")] if _is_nonfinite(tree) else []


def replace_dir(tmp: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> None:
    """Move the finished folder ``tmp`` to ``out_dir``, keeping the old one until the move succeeded."""
    tmp, out_dir = Path(tmp), Path(out_dir)
    backup = None
    if out_dir.exists():
        backup = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        out_dir.rename(backup)
    try:
        tmp.rename(out_dir)
    except BaseException:
        if backup is not None:
            backup.rename(out_dir)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def autocast_context(device: torch.device | str, enabled: bool = True) -> torch.autocast:
    """bf16 autocast on CUDA; a disabled context elsewhere (CPU bf16 is slower on most CPUs)."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def peak_rss_mb() -> float:
    """Resident-set high-water mark of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run the body with torch's CPU generator seeded by ``seed``, restoring the caller's generator afterwards.

    Weights built inside (on the CPU, then moved) depend on ``seed`` alone, whatever ran before,
    and the caller's random stream is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


VERSIONED_PACKAGES = ("torch", "stable-baselines3", "gymnasium", "timm", "numpy", "tats-env")
"""Packages whose installed versions ``summary.json`` records (with python's)."""
REPO_ROOT = Path(__file__).resolve().parents[1]
"""The source tree of this code (a git checkout when installed with ``pip install -e``)."""


def package_versions() -> dict[str, str | None]:
    """Python's version and the installed versions of :data:`VERSIONED_PACKAGES` (None when one is missing)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(root: str | Path = REPO_ROOT) -> str | None:
    """The commit checked out in ``root`` (the source tree of this code), or None outside a git checkout or without git."""
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def git_dirty(root: str | Path = REPO_ROOT) -> bool | None:
    """Whether tracked files in ``root`` differ from :func:`git_commit` (a run from edited code), None outside a
    git checkout or without git."""
    try:
        done = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(done.stdout.strip()) if done.returncode == 0 else None
