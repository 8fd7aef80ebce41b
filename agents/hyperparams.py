"""Hyperparameters of every registered sampler: ONE source for the main job and the benchmark.

:class:`SamplerConfig` nests one frozen dataclass per learner (PPO, A2C, SAC, REINFORCE) plus
the TATS network. ``experiments/train_ppo.py`` and ``experiments/benchmark_algos.py`` both hold
a ``SamplerConfig`` and build samplers from it through :mod:`agents.registry`, so a value
changed here changes both; on the command line the sections are ``--tats.*``, ``--ppo.*``,
``--a2c.*``, ``--sac.*``, ``--reinforce.*`` and ``--token-ppo.*``, plus the one ``--direction``
of the token-level learners.

Every episode of the masking env is one step, so the SB3 learners run with ``gamma = 0`` and
``gae_lambda = 1`` (the advantage is the reward minus the clip's value); that is not a choice
and therefore not a field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from agents.reinforce import TokenScoreNetConfig
from agents.tats_network import TATSConfig
from agents.token_credit import DEFAULT_DIRECTION, Direction
from agents.token_ppo import TokenPPOConfig

__all__ = ["PPOConfig", "A2CConfig", "SACConfig", "ReinforceConfig", "TokenPPOConfig", "SamplerConfig"]

ONE_STEP_EPISODES: dict[str, float] = {"gamma": 0.0, "gae_lambda": 1.0}


@dataclass(frozen=True)
class PPOConfig:
    """``stable_baselines3.PPO`` hyperparameters of the TATS sampler."""

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

    def sb3_kwargs(self, num_envs: int = 1) -> dict[str, Any]:
        """Keyword arguments of ``stable_baselines3.PPO`` on an env of ``num_envs`` clips per step."""
        return {**dataclasses.asdict(self), "batch_size": self.minibatch(num_envs), **ONE_STEP_EPISODES}

    def minibatch(self, num_envs: int) -> int:
        """The minibatch size in clips on an env of ``num_envs`` clips per step."""
        return self.batch_size if self.batch_size is not None else self.n_steps * num_envs


@dataclass(frozen=True)
class A2CConfig:
    """``stable_baselines3.A2C`` hyperparameters of the TATS sampler (one gradient step per rollout)."""

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

    def sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``stable_baselines3.A2C``."""
        return {**dataclasses.asdict(self), **ONE_STEP_EPISODES}


@dataclass(frozen=True)
class SACConfig:
    """``stable_baselines3.SAC`` on ``Box(-1, 1, (N,))`` scores (top-K masked, :class:`tats_env.TopKScoreAction`).

    The observation goes through :class:`agents.extractors.TokenProjection` (per-token
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
    """Entropy temperature: "auto" (learned), "auto_0.1" (learned from 0.1) or a number."""
    net_arch: tuple[int, ...] = (256,)
    """Hidden layers of actor and critics."""
    token_dim: int = 4
    """Features per token after the token-wise projection."""

    def sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``stable_baselines3.SAC`` (the policy is ``MlpPolicy``)."""
        from agents.extractors import TokenProjection

        try:
            ent_coef: float | str = float(self.ent_coef)
        except ValueError:
            ent_coef = self.ent_coef
        kwargs = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("net_arch", "token_dim")}
        kwargs.update(
            ent_coef=ent_coef, gamma=0.0, optimize_memory_usage=True,
            replay_buffer_kwargs={"handle_timeout_termination": False},  # episodes never time out
            policy_kwargs={"net_arch": list(self.net_arch), "features_extractor_class": TokenProjection,
                           "features_extractor_kwargs": {"dim": self.token_dim}},
        )
        return kwargs


@dataclass(frozen=True)
class ReinforceConfig:
    """:class:`agents.reinforce.Reinforce` (AdaMAE-style REINFORCE, exact K-of-N log-probabilities)."""

    learning_rate: float = 1e-3
    """Adam learning rate."""
    baseline: Literal["ema", "value", "none"] = "ema"
    """Reward baseline: moving average of past batches, a learned clip value, or none."""
    baseline_decay: float = 0.9
    """EMA factor of the ema baseline."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight (value baseline only)."""
    max_grad_norm: float = 0.5
    """Gradient clipping."""
    normalize_advantage: bool = False
    """Divide advantages by their batch standard deviation."""
    net: TokenScoreNetConfig = field(default_factory=lambda: TokenScoreNetConfig(dim=32, depth=1, num_heads=2))
    """The token network (one standard transformer block, as AdaMAE)."""

    def agent_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`agents.reinforce.Reinforce`."""
        kwargs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "net"}
        return {**kwargs, "policy_kwargs": self.net}


@dataclass(frozen=True)
class SamplerConfig:
    """Hyperparameters of every registered sampler; the main job and the benchmark read them from here."""

    direction: Direction = DEFAULT_DIRECTION
    """Which tokens the token-level learners (token_ppo, reinforce_token, reinforce_adamae) push the MAE's hard
    tokens to: ``mask_hard`` masks them (TATS's motion-centric masking; the default: the larger, measured lift),
    ``show_hard`` makes them visible (AdaMAE's effective rule). The run's ``motion_lift`` is measured in this
    direction. Scalar learners follow the env's reward
    (--reward.mode; at ratio >= 0.9 ``adversarial`` favours show-hard, ``cooperative`` mask-hard)."""
    token_ppo: TokenPPOConfig = field(default_factory=TokenPPOConfig)
    """Token-level PPO (token_ppo): per-token advantages and clipped per-token ratios."""
    tats: TATSConfig = field(default_factory=lambda: TATSConfig(dim=32, depth=1, num_heads=2, share_trunk=False))
    """The trajectory-attention network of the TATS policy (ppo_tats, a2c_tats); the critic has its own trunk (on a
    shared one its value loss, which explains none of the reward's variance, drowns the scorer's gradient)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO (ppo_tats)."""
    a2c: A2CConfig = field(default_factory=A2CConfig)
    """A2C (a2c_tats)."""
    sac: SACConfig = field(default_factory=SACConfig)
    """SAC on scores (sac_topk)."""
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)
    """REINFORCE (reinforce: clip reward; reinforce_token: exact token rule; reinforce_adamae: AdaMAE's rule)."""
