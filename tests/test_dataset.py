"""VideoClipDataset on real and synthetic clips: decoding, skipping bad files, repeats, masks, loaders."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import decord
import numpy as np
import pytest
import torch

import tats_env.data.dataset as dataset_module
from tats_env.config import VideoSpec, get_preset
from tats_env.data.dataset import VideoClipDataset, build_dataset, collate_clips, make_dataloader
from tats_env.data.listfile import VideoRecord, foreground_path, list_video_folder, read_list_file
from tats_env.data.synthetic import SyntheticConfig, ensure_synthetic_dataset, write_mp4
from tats_env.data.transforms import denormalize

DATA = Path(__file__).parent / "data"
REAL = {"realshort.mp4": 36, "pens.mp4": 64, "carphone_pristine.mp4": 120}
SPEC: VideoSpec = get_preset("tiny").video  # 16 x 64 x 64, sampling rate 2
SMALL = SyntheticConfig(num_classes=12, train_per_class=1, val_per_class=1, num_frames=16, size=64)


def _real_list(tmp_path: Path, extra: str = "") -> Path:
    lines = [f"{DATA / name} {label}" for label, name in enumerate(REAL)]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines) + "\n" + extra)
    return listing


def _ours(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "skipping video" in str(w.message)]


def _box_video(folder: Path, name: str = "box.mp4", frames: int = 20, h: int = 48, w: int = 64) -> Path:
    """A black clip with a moving white box, and a foreground file marking the box."""
    video = np.zeros((frames, h, w, 3), dtype=np.uint8)
    fg = np.zeros((frames, h, w), dtype=bool)
    for t in range(frames):
        fg[t, 12:32, 4 + 2 * t : 20 + 2 * t] = True
    video[fg] = 255
    path = folder / name
    write_mp4(path, video, fps=25, crf=10)
    np.savez_compressed(foreground_path(path), fg=fg)
    return path


@pytest.mark.parametrize("train", [True, False])
def test_real_clips_decode_to_normalised_tensors(tmp_path: Path, train: bool) -> None:
    ds = VideoClipDataset(read_list_file(_real_list(tmp_path)), SPEC, train=train, seed=0)
    for i, name in enumerate(REAL):
        item = ds[i]
        video = item["video"]
        assert video.shape == (3, 16, 64, 64) and video.dtype == torch.float32
        assert item["label"].dtype == torch.int64 and item["label"].shape == () and int(item["label"]) == i
        assert item["index"] == i and item["skipped"] == 0 and "foreground" not in item
        pixels = denormalize(video, SPEC.mean, SPEC.std)
        # normalised with the spec's mean/std: undoing it gives the raw pixel brightness back
        raw = decord.VideoReader(str(DATA / name), num_threads=1).get_batch([0, REAL[name] // 2]).asnumpy()
        assert abs(float(pixels.mean()) - raw.mean() / 255) < 0.08, name
        assert float(video.min()) < -1.0 and float(video.max()) > 1.0  # ImageNet-normalised range
    if not train:
        torch.testing.assert_close(ds[1]["video"], ds[1]["video"])  # eval is deterministic


def test_ssv2_sampling_and_multi_view_eval(tmp_path: Path) -> None:
    records = read_list_file(_real_list(tmp_path))
    ds = VideoClipDataset(records, SPEC, train=True, sampling="ssv2", seed=1)
    assert ds[2]["video"].shape == (3, 16, 64, 64)
    views = VideoClipDataset(records, SPEC, train=False, temporal_views=2, spatial_views=3)
    item = views[2]
    assert item["video"].shape == (6, 3, 16, 64, 64) and item["label"].tolist() == [2] * 6
    assert not torch.equal(item["video"][0], item["video"][5])
    with pytest.raises(ValueError, match="eval settings"):
        VideoClipDataset(records, SPEC, train=True, spatial_views=3)


def test_bad_files_are_skipped_warned_once_and_counted(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    listing = _real_list(tmp_path, f"{corrupt} 7\n{tmp_path / 'missing.mp4'} 8\n")
    ds = VideoClipDataset(read_list_file(listing), SPEC, train=True, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = [ds[i] for i in range(len(ds))]
        second = [ds[i] for i in range(len(ds))]
    messages = _ours(caught)
    assert len(messages) == 2  # once per bad file, not once per access
    assert any("corrupt.mp4" in m and "cannot open" in m for m in messages)
    assert any("missing.mp4" in m and "not found" in m for m in messages)
    assert ds.bad_files == {corrupt, tmp_path / "missing.mp4"}
    assert [it["skipped"] for it in first[:3]] == [0, 0, 0]
    assert all(it["skipped"] in (1, 2) for it in first[3:])  # a retry may hit the other bad file
    assert [it["skipped"] for it in second] == [0, 0, 0, 1, 1]  # known bad files are never redrawn
    for items in (first, second):
        assert all(it["index"] < 3 and int(it["label"]) == it["index"] for it in items)
        assert all(it["video"].shape == (3, 16, 64, 64) for it in items)
    batches = list(make_dataloader(ds, batch_size=5, shuffle=False))
    assert len(batches) == 1 and batches[0]["skipped"] == 2 and batches[0]["video"].shape[0] == 5


def test_too_short_video_is_skipped(tmp_path: Path) -> None:
    short = tmp_path / "short.mp4"
    write_mp4(short, np.full((6, 32, 32, 3), 128, dtype=np.uint8))
    records = [VideoRecord(short, 0), VideoRecord(DATA / "pens.mp4", 1)]
    ds = VideoClipDataset(records, SPEC, train=False)
    with pytest.warns(RuntimeWarning, match=r"short.mp4: too short: video has 6 frames, at least 16"):
        item = ds[0]
    assert item["skipped"] == 1 and item["index"] == 1
    relaxed = VideoClipDataset(records, SPEC, train=False, min_frames=4)
    assert relaxed[0]["skipped"] == 0


def test_all_bad_dataset_raises_instead_of_hanging(tmp_path: Path) -> None:
    records = []
    for i in range(30):
        path = tmp_path / f"bad{i}.mp4"
        path.write_bytes(b"not a video" * (i + 1))
        records.append(VideoRecord(path, 0))
    ds = VideoClipDataset(records, SPEC, train=True, max_retries=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match=r"after 5 attempt\(s\)") as info:
            ds[0]
    assert str(records[0].path) in str(info.value)
    assert len(ds.bad_files) == 5
    tiny = VideoClipDataset(records[:2], SPEC, train=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match=r"bad0.mp4.*\n.*bad1.mp4"):
            tiny[0]  # stops as soon as no untried file is left


def test_repeated_sampling_decodes_once_and_gives_different_crops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"readers": 0, "batches": 0}
    real_reader = decord.VideoReader

    class CountingReader:
        def __init__(self, *args: object, **kwargs: object) -> None:
            calls["readers"] += 1
            self._reader = real_reader(*args, **kwargs)

        def __len__(self) -> int:
            return len(self._reader)

        def get_batch(self, indices: list[int]) -> object:
            calls["batches"] += 1
            return self._reader.get_batch(indices)

    monkeypatch.setattr(dataset_module.decord, "VideoReader", CountingReader)
    ds = VideoClipDataset([VideoRecord(DATA / "carphone_pristine.mp4", 4)], SPEC, train=True, num_repeats=4, seed=3)
    item = ds[0]
    assert calls == {"readers": 1, "batches": 1}
    assert item["video"].shape == (4, 3, 16, 64, 64) and item["label"].tolist() == [4] * 4
    clips = item["video"].flatten(1)
    assert all(not torch.equal(clips[a], clips[b]) for a in range(4) for b in range(a + 1, 4))
    with pytest.raises(ValueError, match="num_repeats"):
        VideoClipDataset(ds.records, SPEC, train=False, num_repeats=2)


def test_foreground_mask_follows_frames_and_crops(tmp_path: Path) -> None:
    path = _box_video(tmp_path)
    spec = VideoSpec(num_frames=8, image_size=32, patch_size=8, sampling_rate=2)
    ds = VideoClipDataset([VideoRecord(path, 0)], spec, train=True, num_repeats=3, seed=0, flip_prob=0.5)
    item = ds[0]
    fg = item["foreground"]
    assert fg.shape == (3, 8, 32, 32) and fg.dtype == torch.float32
    assert set(fg.unique().tolist()) <= {0.0, 1.0}
    bright = denormalize(item["video"], spec.mean, spec.std).mean(1) > 0.5  # (R, T, S, S)
    for r in range(3):
        inter = (bright[r] & fg[r].bool()).sum().item()
        union = (bright[r] | fg[r].bool()).sum().item()
        assert inter / union > 0.85
        assert not torch.equal(fg[r, 0], fg[r, -1])  # the box moves over time
    assert not (torch.equal(fg[0], fg[1]) and torch.equal(fg[1], fg[2]))  # different crops
    eval_item = VideoClipDataset([VideoRecord(path, 0)], spec, train=False)[0]
    # eval: centred window (frames 2, 4, ..., 16) and the centre 48x48 square resized to 32
    expected = torch.from_numpy(np.load(foreground_path(path))["fg"])[2:18:2, :, 8:56]
    expected = torch.nn.functional.interpolate(expected[:, None].float(), size=(32, 32), mode="nearest-exact")[:, 0]
    assert torch.equal(eval_item["foreground"], expected)


def test_mismatched_foreground_file_is_reported_and_skipped(tmp_path: Path) -> None:
    path = _box_video(tmp_path, frames=20)
    np.savez_compressed(foreground_path(path), fg=np.zeros((19, 48, 64), dtype=bool))
    ds = VideoClipDataset([VideoRecord(path, 0), VideoRecord(DATA / "pens.mp4", 1)], SPEC, train=False)
    with pytest.warns(RuntimeWarning, match=r"shape \(19, 48, 64\), expected \(frames, H, W\) = \(20, 48, 64\)"):
        assert ds[0]["index"] == 1


def test_collate_flattens_repeats_and_rejects_mixed_foreground() -> None:
    def item(index: int, repeats: int, fg: bool) -> dict[str, object]:
        out: dict[str, object] = {
            "video": torch.full((repeats, 3, 2, 4, 4), float(index)),
            "label": torch.full((repeats,), index, dtype=torch.int64),
            "index": index, "skipped": index % 2,
        }
        if fg:
            out["foreground"] = torch.ones(repeats, 2, 4, 4)
        return out

    batch = collate_clips([item(0, 2, True), item(1, 2, True), item(3, 2, True)])
    assert batch["video"].shape == (6, 3, 2, 4, 4) and batch["foreground"].shape == (6, 2, 4, 4)
    assert batch["label"].tolist() == [0, 0, 1, 1, 3, 3] and batch["index"].tolist() == [0, 0, 1, 1, 3, 3]
    assert batch["skipped"] == 2
    single = collate_clips([{"video": torch.zeros(3, 2, 4, 4), "label": torch.tensor(5), "index": 9, "skipped": 0}])
    assert single["video"].shape == (1, 3, 2, 4, 4) and single["label"].tolist() == [5]
    with pytest.raises(ValueError, match="foreground"):
        collate_clips([item(0, 1, True), item(1, 1, False)])


@pytest.fixture(scope="module")
def small_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synth") / "ds", SMALL, progress=False)


def test_dataloader_with_two_workers_is_seeded(small_synthetic: Path) -> None:
    ds = build_dataset(small_synthetic, SPEC, split="train", num_repeats=2)
    assert ds.train and len(ds) == 12

    def first_epoch() -> list[dict[str, torch.Tensor]]:
        loader = make_dataloader(ds, batch_size=4, shuffle=True, num_workers=2, seed=11, drop_last=True)
        return list(loader)

    a, b = first_epoch(), first_epoch()
    assert len(a) == 3
    assert sorted(torch.cat([x["index"] for x in a]).unique().tolist()) == list(range(12))
    for x, y in zip(a, b):
        assert x["video"].shape == (8, 3, 16, 64, 64) and x["foreground"].shape == (8, 16, 64, 64)
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["video"], y["video"])
        assert torch.equal(x["label"], x["index"] % 12)  # one clip per class, in class order
        assert x["foreground"].sum() > 0


def test_build_dataset_sources(small_synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TATS_DATA_DIR", str(tmp_path / "cache"))
    val = build_dataset("synthetic", SPEC, split="val", synthetic_config=SMALL)
    assert not val.train and len(val) == 12
    assert (tmp_path / "cache" / "synthetic" / "val.txt").is_file()
    folder = build_dataset(small_synthetic / "train", SPEC)  # a folder of class subfolders
    assert [r.label for r in folder.records] == list(range(12))
    listing = build_dataset(_real_list(tmp_path), SPEC, train=False)
    assert len(listing) == 3 and listing[0]["video"].shape == (3, 16, 64, 64)
    with pytest.raises(FileNotFoundError):
        build_dataset(tmp_path / "absent.txt", SPEC)


def test_clip_stream_counts_distinct_bad_videos_and_warns_once_each(tmp_path: Path) -> None:
    """3 bad files stepped over many times are 3 skipped videos (not the number of skips), each warned about once."""
    from tats_env.env.clips import ClipStream

    bad = [tmp_path / "missing.mp4", tmp_path / "corrupt.mp4", tmp_path / "short.mp4"]
    bad[1].write_bytes(np.random.default_rng(0).bytes(5000))
    write_mp4(bad[2], np.full((6, 32, 32, 3), 128, dtype=np.uint8))
    listing = _real_list(tmp_path, "".join(f"{path} 0\n" for path in bad))
    stream = ClipStream(VideoClipDataset(read_list_file(listing), SPEC, train=True, seed=0), batch_size=2,
                        prefetch=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = sum(stream.next()["skipped"] for _ in range(9))  # 3 epochs of 3 batches
    stream.close()
    assert events > 3  # the bad files were stepped over again and again ...
    assert stream.skipped == 3  # ... but they are 3 videos
    assert sorted(stream.bad_videos) == sorted(str(path) for path in bad)
    assert "not found" in stream.bad_videos[str(bad[0])] and "too short" in stream.bad_videos[str(bad[2])]
    messages = _ours(caught)
    assert len(messages) == 3 and all(any(str(path) in m for m in messages) for path in bad)


def test_ffmpeg_decoder_messages_are_silenced(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A damaged H.264 stream makes FFmpeg print `[h264 @ ...]` lines; the dataset keeps them off stderr."""
    data = bytearray((DATA / "pens.mp4").read_bytes())
    rng = np.random.default_rng(0)
    for i in range(len(data) // 3, 2 * len(data) // 3, 7):  # keep the header and the index, damage the frames
        data[i] = int(rng.integers(256))
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))

    def decode() -> str:
        capfd.readouterr()
        try:
            reader = decord.VideoReader(str(damaged), num_threads=1)
            reader.get_batch(list(range(0, len(reader), 2)))
        except Exception:  # noqa: BLE001 - decord raises for the damaged frames; the messages are the point
            pass
        return capfd.readouterr().err

    try:
        dataset_module.set_decoder_log_level("error")
        assert "[h264 @" in decode()  # the file really makes FFmpeg talk
        dataset_module.set_decoder_log_level()  # the default this module sets on import
        assert "[h264 @" not in decode()
    finally:
        dataset_module.set_decoder_log_level()
    with pytest.raises(ValueError, match="unknown FFmpeg log level 'loud'"):
        dataset_module.set_decoder_log_level("loud")


