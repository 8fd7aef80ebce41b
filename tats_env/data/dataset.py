"""``VideoClipDataset``: decode, sample and transform clips; skip bad videos; batch them.

Videos are opened with decord inside ``__getitem__`` (never in ``__init__``), so DataLoader
workers can fork safely. Missing, corrupt and too-short videos are warned about once per
process, remembered in ``dataset.bad_files``, and replaced by another randomly drawn video;
each item reports in ``"skipped"`` how many bad videos it stepped over and in ``"bad_videos"``
which ones (path -> reason), so a consumer can count distinct videos. By default the replacement
draws go on while any video not yet found bad is left (a known bad video is never drawn again, so
an item costs at most one failed open per bad video); when none is left,
:class:`NoUsableVideoError` says how many videos are bad out of how many. File names that are
not valid UTF-8 (decord hands names to FFmpeg as UTF-8) are opened through an ASCII-named link.

FFmpeg's own decoder messages (``[h264 @ ...] error while decoding ...``, hundreds per damaged
file) are silenced when this module is imported: a bad video surfaces as one Python warning
instead. ``TATS_FFMPEG_LOG_LEVEL=error`` (or ``warning``, ``info``, ...) brings them back for debugging.

Foreground masks are optional, per video: ``<video stem>.fg.npz`` beside the video, holding a
uint8/bool array ``fg`` of shape ``(num_video_frames, H, W)`` at the video's resolution. When
present it is sampled with the same frame indices and the same crop/flip as the pixels.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import decord
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from tats_env.config import VideoSpec
from tats_env.data.listfile import VideoRecord, foreground_path, resolve_records
from tats_env.data.source import data_source
from tats_env.data.sampling import TooShortError, multi_view_indices, sample_indices
from tats_env.data.transforms import EvalTransform, TrainTransform, apply_crop, normalize

FFMPEG_LOG_LEVEL_ENV = "TATS_FFMPEG_LOG_LEVEL"


def set_decoder_log_level(level: str | None = None) -> None:
    """Set FFmpeg's log level inside decord (``quiet``, ``panic``, ``fatal``, ``error``, ``warning``, ``info``, ...).

    Default: ``$TATS_FFMPEG_LOG_LEVEL`` or ``quiet``. Applies to this process and to DataLoader
    workers forked after the call (the module calls it on import, so spawned workers get it too).
    """
    name = (level or os.environ.get(FFMPEG_LOG_LEVEL_ENV) or "quiet").upper()
    if not isinstance(getattr(decord.logging, name, None), int):
        raise ValueError(f"unknown FFmpeg log level {name.lower()!r} ({FFMPEG_LOG_LEVEL_ENV}); "
                         "choose quiet, panic, fatal, error, warning, info, verbose, debug or trace")
    decord.logging.set_level(getattr(decord.logging, name))


set_decoder_log_level()


class BadVideoError(RuntimeError):
    """A video (or its foreground file) cannot be used; the message says why."""


class NoUsableVideoError(RuntimeError):
    """Every video of a dataset is unusable (missing, corrupt or too short); the message's first line
    says how many videos are bad out of how many."""


_SHOWN_TRIED = 10  # files named in a retry error; a dataset of thousands of bad videos would flood it


def open_video(path: Path) -> decord.VideoReader:
    """A one-thread CPU decord reader of ``path``, also when its name is not valid UTF-8.

    decord hands the name to FFmpeg as UTF-8 text, so a name holding other bytes (Python keeps them
    as surrogates) cannot be passed; such a file is opened through a symbolic link with an ASCII
    name, removed again once FFmpeg holds the file open.
    """
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        with tempfile.TemporaryDirectory(prefix="tats-video-") as folder:
            link = os.path.join(folder, "video" + (path.suffix if path.suffix.isascii() else ""))
            os.symlink(os.path.abspath(path), link)
            return decord.VideoReader(link, num_threads=1, ctx=decord.cpu(0))
    return decord.VideoReader(name, num_threads=1, ctx=decord.cpu(0))


def _describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (decord's messages span many lines), at most 200 chars."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else 'no message'}"


class VideoClipDataset(Dataset):
    """Clips of labelled videos, shaped by a :class:`~tats_env.config.VideoSpec`.

    Each item is a dict: ``"video"`` float32 ``(C, T, S, S)`` normalised with the spec's
    mean/std (``(R, C, T, S, S)`` when ``num_repeats=R > 1``, or ``(V, ...)`` for multi-view
    eval), ``"label"`` int64 (shape ``()`` or ``(R,)``), ``"index"`` the index of the record
    actually used (differs from the requested one after a skip), ``"skipped"`` the number of
    bad videos stepped over, ``"bad_videos"`` those videos (``{path: reason}``), and
    ``"foreground"`` float32 ``(T, S, S)`` in {0, 1} (or ``(R, T, S, S)``) only when the video
    has a foreground file. Set ``warn_bad_videos = False`` when the consumer reports bad videos
    itself (as :class:`tats_env.env.clips.ClipStream` does, once per video across workers).

    Args:
        records: the videos (see :func:`~tats_env.data.listfile.resolve_records`).
        spec: clip length, size, stride and normalisation.
        train: random temporal windows and multi-scale crops; otherwise deterministic
            centred windows and centre crops.
        sampling: ``"k400"`` strided windows or ``"ssv2"`` segment sampling.
        num_repeats: R clips per video from one decode (repeated sampling, train only); each
            repeat gets its own temporal window and crop.
        seed: base seed; each process (and DataLoader worker) derives its own generator.
        min_frames: shortest usable video; defaults to ``spec.num_frames``.
        max_retries: at most this many replacement draws after a bad video, then ``RuntimeError``;
            None (the default) draws until a usable video is found or every video has been found
            bad (then :class:`NoUsableVideoError`, naming how many of how many).
        temporal_views, spatial_views: eval only; ``V = temporal * spatial`` views per video.
        short_side: eval short-side resize target (defaults to ``spec.image_size``).
        flip_prob: horizontal flip chance in training (default 0: flips swap left/right
            motion classes).
        scales, fix_crop: multi-scale crop settings (VideoMAE's defaults).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        spec: VideoSpec,
        train: bool = True,
        sampling: Literal["k400", "ssv2"] = "k400",
        num_repeats: int = 1,
        seed: int = 0,
        *,
        min_frames: int | None = None,
        max_retries: int | None = None,
        temporal_views: int = 1,
        spatial_views: int = 1,
        short_side: int | None = None,
        flip_prob: float = 0.0,
        scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66),
        fix_crop: bool = True,
    ) -> None:
        if not records:
            raise ValueError("VideoClipDataset needs at least one video record, got none")
        if sampling not in ("k400", "ssv2"):
            raise ValueError(f"unknown sampling {sampling!r}; choose 'k400' or 'ssv2'")
        if num_repeats < 1:
            raise ValueError(f"num_repeats must be >= 1, got {num_repeats}")
        if num_repeats > 1 and not train:
            raise ValueError("num_repeats > 1 is for training; use temporal_views/spatial_views for eval")
        if train and temporal_views * spatial_views > 1:
            raise ValueError("temporal_views/spatial_views are eval settings; pass train=False")
        if max_retries is not None and max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 or None, got {max_retries}")
        self.records = list(records)
        self.spec, self.train, self.sampling = spec, train, sampling
        self.num_repeats, self.seed, self.max_retries = num_repeats, seed, max_retries
        self.min_frames = min_frames
        self.temporal_views, self.spatial_views = temporal_views, spatial_views
        self.train_transform = TrainTransform(
            spec.image_size, spec.mean, spec.std, scales=scales, fix_crop=fix_crop, flip_prob=flip_prob
        )
        self.eval_transform = EvalTransform(
            spec.image_size, spec.mean, spec.std, short_side=short_side, spatial_views=spatial_views
        )
        self.bad_files: set[Path] = set()
        """Videos found unusable in this process (each warned about once)."""
        self.bad_reasons: dict[Path, str] = {}
        """Why each of :attr:`bad_files` is unusable."""
        self.warn_bad_videos = True
        """Warn (once per process) about each bad video; False leaves the reporting to the consumer."""
        self._rng: np.random.Generator | None = None
        self._rng_pid = -1

    def __len__(self) -> int:
        return len(self.records)

    def reseed(self, seed: int) -> None:
        """Restart this process's generator from ``(dataset seed, seed)``."""
        self._rng = np.random.default_rng([self.seed, seed])
        self._rng_pid = os.getpid()

    def _generator(self) -> np.random.Generator:
        # A forked worker inherits the parent's generator state; give every process its own
        # stream, taken from the DataLoader's per-worker seed (itself drawn from its generator).
        if self._rng is None or self._rng_pid != os.getpid():
            info = get_worker_info()
            self.reseed(info.seed if info is not None else 0)
        assert self._rng is not None
        return self._rng

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} videos")
        index %= len(self)
        rng = self._generator()
        tried: list[str] = []
        bad: dict[str, str] = {}
        current = index
        while True:
            record = self.records[current]
            if record.path in self.bad_files:
                tried.append(f"{record.path} (known bad)")
            else:
                try:
                    item = self._load(record, rng)
                except BadVideoError as exc:
                    self._mark_bad(record.path, str(exc))
                    tried.append(f"{record.path} ({exc})")
                else:
                    item["index"] = current
                    item["skipped"] = len(tried)
                    item["bad_videos"] = bad
                    return item
            bad[str(record.path)] = self.bad_reasons.get(record.path, "unusable")
            nxt = self._other_index(rng, {index, current})
            if nxt is None:
                raise NoUsableVideoError(self._none_left(tried))
            if self.max_retries is not None and len(tried) > self.max_retries:
                raise RuntimeError(
                    f"could not load a usable clip for index {index} after {len(tried)} attempt(s) "
                    f"(max_retries={self.max_retries}; {self._bad_count()} of {self._video_count()} videos "
                    f"found bad so far); files tried:{self._listing(tried)}"
                )
            current = nxt

    def _mark_bad(self, path: Path, reason: str) -> None:
        """Remember ``path`` as unusable (and warn once, unless the consumer reports bad videos itself)."""
        self.bad_files.add(path)
        self.bad_reasons[path] = reason
        if self.warn_bad_videos:
            warnings.warn(f"skipping video {path}: {reason}", RuntimeWarning, stacklevel=3)

    def _video_count(self) -> int:
        """Distinct videos of the dataset (a list may name one file twice)."""
        return len({r.path for r in self.records})

    def _bad_count(self) -> int:
        """Distinct videos of the dataset found bad in this process."""
        return len({r.path for r in self.records} & self.bad_files)

    @staticmethod
    def _listing(tried: Sequence[str]) -> str:
        """The first files tried, one per indented line."""
        more = [f"... and {len(tried) - _SHOWN_TRIED} more"] if len(tried) > _SHOWN_TRIED else []
        return "".join(f"\n  {line}" for line in [*tried[:_SHOWN_TRIED], *more])

    def _none_left(self, tried: Sequence[str]) -> str:
        """The :class:`NoUsableVideoError` message: how many videos are bad of how many, then the files tried."""
        total = self._video_count()
        return (f"no usable video left: {self._bad_count()} of {total} videos are bad (missing, corrupt or too "
                f"short; each was tried once and skipped); files tried for this clip:{self._listing(tried)}")

    def _other_index(self, rng: np.random.Generator, exclude: set[int]) -> int | None:
        """A random index not in ``exclude`` whose file is not known bad, or None if none is left."""
        n = len(self.records)
        for _ in range(16):
            j = int(rng.integers(n))
            if j not in exclude and self.records[j].path not in self.bad_files:
                return j
        # Rejection failed (many bad files): fall back to an exact scan.
        good = [j for j, r in enumerate(self.records) if j not in exclude and r.path not in self.bad_files]
        return good[int(rng.integers(len(good)))] if good else None

    def _indices(self, num_video_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Frame indices for every clip of one item, shape ``(clips, T)``."""
        spec = self.spec
        if self.train:
            return np.stack([
                sample_indices(self.sampling, num_video_frames, spec.num_frames, spec.sampling_rate,
                               train=True, rng=rng, min_frames=self.min_frames)
                for _ in range(self.num_repeats)
            ])
        return multi_view_indices(num_video_frames, spec.num_frames, spec.sampling_rate, self.temporal_views,
                                  mode=self.sampling, min_frames=self.min_frames)

    def _load(self, record: VideoRecord, rng: np.random.Generator) -> dict[str, Any]:
        """Decode and transform one video; raise :class:`BadVideoError` if it is unusable."""
        path = record.path
        if not path.is_file():
            raise BadVideoError("file not found")
        try:
            reader = open_video(path)
            num_video_frames = len(reader)
        except Exception as exc:  # decord raises DECORDError/RuntimeError for unreadable files
            raise BadVideoError(f"cannot open video ({_describe(exc)})") from None
        try:
            clip_indices = self._indices(num_video_frames, rng)
        except TooShortError as exc:
            raise BadVideoError(f"too short: {exc}") from None
        # Decode the union of all clips' frames once; each clip then indexes into it.
        wanted, inverse = np.unique(clip_indices, return_inverse=True)
        inverse = torch.from_numpy(inverse.reshape(clip_indices.shape))
        try:
            frames = torch.from_numpy(reader.get_batch(wanted.tolist()).asnumpy())
        except Exception as exc:
            raise BadVideoError(f"decoding failed ({_describe(exc)})") from None
        del reader
        fg = self._load_foreground(path, num_video_frames, tuple(frames.shape[1:3]), wanted)

        videos, masks = [], []
        for clip in range(clip_indices.shape[0]):
            clip_frames = frames[inverse[clip]]
            clip_fg = fg[inverse[clip]] if fg is not None else None
            if self.train:
                video, mask = self.train_transform(clip_frames, clip_fg, rng=rng)
                videos.append(video)
                masks.append(mask)
            else:
                for box in self.eval_transform.boxes(int(frames.shape[1]), int(frames.shape[2])):
                    cropped, mask = apply_crop(clip_frames, box, self.spec.image_size, clip_fg)
                    videos.append(normalize(cropped, self.spec.mean, self.spec.std))
                    masks.append(mask)
        label = torch.tensor(record.label, dtype=torch.int64)
        item: dict[str, Any] = {}
        if len(videos) == 1:
            item["video"], item["label"] = videos[0], label
            if fg is not None:
                item["foreground"] = masks[0]
        else:
            item["video"], item["label"] = torch.stack(videos), label.repeat(len(videos))
            if fg is not None:
                item["foreground"] = torch.stack(masks)
        return item

    @staticmethod
    def _load_foreground(
        video: Path, num_video_frames: int, frame_hw: tuple[int, ...], wanted: np.ndarray
    ) -> torch.Tensor | None:
        """The foreground frames ``wanted`` as a bool ``(U, H, W)`` tensor, or None without a file."""
        fg_file = foreground_path(video)
        if not fg_file.is_file():
            return None
        try:
            with np.load(fg_file) as archive:
                fg = archive["fg"]
        except Exception as exc:
            raise BadVideoError(f"unreadable foreground file {fg_file.name} ({_describe(exc)})") from None
        expected = (num_video_frames, *frame_hw)
        if fg.shape != expected:
            raise BadVideoError(
                f"foreground {fg_file.name} has shape {fg.shape}, expected (frames, H, W) = {expected}"
            )
        return torch.from_numpy(np.ascontiguousarray(fg[wanted] != 0))


def collate_clips(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch dataset items, flattening repeats/views: ``(B, R, ...)`` -> ``(B * R, ...)``.

    ``"index"`` becomes an int64 tensor with one entry per clip (repeated R times per item),
    ``"skipped"`` the sum over items (an int), ``"bad_videos"`` the union of the items' bad
    videos (``{path: reason}``), and ``"foreground"`` is kept only if every item has one (a mix
    raises ``ValueError``: batch shapes would disagree).
    """
    if not items:
        raise ValueError("collate_clips got an empty batch")
    videos = [it["video"] if it["video"].dim() == 5 else it["video"].unsqueeze(0) for it in items]
    counts = [v.shape[0] for v in videos]
    batch: dict[str, Any] = {
        "video": torch.cat(videos),
        "label": torch.cat([it["label"].reshape(-1) for it in items]),
        "index": torch.repeat_interleave(
            torch.tensor([int(it["index"]) for it in items], dtype=torch.int64), torch.tensor(counts)
        ),
        "skipped": int(sum(int(it.get("skipped", 0)) for it in items)),
        "bad_videos": {path: reason for it in items for path, reason in it.get("bad_videos", {}).items()},
    }
    with_fg = sum("foreground" in it for it in items)
    if with_fg == len(items):
        batch["foreground"] = torch.cat([
            it["foreground"] if it["foreground"].dim() == 4 else it["foreground"].unsqueeze(0) for it in items
        ])
    elif with_fg:
        raise ValueError(
            f"{with_fg} of {len(items)} videos in this batch have a foreground file and the rest do not; "
            "provide <stem>.fg.npz for all videos or for none"
        )
    return batch


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy, ``random`` and the dataset from the worker's torch seed."""
    info = get_worker_info()
    seed = info.seed if info is not None else torch.initial_seed()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    dataset = info.dataset if info is not None else None
    if hasattr(dataset, "reseed"):
        dataset.reseed(seed)


def make_dataloader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    persistent_workers: bool = False,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    sampler: torch.utils.data.Sampler | None = None,
) -> DataLoader:
    """A DataLoader using :func:`collate_clips`, a seeded shuffle and seeded workers.

    Batches hold ``batch_size * R`` clips when the dataset repeats. ``persistent_workers`` and
    ``prefetch_factor`` only apply with ``num_workers > 0``. Pass ``sampler`` (e.g. a
    ``DistributedSampler``) instead of ``shuffle`` for distributed runs.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra["persistent_workers"] = persistent_workers
        if prefetch_factor is not None:
            extra["prefetch_factor"] = prefetch_factor
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_clips,
        worker_init_fn=seed_worker,
        generator=generator,
        drop_last=drop_last,
        pin_memory=pin_memory,
        **extra,
    )


def build_dataset(
    data: str | os.PathLike[str],
    spec: VideoSpec,
    split: str = "train",
    train: bool | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    synthetic_config: Any = None,
    **kwargs: Any,
) -> VideoClipDataset:
    """A :class:`VideoClipDataset` from ``"synthetic"``, a list file or a folder.

    * ``"synthetic"``: the embedded motion dataset (generated on first use by
      :func:`~tats_env.data.synthetic.ensure_synthetic_dataset`), its ``<split>.txt``.
    * a folder holding ``<split>.txt``: that list file (e.g. a synthetic dataset elsewhere); a
      folder holding other split lists but not this one is an error.
    * any other folder: every video in it (labels from class subfolders).
    * a file: a ``path label`` list file; ``root`` is the base of its relative paths.

    Raises:
        DataSourceError: an unknown split, a malformed or empty list file, a folder without videos
            (see :func:`~tats_env.data.source.check_data_source`, which checks the same up front).
        FileNotFoundError: ``data`` does not exist.

    ``train`` defaults to ``split == "train"``. ``synthetic_config`` (a
    :class:`~tats_env.data.synthetic.SyntheticConfig`) sizes the synthetic dataset. Remaining
    keyword arguments go to :class:`VideoClipDataset` (``sampling``, ``num_repeats``, ``seed``, ...).
    """
    if train is None:
        train = split == "train"
    source = data_source(data, split)
    if source is None:
        from tats_env.data.synthetic import ensure_synthetic_dataset

        source = ensure_synthetic_dataset(config=synthetic_config) / f"{split}.txt"
    return VideoClipDataset(resolve_records(source, root=root), spec, train=train, **kwargs)
