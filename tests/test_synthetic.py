"""The synthetic motion dataset: determinism, balance, decodability, foreground, caching, CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import decord
import numpy as np
import pytest
import torch

import tats_env.data.synthetic as synthetic
from tats_env.data.listfile import foreground_path, read_list_file
from tats_env.data.render import MOTIONS, camera_speed, mover_speed, plan_clip, render_clip, render_plan
from tats_env.config import VideoSpec
from tats_env.mae.masking import token_foreground
from tats_env.data.synthetic import SyntheticConfig, default_root, ensure_synthetic_dataset

SMALL = SyntheticConfig(num_classes=12, train_per_class=2, val_per_class=1, num_frames=16, size=40)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synth") / "ds", SMALL, num_workers=2, progress=False)


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files_regardless_of_workers(small_root: Path, tmp_path: Path) -> None:
    again = ensure_synthetic_dataset(tmp_path / "again", SMALL, num_workers=1, progress=False)
    assert _digests(again) == _digests(small_root)  # mp4 bytes, masks, list files, meta
    frames_a, fg_a = render_clip("orbit_cw", 16, 40, np.random.default_rng(5))
    frames_b, fg_b = render_clip("orbit_cw", 16, 40, np.random.default_rng(5))
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(fg_a, fg_b)


def test_different_seed_gives_different_clips(small_root: Path, tmp_path: Path) -> None:
    config = SyntheticConfig(**{**SMALL.__dict__, "seed": 1, "train_per_class": 1})
    other = ensure_synthetic_dataset(tmp_path / "other", config, num_workers=1, progress=False)
    rel = "train/00_translate_right/translate_right_train_0000"
    assert (other / f"{rel}.mp4").read_bytes() != (small_root / f"{rel}.mp4").read_bytes()
    fg_other = np.load(other / f"{rel}.fg.npz")["fg"]
    fg_small = np.load(small_root / f"{rel}.fg.npz")["fg"]
    assert not np.array_equal(fg_other, fg_small)


def test_list_files_are_class_balanced_and_relative(small_root: Path) -> None:
    assert (small_root / "classes.txt").read_text().split() == list(MOTIONS[:12])
    for split, per_class in (("train", 2), ("val", 1)):
        text = (small_root / f"{split}.txt").read_text()
        assert not any(line.startswith("/") for line in text.splitlines())
        records = read_list_file(small_root / f"{split}.txt")
        assert Counter(r.label for r in records) == {label: per_class for label in range(12)}
        for r in records:  # folder name carries the label, so folder input agrees with the list
            assert r.path.parent.name == f"{r.label:02d}_{MOTIONS[r.label]}"
    meta = json.loads((small_root / "meta.json").read_text())
    assert meta["version"] == synthetic.GENERATOR_VERSION and meta["config"]["size"] == 40


def test_videos_decode_with_expected_frames_and_size(small_root: Path) -> None:
    for record in read_list_file(small_root / "val.txt"):
        reader = decord.VideoReader(str(record.path), num_threads=1)
        assert len(reader) == 16
        frames = reader.get_batch(list(range(16))).asnumpy()
        assert frames.shape == (16, 40, 40, 3)
        assert frames.std() > 5  # textured, not blank
        fg = np.load(foreground_path(record.path))["fg"]
        assert fg.dtype == np.bool_ and fg.shape == (16, 40, 40)


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)[-2:]
    return np.array([xs.mean(), ys.mean()])


def test_foreground_is_nonempty_and_moves_as_the_class_says(small_root: Path) -> None:
    direction = {
        "translate_right": (1, 0), "translate_left": (-1, 0), "translate_up": (0, -1), "translate_down": (0, 1),
    }
    for record in read_list_file(small_root / "train.txt"):
        fg = np.load(foreground_path(record.path))["fg"]
        motion = MOTIONS[record.label]
        area = fg.reshape(16, -1).sum(1)
        assert (area > 0).all(), f"empty foreground frame in {record.path.name}"
        first, last = fg[:3], fg[-3:]
        shift = _centroid(last) - _centroid(first)
        if motion in direction:
            assert np.dot(shift, direction[motion]) > 0.2 * 40, (record.path.name, shift)
        elif motion == "grow":
            assert area[-1] > 1.5 * area[0]
        elif motion == "shrink":
            assert area[0] > 1.5 * area[-1]
        elif motion in ("approach", "separate"):
            spread = [np.nonzero(m)[1].std() + np.nonzero(m)[0].std() for m in (fg[0], fg[-1])]
            assert (spread[1] < spread[0]) == (motion == "approach"), record.path.name
        elif motion.startswith("orbit"):
            assert np.linalg.norm(_centroid(fg[8]) - _centroid(fg[0])) > 3


def test_classes_move_well_above_the_camera_drift():
    """Separable by construction: every class's own motion dwarfs the (smooth) camera drift."""
    for motion in MOTIONS:
        for seed in range(6):
            plan = plan_clip(motion, 16, 64, np.random.default_rng(seed))
            own, drift = mover_speed(plan), camera_speed(plan)
            assert drift.max() < 0.25, (motion, seed, drift.max())  # low-pass: never frame-to-frame shake
            assert own.mean() > 0.35 and own.mean() > 3 * drift.max(), (motion, seed, own.mean(), drift.max())
    # The drift is smooth: consecutive steps differ far less than the steps themselves.
    plan = plan_clip("grow", 32, 64, np.random.default_rng(1))
    steps = np.diff(plan.camera, axis=0)
    assert np.abs(np.diff(steps, axis=0)).max() < 0.05


