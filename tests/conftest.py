"""Shared fixtures: a small synthetic dataset at the `tiny` preset's resolution, generated once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REAL_CLIPS = Path(__file__).parent / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep tests from writing into the user's cache (the default synthetic dataset goes here)."""
    os.environ["TATS_DATA_DIR"] = str(tmp_path_factory.mktemp("tats_data_cache"))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 classes x (2 train + 1 val) clips of 32 frames at 64x64, with foreground masks."""
    from tats_env.data.synthetic import SyntheticConfig, ensure_synthetic_dataset

    config = SyntheticConfig(num_classes=12, train_per_class=2, val_per_class=1, num_frames=32, size=64)
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "synthetic", config, progress=False)


@pytest.fixture(scope="session")
def real_list_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `path label` list of the three real clips (absolute paths)."""
    path = tmp_path_factory.mktemp("real") / "real.txt"
    names = ["realshort.mp4", "pens.mp4", "carphone_pristine.mp4"]
    path.write_text("".join(f"{REAL_CLIPS / name} {i}\n" for i, name in enumerate(names)))
    return path


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One torch thread for a module's tests (small learners are faster and repeatable that way); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
