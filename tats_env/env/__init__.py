"""The masking environment: co-training engine, gymnasium.Env, batched gymnasium VectorEnv and SB3 VecEnv, wrappers, rewards."""

from tats_env.env.core import EnvConfig, MaskingCore, env_config_from_options
from tats_env.env.engine import CoTrainingEngine, EngineConfig, UpdateResult
from tats_env.env.masking_env import VideoMaskingEnv
from tats_env.env.rewards import RewardConfig, RewardFunction
from tats_env.env.spaces import BatchedKOfNMask, KOfNMask, action_to_mask, repair_masks, scores_to_mask
from tats_env.env.vec_env import VideoMaskingVecEnv, make_vec_env, masking_core
from tats_env.env.vector_env import VideoMaskingVectorEnv
from tats_env.env.wrappers import TopKScoreAction, TopKScoreVecAction, score_actions

__all__ = [
    "EnvConfig", "MaskingCore", "env_config_from_options", "CoTrainingEngine", "EngineConfig", "UpdateResult", "VideoMaskingEnv",
    "RewardConfig", "RewardFunction", "BatchedKOfNMask", "KOfNMask", "action_to_mask", "repair_masks", "scores_to_mask",
    "VideoMaskingVecEnv", "VideoMaskingVectorEnv", "make_vec_env", "masking_core", "TopKScoreAction", "TopKScoreVecAction", "score_actions",
]
