"""Which frames of a video make a clip: VideoMAE's temporal sampling, as pure numpy functions.

Two schemes, as VideoMAE uses them:

* ``"k400"`` (Kinetics-style): a window of ``num_frames * sampling_rate`` source frames at a
  random offset (train) or centred (eval), every ``sampling_rate``-th frame taken. A video
  shorter than the window repeats its last frame to fill the clip.
* ``"ssv2"`` (Something-Something-style segments): the video is cut into ``num_frames`` equal
  segments and one frame is taken per segment, at random (train) or in the middle (eval).

Randomness comes only from the ``np.random.Generator`` passed in, so a seeded generator
reproduces the indices exactly. Videos with fewer than ``min_frames`` frames (default
``num_frames``) raise :class:`TooShortError`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

SamplingMode = Literal["k400", "ssv2"]


class TooShortError(ValueError):
    """The video has fewer frames than the sampler accepts."""


def _check(num_video_frames: int, num_frames: int, min_frames: int | None) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    needed = num_frames if min_frames is None else max(int(min_frames), 1)
    if num_video_frames < needed:
        raise TooShortError(f"video has {num_video_frames} frames, at least {needed} are needed")


def _need_rng(train: bool, rng: np.random.Generator | None) -> np.random.Generator | None:
    if train and rng is None:
        raise ValueError("training-time sampling needs a np.random.Generator (rng=...)")
    return rng


def _window(start: int, num_video_frames: int, num_frames: int, sampling_rate: int) -> np.ndarray:
    """``num_frames`` indices from ``start`` with stride ``sampling_rate``, clamped to the video."""
    return np.minimum(start + np.arange(num_frames) * sampling_rate, num_video_frames - 1).astype(np.int64)


def k400_indices(
    num_video_frames: int,
    num_frames: int,
    sampling_rate: int,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    min_frames: int | None = None,
) -> np.ndarray:
    """Frame indices of one Kinetics-style strided window, shape ``(num_frames,)`` int64.

    Train draws the window start uniformly among all positions where the whole window fits;
    eval centres it. A video shorter than the window (``num_frames * sampling_rate``) starts at
    0 and repeats its last frame, as VideoMAE does.

    Raises:
        TooShortError: fewer than ``min_frames`` (default ``num_frames``) frames.
        ValueError: ``train`` without ``rng``, or a non-positive ``sampling_rate``.
    """
    if sampling_rate < 1:
        raise ValueError(f"sampling_rate must be >= 1, got {sampling_rate}")
    _check(num_video_frames, num_frames, min_frames)
    rng = _need_rng(train, rng)
    span = num_frames * sampling_rate
    slack = max(num_video_frames - span, 0)
    start = int(rng.integers(0, slack + 1)) if train else slack // 2
    return _window(start, num_video_frames, num_frames, sampling_rate)


def _segment_bounds(num_video_frames: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """First index and length (>= 1) of each of ``num_frames`` near-equal segments."""
    edges = np.floor(np.linspace(0, num_video_frames, num_frames + 1)).astype(np.int64)
    starts = np.minimum(edges[:-1], num_video_frames - 1)
    lengths = np.maximum(edges[1:] - edges[:-1], 1)
    return starts, lengths


def ssv2_indices(
    num_video_frames: int,
    num_frames: int,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    min_frames: int | None = None,
) -> np.ndarray:
    """Frame indices of Something-Something-style segment sampling, shape ``(num_frames,)`` int64.

    The video is split into ``num_frames`` near-equal segments; train takes a uniformly random
    frame of each segment, eval the middle frame. Indices are non-decreasing.

    Raises:
        TooShortError: fewer than ``min_frames`` (default ``num_frames``) frames.
        ValueError: ``train`` without ``rng``.
    """
    _check(num_video_frames, num_frames, min_frames)
    rng = _need_rng(train, rng)
    starts, lengths = _segment_bounds(num_video_frames, num_frames)
    if train:
        offsets = np.floor(rng.random(num_frames) * lengths).astype(np.int64)
    else:
        offsets = (lengths - 1) // 2
    return np.minimum(starts + offsets, num_video_frames - 1).astype(np.int64)


def multi_view_indices(
    num_video_frames: int,
    num_frames: int,
    sampling_rate: int,
    temporal_views: int,
    *,
    mode: SamplingMode = "k400",
    min_frames: int | None = None,
) -> np.ndarray:
    """Deterministic indices of ``temporal_views`` evenly spaced clips, shape ``(views, num_frames)``.

    ``"k400"``: window starts evenly spaced from the first to the last position where the
    window fits (one view is the centred window). ``"ssv2"``: view ``v`` takes the frame at
    fraction ``(v + 0.5) / views`` of every segment. ``sampling_rate`` is ignored for ``"ssv2"``.

    Raises:
        TooShortError: fewer than ``min_frames`` (default ``num_frames``) frames.
        ValueError: ``temporal_views < 1`` or an unknown mode.
    """
    if temporal_views < 1:
        raise ValueError(f"temporal_views must be >= 1, got {temporal_views}")
    if mode == "k400":
        if temporal_views == 1:
            return k400_indices(num_video_frames, num_frames, sampling_rate, train=False, min_frames=min_frames)[None]
        _check(num_video_frames, num_frames, min_frames)
        slack = max(num_video_frames - num_frames * sampling_rate, 0)
        starts = np.round(np.linspace(0, slack, temporal_views)).astype(np.int64)
        return np.stack([_window(int(s), num_video_frames, num_frames, sampling_rate) for s in starts])
    if mode == "ssv2":
        _check(num_video_frames, num_frames, min_frames)
        seg_starts, lengths = _segment_bounds(num_video_frames, num_frames)
        fractions = (np.arange(temporal_views) + 0.5) / temporal_views
        offsets = np.floor(fractions[:, None] * lengths[None, :]).astype(np.int64)
        return np.minimum(seg_starts[None, :] + offsets, num_video_frames - 1)
    raise ValueError(f"unknown sampling mode {mode!r}; choose 'k400' or 'ssv2'")


def sample_indices(
    mode: SamplingMode,
    num_video_frames: int,
    num_frames: int,
    sampling_rate: int,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    min_frames: int | None = None,
) -> np.ndarray:
    """Dispatch to :func:`k400_indices` or :func:`ssv2_indices` by ``mode``; shape ``(num_frames,)``.

    ``sampling_rate`` is ignored for ``"ssv2"``.
    """
    if mode == "k400":
        return k400_indices(num_video_frames, num_frames, sampling_rate, train=train, rng=rng, min_frames=min_frames)
    if mode == "ssv2":
        return ssv2_indices(num_video_frames, num_frames, train=train, rng=rng, min_frames=min_frames)
    raise ValueError(f"unknown sampling mode {mode!r}; choose 'k400' or 'ssv2'")
