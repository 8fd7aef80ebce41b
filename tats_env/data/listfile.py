"""Where the videos are: list files (``path label`` per line) and folders of videos.

A list file follows the VideoMAE / UCF101 convention, one video per line::

    # comments and blank lines are ignored
    ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 0
    clips with spaces/take 1.mp4<TAB>3

Fields are separated by whitespace, or by a single tab when the path itself contains spaces.
Relative paths are resolved against the list file's folder, or against ``root`` when given.
A malformed file is rejected up front with one :class:`ValueError` naming every bad line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
"""File extensions (lower case) that :func:`list_video_folder` treats as videos."""

FOREGROUND_SUFFIX = ".fg.npz"
"""Suffix of a video's optional foreground-mask file, replacing the video's extension."""


def foreground_path(video: str | os.PathLike[str]) -> Path:
    """Where the foreground mask of ``video`` lives: ``<same folder>/<video stem>.fg.npz``."""
    video = Path(video)
    return video.with_name(video.stem + FOREGROUND_SUFFIX)


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video: its path, integer class label and where it was declared.

    ``line`` is the 1-based line of the list file, or 0 for videos found by scanning a folder.
    """

    path: Path
    label: int
    line: int = 0


def _parse_line(text: str) -> tuple[str, int]:
    """Split one non-comment line into ``(path, label)``; raise ``ValueError(reason)``."""
    if "\t" in text:
        fields = [f.strip() for f in text.split("\t")]
        fields = [f for f in fields if f]
        if len(fields) == 1:
            raise ValueError(f"missing label after path {fields[0]!r}")
        if len(fields) > 2:
            raise ValueError(f"expected 'path<TAB>label', got {len(fields)} tab-separated fields")
    else:
        fields = text.split()
        if len(fields) == 1:
            raise ValueError(f"missing label after path {fields[0]!r}")
        if len(fields) > 2:
            raise ValueError(
                f"expected 'path label', got {len(fields)} fields "
                "(separate with a tab when the path contains spaces)"
            )
    path, label_text = fields
    try:
        label = int(label_text)
    except ValueError:
        raise ValueError(f"non-integer label {label_text!r}") from None
    if label < 0:
        raise ValueError(f"negative label {label}")
    return path, label


def read_list_file(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[VideoRecord]:
    """Read a ``path label`` list file into records, validating every line first.

    Args:
        path: the list file (UTF-8, an optional byte-order mark is accepted).
        root: folder that relative video paths are resolved against; defaults to the folder
            holding the list file. Absolute paths and ``~`` are used as written.

    Returns:
        One :class:`VideoRecord` per non-blank, non-comment line, in file order. The videos
        themselves are not opened here; missing files are skipped (with a warning) when loaded.

    Raises:
        FileNotFoundError: the list file does not exist.
        ValueError: one or more malformed lines; the message names the file and every bad
            line number with its reason (missing label, non-integer label, negative label, ...).
    """
    list_path = Path(path).expanduser()
    if not list_path.is_file():
        raise FileNotFoundError(f"list file not found: {list_path}")
    base = Path(root).expanduser() if root is not None else list_path.parent
    records: list[VideoRecord] = []
    errors: list[str] = []
    with list_path.open(encoding="utf-8-sig") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            try:
                video, label = _parse_line(text)
            except ValueError as exc:
                errors.append(f"  line {number}: {exc}")
                continue
            video_path = Path(video).expanduser()
            if not video_path.is_absolute():
                video_path = base / video_path
            records.append(VideoRecord(path=video_path, label=label, line=number))
    if errors:
        raise ValueError(
            f"malformed list file {list_path} ({len(errors)} bad line(s); expected 'path label' "
            "per line, space or tab separated, label a non-negative integer):\n" + "\n".join(errors)
        )
    return records


def list_video_folder(folder: str | os.PathLike[str]) -> list[VideoRecord]:
    """All videos under ``folder`` (recursively, by extension, sorted by path) as records.

    Labels come from the folder layout: with class subfolders (``folder/<class>/**/video.mp4``)
    the label is the index of the video's top-level subfolder name among the sorted class
    names; a flat folder (all videos directly inside) gives label 0 to every video. Hidden
    files and folders (names starting with ``.``) are ignored.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        ValueError: no videos were found, or videos sit both directly in ``folder`` and in
            class subfolders (their labels would be ambiguous); the message names them.
    """
    top = Path(folder).expanduser()
    if not top.is_dir():
        raise FileNotFoundError(f"video folder not found: {top}")
    videos = sorted(
        p
        for p in top.rglob("*")
        if p.suffix.lower() in VIDEO_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(top).parts)
    )
    if not videos:
        raise ValueError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found under {top}")
    loose = [p for p in videos if p.parent == top]
    nested = [p for p in videos if p.parent != top]
    if not nested:
        return [VideoRecord(path=p, label=0) for p in videos]
    if loose:
        shown = ", ".join(p.name for p in loose[:5]) + (" ..." if len(loose) > 5 else "")
        raise ValueError(
            f"{top} mixes class subfolders with {len(loose)} video(s) directly inside it "
            f"({shown}); move them into a class folder or use a list file"
        )
    classes = sorted({p.relative_to(top).parts[0] for p in nested})
    index = {name: i for i, name in enumerate(classes)}
    return [VideoRecord(path=p, label=index[p.relative_to(top).parts[0]]) for p in videos]


def folder_class_names(folder: str | os.PathLike[str]) -> list[str]:
    """Sorted class names (top-level subfolders holding videos) that :func:`list_video_folder` uses."""
    top = Path(folder).expanduser()
    return sorted({r.path.relative_to(top).parts[0] for r in list_video_folder(top) if r.path.parent != top})


def resolve_records(
    data: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> list[VideoRecord]:
    """Records from a list file (via :func:`read_list_file`) or a folder (via :func:`list_video_folder`).

    ``root`` only applies to list files (the base of relative paths).

    Raises:
        FileNotFoundError: ``data`` is neither an existing file nor an existing folder.
    """
    source = Path(data).expanduser()
    if source.is_dir():
        return list_video_folder(source)
    if source.is_file():
        return read_list_file(source, root=root)
    raise FileNotFoundError(f"data source not found (expected a list file or a video folder): {source}")
