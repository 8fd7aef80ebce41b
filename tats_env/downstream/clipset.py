"""Labelled clips held in memory as uint8, for evaluations that pass over the same clips many times.

The CPU evaluation protocol (:mod:`tats_env.downstream.protocol`) extracts features, fits probes
and trains several small classifiers on the same train/val clips. Decoding the videos once and
keeping ``(N, C, T, H, W)`` uint8 clips (0.2 MB per 16x64x64 clip) makes every later pass a
tensor slice; normalisation happens per batch.

Clips are cut exactly as evaluation cuts them (:class:`~tats_env.data.VideoClipDataset` with
``train=False``): centred temporal windows (``temporal_views`` of them per video), short-side
resize and centre crop to the spec's size. Each view becomes its own clip with the video's label
and ``video_ids`` records which video it came from.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from tats_env.config import VideoSpec
from tats_env.data import build_dataset, make_dataloader
from tats_env.data.listfile import VideoRecord

__all__ = ["ClipSet", "load_clipset"]


@dataclass
class ClipSet:
    """Clips ``videos`` uint8 ``(N, C, T, H, W)`` (0-255), their ``labels`` ``(N,)`` and normalisation."""

    videos: Tensor
    """uint8 ``(N, C, T, H, W)``."""
    labels: Tensor
    """int64 ``(N,)``."""
    mean: tuple[float, ...]
    """Per-channel mean on the 0-1 scale (the encoder's training normalisation)."""
    std: tuple[float, ...]
    """Per-channel standard deviation on the 0-1 scale."""
    video_ids: Tensor | None = None
    """int64 ``(N,)``: index of the source video of each clip (views of one video share it)."""

    def __post_init__(self) -> None:
        if self.videos.dtype != torch.uint8 or self.videos.ndim != 5:
            raise ValueError(f"videos must be uint8 (N, C, T, H, W), got {self.videos.dtype} {tuple(self.videos.shape)}")
        if self.labels.shape != (len(self.videos),):
            raise ValueError(f"labels must have shape ({len(self.videos)},), got {tuple(self.labels.shape)}")
        if len(self.mean) != self.videos.shape[1] or len(self.std) != self.videos.shape[1]:
            raise ValueError(f"mean/std need {self.videos.shape[1]} values, got {self.mean} / {self.std}")
        if self.video_ids is None:
            self.video_ids = torch.arange(len(self.videos))

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def num_classes(self) -> int:
        """Largest label + 1."""
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def num_videos(self) -> int:
        """Distinct source videos."""
        assert self.video_ids is not None
        return int(torch.unique(self.video_ids).numel())

    def normalized(self, index: Tensor | slice) -> Tensor:
        """float32 clips ``(B, C, T, H, W)`` normalised with the set's mean/std."""
        x = self.videos[index].float()
        shape = (1, -1, 1, 1, 1)
        mean = torch.tensor(self.mean).view(shape) * 255.0
        std = torch.tensor(self.std).view(shape) * 255.0
        return (x - mean) / std

    def batches(self, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = False,
                ) -> Iterator[tuple[Tensor, Tensor]]:
        """``(normalised clips, labels)`` batches; shuffled when a ``generator`` is given."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            index = order[start:start + batch_size]
            yield self.normalized(index), self.labels[index]

    def subset(self, index: Tensor) -> "ClipSet":
        """The clips at ``index`` (a view where torch allows it)."""
        assert self.video_ids is not None
        return ClipSet(self.videos[index], self.labels[index], self.mean, self.std, self.video_ids[index])


def _first_per_class(records: list[VideoRecord], limit: int) -> list[VideoRecord]:
    """The first ``limit`` records of every label, in list order."""
    seen: Counter[int] = Counter()
    kept = []
    for record in records:
        if seen[record.label] < limit:
            seen[record.label] += 1
            kept.append(record)
    return kept


def _to_uint8(video: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Undo the dataset's normalisation: float ``(..., C, T, H, W)`` -> uint8 0-255."""
    shape = (-1, 1, 1, 1)
    pixels = video * (torch.tensor(std).view(shape) * 255.0) + torch.tensor(mean).view(shape) * 255.0
    return pixels.round_().clamp_(0, 255).to(torch.uint8)


def load_clipset(
    data: str | os.PathLike[str],
    spec: VideoSpec,
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    temporal_views: int = 1,
    max_videos: int | None = None,
    max_per_class: int | None = None,
    num_workers: int = 0,
    progress: bool = False,
) -> ClipSet:
    """Decode every video of ``data`` (``"synthetic"``, a list file or a folder) into a :class:`ClipSet`.

    ``split`` picks ``<split>.txt`` for the synthetic data and folders holding list files;
    ``max_per_class`` keeps the first videos of each class (quick runs that still see every class, whatever
    the list's order) and then ``max_videos`` the first videos of what is left.
    """
    if temporal_views < 1:
        raise ValueError(f"temporal_views must be >= 1, got {temporal_views}")
    for name, value in (("max_videos", max_videos), ("max_per_class", max_per_class)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    dataset = build_dataset(data, spec, split, train=False, root=root, temporal_views=temporal_views)
    if max_per_class is not None:
        dataset.records = _first_per_class(dataset.records, max_per_class)
    if max_videos is not None:
        dataset.records = dataset.records[:max_videos]
    loader = make_dataloader(dataset, batch_size=16, shuffle=False, num_workers=num_workers)
    videos, labels, ids = [], [], []
    for batch in tqdm(loader, desc=f"decode {split}", disable=not progress, leave=False):
        videos.append(_to_uint8(batch["video"], spec.mean, spec.std))
        labels.append(batch["label"])
        ids.append(batch["index"])
    if sum(int(b.numel()) for b in labels) == 0:
        raise ValueError(f"{data} ({split}) gave no clips")
    return ClipSet(torch.cat(videos), torch.cat(labels).long(), tuple(spec.mean), tuple(spec.std), torch.cat(ids))
