"""The masking environment: co-training engine, gymnasium.Env, batched gymnasium VectorEnv and SB3 VecEnv, wrappers, rewards.

The configuration (:mod:`tats_env.env.config`) imports no torch; everything else is imported on first
use (PEP 562), so ``from tats_env.env import EnvConfig`` (the command lines' ``--help``) stays light.
"""

import importlib
from typing import Any

from tats_env.env.config import EngineConfig, EnvConfig, RewardConfig, env_config_from_options

_MODULES = {
    "core": ("MaskingCore",),
    "engine": ("CoTrainingEngine", "UpdateResult"),
    "masking_env": ("VideoMaskingEnv",),
    "rewards": ("RewardFunction",),
    "spaces": ("BatchedKOfNMask", "KOfNMask", "action_to_mask", "repair_masks", "scores_to_mask"),
    "vec_env": ("VideoMaskingVecEnv", "make_vec_env", "masking_core"),
    "vector_env": ("VideoMaskingVectorEnv",),
    "wrappers": ("TopKScoreAction", "TopKScoreVecAction", "score_actions"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"tats_env.env.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tats_env.env' has no attribute {name!r}")


__all__ = [
    "EnvConfig", "MaskingCore", "env_config_from_options", "CoTrainingEngine", "EngineConfig", "UpdateResult", "VideoMaskingEnv",
    "RewardConfig", "RewardFunction", "BatchedKOfNMask", "KOfNMask", "action_to_mask", "repair_masks", "scores_to_mask",
    "VideoMaskingVecEnv", "VideoMaskingVectorEnv", "make_vec_env", "masking_core", "TopKScoreAction", "TopKScoreVecAction", "score_actions",
]
