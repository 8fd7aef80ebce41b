"""An endless, seedable stream of clip batches for the environment."""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import RandomSampler

from tats_env.data import VideoClipDataset, make_dataloader


class ClipStream:
    """Batches of exactly ``batch_size`` clips from a dataset, reshuffled every epoch, forever.

    Seeding (:meth:`seed`) restarts the shuffle and the augmentation generator, so the same
    seed yields the same clips. A dataset smaller than the batch is sampled with replacement.
    ``skipped`` counts the bad videos the dataset stepped over so far (from every worker).
    """

    def __init__(self, dataset: VideoClipDataset, batch_size: int, num_workers: int = 0, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.skipped = 0
        self.epoch = 0
        self._iterator: Iterator[dict[str, Any]] | None = None
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Restart the stream from ``seed`` (shuffle order and augmentations)."""
        self._seed = int(seed)
        self.dataset.reseed(self._seed)
        sampler = None
        if len(self.dataset) < self.batch_size:
            g = torch.Generator().manual_seed(self._seed)
            sampler = RandomSampler(self.dataset, replacement=True, num_samples=self.batch_size * 64, generator=g)
        self.loader = make_dataloader(
            self.dataset, self.batch_size, shuffle=True, num_workers=self.num_workers, seed=self._seed,
            drop_last=True, persistent_workers=self.num_workers > 0, sampler=sampler,
        )
        self._iterator = None

    def next(self) -> dict[str, Any]:
        """The next batch: ``video`` ``(B, C, T, H, W)``, ``label``, optional ``foreground``, ..."""
        if self.loader is None:
            raise RuntimeError("this clip stream was closed")
        for _ in range(2):
            if self._iterator is None:
                self._iterator = iter(self.loader)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                self.epoch += 1
                continue
            self.skipped += int(batch.get("skipped", 0))
            return batch
        raise RuntimeError(f"the dataset yields no batch of {self.batch_size} clips (it has {len(self.dataset)} videos)")

    def close(self) -> None:
        """Stop the worker processes (dropping the iterators shuts persistent workers down)."""
        self._iterator = None
        self.loader = None  # type: ignore[assignment]
