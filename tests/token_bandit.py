"""A masking bandit with fixed per-token errors (no MAE): the test bed for token-level learners."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from tats_env.env import KOfNMask


class TokenErrorBandit(gym.Env):
    """N tokens on a ``grid``; ``m`` random "hard" tokens per clip carry a marker feature.

    Masked token i reports error ``scale * (1 + gap * hard_i)`` plus small noise, where ``scale``
    is a per-clip difficulty ``exp(N(0, clip_sd))`` (as in real clips, difficulty varies far more
    between clips than between masks of one clip). The reward is the mean masked error, as in the
    masking env; ``info`` carries ``token_error`` (NaN at visible tokens), ``token_mask``, ``hard``
    and ``hard_masked`` (the share of the hard tokens masked).
    """

    def __init__(self, grid: tuple[int, int, int] = (2, 4, 4), k: int = 24, m: int = 6, d: int = 8,
                 gap: float = 2.0, noise: float = 0.1, clip_sd: float = 0.5, seed: int = 0) -> None:
        self.n = grid[0] * grid[1] * grid[2]
        self.k, self.m, self.gap, self.noise, self.clip_sd = k, m, gap, noise, clip_sd
        self._scale = 1.0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.n, d), np.float32)
        self.action_space = KOfNMask(self.n, k, seed=seed)
        self._rng = np.random.default_rng(seed)
        self._hard = np.zeros(self.n, dtype=bool)
        self._obs = np.zeros((self.n, d), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._hard = np.zeros(self.n, dtype=bool)
        self._hard[self._rng.choice(self.n, self.m, replace=False)] = True
        obs = self._rng.normal(0.0, 0.5, self._obs.shape).astype(np.float32)
        obs[self._hard, 0] += 2.0
        self._scale = float(np.exp(self._rng.normal(0.0, self.clip_sd)))
        self._obs = obs
        return obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        mask = np.asarray(action).astype(bool)
        errors = self._scale * (1.0 + self.gap * self._hard) + self._rng.normal(0.0, self.noise, self.n)
        token_error = np.where(mask, errors, np.nan).astype(np.float32)
        info = {"token_error": token_error, "token_mask": mask, "hard": self._hard.copy(),
                "hard_masked": float((mask & self._hard).sum() / self.m)}
        return self._obs, float(errors[mask].mean()), True, False, info


def bandit_vec_env(num_envs: int = 8, seed: int = 0, **kwargs: object) -> DummyVecEnv:
    """``num_envs`` independent bandits in a DummyVecEnv."""
    vec = DummyVecEnv([lambda i=i: TokenErrorBandit(seed=seed * 100 + i, **kwargs) for i in range(num_envs)])
    vec.seed(seed)
    return vec
