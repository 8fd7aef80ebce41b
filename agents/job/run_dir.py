"""The run folder policy of the main job: new runs never overwrite old ones, resumed runs keep their config.

* A new run refuses an ``--out`` that already holds a run (checkpoint, config, summary, logs,
  images or exports) unless ``--overwrite`` is given, which deletes those files first (and
  nothing else in the folder).
* ``--resume`` restores the run's saved configuration (``config.json``, or the checkpoint's
  ``config``): options given on the command line (or in a ``--config`` file) are parsed on top
  of it, and any that differs from the saved value is refused unless it is in
  :data:`SAFE_ON_RESUME` (extending the budget, logging, device, ...).
* Temporary files a kill left behind (``.checkpoint.pt.*.tmp``, half-written export folders)
  are removed when a run starts.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from agents.job.checkpoint import CHECKPOINT_NAME, CheckpointError, checksum_path, load_checkpoint
from tats_env.checks import ConfigError
from tats_env.commandline import config_to_dict, field_flags, parse, to_args
from tats_env.outdir import describe, remove
from tats_env.utils import remove_stale_temporaries

__all__ = [
    "RunDirError", "RunDirLock", "CONFIG_NAME", "SUMMARY_NAME", "SAFE_ON_RESUME", "run_artifacts", "require_checkpoint",
    "prepare_run_dir",
    "remove_stale_files", "read_saved_config", "resume_conflicts", "check_resume_config", "parse_resumed", "RunFinished",
    "check_resume_position",
]

T = TypeVar("T")

CONFIG_NAME = "config.json"
SUMMARY_NAME = "summary.json"
LOCK_NAME = ".lock"
RUN_FILES = (CHECKPOINT_NAME, checksum_path(CHECKPOINT_NAME).name, CONFIG_NAME, SUMMARY_NAME)
RUN_FOLDERS = ("tb", "images")
EXPORT_PATTERN = "encoder-*"

SAFE_ON_RESUME: tuple[str, ...] = (
    "total_steps", "warmup_steps", "checkpoint_every", "image_every", "summary_every", "progress_bar", "verbose",
    "device", "env.num_workers", "export_formats", "max_skipped_updates",
)
"""Config fields (dotted paths) that ``--resume`` lets the command line change: the budget (extend a run;
``--warmup-steps`` only while the sampler has not started), intervals, terminal output, device, data
workers, export formats, the divergence guard. Everything else must match the saved run."""
NOT_COMPARED: tuple[str, ...] = ("out", "resume", "overwrite")
"""Fields that say where and how to start, not what the run is."""


class RunDirError(RuntimeError):
    """The run folder does not fit the request (a run exists without --overwrite, nothing to resume, ...)."""


class RunDirLock:
    """An exclusive OS lock (``fcntl.flock``) on ``<out>/.lock`` for a run's life; the OS drops it if the process dies."""

    def __init__(self, path: Path, handle: Any) -> None:
        self.path, self._handle = path, handle

    @classmethod
    def acquire(cls, out: str | Path) -> "RunDirLock":
        """Lock the run folder ``out`` (created if missing); :class:`RunDirError` when another process holds it."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise RunDirError(f"--out {out} is a file, not a folder")
        out.mkdir(parents=True, exist_ok=True)
        path = out / LOCK_NAME
        handle = open(path, "a+")  # noqa: SIM115 - held open for the run's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirError(f"--out {out}: another run is using this folder (pid {holder}); wait for it to end, "
                              "or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return cls(path, handle)

    def release(self) -> None:
        """Unlock (idempotent)."""
        if self._handle is not None and not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def run_artifacts(out: str | Path) -> list[Path]:
    """What a previous run left in ``out``: checkpoint, config, summary, ``tb/``, ``images/``, ``encoder-*/``."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [out / name for name in (*RUN_FILES, *RUN_FOLDERS) if (out / name).exists()]
    return found + sorted(p for p in out.glob(EXPORT_PATTERN) if p.is_dir())


def remove_stale_files(out: str | Path) -> list[Path]:
    """Delete what a killed write left in ``out``: ``.<file>.*.tmp`` files and ``.encoder-*.tmp-*``/``.old-*`` folders."""
    out = Path(out)
    stale = [tmp for name in RUN_FILES for tmp in remove_stale_temporaries(out / name)]
    for pattern in (f".{EXPORT_PATTERN}.tmp-*", f".{EXPORT_PATTERN}.old-*"):
        for path in sorted(out.glob(pattern)):
            remove(path)
            stale.append(path)
    return stale


def require_checkpoint(out: str | Path) -> Path:
    """The checkpoint of the run in ``out``; :class:`RunDirError` saying so when there is none to resume."""
    out = Path(out)
    if not (out / CHECKPOINT_NAME).is_file():
        hint = (" (the run stopped before its first checkpoint: start it again with --overwrite)"
                if (out / CONFIG_NAME).is_file() else "")
        raise RunDirError(f"--resume: no {CHECKPOINT_NAME} in {out}{hint}")
    return out / CHECKPOINT_NAME


def prepare_run_dir(out: str | Path, resume: bool, overwrite: bool) -> list[Path]:
    """Check ``out`` against the request, apply ``--overwrite``, clean stale temporaries; returns what was removed.

    Raises :class:`RunDirError` for a new run into a folder holding a run (without ``overwrite``)
    and for ``resume`` without a checkpoint.
    """
    out = Path(out)
    removed: list[Path] = []
    if resume:
        require_checkpoint(out)
    else:
        existing = run_artifacts(out)
        if existing and not overwrite:
            raise RunDirError(f"--out {out} already holds a run ({describe(existing, limit=len(existing))}); "
                              "continue it with --resume, "
                              "or pass --overwrite to delete it and start over")
        for path in existing:
            remove(path)
        removed += existing
    out.mkdir(parents=True, exist_ok=True)
    return removed + remove_stale_files(out)


