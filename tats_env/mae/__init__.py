"""VideoMAE: ViT blocks, encoder/decoder, patchify + loss, and fixed token maskers.

The names below are imported on first use (PEP 562), so :mod:`tats_env.mae.masker_names` (the maskers'
names, for the command lines' ``--help``) is read without importing torch and timm.
"""

from tats_env.lazy import lazy_attributes, lazy_table

_MODULES = {
    "layers": ("Attention", "Block", "PatchEmbed3d", "sincos_position_table"),
    "masking": ("MASKERS", "get_masker", "motion_energy_mask", "random_mask", "running_cell_mask", "token_foreground",
                "token_motion_energy", "topk_mask", "tube_mask"),
    "model": ("FeatureEncoder", "MAEOutput", "VideoEncoder", "VideoMAE", "check_mask"),
}
_LAZY = lazy_table(_MODULES, prefix="tats_env.mae.")
__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "Attention", "Block", "PatchEmbed3d", "sincos_position_table",
    "MASKERS", "get_masker", "motion_energy_mask", "random_mask", "running_cell_mask",
    "token_foreground", "token_motion_energy", "topk_mask", "tube_mask",
    "FeatureEncoder", "MAEOutput", "VideoEncoder", "VideoMAE", "check_mask",
]
