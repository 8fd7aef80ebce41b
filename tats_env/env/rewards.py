"""Rewards from the MAE's per-token reconstruction error of the masked tokens."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd

from tats_env.env.config import RewardConfig, RewardMode  # re-exported: their old home

class RewardFunction:
    """Maps ``(per_token_loss, mask)`` to a float32 reward per clip; keeps running statistics."""

    def __init__(self, config: RewardConfig | None = None) -> None:
        self.config = config or RewardConfig()
        if self.config.baseline not in ("none", "random"):
            raise ValueError(f"unknown reward baseline {self.config.baseline!r}; choose 'none' or 'random'")
        if self.config.mode not in (None, "adversarial", "cooperative"):
            raise ValueError(f"unknown reward mode {self.config.mode!r}; choose 'adversarial' or 'cooperative'")
        self.stats = RunningMeanStd(shape=())

    @staticmethod
    def masked_error(per_token_loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean error of each clip's masked tokens ``(B,)``."""
        return (per_token_loss * mask).sum(dim=1) / mask.sum(dim=1)

    def __call__(
        self, per_token_loss: torch.Tensor, mask: torch.Tensor, baseline_error: torch.Tensor | None = None
    ) -> np.ndarray:
        """Rewards ``(B,)`` float32 for one batch (updates the running statistics if normalising).

        ``baseline_error`` ``(B,)`` is subtracted from the masked error when given. A clip whose
        error is not finite (a diverged MAE step) gets reward 0 and stays out of the statistics,
        so a sampler never learns from NaN.
        """
        error_t = self.masked_error(per_token_loss.float(), mask).detach()
        if baseline_error is not None:
            error_t = error_t - baseline_error.float()
        error = error_t.cpu().numpy().astype(np.float64)
        finite = np.isfinite(error)
        reward = np.where(finite, -error if self.config.mode == "cooperative" else error, 0.0)
        if self.config.normalize:
            if finite.any():
                self.stats.update(reward[finite])
            normalized = (reward - self.stats.mean) / np.sqrt(self.stats.var + 1e-8)
            reward = np.where(finite, np.clip(normalized, -self.config.clip, self.config.clip), 0.0)
        return reward.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Running statistics, for checkpoints."""
        return {"mean": float(self.stats.mean), "var": float(self.stats.var), "count": float(self.stats.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.stats.mean = np.float64(state["mean"])
        self.stats.var = np.float64(state["var"])
        self.stats.count = float(state["count"])
