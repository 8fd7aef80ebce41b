"""The one sampler registry: every masking sampler, learned or fixed, is built here.

The main job (``experiments/train_ppo.py --method ...``, including its fixed-masker warm-up)
and the benchmark (``experiments/benchmark_algos.py --methods ...``) build samplers only through
:func:`build_sampler`, with hyperparameters from one :class:`agents.hyperparams.SamplerConfig`.
Every sampler has ``learn(total_clips, callback=...)`` accepting SB3 callbacks and
``predict(obs, deterministic=...)``:

* SB3 algorithms: PPO / A2C with :class:`agents.policy.TATSPolicy`, token-level PPO
  (:class:`agents.token_ppo.TokenPPO`, a ``PPO`` subclass), SAC on scores through
  :class:`tats_env.TopKScoreVecAction`;
* :class:`agents.reinforce.Reinforce` (clip, exact token-level and AdaMAE rules) and
  :class:`agents.fixed_masker.FixedMaskerAgent`, on the shared :class:`agents.loop.StepwiseAgent` loop.

The token-level learners read the one ``SamplerConfig.direction``.

To add a sampler: write its builder ``(env, SamplerConfig, seed, device) -> agent``, add its
hyperparameters to :class:`~agents.hyperparams.SamplerConfig` if it has any, and register a
:class:`SamplerSpec` in :data:`SAMPLERS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.vec_env import VecEnv

from agents.fixed_masker import FixedMaskerAgent
from agents.hyperparams import SamplerConfig
from agents.policy import TATSPolicy
from agents.reinforce import Reinforce, RuleKind
from agents.token_ppo import TokenPPO
from tats_env.env import TopKScoreVecAction, masking_core
from tats_env.mae.composition import COMPOSITION_MASKERS
from tats_env.mae.masking import MASKERS

__all__ = ["SamplerKind", "SamplerSpec", "SAMPLERS", "LEARNED_SAMPLERS", "FIXED_MASKERS", "DEFAULT_MATRIX", "build_sampler",
           "sampler_hyperparams"]

SamplerKind = Literal["sb3", "stepwise", "masker", "scratch"]
Builder = Callable[[VecEnv, SamplerConfig, int, torch.device], Any]


@dataclass(frozen=True)
class SamplerSpec:
    """One registered sampler."""

    name: str
    """Name on the command line and in tables."""
    kind: SamplerKind
    """``sb3`` (an SB3 algorithm), ``stepwise`` (:class:`agents.loop.StepwiseAgent` learner), ``masker`` (fixed
    masks, no learning) or ``scratch`` (no pre-training at all: the benchmark's reference)."""
    description: str
    """One line for reports and ``--help``."""
    build: Builder | None = None
    """``(env, hyperparameters, seed, device) -> agent``; None for ``scratch``."""
    sections: tuple[str, ...] = ()
    """The :class:`SamplerConfig` sections this sampler reads (its hyperparameters, for fingerprints)."""
    diagnostic: bool = False
    """An oracle that reads the clips' foreground masks (:mod:`tats_env.mae.composition`): for diagnosis runs,
    not in the benchmark's default matrix."""

    @property
    def learned(self) -> bool:
        """True for RL samplers (they start after the fixed-masker warm-up)."""
        return self.kind in ("sb3", "stepwise")


def _tats_policy_kwargs(env: VecEnv, cfg: SamplerConfig, ent_coef: float) -> dict[str, Any]:
    """TATSPolicy kwargs: the network, the env's token grid, and no entropy graph when it has no weight."""
    return {"tats_config": cfg.tats, "grid": masking_core(env).spec.grid, "entropy_grad": ent_coef > 0}


def _ppo_tats(env: VecEnv, cfg: SamplerConfig, seed: int, device: torch.device) -> PPO:
    kwargs = cfg.ppo.sb3_kwargs(env.num_envs)
    return PPO(TATSPolicy, env, seed=seed, device=device,
               policy_kwargs=_tats_policy_kwargs(env, cfg, cfg.ppo.ent_coef), **kwargs)


def _a2c_tats(env: VecEnv, cfg: SamplerConfig, seed: int, device: torch.device) -> A2C:
    kwargs = cfg.a2c.sb3_kwargs()
    return A2C(TATSPolicy, env, seed=seed, device=device,
               policy_kwargs=_tats_policy_kwargs(env, cfg, cfg.a2c.ent_coef), **kwargs)


def _sac_topk(env: VecEnv, cfg: SamplerConfig, seed: int, device: torch.device) -> SAC:
    return SAC("MlpPolicy", TopKScoreVecAction(env), seed=seed, device=device, **cfg.sac.sb3_kwargs())


def _token_ppo(env: VecEnv, cfg: SamplerConfig, seed: int, device: torch.device) -> TokenPPO:
    return cfg.token_ppo.build(env, seed=seed, device=device, direction=cfg.direction)  # grid: the env's


def _reinforce(rule: RuleKind) -> Builder:
    def build(env: VecEnv, cfg: SamplerConfig, seed: int, device: torch.device) -> Reinforce:
        direction = None if rule == "clip" else cfg.direction  # the clip rule follows the env's reward
        return Reinforce(env, seed=seed, device=device, rule=rule, direction=direction,
                         **cfg.reinforce.agent_kwargs())
    return build


def _fixed(masker: str) -> Builder:
    def build(env: VecEnv, cfg: SamplerConfig, seed: int, device: torch.device) -> FixedMaskerAgent:
        return FixedMaskerAgent(env, masker, seed)
    return build


SAMPLERS: dict[str, SamplerSpec] = {
    "ppo_tats": SamplerSpec("ppo_tats", "sb3", "PPO + TATSPolicy (trajectory attention, exact K-of-N)", _ppo_tats,
                            ("tats", "ppo")),
    "a2c_tats": SamplerSpec("a2c_tats", "sb3", "A2C + TATSPolicy", _a2c_tats, ("tats", "a2c")),
    "token_ppo": SamplerSpec("token_ppo", "sb3", "token-level PPO + TATS scorer (per-token credit, exact inclusion "
                             "probabilities)", _token_ppo, ("direction", "token_ppo")),
    "reinforce": SamplerSpec("reinforce", "stepwise", "REINFORCE on the clip reward (1 transformer block, exact "
                             "K-of-N)", _reinforce("clip"), ("reinforce",)),
    "reinforce_token": SamplerSpec("reinforce_token", "stepwise", "REINFORCE with exact token-level credit",
                                   _reinforce("token"), ("direction", "reinforce")),
    "reinforce_adamae": SamplerSpec("reinforce_adamae", "stepwise", "AdaMAE's rule: softmax sampling, -mean log p_i "
                                    "e_i over masked tokens (show-hard only)", _reinforce("adamae"),
                                    ("direction", "reinforce")),
    "sac_topk": SamplerSpec("sac_topk", "sb3", "SAC on Box scores, top-K masked (TopKScoreVecAction)", _sac_topk,
                            ("sac",)),
    **{name: SamplerSpec(name, "masker", f"fixed {name.replace('_', ' ')} masking", _fixed(name))
       for name in MASKERS if name not in COMPOSITION_MASKERS},
    **{name: SamplerSpec(name, "masker", f"oracle composition masker {name} (reads foreground masks)", _fixed(name),
                         diagnostic=True) for name in COMPOSITION_MASKERS},
    "scratch": SamplerSpec("scratch", "scratch", "no pre-training: the initial encoder straight to the evaluation"),
}
"""Every sampler by name, in table order."""

LEARNED_SAMPLERS: tuple[str, ...] = tuple(name for name, spec in SAMPLERS.items() if spec.learned)
"""Names of the RL samplers (what ``train_ppo.py --method`` accepts)."""
FIXED_MASKERS: tuple[str, ...] = tuple(name for name, spec in SAMPLERS.items() if spec.kind == "masker")
"""Names of the fixed maskers (what ``--warmup-masker`` accepts)."""
DEFAULT_MATRIX: tuple[str, ...] = tuple(name for name, spec in SAMPLERS.items() if not spec.diagnostic)
"""Every sampler but the diagnostic oracles: the benchmark's default ``--methods``."""


def _spec(name: str) -> SamplerSpec:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise KeyError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}") from None


def build_sampler(name: str, env: VecEnv, cfg: SamplerConfig | None = None, seed: int = 0,
                  device: str | torch.device = "cpu") -> Any:
    """The sampler ``name`` on ``env`` with the hyperparameters of ``cfg`` (defaults when None)."""
    spec = _spec(name)
    if spec.build is None:
        raise ValueError(f"{name!r} has no agent: it skips pre-training")
    return spec.build(env, cfg or SamplerConfig(), seed, torch.device(device))


def sampler_hyperparams(name: str, cfg: SamplerConfig | None = None) -> dict[str, Any]:
    """JSON-ready hyperparameters ``name`` reads from ``cfg`` (empty for fixed maskers): for fingerprints and logs."""
    cfg = cfg or SamplerConfig()
    values = {section: getattr(cfg, section) for section in _spec(name).sections}
    return {section: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for section, v in values.items()}
