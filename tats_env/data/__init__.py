"""The video data layer: list files, clip sampling, transforms, datasets and the synthetic data.

``build_dataset(data, spec, split)`` is the usual entry point; ``data`` is ``"synthetic"``, a
``path label`` list file or a folder of videos. ``check_data_source(data, split)`` checks the same
source up front (no decoding) and raises a one-line ``DataSourceError``.

The torch-, decord- and PyAV-based parts are imported on first use, so the list-file and
sampling helpers (and ``python -m tats_env.data.synthetic``) start without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tats_env.data.listfile import (
    FOREGROUND_SUFFIX,
    MAX_LABEL,
    VIDEO_EXTENSIONS,
    DataSourceError,
    VideoRecord,
    folder_class_names,
    foreground_path,
    list_video_folder,
    read_list_file,
    resolve_records,
)
from tats_env.data.source import check_data_source, data_source
from tats_env.lazy import lazy_attributes
from tats_env.data.sampling import (
    TooShortError,
    k400_indices,
    multi_view_indices,
    sample_indices,
    ssv2_indices,
)

if TYPE_CHECKING:
    from tats_env.data.dataset import (
        BadVideoError,
        NoUsableVideoError,
        VideoClipDataset,
        build_dataset,
        collate_clips,
        make_dataloader,
        seed_worker,
    )
    from tats_env.data.render import MOTIONS, render_clip
    from tats_env.data.synthetic import (
        SyntheticConfig,
        class_names,
        default_root,
        ensure_synthetic_dataset,
        generate_synthetic_dataset,
        write_mp4,
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

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ["BadVideoError", "NoUsableVideoError", "VideoClipDataset", "build_dataset", "collate_clips",
         "make_dataloader", "seed_worker"],
        "tats_env.data.dataset",
    ),
    **dict.fromkeys(
        ["CropBox", "EvalTransform", "TrainTransform", "apply_crop", "denormalize", "eval_crop_boxes",
         "multiscale_crop_box", "normalize"],
        "tats_env.data.transforms",
    ),
    **dict.fromkeys(
        ["SyntheticConfig", "class_names", "default_root", "ensure_synthetic_dataset",
         "generate_synthetic_dataset", "write_mp4"],
        "tats_env.data.synthetic",
    ),
    **dict.fromkeys(["MOTIONS", "render_clip"], "tats_env.data.render"),
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = sorted([
    "DataSourceError", "FOREGROUND_SUFFIX", "MAX_LABEL", "TooShortError", "VIDEO_EXTENSIONS", "VideoRecord",
    "check_data_source", "data_source", "folder_class_names",
    "foreground_path", "k400_indices", "list_video_folder", "multi_view_indices", "read_list_file",
    "resolve_records", "sample_indices", "ssv2_indices", *_LAZY,
])
