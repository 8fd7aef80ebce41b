"""A fixed masker (random, tube, running cell, motion energy, composition oracles) as a sampler without learning."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv

from agents.algorithms.stepwise import StepwiseSampler
from tats_env.mae.masking import get_masker

__all__ = ["FixedMasker"]


class FixedMasker(StepwiseSampler):
    """Trains the env's MAE with a fixed masker (:data:`tats_env.mae.masking.MASKERS`).

    Has the ``learn(total_timesteps, callback=...)`` interface of an SB3 algorithm (the shared
    :class:`agents.algorithms.stepwise.StepwiseSampler` loop), so the benchmark records every
    sampler with the same callbacks and the main job's warm-up runs on it. The masker reads the
    env's current clips through the env's public :meth:`~tats_env.VideoMaskingVecEnv.fixed_masks`,
    not the observation.
    """

    def __init__(self, env: VecEnv, masker: str, seed: int | None = None) -> None:
        super().__init__(env)
        self.masker_name = masker
        self.masker = get_masker(masker)
        self.generator = torch.Generator(device=env.engine.device)
        if seed is not None:
            self.reseed(env.rank_seed(seed))  # this process's own stream under torch.distributed
            env.seed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the masks' random stream from ``seed``."""
        self.generator.manual_seed(seed)

    def _masks(self) -> np.ndarray:
        return self.env.fixed_masks(self.masker, self.generator).cpu().numpy().astype(np.int8)

    def act(self, observation: np.ndarray) -> tuple[np.ndarray, None]:
        """The masker's masks of the env's current clips."""
        return self._masks(), None

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Masks of the env's current clips (SB3's ``predict`` signature)."""
        return self._masks(), None
