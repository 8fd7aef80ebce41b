"""The embedded default dataset: procedural motion clips written as real H.264 mp4 files.

Layout of a generated dataset (``root``)::

    meta.json                  generator version + config (a changed config regenerates)
    classes.txt                one class name per line, in label order
    train.txt, val.txt         list files: "train/00_translate_right/translate_right_train_0000.mp4 0"
    train/<NN_class>/<clip>.mp4 and <clip>.fg.npz (key "fg": bool (T, H, W) foreground)
    val/...

:func:`ensure_synthetic_dataset` generates it on first use into a cache folder and reuses it
afterwards. Generation is deterministic (each clip has its own seed derived from the config
seed, its split, class and number), parallel over processes, and atomic: clips are written
into a temporary sibling folder that replaces ``root`` only once complete.

Command line: ``python -m tats_env.data.synthetic --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm.auto import tqdm

from tats_env.data.listfile import foreground_path, read_list_file
from tats_env.data.render import MOTIONS, render_clip
from tats_env.data.source import SYNTHETIC_SPLITS

GENERATOR_VERSION = 3
"""Bumped whenever rendering or encoding changes, so cached datasets are regenerated."""
_GENERATOR = "tats_env.data.synthetic"
SPLITS: tuple[str, ...] = SYNTHETIC_SPLITS
# Frame widths (among even sizes 16..256) whose mp4s decord 0.6 cannot return ("size must exactly match").
_DECORD_BAD_WIDTHS = frozenset({16, 24, 48, 72})


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the synthetic motion dataset (the defaults give 2,400 train + 600 val clips)."""

    num_classes: int = field(default=12, metadata={"help": f"motion classes, 2..{len(MOTIONS)} (first k of MOTIONS)"})
    train_per_class: int = field(default=200, metadata={"help": "training clips per class"})
    val_per_class: int = field(default=50, metadata={"help": "validation clips per class"})
    num_frames: int = field(default=16, metadata={"help": "frames per clip"})
    size: int = field(default=64, metadata={"help": "frame height and width in pixels (even)"})
    fps: int = field(default=25, metadata={"help": "frame rate written into the mp4 files"})
    seed: int = field(default=0, metadata={"help": "base seed; every clip derives its own"})
    crf: int = field(default=20, metadata={"help": "libx264 constant rate factor (lower = better quality)"})

    def __post_init__(self) -> None:
        if not 2 <= self.num_classes <= len(MOTIONS):
            raise ValueError(f"num_classes must be in [2, {len(MOTIONS)}], got {self.num_classes}")
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise ValueError(
                f"train_per_class and val_per_class must be >= 1, got {self.train_per_class}, {self.val_per_class}"
            )
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        if self.size < 32 or self.size % 2:
            raise ValueError(f"size must be an even number >= 32 (yuv420p), got {self.size}")
        if self.size in _DECORD_BAD_WIDTHS:
            raise ValueError(
                f"size={self.size}: decord 0.6 fails to decode H.264 frames of width {sorted(_DECORD_BAD_WIDTHS)} "
                "(buffer size mismatch); pick another even size such as 32, 40, 56, 64 or 96"
            )
        if self.fps < 1 or not 0 <= self.crf <= 51:
            raise ValueError(f"fps must be >= 1 and crf in [0, 51], got fps={self.fps}, crf={self.crf}")

    @property
    def num_clips(self) -> int:
        """Clips in both splits together."""
        return self.num_classes * (self.train_per_class + self.val_per_class)


def class_names(num_classes: int) -> list[str]:
    """Class names in label order: the first ``num_classes`` motions."""
    return list(MOTIONS[:num_classes])


def default_root() -> Path:
    """Cache folder of the default dataset: ``$TATS_DATA_DIR/synthetic``, else ``~/.cache/tats_env/synthetic``."""
    env = os.environ.get("TATS_DATA_DIR")
    if env:
        return Path(env).expanduser() / "synthetic"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "tats_env" / "synthetic"


# BT.601 limited-range RGB -> YCbCr (rows Y, Cb, Cr), what decoders assume for untagged SD video.
_RGB_TO_YUV = (
    (65.481 / 255, 128.553 / 255, 24.966 / 255, 16.0),
    (-37.797 / 255, -74.203 / 255, 112.0 / 255, 128.0),
    (112.0 / 255, -93.786 / 255, -18.214 / 255, 128.0),
)