def test_rotation_and_orbit_direction_follow_the_class():
    for motion, sign in (("rotate_cw", 1), ("rotate_ccw", -1)):
        angle = plan_clip(motion, 16, 64, np.random.default_rng(0)).layers[-1][0]["angle"]
        assert np.all(np.sign(np.diff(angle)) == sign)
    for motion, sign in (("orbit_cw", 1), ("orbit_ccw", -1)):
        pos = plan_clip(motion, 16, 64, np.random.default_rng(0)).layers[-1][0]["pos"]
        rel = pos - pos.mean(0)
        cross = rel[:-1, 0] * rel[1:, 1] - rel[:-1, 1] * rel[1:, 0]  # > 0: clockwise on screen (y down)
        assert np.all(np.sign(cross) == sign)


def test_foreground_is_exactly_the_visible_moving_pixels():
    for motion in MOTIONS[:12]:
        plan = plan_clip(motion, 16, 64, np.random.default_rng(3))
        frames, fg = render_plan(plan)
        still = render_plan(plan.__class__(**{**plan.__dict__, "layers": [l for l in plan.layers if not l[2]]}))[0]
        differs = (frames != still).any(-1)
        assert not (differs & ~fg).any()  # nothing outside the mask changed when the movers are removed
        assert (fg & ~differs).mean() < 0.002  # and the mask holds no pixel the movers do not paint
        plan.camera[:] = 0.0  # without the drift, only moving objects change pixels between frames
        frames, fg = render_plan(plan)
        changed = (frames[1:] != frames[:-1]).any(-1)
        assert not (changed & ~(fg[1:] | fg[:-1])).any(), motion
        assert changed.any()


def test_movers_cover_a_real_share_of_the_tokens():
    spec = VideoSpec(num_frames=16, image_size=64, patch_size=8, tubelet_size=2)
    for motion in MOTIONS[:12]:
        fg = np.stack([render_clip(motion, 16, 64, np.random.default_rng(s))[1] for s in range(8)])
        share = token_foreground(torch.from_numpy(fg), spec).float().mean().item()
        assert 0.06 < share < 0.25, (motion, share)


def test_cache_is_reused_and_regenerated_on_change(small_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    config = SyntheticConfig(num_classes=2, train_per_class=1, val_per_class=1, num_frames=4, size=32)
    ensure_synthetic_dataset(root, config, progress=False)
    marker = root / "train.txt"
    stamp = marker.stat().st_mtime_ns
    assert ensure_synthetic_dataset(root, config, progress=False) == root
    assert marker.stat().st_mtime_ns == stamp  # reused, not rewritten
    next(root.rglob("*.fg.npz")).unlink()  # a missing file forces regeneration
    ensure_synthetic_dataset(root, config, progress=False)
    assert len(list(root.rglob("*.fg.npz"))) == 4
    changed = SyntheticConfig(num_classes=3, train_per_class=1, val_per_class=1, num_frames=4, size=32)
    ensure_synthetic_dataset(root, changed, progress=False)
    assert len(read_list_file(root / "train.txt")) == 3
    assert not list(tmp_path.glob(".cache.tmp-*"))


def test_failed_generation_leaves_previous_dataset_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ds"
    config = SyntheticConfig(num_classes=2, train_per_class=1, val_per_class=1, num_frames=4, size=32)
    ensure_synthetic_dataset(root, config, progress=False)
    before = _digests(root)
    calls = {"n": 0}
    real = synthetic.write_mp4

    def flaky(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed mid-generation")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(synthetic, "write_mp4", flaky)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_dataset(root, config, force=True, num_workers=1, progress=False)
    assert _digests(root) == before
    assert not list(tmp_path.glob(".ds.tmp-*"))
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_dataset(tmp_path / "fresh", config, num_workers=1, progress=False)
    assert not (tmp_path / "fresh").exists()


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    config = SyntheticConfig(num_classes=2, train_per_class=1, val_per_class=1, num_frames=4, size=32)
    with pytest.raises(FileExistsError, match="not a tats_env synthetic dataset"):
        ensure_synthetic_dataset(tmp_path / "mine", config, progress=False)
    (tmp_path / "mine" / "meta.json").write_text('{"generator": "someone else"}')
    with pytest.raises(FileExistsError):
        ensure_synthetic_dataset(tmp_path / "mine", config, progress=False)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"


def test_default_root_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TATS_DATA_DIR", str(tmp_path))
    assert default_root() == tmp_path / "synthetic"
    monkeypatch.delenv("TATS_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "tats_env" / "synthetic"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="even"):
        SyntheticConfig(size=63)
    with pytest.raises(ValueError, match="decord"):
        SyntheticConfig(size=48)
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticConfig(num_classes=len(MOTIONS) + 1)


def test_cli_help_and_generation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tats_env.data.synthetic", "--help"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for flag in ("--out", "--force", "--num-classes", "--train-per-class", "--num-frames", "--seed"):
        assert flag in result.stdout
    assert "RuntimeWarning" not in result.stderr
    out = tmp_path / "cli"
    args = ["--out", str(out), "--num-classes", "2", "--train-per-class", "1", "--val-per-class", "1",
            "--num-frames", "4", "--size", "32", "--quiet", "--workers", "1"]
    assert synthetic.main(args) == 0
    assert "4 clips (2 classes)" in capsys.readouterr().out
    assert json.loads((out / "meta.json").read_text())["config"]["num_frames"] == 4
    with pytest.raises(SystemExit):
        synthetic.main(["--size", "15"])
