"""An endless, seedable stream of clip batches for the environment, prefetched in the background."""

from __future__ import annotations

import contextlib
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterator

import torch
from torch.utils.data import RandomSampler

from tats_env.data import VideoClipDataset, make_dataloader


class ClipStream:
    """Batches of exactly ``batch_size`` clips from a dataset, reshuffled every epoch, forever.

    Seeding (:meth:`seed`) restarts the shuffle and the augmentation generator, so the same
    seed yields the same clips. A dataset smaller than the batch is sampled with replacement.
    ``bad_videos`` holds every distinct bad video the dataset stepped over so far, from every
    worker (path -> reason), and ``skipped`` counts them; each is warned about once, here (the
    dataset's own per-process warnings are switched off, so workers do not repeat them).

    With ``prefetch=True`` the next batch is loaded by one background thread while the caller
    trains on the current one (decord and torch release the GIL), so decoding overlaps the MAE
    step even with ``num_workers=0``. Batches are still produced strictly in order, so
    prefetching changes no result.
    """

    def __init__(
        self, dataset: VideoClipDataset, batch_size: int, num_workers: int = 0, seed: int = 0, prefetch: bool = True
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        dataset.warn_bad_videos = False
        self.bad_videos: dict[str, str] = {}
        """Distinct bad videos stepped over so far: path -> why it is unusable."""
        self.epoch = 0
        self._iterator: Iterator[dict[str, Any]] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="clip-prefetch") if prefetch else None
        self._pending: Future[dict[str, Any]] | None = None
        self.loader: Any = None
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Restart the stream from ``seed`` (shuffle order and augmentations)."""
        self._drop_pending()
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
        if self._pending is not None:
            batch = self._pending.result()
            self._pending = None
        else:
            batch = self._load()
        if self._executor is not None:
            self._pending = self._executor.submit(self._load)
        self._note_bad_videos(batch.get("bad_videos", {}))
        return batch

    @property
    def skipped(self) -> int:
        """How many distinct bad videos were skipped so far."""
        return len(self.bad_videos)

    def _note_bad_videos(self, bad: dict[str, str]) -> None:
        """Remember the batch's bad videos; one warning for each video not seen before."""
        for path, reason in bad.items():
            if path not in self.bad_videos:
                self.bad_videos[path] = reason
                warnings.warn(f"skipping video {path}: {reason}", RuntimeWarning, stacklevel=3)

    def _load(self) -> dict[str, Any]:
        for _ in range(2):
            if self._iterator is None:
                self._iterator = iter(self.loader)
            try:
                return next(self._iterator)
            except StopIteration:
                self._iterator = None
                self.epoch += 1
        raise RuntimeError(f"the dataset yields no batch of {self.batch_size} clips (it has {len(self.dataset)} videos)")

    def _drop_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            # A discarded prefetch may have failed; the next load hits the same video and reports it.
            with contextlib.suppress(Exception):
                self._pending.result()
            self._pending = None

    def close(self) -> None:
        """Stop the prefetch thread and the worker processes."""
        self._drop_pending()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._iterator = None
        self.loader = None