def rgb_to_yuv420p(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(T, H, W, 3)`` -> PyAV's planar yuv420p layout ``(T, H * 3 // 2, W)`` uint8.

    Done in numpy (BT.601, 2x2 chroma averaging) so the pixels handed to the encoder do not
    depend on swscale's CPU-specific code paths.
    """
    t, h, w, _ = frames.shape
    r, g, b = (frames[..., c].astype(np.float32) for c in range(3))
    y, cb, cr = (kr * r + kg * g + kb * b + off for kr, kg, kb, off in _RGB_TO_YUV)
    cb, cr = (c.reshape(t, h // 2, 2, w // 2, 2).mean(axis=(2, 4)) for c in (cb, cr))  # 2x2 box average
    packed = np.concatenate([y.reshape(t, -1), cb.reshape(t, -1), cr.reshape(t, -1)], axis=1)
    return np.clip(np.rint(packed), 0, 255).astype(np.uint8).reshape(t, h * 3 // 2, w)


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: int = 25, crf: int = 20) -> None:
    """Encode uint8 RGB frames ``(T, H, W, 3)`` (H, W even) as H.264 (libx264, yuv420p) mp4."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {frames.shape[1]}x{frames.shape[2]}")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        # One encoder thread: generation already runs one clip per process. x264's macroblock
        # tree made output vary from run to run on these tiny frames; without it files are
        # byte-identical for a given seed.
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        stream.codec_context.time_base = Fraction(1, fps)
        for number, frame in enumerate(rgb_to_yuv420p(frames)):
            picture = av.VideoFrame.from_ndarray(frame, format="yuv420p")
            picture.pts, picture.time_base = number, Fraction(1, fps)
            container.mux(stream.encode(picture))
        container.mux(stream.encode())


def _clip_jobs(config: SyntheticConfig) -> list[tuple[str, int, int, str]]:
    """``(split, label, number, relative path)`` of every clip, in list-file order."""
    jobs = []
    for split in SPLITS:
        per_class = config.train_per_class if split == "train" else config.val_per_class
        for label, motion in enumerate(class_names(config.num_classes)):
            for number in range(per_class):
                rel = f"{split}/{label:02d}_{motion}/{motion}_{split}_{number:04d}.mp4"
                jobs.append((split, label, number, rel))
    return jobs


def _write_clip(out: str, config: SyntheticConfig, job: tuple[str, int, int, str]) -> None:
    """Render, encode and save one clip with its foreground mask (runs in a worker process)."""
    split, label, number, rel = job
    seed = np.random.SeedSequence([config.seed, SPLITS.index(split), label, number])
    frames, fg = render_clip(MOTIONS[label], config.num_frames, config.size, np.random.default_rng(seed))
    video = Path(out) / rel
    video.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(video, frames, fps=config.fps, crf=config.crf)
    np.savez_compressed(foreground_path(video), fg=fg)


def _write_batch(out: str, config: SyntheticConfig, jobs: Sequence[tuple[str, int, int, str]]) -> int:
    for job in jobs:
        _write_clip(out, config, job)
    return len(jobs)


def _meta(config: SyntheticConfig) -> dict[str, object]:
    return {"generator": _GENERATOR, "version": GENERATOR_VERSION, "config": dataclasses.asdict(config)}