def _junk_videos(folder: Path, count: int) -> list[VideoRecord]:
    """``count`` undecodable ``.mp4`` files (random bytes)."""
    rng = np.random.default_rng(1)
    records = []
    for i in range(count):
        path = folder / f"junk{i:02d}.mp4"
        path.write_bytes(rng.bytes(4000))
        records.append(VideoRecord(path, 0))
    return records


def test_twenty_bad_videos_in_a_row_never_kill_a_clip_while_a_good_one_exists(tmp_path: Path) -> None:
    """The old fixed 10 retries failed with 20 bad videos and 1 good one; retries now cover the whole list."""
    records = [*_junk_videos(tmp_path, 20), VideoRecord(DATA / "pens.mp4", 3)]
    for seed in range(5):
        ds = VideoClipDataset(records, SPEC, train=True, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            items = [ds[i] for i in range(len(ds))]
        assert all(it["index"] == 20 and int(it["label"]) == 3 for it in items)
        assert sum(it["skipped"] for it in items) >= 20  # every bad video stepped over (once, then known bad)
        assert ds.bad_files == {r.path for r in records[:20]}


def test_no_good_video_left_says_how_many_are_bad_out_of_how_many(tmp_path: Path) -> None:
    from tats_env.data import NoUsableVideoError

    records = _junk_videos(tmp_path, 25)
    ds = VideoClipDataset([*records, records[0]], SPEC, train=True)  # one video listed twice is one video
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NoUsableVideoError) as info:
            ds[3]
    first, *listed = str(info.value).splitlines()
    assert first.startswith("no usable video left: 25 of 25 videos are bad")
    assert len(listed) == 11 and listed[-1].strip() == "... and 15 more"  # capped, not 25 lines


