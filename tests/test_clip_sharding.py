"""ClipStream under torch.distributed: each rank streams its own shard with its own augmentations."""

from __future__ import annotations

import pytest
import torch

from tats_env.config import get_preset
from tats_env.data import build_dataset, make_dataloader
from tats_env.env.clips import ClipStream, process_shard, shard_seed

SPEC = get_preset("tiny").video


def _dataset(root, **kwargs):
    return build_dataset(root, SPEC, split="train", **kwargs)


def _epoch_indices(stream: ClipStream, batches: int) -> list[int]:
    return [int(i) for _ in range(batches) for i in stream.next()["index"]]


def test_ranks_partition_every_epoch_and_reshuffle(synthetic_root):
    streams = [ClipStream(_dataset(synthetic_root), 4, seed=7, prefetch=False, num_replicas=2, rank=r) for r in (0, 1)]
    n = len(streams[0].dataset)
    per_rank = n // 2 // 4  # batches per rank and epoch
    epochs = []
    for _ in range(2):
        shards = [_epoch_indices(s, per_rank) for s in streams]
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == list(range(n))
        epochs.append(shards)
    assert epochs[0][0] != epochs[1][0]  # set_epoch: a new shuffle in the second epoch
    try:
        assert process_shard() == (0, 1)
    finally:
        for s in streams:
            s.close()


def test_same_video_gets_different_augmentations_per_rank_and_the_same_per_seed(synthetic_root):
    """A two-record list of ONE video: both ranks decode the same file, so only augmentation seeds differ."""
    one = _dataset(synthetic_root).records[0]

    def clips(rank: int) -> torch.Tensor:
        dataset = build_dataset(synthetic_root, SPEC, split="train")
        dataset.records = [one, one]
        stream = ClipStream(dataset, 2, seed=3, prefetch=False, num_replicas=2, rank=rank)
        try:
            batch = stream.next()  # shard (1 video) < batch: drawn with replacement from the shard
            assert set(batch["index"].tolist()) == {rank}
            return batch["video"]
        finally:
            stream.close()

    assert not torch.equal(clips(0), clips(1))
    assert torch.equal(clips(1), clips(1))


def test_one_process_streams_exactly_the_unsharded_loader(synthetic_root):
    """Rank 0 of 1 is the seeded DataLoader shuffle the env always used (no sampler, the stream's own seed)."""
    stream = ClipStream(_dataset(synthetic_root), 4, seed=11, prefetch=False)
    reference = _dataset(synthetic_root)
    reference.reseed(11)
    loader = iter(make_dataloader(reference, 4, shuffle=True, seed=11, drop_last=True))
    try:
        assert stream.num_replicas == 1 and stream.rank == 0
        for _ in range(2):
            ours, theirs = stream.next(), next(loader)
            assert torch.equal(ours["index"], theirs["index"]) and torch.equal(ours["video"], theirs["video"])
    finally:
        stream.close()


def test_shard_seed_and_rank_validation(synthetic_root):
    assert shard_seed(5, 0) == 5
    assert len({shard_seed(5, r) for r in range(8)}) == 8
    with pytest.raises(ValueError, match="rank must be in"):
        ClipStream(_dataset(synthetic_root), 4, prefetch=False, num_replicas=2, rank=2)
