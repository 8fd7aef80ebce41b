"""The one place a sampler is named: its hyperparameters (:class:`SamplerConfig`) and how to build it (:data:`SAMPLERS`).

The main job (``experiments/train_ppo.py --method ...``, including its fixed-masker warm-up)
and the benchmark (``experiments/benchmark_algos.py --methods ...``) build samplers only through
:func:`build_sampler`, with hyperparameters from one :class:`SamplerConfig`, and build their env
with :func:`sampler_env_config` (which switches the env's per-token info on for the learners that
read it, and sets the clip reward's mode from the one ``--direction``). Every sampler satisfies
:class:`agents.algorithms.base.Sampler`.

To add a learned sampler: write its module under ``agents/algorithms/`` (the class, satisfying
``Sampler``) and its frozen config with ``field_problems`` and a ``build`` that imports the class on first use
(in :mod:`agents.algorithms.configs`: this module and the command lines import no torch), add its config as one
field of :class:`SamplerConfig` and one :class:`SamplerSpec` line to :data:`SAMPLERS` (or call
:func:`register_sampler` from your own code). Nothing else branches on sampler kinds.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agents.algorithms.configs import (
    A2CConfig, DiversityConfig, PPOConfig, ReinforceConfig, SACConfig, TokenPPOConfig,
)
from agents.kofn.directions import DEFAULT_DIRECTION, REWARD_MODE, Direction
from agents.policies.configs import TATSConfig
from tats_env.checks import FieldChecks
from tats_env.env.config import EnvConfig
from tats_env.mae.masker_names import COMPOSITION_MASKER_NAMES, PLAIN_MASKERS

if TYPE_CHECKING:
    import torch
    from stable_baselines3.common.vec_env import VecEnv

    from agents.algorithms.base import Sampler
    from agents.algorithms.fixed_masker import FixedMasker

    Builder = Callable[[VecEnv, "SamplerConfig", int, torch.device], Sampler]

__all__ = ["SamplerConfig", "RECOMMENDED_DIRECTION", "recommended_diversity", "recommended_sampler", "SamplerKind",
           "SamplerSpec", "SAMPLERS", "learned_samplers", "fixed_maskers",
           "default_matrix", "register_sampler", "build_sampler", "sampler_env_config", "sampler_hyperparams",
           "sampler_spec"]


@dataclass(frozen=True)
class SamplerConfig(FieldChecks):
    """Hyperparameters of every registered sampler; the main job and the benchmark read them from here.

    One frozen config per learner (:mod:`agents.algorithms.configs`, torch-free, each building its algorithm);
    on the command line ``--direction``, ``--token-ppo.*``, ``--tats.*``, ``--ppo.*``, ``--a2c.*``,
    ``--sac.*`` and ``--reinforce.*``.
    """

    direction: Direction = DEFAULT_DIRECTION
    """Which tokens every learner is pushed to mask: ``mask_hard`` masks the tokens the MAE finds hard (TATS's
    motion-centric masking; the default: the larger, measured lift), ``show_hard`` makes them visible (AdaMAE's
    effective rule). Token-level learners (token_ppo, reinforce_token, reinforce_adamae) use it as the sign of
    their per-token credit; clip-reward learners (ppo_tats, a2c_tats, sac_topk, reinforce) get the env's reward
    mode from it (mask_hard: adversarial, +error; show_hard: cooperative, -error). The run's motion lift is
    measured in this direction."""
    diversity: DiversityConfig = field(default_factory=DiversityConfig)
    """Mask diversity of the token-level learners (--diversity.*): the policy's share of the direction's side of
    the mask (the rest uniform), its schedule, an entropy floor, and the per-token signal (error or learning
    progress). Learners that do not read it warn once and run without it."""
    token_ppo: TokenPPOConfig = field(default_factory=TokenPPOConfig)
    """Token-level PPO (token_ppo): per-token advantages and clipped per-token ratios."""
    tats: TATSConfig = field(default_factory=TATSConfig)
    """The trajectory-attention network of the clip-reward TATS policies (ppo_tats, a2c_tats); the critic has its
    own trunk (on a shared one its value loss, which explains none of the reward's variance, drowns the scorer)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO (ppo_tats)."""
    a2c: A2CConfig = field(default_factory=A2CConfig)
    """A2C (a2c_tats)."""
    sac: SACConfig = field(default_factory=SACConfig)
    """SAC on scores (sac_topk)."""
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)
    """REINFORCE (reinforce: clip reward; reinforce_token: exact token rule; reinforce_adamae: AdaMAE's rule)."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields of this level (the nested configs check their own)."""
        if self.direction not in REWARD_MODE:
            yield "direction", f"must be one of {', '.join(REWARD_MODE)}"
        if self.diversity.signal == "progress" and self.token_ppo.advantage == "relative":
            yield "diversity.signal", ("progress (which can be 0 or negative) needs --token-ppo.advantage centered or "
                                       "raw; relative divides by the clip's mean")


