"""Where the videos are: list files (``path label`` per line) and folders of videos.

A list file follows the VideoMAE / UCF101 convention, one video per line::

    # comments and blank lines are ignored
    ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 0
    clips with spaces/take 1.mp4<TAB>3

Fields are separated by whitespace, or by a single tab when the path itself contains spaces.
Relative paths are resolved against the list file's folder, or against ``root`` when given.
A malformed file (bad lines, no lines, not UTF-8 text, a video given as the list) is rejected up
front with one single-line :class:`DataSourceError` (a ``ValueError``) naming the file and its bad lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
"""File extensions (lower case) that :func:`list_video_folder` treats as videos."""

FOREGROUND_SUFFIX = ".fg.npz"
"""Suffix of a video's optional foreground-mask file, replacing the video's extension."""

MAX_LABEL = 99_999
"""Largest class label a list file may hold (a classifier head gets ``max label + 1`` outputs)."""

LIST_FORMAT = f"expected 'path label' per line, space or tab separated, label an integer in [0, {MAX_LABEL}]"
"""What a list-file line must look like, as the error messages say it."""

_SHOWN_BAD_LINES = 10  # a binary file has thousands of bad "lines"; the message names the first ones


class DataSourceError(ValueError):
    """A data source (list file, video folder, split) cannot be used; the one-line message names the file
    (and line) and says what was expected."""


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
    if label > MAX_LABEL:
        raise ValueError(f"label {label} above {MAX_LABEL}")
    return path, label


def _list_lines(list_path: Path) -> list[str]:
    """The lines of a list file; :class:`DataSourceError` for a video or a file that is not UTF-8 text."""
    if list_path.suffix.lower() in VIDEO_EXTENSIONS:
        raise DataSourceError(f"{list_path} is a video, not a list file ({LIST_FORMAT}); "
                              "to use videos directly, give the folder that holds them")
    data = list_path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataSourceError(f"list file {list_path} is not UTF-8 text (line {line}: byte 0x{data[exc.start]:02x}); "
                              f"{LIST_FORMAT}") from None
    return text.split("\n")  # not splitlines(): its extra separators (\f, \x1c, ...) would shift line numbers


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
        DataSourceError: a one-line message naming the file and, for malformed lines, each bad
            line number with its reason (missing label, non-integer label, negative or too large
            label, ...); also for a file that is not UTF-8 text, a video file, or a list of no videos.
    """
    list_path = Path(path).expanduser()
    if not list_path.is_file():
        raise FileNotFoundError(f"list file not found: {list_path}")
    base = Path(root).expanduser() if root is not None else list_path.parent
    records: list[VideoRecord] = []
    errors: list[str] = []
    for number, raw in enumerate(_list_lines(list_path), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            video, label = _parse_line(text)
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
            continue
        video_path = Path(video).expanduser()
        if not video_path.is_absolute():
            video_path = base / video_path
        records.append(VideoRecord(path=video_path, label=label, line=number))
    if errors:
        shown = "; ".join(errors[:_SHOWN_BAD_LINES])
        more = f"; and {len(errors) - _SHOWN_BAD_LINES} more" if len(errors) > _SHOWN_BAD_LINES else ""
        raise DataSourceError(
            f"malformed list file {list_path}: {len(errors)} bad line(s): {shown}{more} ({LIST_FORMAT})"
        )
    if not records:
        raise DataSourceError(f"list file {list_path} lists no videos ({LIST_FORMAT})")
    return records


def list_video_folder(folder: str | os.PathLike[str]) -> list[VideoRecord]:
    """All videos under ``folder`` (recursively, by extension, sorted by path) as records.

    Labels come from the folder layout: with class subfolders (``folder/<class>/**/video.mp4``)
    the label is the index of the video's top-level subfolder name among the sorted class
    names; a flat folder (all videos directly inside) gives label 0 to every video. Hidden
    files and folders (names starting with ``.``) are ignored.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        DataSourceError: no videos were found, or videos sit both directly in ``folder`` and in
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
        raise DataSourceError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found under {top}")
    loose = [p for p in videos if p.parent == top]
    nested = [p for p in videos if p.parent != top]
    if not nested:
        return [VideoRecord(path=p, label=0) for p in videos]
    if loose:
        shown = ", ".join(p.name for p in loose[:5]) + (" ..." if len(loose) > 5 else "")
        raise DataSourceError(
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