def _saved_config_dict(out: Path) -> tuple[dict[str, Any], Path]:
    """The saved config of the run in ``out``: the checkpoint's own (the state it holds was trained with it),
    and the checkpoint's path. A ``config.json`` that disagrees with it in an option that may not change on
    resume (it was edited, or belongs to another run) is a :class:`RunDirError` naming the options."""
    ckpt = require_checkpoint(out)
    try:
        saved = load_checkpoint(ckpt, allow_pickle=True)["config"]
    except CheckpointError as exc:
        raise RunDirError(f"--resume: {exc}") from exc
    path = out / CONFIG_NAME
    if path.is_file():
        try:
            written = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path}: not valid JSON ({exc}); delete it to resume with the checkpoint's config")
        old, new = _flatten(saved), _flatten(written) if isinstance(written, dict) else {}
        edited = [f"{key}: checkpoint {old.get(key)!r}, {CONFIG_NAME} {new.get(key)!r}"
                  for key in sorted(set(old) | set(new))
                  if old.get(key) != new.get(key) and key not in SAFE_ON_RESUME and key not in NOT_COMPARED]
        if edited:
            raise RunDirError(f"--resume: {path} disagrees with {ckpt} (the checkpoint's config is the run's):\n  "
                              + "\n  ".join(edited) + f"\nRestore {CONFIG_NAME} (or delete it to use the "
                              "checkpoint's), or start a new run (another --out, or --overwrite).")
    return saved, ckpt


def read_saved_config(cls: type[T], out: str | Path) -> T:
    """The config the run in ``out`` was started (or last resumed) with, rebuilt through the parser.

    How that run was started (:data:`NOT_COMPARED`: ``--out``, ``--resume``, ``--overwrite``) is left at the defaults.
    """
    saved, source = _saved_config_dict(Path(out))
    saved = {key: value for key, value in saved.items() if key not in NOT_COMPARED}
    try:
        return parse(cls, to_args(cls, saved, source=str(source)))
    except ValueError as exc:  # an option this version does not know
        raise RunDirError(f"cannot restore the run's config: {exc}") from exc


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"env": {"mask_ratio": 0.9}}`` -> ``{"env.mask_ratio": 0.9}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def resume_conflicts(saved: Any, cfg: Any) -> list[str]:
    """One line per option of ``cfg`` that differs from ``saved`` and may not change on resume."""
    old, new = _flatten(config_to_dict(saved)), _flatten(config_to_dict(cfg))
    flags = field_flags(type(cfg))
    return [f"{flags.get(path, path)}: the run has {old[path]!r}, given {new[path]!r}"
            for path in new if path in old and old[path] != new[path]
            and path not in SAFE_ON_RESUME and path not in NOT_COMPARED]


def check_resume_config(saved: Any, cfg: Any, source: str | Path) -> None:
    """Raise :class:`ConfigError` when ``cfg`` changes options of the saved run that must stay as they are."""
    conflicts = resume_conflicts(saved, cfg)
    if conflicts:
        flags = field_flags(type(cfg))
        safe = ", ".join(flags[path] for path in SAFE_ON_RESUME if path in flags)
        raise ConfigError(
            f"--resume continues the run in {source} with its saved config; these options differ from it:\n  "
            + "\n  ".join(conflicts)
            + f"\nDrop them to resume (only {safe} may change), or start a new run (another --out, or --overwrite).")


def parse_resumed(cls: type[T], argv: Sequence[str] | None, out: str | Path) -> T:
    """Parse ``argv`` on top of the saved config of the run in ``out``; refuse changes of unsafe options."""
    saved = read_saved_config(cls, out)
    cfg = parse(cls, argv, default=saved)
    check_resume_config(saved, cfg, out)
    return cfg


class RunFinished(Exception):
    """``--resume`` of a run whose budget is done and whose summary is written: nothing to train or rewrite."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def check_resume_position(out: Path, total_steps: int, warmup_steps: int) -> None:
    """Before anything is built for ``--resume``: a budget below the run's position is refused (:class:`ConfigError`),
    a run whose budget is done and whose summary is written is :class:`RunFinished` (nothing is retrained or rewritten)."""
    state = load_checkpoint(out / CHECKPOINT_NAME, allow_pickle=True)
    sampler_done, warm_done = int(state["num_timesteps"]), int(state["warmup_done"])
    position = f"the run is at {warm_done + sampler_done:,} clips ({warm_done:,} warm-up, {sampler_done:,} sampler)"
    if total_steps < sampler_done:
        raise ConfigError(f"--total-steps {total_steps}: {position}; on --resume the budget can only be "
                          f"kept or raised (--total-steps >= {sampler_done})")
    if warmup_steps < warm_done:
        raise ConfigError(f"--warmup-steps {warmup_steps}: {position}; on --resume the warm-up can only be "
                          f"kept or raised (--warmup-steps >= {warm_done})")
    summary_path = out / SUMMARY_NAME
    if sampler_done >= total_steps and warm_done >= warmup_steps and summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            return  # an unreadable summary: let the run write it again (it trains nothing)
        raise RunFinished(f"{out} is finished ({warm_done + sampler_done:,} clips, its whole budget); "
                          f"nothing was changed; its summary is {summary_path}. To train on, raise the budget: "
                          f"--resume --total-steps N with N > {sampler_done}", summary)
