"""Issue 21 item 8 and the Ctrl-C part of item 9: what a resumed (or interrupted) run writes matches an uninterrupted one.

* rows of ``progress.csv`` after a resume fill the columns an uninterrupted run fills (``train/*`` included);
* ``wall_time_s`` adds up the time of every process of the run (the checkpoint carries it);
* ``--resume`` of a finished run changes nothing; a budget below the run's position is refused;
* ``resumed_from`` is the run's clip count (warm-up included); summary.json records versions and the commit;
* Ctrl-C saves a checkpoint at the next boundary, exits 130 saying how to resume, and that resume is exact.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from agents.job.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "train_ppo.py"
sys.path.insert(0, str(ROOT / "experiments"))
import train_ppo  # noqa: E402

ROLLOUT = 16  # token_ppo's default n_steps 4 x 4 clips per step


def _args(data: Path, out: Path, total: int, warmup: int = 8, *extra: str) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--num-envs", "4", "--total-steps", str(total),
            "--warmup-steps", str(warmup), "--tats.dim", "32", "--no-progress-bar", "--seed", "0",
            "--checkpoint-every", "16", "--image-every", "1000", "--export-formats", "native",
            "--mae.total-updates", "100", *extra]


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        train_ppo.main(argv)
    return int(info.value.code)


def _filled(out: Path) -> dict[int, set[str]]:
    """For each progress.csv row (by run clips): the columns it fills."""
    rows = list(csv.DictReader((out / "tb" / "progress.csv").read_text().splitlines()))
    return {int(row["time/clips"]): {key for key, value in row.items() if value not in ("", None)} for row in rows}


@pytest.fixture(scope="module")
def finished(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run: 8 warm-up clips, one sampler rollout of 16 clips."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train_ppo.main(_args(synthetic_root, out, 16))
    return out


@pytest.fixture
def run_copy(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def test_resumed_rows_wall_time_and_versions_match_an_uninterrupted_run(synthetic_root: Path, run_copy: Path,
                                                                        tmp_path: Path):
    # (b) the checkpoint carries the run's training time; pretend the first process trained for 1000 s
    state = load_checkpoint(run_copy / "checkpoint.pt")
    assert state.get("wall_time_s", 0) > 0, "the checkpoint does not record the run's wall time"
    state["wall_time_s"] = 1000.0
    save_checkpoint(state, run_copy / "checkpoint.pt")

    previous = signal.getsignal(signal.SIGINT)
    resumed = train_ppo.main(_args(synthetic_root, run_copy, 32) + ["--resume"])
    assert signal.getsignal(signal.SIGINT) is previous  # (g) the Ctrl-C handler is the run's only
    straight = train_ppo.main(_args(synthetic_root, tmp_path / "straight", 32))
    # (a) every row after the resume fills the columns an uninterrupted run fills (train/* of the update before)
    after, before = _filled(run_copy), _filled(tmp_path / "straight")
    assert sorted(after) == sorted(before) == [8, 24, 40]
    assert any(key.startswith("train/") for key in before[40])
    assert after[40] == before[40], sorted(before[40] ^ after[40])
    # (b) wall time adds up over the processes
    assert resumed["wall_time_s"] >= 1000.0
    assert load_checkpoint(run_copy / "checkpoint.pt")["wall_time_s"] >= 1000.0
    # (e) resumed_from is on the run's clip axis (warm-up included), like "clips"
    assert resumed["resumed_from"] == 24 and resumed["clips"] == 40 and straight["resumed_from"] is None
    # (f) versions and commit
    versions = resumed["versions"]
    for name in ("torch", "stable-baselines3", "gymnasium", "timm", "numpy"):
        assert versions[name] == metadata.version(name), name
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert resumed["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert json.loads((run_copy / "summary.json").read_text())["versions"] == versions


def test_git_commit_is_none_outside_a_git_checkout(tmp_path: Path):
    from tats_env.utils import git_commit, git_dirty

    assert git_commit(tmp_path) is None and git_dirty(tmp_path) is None


def test_git_dirty_says_whether_tracked_files_were_edited(tmp_path: Path):
    from tats_env.utils import git_commit, git_dirty

    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    assert git_dirty(tmp_path) is False and len(git_commit(tmp_path) or "") == 40
    (tmp_path / "new.py").write_text("untracked\n")
    assert git_dirty(tmp_path) is False  # untracked files are not the code that ran
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_dirty(tmp_path) is True


def test_resume_during_the_warmup_reports_the_clips_it_resumed_from(synthetic_root: Path, tmp_path: Path):
    out = tmp_path / "warm"
    train_ppo.main(_args(synthetic_root, out, 0, 8))  # 8 warm-up clips, then stopped
    summary = train_ppo.main(_args(synthetic_root, out, 0, 16) + ["--resume"])
    assert summary["resumed_from"] == 8 and summary["clips"] == 16


def test_resume_of_a_finished_run_changes_nothing(run_copy: Path, capsys: pytest.CaptureFixture[str]):
    files = [run_copy / "summary.json", run_copy / "config.json", run_copy / "checkpoint.pt",
             run_copy / "tb" / "progress.csv", run_copy / "encoder-native" / "model.safetensors"]
    before = [(path.read_bytes(), path.stat().st_mtime_ns) for path in files]
    capsys.readouterr()
    summary = train_ppo.main(["--out", str(run_copy), "--resume"])
    assert summary == json.loads((run_copy / "summary.json").read_text())
    assert [(path.read_bytes(), path.stat().st_mtime_ns) for path in files] == before
    out = capsys.readouterr().out
    assert "is finished (24 clips" in out and "--total-steps" in out


def test_resume_with_a_budget_below_the_runs_position_is_refused(run_copy: Path,
                                                                 capsys: pytest.CaptureFixture[str]):
    config = (run_copy / "config.json").read_bytes()
    assert _exit_code(["--out", str(run_copy), "--resume", "--total-steps", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--total-steps 8" in err[0] and "24 clips" in err[0] and "16 sampler" in err[0]
    assert (run_copy / "config.json").read_bytes() == config  # not rewritten
    assert _exit_code(["--out", str(run_copy), "--resume", "--warmup-steps", "4"]) == 2
    assert "--warmup-steps 4" in capsys.readouterr().err


def test_ctrl_c_saves_at_the_next_boundary_and_resumes_exactly(synthetic_root: Path, tmp_path: Path):
    out = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *_args(synthetic_root, out, 100_000)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = out / "checkpoint.pt"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # the sampler has done a rollout: the next stop is inside its phase
            if ckpt.is_file() and load_checkpoint(ckpt)["num_timesteps"] >= ROLLOUT:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            raise AssertionError("no sampler checkpoint within 120 s")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("train_ppo.py: interrupted")]
    assert len(lines) == 1 and f"python experiments/train_ppo.py --out {out} --resume" in lines[0], err
    assert "Traceback" not in err
    stopped = load_checkpoint(ckpt)
    position = stopped["num_timesteps"]
    assert position % ROLLOUT == 0 and f"at {position + 8:,} clips" in lines[0]
    assert not (out / "summary.json").exists()

    # Resumed to one more rollout, against a run that stopped at the same position by its budget and was extended.
    resumed = train_ppo.main(_args(synthetic_root, out, position + ROLLOUT) + ["--resume"])
    reference = tmp_path / "reference"
    train_ppo.main(_args(synthetic_root, reference, position))
    extended = train_ppo.main(_args(synthetic_root, reference, position + ROLLOUT) + ["--resume"])
    for key in ("clips", "mae_updates", "motion_lift", "mask_composition", "resumed_from"):
        assert resumed[key] == extended[key], key



def test_a_second_ctrl_c_stops_at_once_and_the_handler_is_restored():
    from agents.job.guards import StopRequest

    previous = signal.getsignal(signal.SIGINT)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt), StopRequest(lines.append) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stop.requested and len(lines) == 1 and "Ctrl-C again" in lines[0]
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is previous
