"""What the main job shows on the terminal: one progress bar for the whole run and a one-line summary now and then.

* :class:`RunProgress`: one ``tqdm`` bar over every clip of the run (warm-up and sampler), with
  tqdm's clips/s and a postfix of the latest key figures (:data:`POSTFIX`); hidden when stderr is
  not a terminal.
* :class:`TerminalSummary`: an SB3 output format; every logger dump refreshes the postfix and
  every ``every``-th dump prints one line with :data:`SUMMARY` figures. SB3's full tables go to
  TensorBoard/CSV only (``--verbose`` adds them back on stdout).
* :class:`ProgressCallback` moves the bar as clips are done; :func:`one_line_warnings` prints
  warnings as single lines that do not break the bar.

To show another figure, add a :class:`Figure` for its logger key to :data:`POSTFIX` or :data:`SUMMARY`.
"""

from __future__ import annotations

import contextlib
import numbers
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter
from tqdm import tqdm

__all__ = ["Figure", "POSTFIX", "SUMMARY", "RunProgress", "TerminalSummary", "ProgressCallback", "one_line_warnings",
           "report_lines"]


@dataclass(frozen=True)
class Figure:
    """One number on the terminal: its label, the SB3 logger key it comes from, its format."""

    label: str
    key: str
    fmt: str = ".3g"
    show_zero: bool = True
    """False hides the figure while it is 0 (counters of rare events)."""
    scale: float = 1.0
    """Factor applied before formatting (-1 shows SB3's ``entropy_loss`` as the entropy)."""

    def render(self, values: Mapping[str, Any]) -> str | None:
        """``"label value"``, or None when the value is missing (or a hidden zero)."""
        value = values.get(self.key)
        if not _is_number(value) or (not self.show_zero and value == 0):
            return None
        if self.scale != 1.0:
            value = value * self.scale
        return f"{self.label} {value:{self.fmt}}"


def _is_number(value: Any) -> bool:
    """A real number (Python or numpy), not a bool, string or image."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


POSTFIX: tuple[Figure, ...] = (
    Figure("mae", "env/recon_loss", ".4g"),
    Figure("lift", "env/motion_lift", ".3f"),
    Figure("recall", "env/motion_recall", ".3f"),
)
"""Figures in the progress bar's postfix, after tqdm's own clips/s: the MAE loss, the motion lift in the run's
direction (0 = random masks, 1 = the best K-of-N mask) and the share of moving tokens masked."""

SUMMARY: tuple[Figure, ...] = (Figure("clips/s", "time/clips_per_s", ".1f"), *POSTFIX,
    Figure("moving/static err", "env/moving_static_error_ratio", ".2f"),
    Figure("reward", "env/reward", ".3g"),
    Figure("kl", "train/approx_kl", ".2g"),
    Figure("entropy", "train/entropy_loss", ".4g", scale=-1.0),
    Figure("skipped", "mae/skipped_updates", "d", show_zero=False),
    Figure("bad videos", "env/skipped_videos", "d", show_zero=False),
)
"""Figures of the one-line summaries."""


class RunProgress:
    """One bar over the run's clips; ``write`` prints a line above it."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, file: TextIO | None = None) -> None:
        self.bar = tqdm(total=max(total, initial), initial=initial, unit="clip", dynamic_ncols=True,
                        disable=None if enabled else True, file=file or sys.stderr, smoothing=0.05,
                        delay=1.0)  # first drawn once the phase is named and the first clips are done
        self.phase = ""
        self.done = initial
        self.last: dict[str, Any] = {}
        """The latest logged values (what the postfix shows)."""

    def set_phase(self, name: str) -> None:
        """Name the current phase (bar description and summary lines)."""
        self.phase = name
        self.bar.set_description_str(name, refresh=False)

    def update_to(self, clips: int) -> None:
        """Move the bar to ``clips`` done."""
        if clips > self.done:
            if clips > self.bar.total:
                self.bar.total = clips
            self.bar.update(clips - self.done)
            self.done = clips

    def show(self, values: Mapping[str, Any]) -> None:
        """Remember ``values`` and show the :data:`POSTFIX` figures in the bar."""
        self.last.update(values)
        self.bar.set_postfix_str(", ".join(text for f in POSTFIX if (text := f.render(self.last))), refresh=False)

    def summary_line(self) -> str:
        """``[clips/total] phase | figure | figure ...`` of the latest values."""
        total = max(self.bar.total or 0, self.done)
        figures = " | ".join(text for f in SUMMARY if (text := f.render(self.last)))
        return f"[{self.done:>{len(f'{total:,}')},}/{total:,} clips] {self.phase} | {figures}"

    def write(self, line: str, file: TextIO | None = None) -> None:
        """Print ``line`` above the bar (stdout by default)."""
        self.bar.write(line, file=file or sys.stdout)

    def close(self) -> None:
        """Finish the bar (its last state stays on the terminal)."""
        self.bar.close()


