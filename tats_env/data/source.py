"""Which list file or folder a ``--data`` value and a split name stand for, checked before anything is built.

:func:`data_source` resolves ``(data, split)`` exactly as :func:`~tats_env.data.dataset.build_dataset`
reads it; :func:`check_data_source` also reads the list file (or scans the folder) and raises one
single-line :class:`~tats_env.data.listfile.DataSourceError` naming the option, the file (and line)
and what was expected. Neither decodes a video nor generates the synthetic dataset, and neither
imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from tats_env.data.listfile import DataSourceError, resolve_records

__all__ = ["DataSourceError", "SYNTHETIC", "SYNTHETIC_SPLITS", "check_data_source", "data_source"]

SYNTHETIC = "synthetic"
"""The ``--data`` value naming the embedded synthetic dataset."""

SYNTHETIC_SPLITS: tuple[str, ...] = ("train", "val")
"""The splits (list files ``<split>.txt``) of the synthetic dataset, and the split lists a data folder may hold."""


def _split_lists(folder: Path) -> list[str]:
    """The split list files (``train.txt``, ``val.txt``) that ``folder`` holds."""
    return [f"{split}.txt" for split in SYNTHETIC_SPLITS if (folder / f"{split}.txt").is_file()]


def data_source(data: str | os.PathLike[str], split: str = "train") -> Path | None:
    """The list file or video folder that ``data`` means for ``split``; None for the synthetic dataset.

    * ``"synthetic"``: None (its ``<split>.txt`` lives where it is generated); ``split`` must be one of its splits.
    * a folder holding ``<split>.txt``: that list file.
    * a folder holding other split lists (``train.txt``, ``val.txt``) but not this one: an error, not
      every video of the folder mixed together.
    * anything else: itself (a folder of videos or a list file, where the split does not apply; what
      does not exist is left to the reader, which raises ``FileNotFoundError``).

    Raises:
        DataSourceError: ``split`` is not a split of the synthetic dataset or of a folder of split lists.
    """
    if str(data) == SYNTHETIC:
        if split not in SYNTHETIC_SPLITS:
            raise DataSourceError(
                f"the synthetic dataset has no split {split!r} (its splits: {', '.join(SYNTHETIC_SPLITS)})"
            )
        return None
    source = Path(data).expanduser()
    if source.is_dir():
        if (source / f"{split}.txt").is_file():
            return source / f"{split}.txt"
        lists = _split_lists(source)
        if lists:
            raise DataSourceError(f"{source} holds no {split}.txt for split {split!r} (it has {', '.join(lists)})")
    return source


def check_data_source(
    data: str | os.PathLike[str], split: str = "train", root: str | os.PathLike[str] | None = None, *,
    flag: str = "--data", split_flag: str | None = "--split",
) -> int | None:
    """Check that ``data`` (for ``split``) lists at least one video, without decoding any; return how many.

    Reads the list file (every line: path, label in range, UTF-8 text) or scans the video folder;
    the synthetic dataset is not generated here (None is returned for it). ``flag`` / ``split_flag``
    are the option names the messages start with (``split_flag=None`` where the split is not an
    option of the command: its problems then start with ``flag``).

    Raises:
        DataSourceError: one line, ``"<flag> <data>: <what is wrong, naming the file and line>"``
            (``"<split_flag> <split>: ..."`` for a split that does not exist).
    """
    try:
        source = data_source(data, split)
    except DataSourceError as exc:
        raise DataSourceError(f"{split_flag} {split}: {exc}" if split_flag else f"{flag} {data}: {exc}") from None
    if source is None:
        return None
    if not source.exists():
        raise DataSourceError(f"{flag} {data}: no such file or folder "
                              f"(give '{SYNTHETIC}', a list file or a folder of videos)")
    try:
        return len(resolve_records(source, root=root))
    except DataSourceError as exc:
        raise DataSourceError(f"{flag} {data}: {exc}") from None
    except OSError as exc:  # an unreadable list file or folder
        raise DataSourceError(f"{flag} {data}: cannot read {exc.filename or source} ({exc.strerror or exc})") from None
