"""VideoMAE: ViT blocks, encoder/decoder, patchify + loss, and fixed token maskers."""

from tats_env.mae.layers import Attention, Block, PatchEmbed3d, sincos_position_table
from tats_env.mae.masking import (
    MASKERS,
    get_masker,
    motion_energy_mask,
    random_mask,
    running_cell_mask,
    token_foreground,
    token_motion_energy,
    topk_mask,
    tube_mask,
)
from tats_env.mae.model import FeatureEncoder, MAEOutput, VideoEncoder, VideoMAE, check_mask

__all__ = [
    "Attention", "Block", "PatchEmbed3d", "sincos_position_table",
    "MASKERS", "get_masker", "motion_energy_mask", "random_mask", "running_cell_mask",
    "token_foreground", "token_motion_energy", "topk_mask", "tube_mask",
    "FeatureEncoder", "MAEOutput", "VideoEncoder", "VideoMAE", "check_mask",
]