RECOMMENDED_DIRECTION: Direction = "show_hard"
"""The main job's direction: the measured best (docs/results/issue20_sweep.md)."""


def recommended_diversity() -> DiversityConfig:
    """The measured best mask diversity at ratio 0.95 on the embedded set (docs/results/issue20_sweep.md): the
    sampler chooses half of the visible set, the other half is random (frozen probe 44.2% vs random masking's
    38.7%, 3 seeds)."""
    return DiversityConfig(policy_share=0.5)


def recommended_sampler() -> SamplerConfig:
    """The main job's default sampler settings: the show-hard direction with :func:`recommended_diversity`."""
    return SamplerConfig(direction=RECOMMENDED_DIRECTION, diversity=recommended_diversity())


SamplerKind = Literal["learned", "masker", "scratch"]


@dataclass(frozen=True)
class SamplerSpec:
    """One registered sampler."""

    name: str
    """Name on the command line (``--method``, ``--methods``) and in tables."""
    kind: SamplerKind
    """``learned`` (an RL sampler: starts after the fixed-masker warm-up), ``masker`` (fixed masks, no learning) or
    ``scratch`` (no pre-training at all: the benchmark's reference)."""
    description: str
    """One line for reports and ``--help``."""
    build: Builder | None = None
    """``(env, hyperparameters, seed, device) -> sampler``; None for ``scratch``."""
    sections: tuple[str, ...] = ()
    """The :class:`SamplerConfig` fields this sampler reads (its hyperparameters, for fingerprints)."""
    token_info: bool = False
    """It reads the env's per-token errors: :func:`sampler_env_config` builds the env with ``token_info=True``."""
    directional: bool = False
    """Token-level credit with a direction of its own (the benchmark runs one row per direction)."""
    directions: tuple[Direction, ...] = ("show_hard", "mask_hard")
    """The directions it can learn in (AdaMAE's rule: show-hard only)."""
    distributed: bool = True
    """It can train under torchrun (its updates are averaged across ranks); False is refused before any work."""
    diversity: bool = False
    """It reads :class:`agents.algorithms.diversity.DiversityConfig` (policy share, entropy floor, signal); the
    others warn that they ignore a ``--diversity.*`` other than the plain and the recommended one."""
    diagnostic: bool = False
    """An oracle that reads the clips' foreground masks (:mod:`tats_env.mae.composition`): for diagnosis runs,
    not in the benchmark's default matrix."""

    @property
    def learned(self) -> bool:
        """True for RL samplers (they start after the fixed-masker warm-up)."""
        return self.kind == "learned"


def _fixed(masker: str) -> Builder:
    def build(env: VecEnv, cfg: SamplerConfig, seed: int, device: torch.device) -> FixedMasker:
        from agents.algorithms.fixed_masker import FixedMasker

        return FixedMasker(env, masker, seed)
    return build


SAMPLERS: dict[str, SamplerSpec] = {}
"""Every sampler by name, in table order."""


def register_sampler(spec: SamplerSpec) -> SamplerSpec:
    """Add ``spec`` to :data:`SAMPLERS` (its name must be new); returns it."""
    if spec.name in SAMPLERS:
        raise ValueError(f"a sampler named {spec.name!r} is registered already")
    SAMPLERS[spec.name] = spec
    return spec


