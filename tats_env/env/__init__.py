"""The masking environment: co-training engine, gymnasium.Env, batched gymnasium VectorEnv and SB3 VecEnv, wrappers, rewards.

The configuration (:mod:`tats_env.env.config`) imports no torch; everything else is imported on first
use (PEP 562), so ``from tats_env.env import EnvConfig`` (the command lines' ``--help``) stays light.
"""

from tats_env.lazy import lazy_attributes, lazy_table

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
_LAZY = lazy_table(_MODULES, prefix="tats_env.env.")
__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "EnvConfig", "MaskingCore", "env_config_from_options", "CoTrainingEngine", "EngineConfig", "UpdateResult", "VideoMaskingEnv",
    "RewardConfig", "RewardFunction", "BatchedKOfNMask", "KOfNMask", "action_to_mask", "repair_masks", "scores_to_mask",
    "VideoMaskingVecEnv", "VideoMaskingVectorEnv", "make_vec_env", "masking_core", "TopKScoreAction", "TopKScoreVecAction", "score_actions",
]
