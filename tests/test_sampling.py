"""Temporal sampling: K400 windows, SSv2 segments, multi-view eval, too-short videos."""

from __future__ import annotations

import numpy as np
import pytest

from tats_env.data.sampling import (
    TooShortError,
    k400_indices,
    multi_view_indices,
    sample_indices,
    ssv2_indices,
)


def test_k400_train_windows_are_strided_in_bounds_and_cover_all_offsets() -> None:
    rng = np.random.default_rng(0)
    n, t, rate = 50, 8, 3  # span 24 -> starts 0..26
    starts = set()
    for _ in range(400):
        idx = k400_indices(n, t, rate, train=True, rng=rng)
        assert idx.shape == (t,) and idx.dtype == np.int64
        assert np.all(np.diff(idx) == rate)
        assert 0 <= idx[0] and idx[-1] < n
        starts.add(int(idx[0]))
    assert starts == set(range(n - t * rate + 1))


def test_k400_is_reproducible_with_a_seeded_generator() -> None:
    a = [k400_indices(300, 16, 4, train=True, rng=np.random.default_rng(7)) for _ in range(2)]
    b = k400_indices(300, 16, 4, train=True, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b)


def test_k400_eval_window_is_centred() -> None:
    idx = k400_indices(100, 16, 2, train=False)
    assert idx[0] == (100 - 32) // 2
    np.testing.assert_array_equal(idx, 34 + 2 * np.arange(16))


def test_k400_short_video_repeats_last_frame() -> None:
    idx = k400_indices(20, 16, 2, train=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(idx, np.r_[np.arange(0, 20, 2), [19] * 6])
    np.testing.assert_array_equal(k400_indices(20, 16, 2, train=False), idx)


def test_too_short_videos_raise_and_min_frames_relaxes_the_limit() -> None:
    with pytest.raises(TooShortError, match="10 frames, at least 16"):
        k400_indices(10, 16, 2, train=False)
    with pytest.raises(TooShortError):
        ssv2_indices(0, 4, train=False)
    idx = k400_indices(10, 16, 2, train=False, min_frames=8)
    assert idx.max() == 9 and idx.shape == (16,)
    with pytest.raises(TooShortError):
        k400_indices(10, 16, 2, train=False, min_frames=11)


def test_training_without_a_generator_is_an_error() -> None:
    with pytest.raises(ValueError, match="Generator"):
        k400_indices(100, 16, 2, train=True)
    with pytest.raises(ValueError, match="Generator"):
        ssv2_indices(100, 16, train=True)


def test_ssv2_train_takes_one_frame_per_segment() -> None:
    rng = np.random.default_rng(1)
    n, t = 45, 8
    edges = np.floor(np.linspace(0, n, t + 1)).astype(int)
    seen = [set() for _ in range(t)]
    for _ in range(300):
        idx = ssv2_indices(n, t, train=True, rng=rng)
        assert np.all((edges[:-1] <= idx) & (idx < edges[1:]))
        for i, j in enumerate(idx):
            seen[i].add(int(j))
    # every frame of every segment is reachable
    assert all(s == set(range(edges[i], edges[i + 1])) for i, s in enumerate(seen))


def test_ssv2_eval_takes_segment_middles() -> None:
    np.testing.assert_array_equal(ssv2_indices(40, 4, train=False), [4, 14, 24, 34])
    np.testing.assert_array_equal(ssv2_indices(8, 8, train=False), np.arange(8))


def test_multi_view_k400_spans_the_video_evenly() -> None:
    views = multi_view_indices(100, 8, 4, 3)
    assert views.shape == (3, 8)
    assert [int(v[0]) for v in views] == [0, 34, 68]
    np.testing.assert_array_equal(views[1], k400_indices(100, 8, 4, train=False))
    short = multi_view_indices(20, 8, 4, 2)
    np.testing.assert_array_equal(short[0], short[1])


def test_multi_view_ssv2_offsets_within_segments() -> None:
    views = multi_view_indices(40, 4, 1, 2, mode="ssv2")
    np.testing.assert_array_equal(views, [[2, 12, 22, 32], [7, 17, 27, 37]])
    with pytest.raises(ValueError, match="temporal_views"):
        multi_view_indices(40, 4, 1, 0)


def test_sample_indices_dispatch_and_unknown_mode() -> None:
    rng = np.random.default_rng(3)
    assert sample_indices("ssv2", 64, 16, 4, train=True, rng=rng).shape == (16,)
    np.testing.assert_array_equal(sample_indices("k400", 64, 16, 4, train=False), np.arange(16) * 4)
    with pytest.raises(ValueError, match="unknown sampling mode"):
        sample_indices("tsn", 64, 16, 4, train=False)  # type: ignore[arg-type]
