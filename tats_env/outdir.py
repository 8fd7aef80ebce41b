"""Output folders of the commands: refused when they cannot hold outputs, never overwritten without ``--overwrite``.

:func:`out_problem` says why ``--out`` cannot be a folder of outputs (a file, not writable); :func:`describe` and
:func:`remove` are how the main job (:mod:`agents.job.run_dir`) and :func:`claim_out_dir` (fine-tuning) list and
delete what an earlier run left; :func:`claim_out_dir` refuses a non-empty folder unless ``overwrite``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["out_problem", "describe", "remove", "non_empty_problem", "claim_out_dir"]


def out_problem(out: str | os.PathLike[str]) -> str | None:
    """Why ``--out`` cannot hold a folder of outputs (a file, or a folder this user cannot write), or None."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        return "is a file, not a folder"
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot be written ({existing} is not writable by this user)"
    return None


def describe(paths: Iterable[Path], limit: int = 8) -> str:
    """``"checkpoint.pt, tb/, ..."``: the names of ``paths`` (folders with a slash), at most ``limit`` of them."""
    names = [p.name + ("/" if p.is_dir() else "") for p in paths]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} entries)" if len(names) > limit else "")


def remove(path: Path) -> None:
    """Delete a file or a folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def non_empty_problem(out: str | os.PathLike[str], overwrite: bool, outputs: Sequence[str]) -> str | None:
    """Why a new run cannot write into ``out``: it holds anything and ``overwrite`` is off (or None).

    With ``overwrite``, only the ``outputs`` names are replaced (:func:`claim_out_dir`); other files are kept.
    """
    path = Path(out)
    if overwrite or not path.is_dir():
        return None
    held = sorted(path.iterdir())
    if not held:
        return None
    return (f"already holds files ({describe(held)}); pass --overwrite to replace this command's outputs "
            f"({', '.join(outputs)}), or choose another --out")


def claim_out_dir(out: str | os.PathLike[str], overwrite: bool, outputs: Sequence[str]) -> list[Path]:
    """Create ``out`` for a new run; with ``overwrite`` delete the earlier ``outputs`` in it first (returned).

    Callers check :func:`non_empty_problem` up front (with the other options); this applies the decision.
    """
    path = Path(out)
    removed = [path / name.rstrip("/") for name in outputs if (path / name.rstrip("/")).exists()] if overwrite else []
    for item in removed:
        remove(item)
    path.mkdir(parents=True, exist_ok=True)
    return removed
