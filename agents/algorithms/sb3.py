"""The clip-reward learners from stable-baselines3: PPO and A2C with the TATS policy, SAC on top-K scores.

Each is the SB3 algorithm with :class:`agents.algorithms.base.SB3Sampler` mixed in (the
:class:`~agents.algorithms.base.Sampler` interface), next to its frozen config whose ``build``
makes it. They learn from the scalar clip reward (``--reward.*``), which at high mask ratios
carries almost no signal about which token mattered (policy-gradient SNR ~0.01 per clip); they
are kept for comparison with the token-level learners.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.vec_env import VecEnv

from agents.algorithms.base import ONE_STEP_EPISODES, SB3Sampler
from agents.policies.extractors import TokenProjection
from agents.policies.tats_network import TATSConfig
from agents.policies.tats_policy import TATSPolicy
from tats_env.checks import FieldChecks
from tats_env.env import TopKScoreVecAction
from tats_env.env.spaces import scores_to_mask

__all__ = ["PPOConfig", "A2CConfig", "SACConfig", "TATSPPO", "TATSA2C", "TopKSAC", "common_problems"]


def common_problems(learning_rate: float, ent_coef: float, vf_coef: float, max_grad_norm: float | None
                    ) -> Iterator[tuple[str, str]]:
    """Range rules the policy-gradient configs share (see :mod:`tats_env.checks`)."""
    if not learning_rate > 0:
        yield "learning_rate", "must be > 0"
    if not ent_coef >= 0:
        yield "ent_coef", "must be >= 0"
    if not vf_coef >= 0:
        yield "vf_coef", "must be >= 0"
    if max_grad_norm is not None and not max_grad_norm > 0:
        yield "max_grad_norm", "must be > 0"


def _tats_policy_kwargs(env: VecEnv, net: TATSConfig, ent_coef: float) -> dict[str, Any]:
    """TATSPolicy kwargs: the network, the env's token grid, and no entropy graph when it has no weight."""
    return {"tats_config": net, "grid": tuple(env.token_grid), "entropy_grad": ent_coef > 0}


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


@dataclass(frozen=True)
class PPOConfig(FieldChecks):
    """``stable_baselines3.PPO`` hyperparameters of the TATS sampler (``ppo_tats``)."""

    learning_rate: float = 1e-3
    """Adam learning rate of the sampler."""
    n_steps: int = 4
    """Env steps per rollout (a rollout is n_steps x num_envs clips)."""
    batch_size: int | None = None
    """Minibatch size in clips; None: the whole rollout (n_steps x num_envs) as one minibatch, which standardises
    the advantages over the most clips (the clip reward's policy-gradient SNR is ~0.01-0.02 per clip)."""
    n_epochs: int = 1
    """Passes over each rollout."""
    clip_range: float = 0.2
    """Ratio clipping."""
    ent_coef: float = 0.0
    """Entropy bonus weight (exact entropy of the K-of-N distribution, nats); 0 skips its double backward."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping of the sampler."""
    normalize_advantage: bool = True
    """Standardise advantages per minibatch (SB3's default)."""
    target_kl: float | None = None
    """Stop an update early when the approximate KL exceeds 1.5x this (None: never)."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        yield from common_problems(self.learning_rate, self.ent_coef, self.vf_coef, self.max_grad_norm)
        if self.n_steps < 1:
            yield "n_steps", "must be >= 1"
        if self.batch_size is not None and self.batch_size < 2:
            yield "batch_size", "must be >= 2 (SB3 normalises advantages per minibatch), or None (the whole rollout)"
        if self.n_epochs < 1:
            yield "n_epochs", "must be >= 1"
        if not self.clip_range > 0:
            yield "clip_range", "must be > 0"
        if self.target_kl is not None and not self.target_kl > 0:
            yield "target_kl", "must be > 0 (or None: never stop early)"

    def rollout_problems(self, num_envs: int, flag: Callable[[str], str]) -> Iterator[tuple[str, str]]:
        """Rules that tie the rollout (``n_steps x num_envs`` clips) to the minibatch; ``flag`` names a field's option."""
        rollout = self.n_steps * num_envs
        if rollout < 2:
            yield "n_steps", (f"with --num-envs {num_envs} a PPO rollout of {rollout} clip cannot be split into "
                              "minibatches; needs n_steps x num_envs >= 2")
        elif self.batch_size is not None and self.batch_size > rollout:
            yield "batch_size", (f"larger than a rollout of {flag('n_steps')} {self.n_steps} x --num-envs {num_envs} "
                                 f"= {rollout} clips")

    def minibatch(self, num_envs: int) -> int:
        """The minibatch size in clips on an env of ``num_envs`` clips per step."""
        return self.batch_size if self.batch_size is not None else self.n_steps * num_envs

    def build(self, env: VecEnv, net: TATSConfig, seed: int | None = None, device: str | torch.device = "auto",
              **kwargs: Any) -> TATSPPO:
        """A :class:`TATSPPO` on ``env`` with the scorer ``net`` (``kwargs`` go to ``PPO``, e.g. ``verbose``)."""
        values = {**dataclasses.asdict(self), "batch_size": self.minibatch(env.num_envs), **ONE_STEP_EPISODES}
        return TATSPPO(TATSPolicy, env, seed=seed, device=device,
                       policy_kwargs=_tats_policy_kwargs(env, net, self.ent_coef), **values, **kwargs)