def generate_synthetic_dataset(
    out: str | os.PathLike[str], config: SyntheticConfig, *, num_workers: int | None = None, progress: bool = True
) -> Path:
    """Write the whole dataset into the existing empty-or-new folder ``out`` (not atomic).

    Most callers want :func:`ensure_synthetic_dataset`, which adds caching and atomicity.
    ``num_workers`` defaults to ``min(2, cpu count)``; 1 generates in this process.
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = _clip_jobs(config)
    workers = max(1, min(num_workers or min(2, os.cpu_count() or 1), len(jobs)))
    with tqdm(total=len(jobs), desc="synthetic clips", unit="clip", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                _write_clip(str(out_dir), config, job)
                bar.update(1)
        else:
            chunk = max(1, len(jobs) // (workers * 8))
            batches = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
            # fork avoids re-importing torch in every worker; other platforms use their default.
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                for done in pool.map(_write_batch, [str(out_dir)] * len(batches), [config] * len(batches), batches):
                    bar.update(done)
    for split in SPLITS:
        lines = [f"{rel} {label}\n" for s, label, _, rel in jobs if s == split]
        (out_dir / f"{split}.txt").write_text("".join(lines))
    (out_dir / "classes.txt").write_text("".join(f"{name}\n" for name in class_names(config.num_classes)))
    # meta.json last: its presence marks a finished dataset.
    (out_dir / "meta.json").write_text(json.dumps(_meta(config), indent=2) + "\n")
    return out_dir


def is_complete(root: str | os.PathLike[str], config: SyntheticConfig) -> bool:
    """Whether ``root`` holds a finished dataset generated with exactly ``config`` and this version."""
    root = Path(root)
    try:
        meta = json.loads((root / "meta.json").read_text())
        if {k: meta.get(k) for k in ("generator", "version", "config")} != _meta(config):
            return False
        if not (root / "classes.txt").is_file():
            return False
        for split in SPLITS:
            for record in read_list_file(root / f"{split}.txt"):
                if not (record.path.is_file() and foreground_path(record.path).is_file()):
                    return False
    except (OSError, ValueError):
        return False
    return True


def _generated_here(root: Path) -> bool:
    """Whether ``root`` has a ``meta.json`` written by this generator (any version or config)."""
    try:
        return json.loads((root / "meta.json").read_text()).get("generator") == _GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    """An exclusive inter-process lock beside ``root`` (no-op where fcntl is unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent first-time generation is not guarded there
        yield
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_synthetic_dataset(
    root: str | os.PathLike[str] | None = None,
    config: SyntheticConfig | None = None,
    *,
    force: bool = False,
    num_workers: int | None = None,
    progress: bool = True,
) -> Path:
    """The synthetic dataset folder, generating it first if missing, stale or ``force``d.

    ``root`` defaults to :func:`default_root` (``$TATS_DATA_DIR/synthetic`` or
    ``~/.cache/tats_env/synthetic``). A dataset is reused when its ``meta.json`` matches the
    generator version and ``config`` and every listed file exists. Generation happens in a
    hidden temporary sibling folder that replaces ``root`` atomically, under a file lock so
    concurrent callers generate once.

    Raises:
        FileExistsError: ``root`` exists, is not empty and is not a synthetic dataset (it is
            never deleted in that case).
    """
    config = config or SyntheticConfig()
    target = Path(root).expanduser() if root is not None else default_root()
    if not force and is_complete(target, config):
        return target
    with _lock(target):
        if not force and is_complete(target, config):  # another process finished meanwhile
            return target
        if target.exists() and any(target.iterdir()) and not _generated_here(target):
            raise FileExistsError(f"refusing to replace {target}: it is not empty and not a tats_env synthetic dataset")
        # Under the lock, leftover temporary folders belong to killed generations.
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            generate_synthetic_dataset(tmp, config, num_workers=num_workers, progress=progress)
            old = None
            if target.exists():
                old = target.parent / f".{target.name}.tmp-old-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _folder_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; flags are built from :class:`SyntheticConfig`'s fields."""
    parser = argparse.ArgumentParser(
        prog="python -m tats_env.data.synthetic",
        description="Generate (or reuse) the synthetic motion dataset: H.264 mp4 clips, foreground "
        "masks and train/val list files.",
    )
    parser.add_argument("--out", type=Path, default=None, help=f"dataset folder (default: {default_root()})")
    parser.add_argument("--force", action="store_true", help="regenerate even if a matching dataset exists")
    parser.add_argument("--workers", type=int, default=None, help="generator processes (default: min(2, CPUs))")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    for f in dataclasses.fields(SyntheticConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(f.default), default=f.default,
                            help=f"{f.metadata.get('help', '')} (default: {f.default})")
    args = parser.parse_args(argv)
    try:
        config = SyntheticConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticConfig)})
    except ValueError as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    root = ensure_synthetic_dataset(
        args.out, config, force=args.force, num_workers=args.workers, progress=not args.quiet
    )
    seconds = time.perf_counter() - start
    print(f"{config.num_clips} clips ({config.num_classes} classes) in {root}: "
          f"{_folder_size(root) / 2**20:.1f} MiB, ready in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
