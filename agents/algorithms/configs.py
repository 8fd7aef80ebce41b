"""The hyperparameters of every learner (one frozen config each), without torch or stable-baselines3.

:class:`DiversityConfig` (mask diversity of the token-level learners), :class:`TokenPPOConfig`,
:class:`PPOConfig`, :class:`A2CConfig`, :class:`SACConfig` and :class:`ReinforceConfig`, each with its range
checks (``field_problems``) and a ``build`` that imports its algorithm on first use. Kept apart from the
algorithms (:mod:`agents.algorithms.token_ppo`, :mod:`~agents.algorithms.sb3`, :mod:`~agents.algorithms.reinforce`,
:mod:`~agents.algorithms.diversity`, which re-export them) so that :class:`agents.registry.SamplerConfig` and
the command lines' ``--help`` are built without importing torch, SB3 or gymnasium.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agents.kofn.directions import DEFAULT_DIRECTION, AdvantageKind, Direction
from agents.policies.configs import CriticKind, TATSConfig, TokenScoreNetConfig
from tats_env.checks import FieldChecks

if TYPE_CHECKING:
    import torch
    from stable_baselines3.common.vec_env import VecEnv

    from agents.algorithms.reinforce import Reinforce
    from agents.algorithms.sb3 import TATSA2C, TATSPPO, TopKSAC
    from agents.algorithms.token_ppo import TokenPPO

__all__ = ["ShareSchedule", "DiversityConfig", "common_problems", "PPOConfig", "A2CConfig", "SACConfig",
           "BaselineKind", "RuleKind", "TokenPPOConfig", "ReinforceConfig"]


def _tats_policy_kwargs(env: VecEnv, net: TATSConfig, ent_coef: float) -> dict[str, Any]:
    """TATSPolicy kwargs: the network, the env's token grid, and no entropy graph when it has no weight."""
    return {"tats_config": net, "grid": tuple(env.token_grid), "entropy_grad": ent_coef > 0}


ShareSchedule = Literal["constant", "linear"]