@dataclass(frozen=True)
class A2CConfig(FieldChecks):
    """``stable_baselines3.A2C`` hyperparameters of the TATS sampler (``a2c_tats``; one gradient step per rollout)."""

    learning_rate: float = 1e-3
    """Learning rate of the sampler."""
    n_steps: int = 4
    """Env steps per rollout."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping."""
    use_rms_prop: bool = False
    """RMSprop (SB3's A2C default) instead of Adam."""
    normalize_advantage: bool = False
    """Standardise advantages per rollout."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        yield from common_problems(self.learning_rate, self.ent_coef, self.vf_coef, self.max_grad_norm)
        if self.n_steps < 1:
            yield "n_steps", "must be >= 1"

    def build(self, env: VecEnv, net: TATSConfig, seed: int | None = None, device: str | torch.device = "auto",
              **kwargs: Any) -> TATSA2C:
        """A :class:`TATSA2C` on ``env`` with the scorer ``net``."""
        return TATSA2C(TATSPolicy, env, seed=seed, device=device, policy_kwargs=_tats_policy_kwargs(env, net, self.ent_coef),
                       **dataclasses.asdict(self), **ONE_STEP_EPISODES, **kwargs)


@dataclass(frozen=True)
class SACConfig(FieldChecks):
    """``stable_baselines3.SAC`` on ``Box(-1, 1, (N,))`` scores (top-K masked, :class:`tats_env.TopKScoreAction`).

    The observation goes through :class:`agents.policies.extractors.TokenProjection` (per-token
    LayerNorm + Linear to ``token_dim`` features) before the MLPs, so actor and critics stay small.
    The replay buffer stores float16 observations once (``optimize_memory_usage``).
    """

    learning_rate: float = 3e-4
    """Learning rate of actor, critics and temperature."""
    buffer_size: int = 1024
    """Replay buffer size in clips (~200 MB of float16 observations on 512 x 192 tokens)."""
    learning_starts: int = 64
    """Clips with uniform random scores (random masks) before the first update."""
    batch_size: int = 64
    """Replay minibatch size."""
    tau: float = 0.005
    """Target network averaging."""
    train_freq: int = 1
    """Env steps (num_envs clips each) between updates."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    ent_coef: str = "auto"
    """Entropy temperature: "auto" (learned), "auto_0.1" (learned from 0.1) or a number >= 0."""
    net_arch: tuple[int, ...] = (256,)
    """Hidden layers of actor and critics."""
    token_dim: int = 4
    """Features per token after the token-wise projection."""

    def temperature(self) -> float | str:
        """``ent_coef`` as SB3 takes it: a float, or the "auto" / "auto_<start>" string."""
        try:
            return float(self.ent_coef)
        except ValueError:
            return self.ent_coef

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        if not self.learning_rate > 0:
            yield "learning_rate", "must be > 0"
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps", "token_dim"):
            if getattr(self, name) < 1:
                yield name, "must be >= 1"
        if self.learning_starts < 0:
            yield "learning_starts", "must be >= 0"
        if not 0.0 < self.tau <= 1.0:
            yield "tau", "must be in (0, 1]"
        if self.batch_size > self.buffer_size >= 1:
            yield "batch_size", f"must not exceed buffer_size ({self.buffer_size})"
        temperature = self.temperature()
        if isinstance(temperature, float):
            if not temperature >= 0:
                yield "ent_coef", "must be >= 0, 'auto' or 'auto_<start>'"
        elif temperature != "auto":
            start = temperature[5:] if temperature.startswith("auto_") else ""
            try:
                if float(start) <= 0:
                    raise ValueError
            except ValueError:
                yield "ent_coef", "must be a number >= 0, 'auto' or 'auto_<start>' with a start > 0"
        if not self.net_arch or any(width < 1 for width in self.net_arch):
            yield "net_arch", "needs at least one hidden layer, each >= 1 wide"

    def build(self, env: VecEnv, seed: int | None = None, device: str | torch.device = "auto",
              **kwargs: Any) -> TopKSAC:
        """A :class:`TopKSAC` on ``env`` (wrapped in :class:`tats_env.TopKScoreVecAction`)."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("net_arch", "token_dim", "ent_coef")}
        return TopKSAC(
            "MlpPolicy", TopKScoreVecAction(env), seed=seed, device=device, ent_coef=self.temperature(), gamma=0.0,
            optimize_memory_usage=True, replay_buffer_kwargs={"handle_timeout_termination": False},  # never time out
            policy_kwargs={"net_arch": list(self.net_arch), "features_extractor_class": TokenProjection,
                           "features_extractor_kwargs": {"dim": self.token_dim}},
            **values, **kwargs)