for _spec in (
    SamplerSpec("ppo_tats", "learned", "PPO + TATSPolicy (trajectory attention, exact K-of-N)",
                lambda env, cfg, seed, device: cfg.ppo.build(env, cfg.tats, seed, device), ("direction", "tats", "ppo")),
    SamplerSpec("a2c_tats", "learned", "A2C + TATSPolicy",
                lambda env, cfg, seed, device: cfg.a2c.build(env, cfg.tats, seed, device), ("direction", "tats", "a2c")),
    SamplerSpec("token_ppo", "learned", "token-level PPO + TATS scorer (per-token credit, exact inclusion probabilities)",
                lambda env, cfg, seed, device: cfg.token_ppo.build(env, seed, device, direction=cfg.direction,
                                                                   diversity=cfg.diversity),
                ("direction", "diversity", "token_ppo"), token_info=True, directional=True, diversity=True),
    SamplerSpec("reinforce", "learned", "REINFORCE on the clip reward (1 transformer block, exact K-of-N)",
                lambda env, cfg, seed, device: cfg.reinforce.build(env, "clip", None, seed, device),
                ("direction", "reinforce")),
    SamplerSpec("reinforce_token", "learned", "REINFORCE with exact token-level credit",
                lambda env, cfg, seed, device: cfg.reinforce.build(env, "token", cfg.direction, seed, device),
                ("direction", "reinforce"), token_info=True, directional=True),
    SamplerSpec("reinforce_adamae", "learned", "AdaMAE's rule: softmax sampling, -mean log p_i e_i over masked tokens "
                "(show-hard only)", lambda env, cfg, seed, device: cfg.reinforce.build(env, "adamae", cfg.direction, seed, device),
                ("direction", "reinforce"), token_info=True, directional=True, directions=("show_hard",)),
    SamplerSpec("sac_topk", "learned", "SAC on Box scores, top-K masked (TopKScoreVecAction)",
                lambda env, cfg, seed, device: cfg.sac.build(env, seed, device), ("direction", "sac"), distributed=False),
    *(SamplerSpec(name, "masker", f"fixed {name.replace('_', ' ')} masking", _fixed(name))
      for name in PLAIN_MASKERS),
    *(SamplerSpec(name, "masker", f"oracle composition masker {name} (reads foreground masks)", _fixed(name),
                  diagnostic=True) for name in COMPOSITION_MASKER_NAMES),
    SamplerSpec("scratch", "scratch", "no pre-training: the initial encoder straight to the evaluation"),
):
    register_sampler(_spec)


def learned_samplers() -> tuple[str, ...]:
    """Names of the RL samplers (what ``train_ppo.py --method`` accepts)."""
    return tuple(name for name, spec in SAMPLERS.items() if spec.learned)


def fixed_maskers() -> tuple[str, ...]:
    """Names of the fixed maskers (what ``--warmup-masker`` accepts)."""
    return tuple(name for name, spec in SAMPLERS.items() if spec.kind == "masker")


def default_matrix() -> tuple[str, ...]:
    """Every sampler but the diagnostic oracles: the benchmark's default ``--methods``."""
    return tuple(name for name, spec in SAMPLERS.items() if not spec.diagnostic)


def sampler_spec(name: str) -> SamplerSpec:
    """The registered :class:`SamplerSpec` of ``name`` (``KeyError`` listing the names otherwise)."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise KeyError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}") from None


def sampler_env_config(name: str, env: EnvConfig, cfg: SamplerConfig | None = None) -> EnvConfig:
    """The env config a run of sampler ``name`` needs: per-token info on for the learners that read it, and the
    clip reward's mode from the direction (``ValueError`` if ``env`` sets another mode explicitly)."""
    cfg = cfg or SamplerConfig()
    spec = sampler_spec(name)
    mode = REWARD_MODE[cfg.direction]
    if env.reward.mode is not None and env.reward.mode != mode and spec.learned:
        raise ValueError(f"--reward.mode {env.reward.mode} contradicts --direction {cfg.direction} (which gives the "
                         f"{mode} reward); set --direction only")
    if spec.learned and not spec.diversity and cfg.diversity not in (DiversityConfig(), recommended_diversity()):
        supported = ", ".join(n for n, s in SAMPLERS.items() if s.diversity)
        warnings.warn(f"--diversity.* options are read by {supported} only; {name} runs without them (its sampler "
                      "decides the whole mask from the raw error)")  # one location: Python shows it once
    signal = cfg.diversity.signal if spec.diversity else env.token_signal
    return dataclasses.replace(env, token_info=spec.token_info or env.token_info, token_signal=signal,
                               reward=dataclasses.replace(env.reward, mode=mode))


def build_sampler(name: str, env: VecEnv, cfg: SamplerConfig | None = None, seed: int = 0,
                  device: str | torch.device = "cpu") -> Sampler:
    """The sampler ``name`` on ``env`` with the hyperparameters of ``cfg`` (defaults when None).

    ``env`` must have been built with :func:`sampler_env_config` (token-level learners check that it
    reports per-token errors).
    """
    import torch

    spec = sampler_spec(name)
    if spec.build is None:
        raise ValueError(f"{name!r} has no sampler: it skips pre-training")
    return spec.build(env, cfg or SamplerConfig(), seed, torch.device(device))


def sampler_hyperparams(name: str, cfg: SamplerConfig | None = None) -> dict[str, Any]:
    """JSON-ready hyperparameters ``name`` reads from ``cfg`` (empty for fixed maskers): for fingerprints and logs."""
    cfg = cfg or SamplerConfig()
    values = {section: getattr(cfg, section) for section in sampler_spec(name).sections}
    return {section: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for section, v in values.items()}
