"""Atomic training checkpoints: sampler, MAE, optimizers, counters and RNG states in one file.

A checkpoint is written by :func:`save_checkpoint` (temporary file, fsync, ``os.replace``), so a run
killed mid-write never leaves a truncated checkpoint, with its SHA-256 in ``checkpoint.pt.sha256``;
:func:`load_checkpoint` verifies it, so a corrupted byte range is an error naming the file instead of
NaN weights that surface later as a "divergence". The top-level ``mae_config``/``mae_state`` keys make every checkpoint
a valid source for :func:`tats_env.export_encoder`.

Checkpoints hold only tensors and plain containers (RNG states as tensors and lists), so they
load with ``torch.load(..., weights_only=True)``: :func:`load_checkpoint` and the encoder export
never need full unpickling. Checkpoints of older versions (numpy RNG state as an array) still
resume, with a warning, since they are the run's own files.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tats_env.utils import atomic_write, atomic_write_text

CHECKPOINT_NAME = "checkpoint.pt"
CHECKSUM_SUFFIX = ".sha256"
"""The checksum file of ``checkpoint.pt`` is ``checkpoint.pt.sha256``."""


def checksum_path(path: str | Path) -> Path:
    """Where the SHA-256 of the checkpoint ``path`` is kept."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """``torch.save(state)`` to ``path`` atomically, its SHA-256 in :func:`checksum_path`.

    The checksum file lists the new digest (and, until the checkpoint is in place, the previous one), so a
    kill at any point leaves a checkpoint whose digest is listed.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    new = hashlib.sha256(data).hexdigest()
    sums = checksum_path(path)
    old = sums.read_text().split()[:1] if sums.is_file() else []
    atomic_write_text("\n".join([new, *old]) + "\n", sums)
    atomic_write(path, lambda handle: handle.write(data))
    atomic_write_text(new + "\n", sums)
    return path


def verify_checksum(path: str | Path) -> None:
    """Raise :class:`CheckpointError` when ``path`` does not match its checksum file; warn when it has none."""
    path = Path(path)
    sums = checksum_path(path)
    if not sums.is_file():
        warnings.warn(f"{path} has no {sums.name} (written by an older tats-env): its integrity is not checked",
                      UserWarning, stacklevel=3)
        return
    expected = sums.read_text().split()
    actual = file_sha256(path)
    if actual not in expected:
        raise CheckpointError(f"{path}: checksum mismatch (sha256 {actual[:12]}..., {sums.name} says "
                              f"{expected[0][:12] if expected else 'nothing'}...): the file is corrupted; resume "
                              "from a copy, or start the run again with --overwrite")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing or unreadable; the message names the file and says why."""


def _numpy_rng_state() -> dict[str, Any]:
    """numpy's global MT19937 state as plain values (its key array as a list of ints)."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {"name": str(name), "key": [int(k) for k in key], "pos": int(pos), "has_gauss": int(has_gauss),
            "gauss": float(gauss)}


def _set_numpy_rng_state(state: Any) -> None:
    """Restore :func:`_numpy_rng_state` (or the tuple ``np.random.get_state()`` of older checkpoints)."""
    if isinstance(state, dict):
        state = (state["name"], np.asarray(state["key"], dtype=np.uint32), state["pos"], state["has_gauss"],
                 state["gauss"])
    np.random.set_state(state)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states, as tensors and plain lists/tuples."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_rng_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    _set_numpy_rng_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's checkpoint file, or None when it has none yet."""
    path = Path(run_dir) / CHECKPOINT_NAME
    return path if path.is_file() else None


def load_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True``.

    ``allow_pickle`` also accepts a checkpoint of an older version that needs full unpickling
    (a run's own file, when resuming it), with a warning; otherwise such a file raises
    :class:`CheckpointError` with that hint. Missing or foreign files raise it too.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    verify_checksum(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"{path}: not a checkpoint (not a file written by torch.save)") from exc
        if not allow_pickle:
            raise CheckpointError(f"{path} was written by an older tats-env (it needs full unpickling); "
                                  "resume the run once to rewrite it, or export it with --trust-pickle") from exc
        warnings.warn(f"{path} was written by an older tats-env; reading it with full unpickling (it is this "
                      "run's own file); the next checkpoint is weights-only", UserWarning, stacklevel=2)
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch.load raises anything on junk; name the file
        kind = "a truncated or corrupted checkpoint" if zipfile.is_zipfile(path) else "not a checkpoint"
        raise CheckpointError(f"{path}: {kind} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "core" not in state or "sampler" not in state:
        raise CheckpointError(f"{path}: not a training checkpoint of train_ppo.py (no 'core'/'sampler' state)")
    return state
