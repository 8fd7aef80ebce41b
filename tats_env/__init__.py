"""tats-env: token masking for masked video modelling, framed as a Gymnasium environment.

``gym.make("TATS/VideoMasking-v0", data="synthetic", preset="tiny", mask_ratio=0.9)`` gives one
clip per episode; ``gym.make_vec("TATS/VideoMasking-v0", num_envs=8, ...)`` the batched gymnasium
``VectorEnv`` and :func:`make_vec_env` the batched SB3 ``VecEnv`` (both: one MAE shared by all
sub-envs, one MAE update per step).
"""

import gymnasium as _gym

from tats_env.config import MAEConfig, PRESETS, VideoSpec, get_preset
from tats_env.lazy import lazy_attributes

# Everything else is imported on first use (PEP 562), so that the command lines' --help and the config
# modules do not pay for torch: ``tats_env.VideoMaskingEnv`` imports tats_env.env then.
_LAZY = {
    **{name: "tats_env.env" for name in (
        "CoTrainingEngine", "EngineConfig", "EnvConfig", "BatchedKOfNMask", "KOfNMask", "RewardConfig",
        "TopKScoreAction", "TopKScoreVecAction", "VideoMaskingEnv", "VideoMaskingVecEnv", "VideoMaskingVectorEnv",
        "make_vec_env", "score_actions")},
    "export_encoder": "tats_env.export", "load_encoder": "tats_env.export", "FeatureEncoder": "tats_env.mae",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


ENV_ID = "TATS/VideoMasking-v0"

if ENV_ID not in _gym.registry:
    _gym.register(id=ENV_ID, entry_point="tats_env.env.masking_env:VideoMaskingEnv",
                  vector_entry_point="tats_env.env.vector_env:VideoMaskingVectorEnv", nondeterministic=True)

__all__ = [
    "ENV_ID", "MAEConfig", "PRESETS", "VideoSpec", "get_preset", "CoTrainingEngine", "EngineConfig",
    "EnvConfig", "BatchedKOfNMask", "KOfNMask", "RewardConfig", "TopKScoreAction", "TopKScoreVecAction", "VideoMaskingEnv",
    "VideoMaskingVecEnv", "VideoMaskingVectorEnv",
    "make_vec_env", "score_actions", "FeatureEncoder", "export_encoder", "load_encoder",
]
__version__ = "0.1.0"
