"""The samplers the benchmark compares: RL algorithms (from YAML hyperparameters) and fixed maskers.

Every method is built into an object with ``learn(total_clips, callback=...)`` that accepts
stable-baselines3 callbacks: SB3's PPO / A2C (with :class:`agents.TATSPolicy`) and SAC (through
:class:`tats_env.TopKScoreAction`), :class:`agents.reinforce.Reinforce`, and
:class:`FixedMaskerAgent`, which trains the env's MAE with a fixed masker's masks.

Hyperparameters live in YAML files in the style of rl-baselines3-zoo, one per RL method
(``<algos_dir>/<method>.yaml``), keyed by the env id::

    TATS/VideoMasking-v0:
      policy: agents:TATSPolicy      # "module:attribute" strings are imported
      learning_rate: 3.0e-4
      policy_kwargs:
        tats_config: {dim: 64, num_heads: 2}

Keys are constructor keyword arguments of the algorithm. The env, the seed, the device and the
budget (clips, envs) are set by the benchmark, identically for every method, so YAML files may
not set them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from gymnasium import spaces
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from agents.extractors import TokenProjection
from agents.fixed_masker import FixedMaskerAgent
from agents.reinforce import Reinforce
from agents.tats_network import TATSConfig
from tats_env import ENV_ID, TopKScoreAction
from tats_env.env import VideoMaskingVecEnv
from tats_env.mae.masking import MASKERS, get_masker

__all__ = [
    "MethodSpec", "METHODS", "FixedMaskerAgent", "TokenProjection", "default_algos_dir", "load_hyperparams",
    "build_agent",
]

MethodKind = Literal["sb3", "reinforce", "masker", "scratch"]


@dataclass(frozen=True)
class MethodSpec:
    """One benchmarked sampler."""

    name: str
    """Method name used on the command line and in the tables."""
    kind: MethodKind
    """``sb3`` (an SB3 algorithm), ``reinforce`` (:class:`Reinforce`), ``masker`` (a fixed masker) or
    ``scratch`` (no pre-training at all: the reference for what pre-training adds)."""
    description: str
    """One line for the report."""
    algo: type | None = None
    """SB3 algorithm class (``sb3`` methods only)."""
    score_actions: bool = False
    """Drive the env through :class:`tats_env.TopKScoreAction` (continuous-action algorithms)."""

    @property
    def learned(self) -> bool:
        """True for RL samplers (they start after the random-mask warm-up)."""
        return self.kind in ("sb3", "reinforce")


METHODS: dict[str, MethodSpec] = {
    "ppo_tats": MethodSpec("ppo_tats", "sb3", "PPO + TATSPolicy (trajectory attention, exact K-of-N)", PPO),
    "a2c_tats": MethodSpec("a2c_tats", "sb3", "A2C + TATSPolicy", A2C),
    "reinforce": MethodSpec("reinforce", "reinforce", "AdaMAE-style REINFORCE (1 transformer block, exact K-of-N)"),
    "sac_topk": MethodSpec("sac_topk", "sb3", "SAC on Box scores, top-K masked (TopKScoreAction)", SAC,
                           score_actions=True),
    **{name: MethodSpec(name, "masker", f"fixed {name.replace('_', ' ')} masking") for name in MASKERS},
    "scratch": MethodSpec("scratch", "scratch", "no pre-training: the initial encoder straight to probe / fine-tune"),
}

# Set by the benchmark for every method alike; a YAML file must not change them.
_RESERVED_KEYS = {"env", "seed", "device", "n_timesteps", "n_envs", "total_timesteps", "verbose"}


def default_algos_dir() -> Path:
    """``experiments/configs/algos`` of this checkout (the package is installed in editable mode)."""
    return Path(__file__).resolve().parents[1] / "experiments" / "configs" / "algos"


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path!r} ('module:attribute'): {exc}") from None


def _resolve(value: Any) -> Any:
    """Import ``"module:attribute"`` strings, recursively through lists and dicts."""
    if isinstance(value, str) and ":" in value and " " not in value:
        return _import(value)
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def load_hyperparams(method: str, algos_dir: str | Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(raw, resolved)`` constructor kwargs of an RL method from ``<algos_dir>/<method>.yaml``.

    ``raw`` is the YAML mapping as written (JSON-ready, for fingerprints); ``resolved`` has the
    ``"module:attribute"`` strings imported. Fixed maskers have no hyperparameters (``{}, {}``).
    """
    spec = METHODS.get(method)
    if spec is None:
        raise KeyError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
    if not spec.learned:
        return {}, {}
    folder = Path(algos_dir) if algos_dir is not None else default_algos_dir()
    path = folder / f"{method}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no hyperparameters for {method!r}: {path} is missing (set --algos-dir)")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict) or ENV_ID not in loaded or not isinstance(loaded[ENV_ID], dict):
        raise ValueError(f"{path}: expected a mapping under the env id {ENV_ID!r} (rl-baselines3-zoo style)")
    raw = dict(loaded[ENV_ID])
    reserved = sorted(_RESERVED_KEYS & set(raw))
    if reserved:
        raise ValueError(f"{path}: {reserved} are set by the benchmark (same for every method); remove them")
    return raw, _resolve(raw)


def build_agent(method: str, env: VideoMaskingVecEnv, hyperparams: dict[str, Any], seed: int,
                device: str | torch.device) -> Any:
    """The agent of ``method`` on ``env`` with resolved ``hyperparams`` (see :func:`load_hyperparams`)."""
    spec = METHODS[method]
    if spec.kind == "scratch":
        raise ValueError("'scratch' has no agent: it skips pre-training")
    if spec.kind == "masker":
        return FixedMaskerAgent(env, method, seed)
    if spec.kind == "reinforce":
        return Reinforce(env, seed=seed, device=device, **hyperparams)
    assert spec.algo is not None
    kwargs = dict(hyperparams)
    policy = kwargs.pop("policy", None)
    if policy is None:
        raise ValueError(f"{method}: the YAML hyperparameters need a 'policy' (e.g. agents:TATSPolicy or MlpPolicy)")
    policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
    if isinstance(policy_kwargs.get("tats_config"), dict):
        policy_kwargs["tats_config"] = TATSConfig(**policy_kwargs["tats_config"])
    if isinstance(policy, type) and policy.__name__ == "TATSPolicy":
        policy_kwargs.setdefault("grid", env.core.spec.grid)
    target_env = TopKScoreAction(env) if spec.score_actions else env
    return spec.algo(policy, target_env, seed=seed, device=device, policy_kwargs=policy_kwargs, **kwargs)