class TerminalSummary(KVWriter):
    """SB3 output format: refresh the bar's postfix at every dump, print a summary line every ``every`` dumps."""

    def __init__(self, progress: RunProgress, every: int) -> None:
        self.progress = progress
        self.every = max(1, every)
        self.dumps = 0

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        """Called by the logger's ``dump``."""
        self.progress.show({k: v for k, v in key_values.items() if _is_number(v)})
        self.dumps += 1
        if self.dumps % self.every == 0:
            self.progress.write(self.progress.summary_line())

    def flush(self) -> None:
        """Print the summary of the last dump if its line has not been printed yet."""
        if self.dumps % self.every:
            self.progress.write(self.progress.summary_line())
            self.dumps = 0

    def close(self) -> None:
        """Nothing to release (the trainer closes the bar)."""


class ProgressCallback(BaseCallback):
    """Moves a :class:`RunProgress` to ``offset + num_timesteps`` after every env step."""

    def __init__(self, progress: RunProgress, offset: int = 0) -> None:
        super().__init__()
        self.progress = progress
        self.offset = offset

    def _on_step(self) -> bool:
        self.progress.update_to(self.offset + self.num_timesteps)
        return True


@contextlib.contextmanager
def one_line_warnings(progress: RunProgress) -> Iterator[None]:
    """Inside: each warning is printed as one ``Category: message`` line on stderr, above the bar."""
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        """``warnings.showwarning`` replacement: one line, no source line."""
        progress.write(f"{category.__name__}: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def report_lines(summary: Mapping[str, Any]) -> list[str]:
    """The few lines the main job prints at its end, from its ``summary.json`` values."""
    out = summary["run_dir"]
    exports = ", ".join(f"{fmt} {path}" for fmt, path in summary["exports"].items()) or "none"
    lines = [f"done: {summary['clips']:,} clips, {summary['mae_updates']:,} MAE updates in {summary['wall_time_s']} s",
             f"  checkpoint {summary['checkpoint'] or 'none (no clips trained)'} | exports: {exports}",
             f"  tensorboard --logdir {summary['tensorboard']} | summary {out}/summary.json"]
    lift = summary.get("motion_lift") or {}
    if lift.get("first_quarter") is not None and lift.get("last_quarter") is not None:
        lines.insert(1, f"  motion lift ({lift['direction']}; 0 = random masks, 1 = best mask): first quarter "
                        f"{lift['first_quarter']:.3f} -> last quarter {lift['last_quarter']:.3f}")
    composition = summary.get("mask_composition") or {}
    if composition.get("visible_overlap") is not None:
        moving = ""
        if composition.get("moving_visible") is not None:
            moving = (f"moving tokens visible {composition['moving_visible']:.1f} / hidden "
                      f"{composition['moving_hidden']:.1f} per clip, ")
        lines.insert(2, f"  last quarter: {moving}visible overlap across clips {composition['visible_overlap']:.2f} "
                        "(0 = random masks, 1 = one mask for all)")
        if composition.get("content_blind"):
            lines.insert(3, "  WARNING: the sampler has become content-blind: its clips share most of their visible "
                            "tokens (a position-only mask); see docs/results/issue20_sweep.md for the diversity options")
    if summary.get("images"):
        lines.append(f"  mask images in {summary['images']}")
    problems = []
    if summary.get("skipped_videos"):
        problems.append(f"{summary['skipped_videos']} bad video(s) skipped")
    if summary.get("skipped_mae_updates"):
        problems.append(f"{summary['skipped_mae_updates']} non-finite MAE update(s) skipped")
    if problems:
        lines.append("  " + ", ".join(problems) + " (listed in summary.json)")
    return lines
