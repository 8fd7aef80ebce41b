"""A fixed masker (random, tube, running cell, motion energy) driving the masking env like an agent."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv

from agents.loop import StepwiseAgent
from tats_env.env import masking_core
from tats_env.mae.masking import get_masker

__all__ = ["FixedMaskerAgent"]


class FixedMaskerAgent(StepwiseAgent):
    """Trains the env's MAE with a fixed masker (random, tube, running_cell, motion_energy).

    Has the ``learn(total_clips, callback=...)`` interface of an SB3 algorithm (the shared
    :class:`agents.loop.StepwiseAgent` loop), so the benchmark records every sampler with the
    same callbacks and the main job's warm-up runs on it. The masker reads the env's current
    clips (pixels), not the observation.
    """

    def __init__(self, env: VecEnv, masker: str, seed: int | None = None) -> None:
        super().__init__(env)
        self.core = masking_core(env)
        self.masker_name = masker
        self.masker = get_masker(masker)
        self.generator = torch.Generator(device=self.core.device)
        if seed is not None:
            self.generator.manual_seed(self.core.rank_seed(seed))  # per rank under torch.distributed
            env.seed(seed)

    def _masks(self) -> np.ndarray:
        return self.core.fixed_masks(self.masker, self.generator).cpu().numpy().astype(np.int8)

    def act(self, observation: np.ndarray) -> tuple[np.ndarray, None]:
        """The masker's masks of the env's current clips."""
        return self._masks(), None

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Masks of the env's current clips (SB3's ``predict`` signature)."""
        return self._masks(), None
