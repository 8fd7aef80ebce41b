"""The single-clip masking environment, ``TATS/VideoMasking-v0``.

One episode = one clip. The observation is the clip's token embeddings ``(N, D)`` from the
co-trained MAE; the action masks exactly K tokens; ``step`` updates the MAE once and
returns the reward from the masked tokens' reconstruction error; ``terminated=True``.
The env is ``nondeterministic`` in gymnasium's sense: its reward model learns.
"""

from __future__ import annotations

import dataclasses
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from tats_env.config import MAEConfig
from tats_env.data import VideoClipDataset
from tats_env.env.core import EnvConfig, MaskingCore
from tats_env.env.engine import CoTrainingEngine


class VideoMaskingEnv(gym.Env):
    """Gymnasium view of :class:`~tats_env.env.core.MaskingCore` with batch size 1.

    Keyword arguments are :class:`~tats_env.env.core.EnvConfig` fields (``data``, ``preset``,
    ``mask_ratio``, ``reward``, ``invalid_action``, ...), plus ``device``, and optionally a
    prepared ``mae_config``, ``dataset`` or shared ``engine``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        device: str | torch.device = "cpu",
        mae_config: MAEConfig | None = None,
        dataset: VideoClipDataset | None = None,
        engine: CoTrainingEngine | None = None,
        render_mode: str | None = None,
        **config: Any,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported; see tats_env.visualize for images")
        fields = {f.name for f in dataclasses.fields(EnvConfig)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise TypeError(f"unknown env options {unknown}; known: {sorted(fields)}")
        self.core = MaskingCore(1, EnvConfig(**config), device, mae_config, dataset, engine)
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self._has_clip = False

    @property
    def engine(self) -> CoTrainingEngine:
        """The co-trained MAE and its optimizer."""
        return self.core.engine

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw one clip; ``seed`` restarts the clip stream (same seed -> same clips)."""
        super().reset(seed=seed)
        if seed is not None:
            self.core.seed(seed)
        obs = self.core.reset()[0]
        self._has_clip = True
        return obs, {"label": int(self.core.batch["label"][0])}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Mask, reconstruct, update the MAE; returns ``(obs, reward, True, False, info)``."""
        if not self._has_clip:
            raise RuntimeError("call reset() before step(): every episode is one step long")
        action = np.asarray(action)
        if action.ndim != 1:
            raise ValueError(f"expected {self.action_space} actions of shape ({self.action_space.n},), got shape {action.shape}")
        rewards, infos = self.core.step(action[None])
        self._has_clip = False
        obs = np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)
        return obs, float(rewards[0]), True, False, infos[0]

    def close(self) -> None:
        """Release data workers."""
        self.core.close()
