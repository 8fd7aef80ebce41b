"""A fixed masker (random, tube, running cell, motion energy) driving the masking env like an agent."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger

from agents.reinforce import init_sb3_callback
from tats_env.env import VideoMaskingVecEnv
from tats_env.mae.masking import get_masker

__all__ = ["FixedMaskerAgent"]


class FixedMaskerAgent:
    """Trains the env's MAE with a fixed masker (random, tube, running_cell, motion_energy).

    Has the ``learn(total_clips, callback=...)`` interface of an SB3 algorithm, so the benchmark
    records every method with the same callbacks; the main job's warm-up uses it too.
    """

    def __init__(self, env: VideoMaskingVecEnv, masker: str, seed: int | None = None) -> None:
        self.env = env
        self.core = env.core
        self.masker_name = masker
        self.masker = get_masker(masker)
        self.generator = torch.Generator(device=self.core.device)
        if seed is not None:
            self.generator.manual_seed(seed)
            env.seed(seed)
        self.num_timesteps = 0
        self.logger = Logger(folder=None, output_formats=[])

    def get_env(self) -> VideoMaskingVecEnv:
        """The training env (what SB3 callbacks read as ``training_env``)."""
        return self.env

    def _masks(self) -> np.ndarray:
        assert self.core.batch is not None
        core = self.core
        mask = self.masker(core.batch["video"], core.spec, core.config.mask_ratio, generator=self.generator)
        return mask.cpu().numpy().astype(np.int8)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Masks of the env's current clips (the masker reads pixels, not the observation)."""
        return self._masks(), None

    def learn(self, total_clips: int, callback: BaseCallback | list[BaseCallback] | None = None,
              reset_num_timesteps: bool = True, progress_bar: bool = False) -> "FixedMaskerAgent":
        """Reset the env, then step it with the masker's masks for ``total_clips`` clips."""
        if reset_num_timesteps:
            self.num_timesteps = 0
        total_timesteps = total_clips + (0 if reset_num_timesteps else self.num_timesteps)
        cb = init_sb3_callback(self, callback, progress_bar)
        self.env.reset()
        cb.on_training_start(locals(), globals())
        while self.num_timesteps < total_timesteps:
            cb.on_rollout_start()
            new_obs, rewards, dones, infos = self.env.step(self._masks())
            self.num_timesteps += self.env.num_envs
            cb.update_locals(locals())
            if not cb.on_step():
                break
            cb.on_rollout_end()
        cb.on_training_end()
        return self
