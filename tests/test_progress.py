"""Terminal output and logs of the main job: summary lines, one clip axis, progress.csv continued across a resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from agents.job.progress import POSTFIX, SUMMARY, Figure, RunProgress, TerminalSummary, report_lines
from agents.job.run_logger import ResumableCSVOutputFormat, make_run_logger


def _dump(logger, values: dict[str, float], step: int) -> None:  # noqa: ANN001 - an SB3 logger
    for key, value in values.items():
        logger.record(key, value)
    logger.dump(step)


def test_summary_line_every_n_dumps_with_the_key_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    progress = RunProgress(total=96, enabled=False)
    progress.set_phase("ppo_tats")
    summary = TerminalSummary(progress, every=2)
    logger = make_run_logger(tmp_path / "tb", None, verbose=False, extra=[summary])
    logger.offset = 32  # e.g. the warm-up's clips
    for step in (16, 32, 48):
        progress.update_to(32 + step)
        _dump(logger, {"time/clips_per_s": 12.34, "env/recon_loss": 0.01234, "env/motion_recall": 0.9,
                       "train/approx_kl": np.float32(0.0123), "train/entropy_loss": -163.0,
                       "mae/skipped_updates": 0}, step)
    summary.flush()
    logger.close()
    progress.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "[64/96 clips] ppo_tats | clips/s 12.3 | mae 0.01234 | recall 0.900 | kl 0.012 | entropy 163",
        "[80/96 clips] ppo_tats | clips/s 12.3 | mae 0.01234 | recall 0.900 | kl 0.012 | entropy 163",
    ]
    rows = list(csv.DictReader((tmp_path / "tb" / "progress.csv").read_text().splitlines()))
    assert [int(row["time/clips"]) for row in rows] == [48, 64, 80]  # one clip axis: step + offset


def test_figures_are_easy_to_extend(monkeypatch: pytest.MonkeyPatch):
    progress = RunProgress(total=10, enabled=False)
    monkeypatch.setattr("agents.job.progress.SUMMARY", SUMMARY + (Figure("prec", "env/motion_precision", ".2f"),))
    progress.show({"env/motion_lift": 0.25, "env/motion_precision": 0.1})
    assert progress.summary_line().endswith("lift 0.250 | prec 0.10")
    assert "lift 0.250" in progress.bar.postfix
    assert POSTFIX[0].key == "env/recon_loss" and "env/motion_recall" in [f.key for f in POSTFIX]


def test_csv_is_continued_keeping_rows_up_to_the_checkpoint(tmp_path: Path):
    path = tmp_path / "progress.csv"
    path.write_text("time/clips,env/recon_loss\n8,0.5\n16,0.4\n24,0.3\n32,0.2")  # last row torn by a kill
    writer = ResumableCSVOutputFormat(path, keep_until=16)  # the checkpoint was at 16 clips
    writer.write({"time/clips": 24, "env/recon_loss": 0.35, "train/approx_kl": 0.01},
                 {"time/clips": ("",), "env/recon_loss": ("",), "train/approx_kl": ("",)})
    writer.close()
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows == [["time/clips", "env/recon_loss", "train/approx_kl"], ["8", "0.5", ""], ["16", "0.4", ""],
                    ["24", "0.35", "0.01"]]


def test_report_lines_say_where_everything_is():
    lines = report_lines({"run_dir": "runs/x", "clips": 6816, "mae_updates": 852, "wall_time_s": 358.0,
                          "checkpoint": "runs/x/checkpoint.pt", "exports": {"native": "runs/x/encoder-native"},
                          "tensorboard": "runs/x/tb", "images": None, "skipped_videos": 3, "skipped_mae_updates": 0})
    assert lines[0] == "done: 6,816 clips, 852 MAE updates in 358.0 s"
    assert "native runs/x/encoder-native" in lines[1] and "tensorboard --logdir runs/x/tb" in lines[2]
    assert lines[-1] == "  3 bad video(s) skipped (listed in summary.json)" and len(lines) == 4


def test_report_lines_show_the_motion_lift_of_the_run_direction():
    summary = {"run_dir": "runs/x", "clips": 96, "mae_updates": 12, "wall_time_s": 1.0, "checkpoint": "c",
               "exports": {}, "tensorboard": "t", "images": None,
               "motion_lift": {"direction": "mask_hard", "first_quarter": 0.0312, "last_quarter": 0.4}}
    assert report_lines(summary)[1] == ("  motion lift (mask_hard; 0 = random masks, 1 = best mask): first quarter "
                                        "0.031 -> last quarter 0.400")
    summary["motion_lift"] = {"direction": "show_hard", "first_quarter": None, "last_quarter": None}
    assert not any("motion lift" in line for line in report_lines(summary))
