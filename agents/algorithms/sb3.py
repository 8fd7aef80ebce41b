"""The clip-reward learners from stable-baselines3: PPO and A2C with the TATS policy, SAC on top-K scores.

Each is the SB3 algorithm with :class:`agents.algorithms.base.SB3Sampler` mixed in (the
:class:`~agents.algorithms.base.Sampler` interface), with its frozen config (:mod:`agents.algorithms.configs`, re-exported here)
whose ``build`` makes it. They learn from the scalar clip reward (``--reward.*``), which at high mask ratios
carries almost no signal about which token mattered (policy-gradient SNR ~0.01 per clip); they
are kept for comparison with the token-level learners.
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import A2C, PPO, SAC

from agents.algorithms.base import SB3Sampler
from agents.algorithms.configs import A2CConfig, PPOConfig, SACConfig, common_problems
from tats_env.env.spaces import scores_to_mask

__all__ = ["PPOConfig", "A2CConfig", "SACConfig", "TATSPPO", "TATSA2C", "TopKSAC", "common_problems"]


class TATSPPO(SB3Sampler, PPO):
    """``stable_baselines3.PPO`` with :class:`agents.policies.TATSPolicy` (exact joint K-of-N log-probabilities)."""


class TATSA2C(SB3Sampler, A2C):
    """``stable_baselines3.A2C`` with :class:`agents.policies.TATSPolicy`."""


class TopKSAC(SB3Sampler, SAC):
    """``stable_baselines3.SAC`` on ``Box(-1, 1, (N,))`` scores whose top K are masked (:class:`tats_env.TopKScoreVecAction`).

    ``predict`` returns SAC's actions (scores; SB3 collects rollouts with it), ``predict_masks`` the
    masks they give. SAC's replay buffer and off-policy updates are not averaged across ranks, so
    it refuses torchrun.
    """

    distributed_method = None

    def predict_scores(self, observation: np.ndarray) -> torch.Tensor | None:
        """The actor's deterministic scores ``(B, N)`` (higher = more likely masked)."""
        scores, _ = SAC.predict(self, observation, deterministic=True)
        return torch.as_tensor(scores).float()

    def predict_masks(self, observation: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Masks ``(B, N)`` int8: the top K of the actor's scores."""
        scores, _ = self.predict(observation, deterministic=deterministic)
        k = self.env.mask_space.k  # type: ignore[union-attr]
        return scores_to_mask(np.atleast_2d(scores), k).numpy().astype(np.int8)
