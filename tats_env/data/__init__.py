"""The video data layer: list files, clip sampling, transforms, datasets and the synthetic data.

``build_dataset(data, spec, split)`` is the usual entry point; ``data`` is ``"synthetic"``, a
``path label`` list file or a folder of videos.
"""

from __future__ import annotations

import importlib
from typing import Any

from tats_env.data.dataset import (
    BadVideoError,
    VideoClipDataset,
    build_dataset,
    collate_clips,
    make_dataloader,
    seed_worker,
)
from tats_env.data.listfile import (
    FOREGROUND_SUFFIX,
    VIDEO_EXTENSIONS,
    VideoRecord,
    folder_class_names,
    foreground_path,
    list_video_folder,
    read_list_file,
    resolve_records,
)
from tats_env.data.sampling import (
    TooShortError,
    k400_indices,
    multi_view_indices,
    sample_indices,
    ssv2_indices,
)
from tats_env.data.transforms import (
    CropBox,
    EvalTransform,
    TrainTransform,
    apply_crop,
    denormalize,
    eval_crop_boxes,
    multiscale_crop_box,
    normalize,
)

# The synthetic generator is imported lazily so that ``python -m tats_env.data.synthetic``
# does not import its own module twice (runpy warns about that).
_LAZY = {
    "SyntheticConfig": "tats_env.data.synthetic",
    "ensure_synthetic_dataset": "tats_env.data.synthetic",
    "generate_synthetic_dataset": "tats_env.data.synthetic",
    "default_root": "tats_env.data.synthetic",
    "write_mp4": "tats_env.data.synthetic",
    "class_names": "tats_env.data.synthetic",
    "MOTIONS": "tats_env.data.render",
    "render_clip": "tats_env.data.render",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tats_env.data' has no attribute {name!r}")


__all__ = [
    "BadVideoError", "CropBox", "EvalTransform", "FOREGROUND_SUFFIX", "MOTIONS", "SyntheticConfig",
    "TooShortError", "TrainTransform", "VIDEO_EXTENSIONS", "VideoClipDataset", "VideoRecord",
    "apply_crop", "build_dataset", "class_names", "collate_clips", "default_root", "denormalize",
    "ensure_synthetic_dataset", "eval_crop_boxes", "folder_class_names", "foreground_path",
    "generate_synthetic_dataset", "k400_indices", "list_video_folder", "make_dataloader",
    "multi_view_indices", "multiscale_crop_box", "normalize", "read_list_file", "render_clip",
    "resolve_records", "sample_indices", "seed_worker", "ssv2_indices", "write_mp4",
]
