"""VideoMAE: ViT blocks, encoder/decoder, patchify + loss, and fixed token maskers.

The names below are imported on first use (PEP 562), so :mod:`tats_env.mae.masker_names` (the maskers'
names, for the command lines' ``--help``) is read without importing torch and timm.
"""

import importlib
from typing import Any

_MODULES = {
    "layers": ("Attention", "Block", "PatchEmbed3d", "sincos_position_table"),
    "masking": ("MASKERS", "get_masker", "motion_energy_mask", "random_mask", "running_cell_mask", "token_foreground",
                "token_motion_energy", "topk_mask", "tube_mask"),
    "model": ("FeatureEncoder", "MAEOutput", "VideoEncoder", "VideoMAE", "check_mask"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"tats_env.mae.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tats_env.mae' has no attribute {name!r}")


__all__ = [
    "Attention", "Block", "PatchEmbed3d", "sincos_position_table",
    "MASKERS", "get_masker", "motion_energy_mask", "random_mask", "running_cell_mask",
    "token_foreground", "token_motion_energy", "topk_mask", "tube_mask",
    "FeatureEncoder", "MAEOutput", "VideoEncoder", "VideoMAE", "check_mask",
]