@dataclass(frozen=True)
class DiversityConfig(FieldChecks):
    """Mask-diversity options of the token-level learners (module docstring)."""

    policy_share: float = 1.0
    """Share of the direction's side the sampler chooses: of the masked set (mask_hard) or of the visible set
    (show_hard); the rest of that side is uniform at random. 1 = the sampler decides the whole mask."""
    share_schedule: ShareSchedule = "constant"
    """``constant``: policy_share from the first rollout; ``linear``: 0 -> policy_share over the sampler phase."""
    entropy_floor: float | None = None
    """Keep the sampler part's entropy above this share of its uniform maximum log C(N, c) with an automatically
    tuned coefficient (None: no floor; the fixed --token-ppo.ent-coef applies instead)."""
    floor_lr: float = 0.1
    """Adam learning rate of the floor's log-coefficient."""
    signal: Literal["error", "progress"] = "error"
    """Per-token signal the credit follows: ``error`` (the masked token's reconstruction error) or ``progress``
    (error before minus after the MAE's update on the same clip and mask: one extra forward per step)."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        if not 0.0 <= self.policy_share <= 1.0:
            yield "policy_share", "must be in [0, 1]"
        if self.share_schedule not in ("constant", "linear"):
            yield "share_schedule", "must be constant or linear"
        if self.entropy_floor is not None and not 0.0 < self.entropy_floor < 1.0:
            yield "entropy_floor", "must be in (0, 1) (a share of the uniform entropy), or None"
        if not self.floor_lr > 0:
            yield "floor_lr", "must be > 0"
        if self.signal not in ("error", "progress"):
            yield "signal", "must be error or progress"

    def share_at(self, progress: float) -> float:
        """The policy share at ``progress`` in [0, 1] of the sampler phase."""
        if self.share_schedule == "linear":
            return self.policy_share * min(max(progress, 0.0), 1.0)
        return self.policy_share


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
        from agents.algorithms.base import ONE_STEP_EPISODES
        from agents.algorithms.sb3 import TATSPPO
        from agents.policies.tats_policy import TATSPolicy

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
        from agents.algorithms.base import ONE_STEP_EPISODES
        from agents.algorithms.sb3 import TATSA2C
        from agents.policies.tats_policy import TATSPolicy

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
        from agents.algorithms.sb3 import TopKSAC
        from agents.policies.extractors import TokenProjection
        from tats_env.env.wrappers import TopKScoreVecAction

        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("net_arch", "token_dim", "ent_coef")}
        return TopKSAC(
            "MlpPolicy", TopKScoreVecAction(env), seed=seed, device=device, ent_coef=self.temperature(), gamma=0.0,
            optimize_memory_usage=True, replay_buffer_kwargs={"handle_timeout_termination": False},  # never time out
            policy_kwargs={"net_arch": list(self.net_arch), "features_extractor_class": TokenProjection,
                           "features_extractor_kwargs": {"dim": self.token_dim}},
            **values, **kwargs)


BaselineKind = Literal["ema", "value", "none"]
RuleKind = Literal["clip", "token", "adamae"]


@dataclass(frozen=True)
class TokenPPOConfig(FieldChecks):
    """Token-level PPO with the TATS scorer: every hyperparameter, with the defaults measured on ``tiny``."""

    advantage: AdvantageKind = "relative"
    """Per-token advantage: ``relative`` e_i / ebar - 1 (scale-free), ``centered`` e_i - ebar, ``raw`` e_i."""
    learning_rate: float = 1e-3
    """Adam learning rate of the sampler."""
    n_steps: int = 4
    """Env steps per rollout (rollout = n_steps * num_envs clips)."""
    batch_size: int = 2
    """Minibatch size in clips (each clip carries K per-token terms, so small minibatches are not noisy). With one
    epoch, minibatches of 2 give the 16 gradient steps per 32-clip rollout that 4 epochs of 8 gave, at a quarter of
    the update's cost (measured: frozen probe 44.4% vs 43.1%, default-run lift 0.140 vs 0.149, 3 seeds each; the
    sampler phase 0.64x instead of 0.41x the plain step; docs/results/issue22_speed.md)."""
    n_epochs: int = 1
    """Passes over each rollout (per-token clipping keeps later passes close to the sampling policy; the number of
    gradient steps matters more than the passes, see ``batch_size``)."""
    clip_range: float = 0.2
    """Per-token ratio clipping epsilon."""
    normalize_advantage: bool = True
    """Divide the advantages by their standard deviation over the rollout's masked tokens (a step-size
    rescaling; no mean is subtracted, the per-clip baseline is already in the advantage)."""
    ent_coef: float = 0.0
    """Weight of the exact entropy of the K-subset distribution (nats)."""
    vf_coef: float = 0.0
    """Weight of the value loss (the value never enters the token advantages; 0 skips training it)."""
    max_grad_norm: float = 0.5
    """Gradient clipping of the sampler."""
    target_kl: float | None = None
    """Stop an update early when the joint approximate KL exceeds 1.5x this (None: never)."""
    critic: CriticKind = "none"
    """``none``: no critic network (the value is one bias); ``separate``: a clip value on its own trunk."""
    net: TATSConfig = field(default_factory=TATSConfig)
    """Size of the trajectory-attention scorer network."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        yield from common_problems(self.learning_rate, self.ent_coef, self.vf_coef, self.max_grad_norm)
        for name in ("n_steps", "batch_size", "n_epochs"):
            if getattr(self, name) < 1:
                yield name, "must be >= 1"
        if not self.clip_range > 0:
            yield "clip_range", "must be > 0"
        if self.target_kl is not None and not self.target_kl > 0:
            yield "target_kl", "must be > 0 (or None: never stop early)"

    def rollout_problems(self, num_envs: int, flag: Callable[[str], str]) -> Iterator[tuple[str, str]]:
        """The minibatch must fit in a rollout of ``n_steps x num_envs`` clips; ``flag`` names a field's option."""
        if self.batch_size > self.n_steps * num_envs:
            yield "batch_size", (f"larger than a rollout of {flag('n_steps')} {self.n_steps} x --num-envs {num_envs} "
                                 f"= {self.n_steps * num_envs} clips")

    def build(self, env: VecEnv, seed: int | None = None, device: str | torch.device = "auto",
              grid: tuple[int, int, int] | None = None, direction: Direction = DEFAULT_DIRECTION,
              diversity: DiversityConfig | None = None, **kwargs: Any) -> TokenPPO:
        """A :class:`TokenPPO` on ``env`` trained in ``direction`` (:data:`agents.kofn.credit.Direction`;
        the run's one direction and its diversity options live in :class:`agents.registry.SamplerConfig`); ``grid`` defaults to
        the masking env's token grid. ``kwargs`` go to ``PPO`` (e.g. ``verbose``, ``tensorboard_log``)."""
        from agents.algorithms.base import ONE_STEP_EPISODES
        from agents.algorithms.token_ppo import TokenPPO
        from agents.policies.token_policy import TokenTATSPolicy

        if grid is None:
            grid = getattr(env, "token_grid", None)
        policy_kwargs: dict[str, Any] = {"tats_config": self.net, "critic": self.critic}
        if grid is not None:
            policy_kwargs["grid"] = tuple(grid)
        return TokenPPO(
            TokenTATSPolicy, env, direction=direction, advantage=self.advantage, diversity=diversity,
            learning_rate=self.learning_rate, n_steps=self.n_steps, batch_size=self.batch_size,
            n_epochs=self.n_epochs, **ONE_STEP_EPISODES, clip_range=self.clip_range,
            normalize_advantage=self.normalize_advantage, ent_coef=self.ent_coef, vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm, target_kl=self.target_kl, seed=seed, device=device,
            policy_kwargs=policy_kwargs, **kwargs,
        )


@dataclass(frozen=True)
class ReinforceConfig(FieldChecks):
    """:class:`Reinforce` hyperparameters (AdaMAE-style REINFORCE, exact K-of-N log-probabilities)."""

    learning_rate: float = 1e-3
    """Adam learning rate."""
    baseline: BaselineKind = "ema"
    """Reward baseline of the clip rule: moving average of past batches, a learned clip value, or none."""
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
    net: TokenScoreNetConfig = field(default_factory=TokenScoreNetConfig)
    """The token network (one standard transformer block, as AdaMAE)."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        yield from common_problems(self.learning_rate, self.ent_coef, self.vf_coef, self.max_grad_norm)
        if not 0.0 <= self.baseline_decay < 1.0:
            yield "baseline_decay", "must be in [0, 1)"

    def build(self, env: VecEnv, rule: RuleKind, direction: Direction | None, seed: int | None = None,
              device: str | torch.device = "cpu") -> Reinforce:
        """A :class:`Reinforce` learner with ``rule`` on ``env`` (``direction`` of the token rules; the clip rule
        follows the env's reward)."""
        from agents.algorithms.reinforce import Reinforce

        kwargs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "net"}
        return Reinforce(env, rule=rule, direction=None if rule == "clip" else direction, seed=seed, device=device,
                         policy_kwargs=self.net, **kwargs)
