"""An endless, seedable stream of clip batches for the environment, prefetched in the background.

Under ``torch.distributed`` (e.g. ``torchrun``) every process streams its own shard of the videos
with ``DistributedSampler`` semantics: one shuffle per epoch shared by all ranks (seeded by the
stream's seed), rank ``r`` of ``R`` takes every R-th video of it, and each rank's augmentations
(crops, temporal windows) come from its own seed (:func:`shard_seed`). One process is rank 0 of 1
and streams exactly what it streamed before sharding existed.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, RandomSampler, Sampler, WeightedRandomSampler

from tats_env.data import NoUsableVideoError, VideoClipDataset, make_dataloader

__all__ = ["ClipStream", "process_shard", "shard_seed"]


def process_shard() -> tuple[int, int]:
    """``(rank, world size)`` of this process in the default ``torch.distributed`` group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s own random streams: ``seed`` itself on rank 0, a distinct seed derived
    from ``(seed, rank)`` on every other rank (so a single process behaves exactly as without sharding)."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) % 2**63, int(rank)]).generate_state(1)[0])


def _worker_message(exc: BaseException) -> str:
    """The message an exception was raised with, without the worker traceback that a DataLoader
    worker's exception carries in its text (``Caught X in DataLoader worker ... Original Traceback ...``)."""
    text = str(exc)
    marker = f"{type(exc).__name__}: "
    return text.split(marker, 1)[1] if text.startswith("Caught ") and marker in text else text


class ClipStream:
    """Batches of exactly ``batch_size`` clips from a dataset, reshuffled every epoch, forever.

    Seeding (:meth:`seed`) restarts the shuffle and the augmentation generator, so the same
    seed yields the same clips. A dataset smaller than the batch is sampled with replacement.
    ``bad_videos`` holds every distinct bad video the dataset stepped over so far, from every
    worker (path -> reason), and ``skipped`` counts them; each is warned about once, here (the
    dataset's own per-process warnings are switched off, so workers do not repeat them). The stream
    goes on while any usable video is left; when none is, :meth:`next` raises
    :class:`~tats_env.data.NoUsableVideoError` (how many videos are bad of how many, also from a worker).

    ``num_replicas`` / ``rank`` shard the videos across processes (default: the ``torch.distributed``
    process group when one is initialised, else one shard); every rank must seed its stream with
    the same seed, so that the shards partition one shuffle. A shard smaller than a batch is
    sampled with replacement from the shard's own videos.

    With ``prefetch=True`` the next batch is loaded by one background thread while the caller
    trains on the current one (decord and torch release the GIL), so decoding overlaps the MAE
    step even with ``num_workers=0``. Batches are still produced strictly in order, so
    prefetching changes no result.
    """

    def __init__(
        self, dataset: VideoClipDataset, batch_size: int, num_workers: int = 0, seed: int = 0, prefetch: bool = True,
        num_replicas: int | None = None, rank: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        group_rank, group_size = process_shard()
        self.num_replicas = group_size if num_replicas is None else int(num_replicas)
        self.rank = group_rank if rank is None else int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={self.num_replicas}), got {self.rank}")
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
        """Restart the stream from ``seed`` (shuffle order and augmentations; the same seed on every rank)."""
        self._drop_pending()
        self._seed = int(seed)
        local_seed = shard_seed(self._seed, self.rank)  # this rank's augmentations and DataLoader workers
        self.dataset.reseed(local_seed)
        self.loader = make_dataloader(
            self.dataset, self.batch_size, shuffle=True, num_workers=self.num_workers, seed=local_seed,
            drop_last=True, persistent_workers=self.num_workers > 0, sampler=self._sampler(),
        )
        self._iterator = None

    def _sampler(self) -> Sampler[int] | None:
        """None (the DataLoader's seeded shuffle) for one unsharded process, else this rank's index sampler."""
        n, replicas = len(self.dataset), self.num_replicas
        if replicas == 1 and n >= self.batch_size:
            return None
        if math.ceil(n / replicas) >= self.batch_size:
            return DistributedSampler(self.dataset, replicas, self.rank, shuffle=True, seed=self._seed)
        g = torch.Generator().manual_seed(shard_seed(self._seed, self.rank))
        if replicas == 1:
            return RandomSampler(self.dataset, replacement=True, num_samples=self.batch_size * 64, generator=g)
        weights = torch.zeros(n, dtype=torch.double)
        weights[self.rank % n::replicas] = 1.0  # this rank's videos (DistributedSampler's wrap-around when n < R)
        return WeightedRandomSampler(weights, self.batch_size * 64, replacement=True, generator=g)

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
        try:
            return self._next_batch()
        except NoUsableVideoError as exc:
            raise NoUsableVideoError(_worker_message(exc)) from None

    def _next_batch(self) -> dict[str, Any]:
        for _ in range(2):
            if self._iterator is None:
                sampler = getattr(self.loader, "sampler", None)
                if isinstance(sampler, DistributedSampler):
                    sampler.set_epoch(self.epoch)  # a new shuffle per epoch, the same one on every rank
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
