"""List files and video folders: parsing, path resolution and error reporting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tats_env.data.listfile import (
    MAX_LABEL,
    DataSourceError,
    VideoRecord,
    folder_class_names,
    foreground_path,
    list_video_folder,
    read_list_file,
    resolve_records,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_space_and_tab_separators_comments_and_relative_paths(tmp_path: Path) -> None:
    listing = _write(
        tmp_path / "train.txt",
        "# header comment\n"
        "\n"
        "a/clip1.mp4 3\n"
        "   b/clip2.avi    0   \n"
        "my clips/take 1.mp4\t7\n"
        "/abs/video.mkv\t2\n",
    )
    records = read_list_file(listing)
    assert records == [
        VideoRecord(tmp_path / "a/clip1.mp4", 3, 3),
        VideoRecord(tmp_path / "b/clip2.avi", 0, 4),
        VideoRecord(tmp_path / "my clips/take 1.mp4", 7, 5),
        VideoRecord(Path("/abs/video.mkv"), 2, 6),
    ]


def test_root_overrides_the_list_folder_and_bom_is_accepted(tmp_path: Path) -> None:
    listing = tmp_path / "lists" / "val.txt"
    listing.parent.mkdir()
    listing.write_bytes("\ufeffx.mp4 1\n".encode("utf-8"))
    assert read_list_file(listing)[0].path == listing.parent / "x.mp4"
    assert read_list_file(listing, root=tmp_path / "videos")[0] == VideoRecord(tmp_path / "videos" / "x.mp4", 1, 1)


def test_malformed_list_names_file_and_every_bad_line(tmp_path: Path) -> None:
    listing = _write(
        tmp_path / "bad.txt",
        "ok.mp4 0\n"            # 1 fine
        "no_label.mp4\n"        # 2 missing label
        "# comment\n"           # 3 ignored
        "x.mp4 abc\n"           # 4 non-integer
        "y.mp4 -2\n"            # 5 negative
        "path with spaces.mp4 1\n"  # 6 too many fields (needs a tab)
        "z.mp4 1.5\n"           # 7 non-integer
        "tabbed.mp4\t\n"        # 8 missing label after a tab
        "good.mp4\t4\n",        # 9 fine
    )
    with pytest.raises(ValueError) as info:
        read_list_file(listing)
    message = str(info.value)
    assert str(listing) in message
    assert {int(n) for n in re.findall(r"line (\d+):", message)} == {2, 4, 5, 6, 7, 8}
    assert "line 2: missing label" in message
    assert "line 4: non-integer label 'abc'" in message
    assert "line 5: negative label -2" in message
    assert "line 6: expected 'path label', got 4 fields" in message


def test_missing_list_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_list_file(tmp_path / "nope.txt")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_folder_with_class_subfolders_labels_by_sorted_name(tmp_path: Path) -> None:
    _touch(tmp_path / "zebra" / "b.mp4")
    _touch(tmp_path / "zebra" / "deep" / "a.MP4")
    _touch(tmp_path / "apple" / "c.avi")
    _touch(tmp_path / "apple" / "c.fg.npz")  # not a video
    _touch(tmp_path / "apple" / "notes.txt")
    _touch(tmp_path / ".hidden" / "x.mp4")
    records = list_video_folder(tmp_path)
    assert [(r.path.relative_to(tmp_path).as_posix(), r.label) for r in records] == [
        ("apple/c.avi", 0),
        ("zebra/b.mp4", 1),
        ("zebra/deep/a.MP4", 1),
    ]
    assert folder_class_names(tmp_path) == ["apple", "zebra"]


def test_flat_folder_gives_label_zero(tmp_path: Path) -> None:
    for name in ("b.webm", "a.mp4"):
        _touch(tmp_path / name)
    records = list_video_folder(tmp_path)
    assert [(r.path.name, r.label, r.line) for r in records] == [("a.mp4", 0, 0), ("b.webm", 0, 0)]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_video_folder(tmp_path / "missing")
    _touch(tmp_path / "readme.txt")
    with pytest.raises(ValueError, match="no videos"):
        list_video_folder(tmp_path)
    _touch(tmp_path / "cls" / "a.mp4")
    _touch(tmp_path / "loose.mp4")
    with pytest.raises(ValueError, match="loose.mp4"):
        list_video_folder(tmp_path)


def test_resolve_records_dispatches_on_file_or_folder(tmp_path: Path) -> None:
    _touch(tmp_path / "vids" / "a.mp4")
    listing = _write(tmp_path / "list.txt", "a.mp4 5\n")
    assert resolve_records(tmp_path / "vids") == [VideoRecord(tmp_path / "vids" / "a.mp4", 0, 0)]
    assert resolve_records(listing, root=tmp_path / "vids") == [VideoRecord(tmp_path / "vids" / "a.mp4", 5, 1)]
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_records(tmp_path / "nothing")


def test_foreground_path_convention() -> None:
    assert foreground_path("/d/clip.v2.mp4") == Path("/d/clip.v2.fg.npz")


def test_list_errors_are_one_line_and_labels_are_bounded(tmp_path: Path) -> None:
    listing = _write(tmp_path / "labels.txt", f"a.mp4 {MAX_LABEL}\nb.mp4 {MAX_LABEL + 1}\nc.mp4 {10**23}\n")
    with pytest.raises(DataSourceError) as info:
        read_list_file(listing)
    message = str(info.value)
    assert "\n" not in message and str(listing) in message
    assert f"line 2: label {MAX_LABEL + 1} above {MAX_LABEL}" in message and "line 3: label 1" in message
    assert "line 1" not in message


def test_a_binary_file_given_as_a_list_is_named_in_one_short_line(tmp_path: Path) -> None:
    video = tmp_path / "clip.MP4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(DataSourceError, match=r"clip.MP4 is a video, not a list file"):
        read_list_file(video)
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"x 1\n" * 3 + b"\xff\xfe junk")
    with pytest.raises(DataSourceError, match=r"weights.bin is not UTF-8 text \(line 4: byte 0xff\)"):
        read_list_file(blob)
    many = _write(tmp_path / "many.txt", "".join(f"v{i}.mp4 x\n" for i in range(40)))
    with pytest.raises(DataSourceError) as info:
        read_list_file(many)
    assert "40 bad line(s)" in str(info.value) and "; and 30 more" in str(info.value)
    assert len(str(info.value)) < 1000


def test_an_empty_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"empty.txt lists no videos"):
        read_list_file(_write(tmp_path / "empty.txt", "# header only\n\n"))
