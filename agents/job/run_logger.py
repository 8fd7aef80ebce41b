"""The main job's SB3 logger: one clip axis for warm-up and sampler, and logs that survive a resume.

* :class:`RunLogger` shifts every ``dump(step)`` by ``offset`` (the warm-up clips before the
  sampler phase) and records it as ``time/clips``, so TensorBoard and ``progress.csv`` show the
  whole run on one axis.
* :class:`ResumableCSVOutputFormat` continues ``progress.csv`` instead of truncating it (SB3's
  ``CSVOutputFormat`` opens it with mode ``"w"``): the rows up to the checkpoint are kept, a
  half-written last line and rows logged after the checkpoint (they are redone) are dropped,
  and the header is kept, so SB3's own header rewrite for new keys still works.
* :class:`ResumableTensorBoardOutputFormat` opens its event file with ``purge_step`` so
  TensorBoard hides the events a resumed run logs again.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import sys
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import (
    CSVOutputFormat, HumanOutputFormat, KVWriter, Logger, TensorBoardOutputFormat,
)
from torch.utils.tensorboard import SummaryWriter

from tats_env.utils import atomic_write_text

__all__ = ["CLIPS_KEY", "RunLogger", "ResumableCSVOutputFormat", "ResumableTensorBoardOutputFormat", "make_run_logger",
           "pending_records", "restore_pending_records"]

CLIPS_KEY = "time/clips"
"""Column of the run's clip count (warm-up + sampler) in ``progress.csv``."""
CSV_NAME = "progress.csv"


class RunLogger(Logger):
    """An SB3 ``Logger`` whose steps are the run's clips: ``dump(step)`` writes at ``step + offset``."""

    def __init__(self, folder: str | None, output_formats: list[KVWriter]) -> None:
        super().__init__(folder, output_formats)
        self.offset = 0
        """Clips done before the current phase's counter started (the warm-up, in the sampler phase)."""

    def dump(self, step: int = 0) -> None:
        """Record ``time/clips`` and write every format at the run's clip count."""
        clips = step + self.offset
        self.record(CLIPS_KEY, clips)
        super().dump(clips)


def _kept_csv_text(text: str, keep_until: int) -> str:
    """``progress.csv`` text without a torn last line and without rows past ``keep_until`` clips."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # a kill mid-write
    if not lines:
        return ""
    header = lines[0].rstrip("\n").split(",")
    column = header.index(CLIPS_KEY) if CLIPS_KEY in header else None
    kept = [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader(io.StringIO(line)), [])
        value = row[column] if column is not None and column < len(row) else ""
        try:
            if value and float(value) > keep_until:
                continue
        except ValueError:
            pass
        kept.append(line)
    return "".join(kept)


class ResumableCSVOutputFormat(CSVOutputFormat):
    """SB3's CSV output that continues an existing file (rows up to ``keep_until`` clips) instead of truncating it."""

    def __init__(self, filename: str | Path, keep_until: int | None = None) -> None:
        path = Path(filename)
        if keep_until is None or not path.is_file():
            super().__init__(str(path))
            return
        atomic_write_text(_kept_csv_text(path.read_text(), keep_until), path)
        self.file = open(path, "r+")  # noqa: SIM115 - SB3's format owns the handle and closes it
        first = self.file.readline().rstrip("\n")
        self.keys = first.split(",") if first else []
        self.file.seek(0, io.SEEK_END)
        self.separator = ","
        self.quotechar = '"'


class ResumableTensorBoardOutputFormat(TensorBoardOutputFormat):
    """SB3's TensorBoard output; with ``purge_after`` the events past that step are hidden (they are logged again)."""

    def __init__(self, folder: str | Path, purge_after: int | None = None) -> None:
        if purge_after is None:
            super().__init__(str(folder))
            return
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_after + 1)
        self._is_closed = False


def make_run_logger(folder: str | Path, resume_at: int | None, verbose: bool,
                    extra: list[KVWriter] | None = None) -> RunLogger:
    """CSV + TensorBoard in ``folder`` (continued after ``resume_at`` clips when resuming), SB3's stdout
    tables with ``verbose``, plus ``extra`` formats (the terminal summary)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    formats: list[KVWriter] = [
        ResumableCSVOutputFormat(folder / CSV_NAME, keep_until=resume_at),
        ResumableTensorBoardOutputFormat(folder, purge_after=resume_at),
        *(extra or []),
    ]
    if verbose:
        formats.append(HumanOutputFormat(sys.stdout))
    return RunLogger(str(folder), formats)


def pending_records(logger: Logger) -> dict[str, Any]:
    """The finite numbers ``logger`` recorded since its last dump, for a checkpoint: SB3 logs a PPO update's
    ``train/*`` at the next rollout's dump, so a resumed run writes them in its first row as an uninterrupted run
    would (:func:`restore_pending_records`)."""
    values = {key: float(value) for key, value in logger.name_to_value.items()
              if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)}
    return {"values": values,
            "counts": {key: int(logger.name_to_count.get(key, 0)) for key in values},
            "excluded": {key: list(logger.name_to_excluded.get(key, ())) for key in values}}


def restore_pending_records(logger: Logger, pending: dict[str, Any]) -> None:
    """Put the records of :func:`pending_records` back into a fresh ``logger``."""
    for key, value in pending.get("values", {}).items():
        logger.name_to_value[key] = value
        logger.name_to_count[key] = pending.get("counts", {}).get(key, 0)
        logger.name_to_excluded[key] = tuple(pending.get("excluded", {}).get(key, ()))
