"""Does the sampler learn motion? Per-step motion statistics of a co-training run and their quarter summary.

:class:`MotionCurveCallback` records, after every env step, the clip-mean of the env's per-clip
motion statistics (``motion_lift_show_hard``, ``motion_lift_mask_hard``, ``motion_recall``,
``moving_static_error_ratio``, ``recon_loss``; see :func:`tats_env.env.core.motion_lift`).
:func:`quarter_summary` compares the first and the last quarter of the run's clips.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["CURVE_KEYS", "MotionCurveCallback", "quarter_summary"]

CURVE_KEYS = ("motion_lift_show_hard", "motion_lift_mask_hard", "motion_recall", "moving_static_error_ratio",
              "recon_loss", "moving_visible", "moving_hidden", "visible_overlap")


class MotionCurveCallback(BaseCallback):
    """Keeps one row per env step: clips seen so far and the clip-mean of every :data:`CURVE_KEYS` entry."""

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.rows: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals["infos"]
        row = {"clips": float(self.num_timesteps)}
        for key in CURVE_KEYS:
            values = [info[key] for info in infos if key in info and np.isfinite(info[key])]
            row[key] = float(np.mean(values)) if values else float("nan")
            row[f"{key}_n"] = float(len(values))
        self.rows.append(row)
        return True


def quarter_summary(rows: list[dict[str, float]], keys: tuple[str, ...] = CURVE_KEYS) -> dict[str, dict[str, float]]:
    """``{key: {"first": ..., "last": ..., "first_se": ..., "last_se": ...}}`` over the first / last quarter of rows.

    Means are weighted by the number of clips behind each row; ``*_se`` is the standard error of
    the step means (one step = one batch of clips).
    """
    n = len(rows)
    if n < 4:
        raise ValueError(f"need at least 4 recorded steps for quarters, got {n}")
    quarter = n // 4
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        entry: dict[str, float] = {}
        for name, part in (("first", rows[:quarter]), ("last", rows[n - quarter:])):
            values = np.array([r[key] for r in part], dtype=float)
            weights = np.array([r.get(f"{key}_n", 1.0) for r in part], dtype=float)
            ok = np.isfinite(values) & (weights > 0)
            if not ok.any():
                entry[name], entry[f"{name}_se"] = float("nan"), float("nan")
                continue
            entry[name] = float(np.average(values[ok], weights=weights[ok]))
            entry[f"{name}_se"] = float(values[ok].std(ddof=1) / np.sqrt(ok.sum())) if ok.sum() > 1 else float("nan")
        out[key] = entry
    return out
