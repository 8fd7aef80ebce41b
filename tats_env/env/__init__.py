"""The masking environment: co-training engine, gymnasium.Env, batched SB3 VecEnv, wrappers, rewards."""

from tats_env.env.core import EnvConfig, MaskingCore
from tats_env.env.engine import CoTrainingEngine, EngineConfig, UpdateResult
from tats_env.env.masking_env import VideoMaskingEnv
from tats_env.env.rewards import RewardConfig, RewardFunction
from tats_env.env.spaces import KOfNMask, action_to_mask, repair_masks, scores_to_mask
from tats_env.env.vec_env import VideoMaskingVecEnv, make_vec_env, masking_core
from tats_env.env.wrappers import TopKScoreAction, TopKScoreVecAction, score_actions

__all__ = [
    "EnvConfig", "MaskingCore", "CoTrainingEngine", "EngineConfig", "UpdateResult", "VideoMaskingEnv",
    "RewardConfig", "RewardFunction", "KOfNMask", "action_to_mask", "repair_masks", "scores_to_mask",
    "VideoMaskingVecEnv", "make_vec_env", "masking_core", "TopKScoreAction", "TopKScoreVecAction", "score_actions",
]