def test_clip_stream_reports_no_usable_video_from_a_worker_without_its_traceback(tmp_path: Path) -> None:
    from tats_env.data import NoUsableVideoError
    from tats_env.env.clips import ClipStream

    stream = ClipStream(VideoClipDataset(_junk_videos(tmp_path, 4), SPEC, train=True), batch_size=2,
                        num_workers=1, prefetch=False)
    try:
        with pytest.raises(NoUsableVideoError) as info:
            stream.next()
    finally:
        stream.close()
    message = str(info.value)
    assert message.startswith("no usable video left: 4 of 4 videos are bad") and "Traceback" not in message


def test_a_video_whose_name_is_not_utf8_is_decoded_not_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    odd = Path(os.fsdecode(bytes(folder) + b"/caf\xe9.mp4"))  # Latin-1 bytes: kept as a surrogate by Python
    shutil.copy(DATA / "pens.mp4", odd)
    [record] = list_video_folder(folder)
    assert record.path == odd
    ds = VideoClipDataset([record, VideoRecord(DATA / "pens.mp4", 0)], SPEC, train=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a skip would warn
        item = ds[0]
    assert item["index"] == 0 and item["skipped"] == 0 and not ds.bad_files
    torch.testing.assert_close(item["video"], ds[1]["video"])  # the same pixels as the file under an ASCII name
