"""tats-env: token masking for masked video modelling, framed as a Gymnasium environment."""

from tats_env.config import MAEConfig, PRESETS, VideoSpec, get_preset

__all__ = ["MAEConfig", "PRESETS", "VideoSpec", "get_preset"]
__version__ = "0.1.0"
