"""The benchmark's --quick downstream cap keeps every class of a class-sorted list (issue 21, item 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.bench.matrix import QUICK, BenchmarkConfig, apply_quick, downstream_clipsets, mae_config
from tats_env.downstream import load_clipset
from tats_env.env import EnvConfig

CLASSES = 3
PER_CLASS = 20  # more than the old 16-video cap, so a class-sorted list's first 16 were all class 0


def _class_sorted_lists(synthetic_root: Path, folder: Path) -> Path:
    """A dataset folder whose train.txt and val.txt list PER_CLASS videos of each of CLASSES classes, in class order."""
    folder.mkdir()
    for split in ("train", "val"):
        lines = [line.split() for line in (synthetic_root / f"{split}.txt").read_text().splitlines()]
        rows = []
        for label in range(CLASSES):
            paths = [synthetic_root / path for path, lab in lines if int(lab) == label]
            rows += [f"{paths[i % len(paths)]} {label}\n" for i in range(PER_CLASS)]
        (folder / f"{split}.txt").write_text("".join(rows))
    return folder


def test_quick_cap_keeps_every_class_of_a_class_sorted_list(synthetic_root: Path, tmp_path: Path) -> None:
    data = _class_sorted_lists(synthetic_root, tmp_path / "sorted")
    cfg = apply_quick(BenchmarkConfig(quick=True, env=EnvConfig(data=str(data))))
    limit = QUICK["downstream_videos_per_class"]
    assert cfg.downstream_videos_per_class == limit
    train, val = downstream_clipsets(cfg, mae_config(cfg).video)
    for clips in (train, val):
        assert sorted(clips.labels.tolist()) == sorted(list(range(CLASSES)) * limit)


def test_max_per_class_keeps_list_order_and_combines_with_max_videos(synthetic_root: Path, tmp_path: Path) -> None:
    data = _class_sorted_lists(synthetic_root, tmp_path / "sorted")
    spec = mae_config(apply_quick(BenchmarkConfig(quick=True))).video
    assert load_clipset(data, spec, "val", max_per_class=1).labels.tolist() == [0, 1, 2]
    assert load_clipset(data, spec, "val", max_per_class=2, max_videos=3).labels.tolist() == [0, 0, 1]
    assert load_clipset(data, spec, "val", max_videos=3).labels.tolist() == [0, 0, 0]  # unchanged meaning
    with pytest.raises(ValueError, match="max_per_class must be >= 1"):
        load_clipset(data, spec, "val", max_per_class=0)
