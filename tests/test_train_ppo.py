"""The main job: a smoke run writes everything, and a killed run resumes from its checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from agents.job.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "train_ppo.py"


def _tiny_args(data: Path, out: Path, total: int, **extra: object) -> list[str]:
    args = ["--data", str(data), "--out", str(out), "--num-envs", "4", "--total-steps", str(total),
            "--warmup-steps", "8", "--tats.dim", "32", "--no-progress-bar", "--seed", "0"]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a progress.csv; every row must have exactly the header's fields."""
    header, *rows = list(csv.reader(path.read_text().splitlines()))
    assert all(len(row) == len(header) for row in rows), "rows do not match the header"
    return header, rows


def test_smoke_run_writes_events_images_checkpoint_and_exports(synthetic_root, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo

    out = tmp_path / "run"
    summary = train_ppo.main(_tiny_args(synthetic_root, out, 32, checkpoint_every=16, image_every=16,
                                        summary_every=2))
    assert summary["clips"] == 40 and summary["mae_updates"] == 10
    events = list((out / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    progress = (out / "tb" / "progress.csv").read_text().splitlines()
    header = progress[0].split(",")
    for column in ("env/recon_loss", "env/motion_lift", "env/motion_lift_mask_hard", "env/moving_static_error_ratio",
                   "env/motion_precision", "env/foreground_share", "train/approx_kl",
                   "train/clip_fraction", "train/entropy_loss", "train/value_loss", "time/clips_per_s"):
        assert column in header, column
    # Images on the run's clip axis (8 warm-up clips first), and one at the end of each phase
    assert sorted(p.name for p in (out / "images").glob("*.png")) == [
        "masks_00000016.png", "masks_00000032.png", "masks_00000040.png"]
    assert [p.name for p in (out / "images" / "warmup").glob("*.png")] == ["masks_00000008.png"]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["num_timesteps"] == 32 and state["warmup_done"] == 8
    assert {"sampler", "core", "rng", "mae_state", "mae_config"} <= set(state)
    assert {"policy", "policy.optimizer"} <= set(state["sampler"]["params"])
    assert (out / "encoder-native" / "model.safetensors").is_file()
    assert (out / "encoder-hf" / "config.json").is_file()
    assert json.loads((out / "summary.json").read_text())["checkpoint"] == str(out / "checkpoint.pt")
    assert summary["images"] == str(out / "images")
    lift = summary["motion_lift"]  # 8 sampler steps of 4 clips: quarters of 2 steps
    assert lift["direction"] == "show_hard" and lift["steps"] == 8  # the recommended default
    assert -1.0 <= lift["first_quarter"] <= 1.0 and -1.0 <= lift["last_quarter"] <= 1.0

    # The terminal: a few summary lines, no SB3 tables (they went to TensorBoard / progress.csv).
    printed = capsys.readouterr()
    lines = (printed.out + printed.err).splitlines()
    assert not any(line.startswith(("| ", "---")) for line in lines), "SB3's stdout table was printed"
    summaries = [line for line in lines if line.startswith("[") and " clips] " in line]
    assert len(summaries) >= 2 and any("token_ppo | clips/s" in line and "lift " in line for line in summaries)
    assert any(line.startswith("  motion lift (show_hard; 0 = random masks") for line in lines)
    assert any(line.startswith("  last quarter: moving tokens visible") and "visible overlap across clips" in line
               for line in lines)
    composition = summary["mask_composition"]
    assert composition["moving_visible"] >= 0 and -1.0 <= composition["visible_overlap"] <= 1.0
    assert composition["content_blind"] == (composition["visible_overlap"] > 0.5)
    assert len(lines) <= 14, lines

    # The checkpoint holds only tensors and plain containers: readable without unpickling code, and
    # the README's export command works on it without --trust-pickle.
    plain = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert plain["num_timesteps"] == 32 and plain["config"]["env"]["mask_ratio"] == 0.9
    import export_encoder

    exported = export_encoder.main(["--checkpoint", str(out / "checkpoint.pt"), "--out", str(tmp_path / "native")])
    assert (exported / "model.safetensors").is_file()


def test_warmup_is_logged_like_the_sampler_phase(synthetic_root, tmp_path):
    """The fixed-masker warm-up writes env statistics to progress.csv/TensorBoard and mask images."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo

    out = tmp_path / "run"
    args = _tiny_args(synthetic_root, out, 0, checkpoint_every=8, image_every=8)
    args[args.index("--warmup-steps") + 1] = "16"
    train_ppo.main(args + ["--ppo.n-steps", "2"])  # a dump every 2 env steps = 8 clips
    header, rows = _csv_rows(out / "tb" / "progress.csv")
    clips = [int(row[header.index("time/clips")]) for row in rows]
    assert clips == [8, 16]
    loss = [float(row[header.index("env/recon_loss")]) for row in rows]
    assert all(0 < value < 10 for value in loss)
    assert sorted(p.name for p in (out / "images" / "warmup").glob("*.png")) == ["masks_00000008.png",
                                                                                   "masks_00000016.png"]


def test_killed_run_resumes_from_last_checkpoint(synthetic_root, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(SCRIPT), *_tiny_args(synthetic_root, out, 100_000, checkpoint_every=8, image_every=10_000)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = out / "checkpoint.pt"
    deadline = time.time() + 180
    try:
        while time.time() < deadline:
            if ckpt.is_file() and load_checkpoint(ckpt)["num_timesteps"] >= 16:
                break
            assert proc.poll() is None, "training exited early"
            time.sleep(0.5)
        else:
            raise AssertionError("no checkpoint past 16 clips within 180 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = load_checkpoint(ckpt)  # the kill must leave a readable checkpoint
    done = saved["num_timesteps"]

    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo
    from agents.job.config import TrainConfig
    from agents.job.trainer import CoTrainer
    from tats_env.commandline import parse

    torch.load(ckpt, map_location="cpu", weights_only=True)  # plain tensors and containers only
    header, rows_before = _csv_rows(out / "tb" / "progress.csv")
    at_checkpoint = done + saved["warmup_done"]
    kept = [row for row in rows_before if int(row[header.index("time/clips")]) <= at_checkpoint]
    assert kept, "no progress.csv row up to the checkpoint"
    (out / ".checkpoint.pt.killed.tmp").write_bytes(b"half a checkpoint")  # as a kill mid-write leaves

    rollout = 4 * 4  # n_steps x num_envs: SB3 trains in whole rollouts
    args = _tiny_args(synthetic_root, out, done + rollout, checkpoint_every=8, image_every=10_000) + ["--resume"]
    trainer = CoTrainer(parse(TrainConfig, args))
    trainer.restore(ckpt)
    weight = trainer.env.engine.model.encoder.blocks[0].attn.qkv.weight
    assert torch.equal(weight, saved["mae_state"]["encoder.blocks.0.attn.qkv.weight"])
    assert trainer.sampler.num_timesteps == done
    trainer.close()
    assert not (out / ".checkpoint.pt.killed.tmp").exists()  # stale temporaries are removed at start

    summary = train_ppo.main(args)
    assert summary["resumed_from"] == done + saved["warmup_done"]  # on the run's clip axis
    assert summary["clips"] == done + rollout + 8  # PPO clips + warm-up clips
    assert summary["mae_updates"] == saved["core"]["engine"]["num_updates"] + rollout // 4
    assert summary["motion_lift"]["steps"] == (done + rollout) // 4  # the curve before the kill was checkpointed

    # progress.csv kept the rows logged before the kill (up to the checkpoint) and continued after them.
    header_after, rows_after = _csv_rows(out / "tb" / "progress.csv")
    column = header_after.index("time/clips")
    clips = [int(row[column]) for row in rows_after]
    assert clips == sorted(set(clips)) and clips[-1] == summary["clips"]
    old_rows = [dict(zip(header, row)) for row in kept]
    new_rows = {int(row[column]): dict(zip(header_after, row)) for row in rows_after}
    for row in old_rows:
        again = new_rows[int(row["time/clips"])]
        assert all(again[key] == value for key, value in row.items()), "a pre-kill row changed"
    # Every redone row fills the train/* columns an uninterrupted row does (the update logged before the kill
    # is carried by the checkpoint into the first row after it).
    def train_filled(row: dict[str, str]) -> set[str]:
        return {key for key, value in row.items() if key.startswith("train/") and value}

    last = train_filled(new_rows[clips[-1]])
    assert last and all(train_filled(new_rows[c]) == last for c in clips if c > at_checkpoint)


def test_warmup_only_run_checkpoints_in_chunks_and_resumes(synthetic_root, tmp_path, monkeypatch):
    """--total-steps 0 is plain VideoMAE pre-training; its warm-up saves every checkpoint_every clips."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo
    from agents.job import trainer as training

    out = tmp_path / "run"
    saved_at: list[int] = []
    original_save = training.CoTrainer.save

    def recording_save(self):  # type: ignore[no-untyped-def]
        saved_at.append(self.warmup_done)
        return original_save(self)

    monkeypatch.setattr(training.CoTrainer, "save", recording_save)
    args = _tiny_args(synthetic_root, out, 0, checkpoint_every=8)
    args[args.index("--warmup-steps") + 1] = "16"
    summary = train_ppo.main(args)
    assert saved_at == [8, 16]
    assert summary["clips"] == 16 and summary["mae_updates"] == 4
    assert load_checkpoint(out / "checkpoint.pt")["num_timesteps"] == 0

    # A longer warm-up resumed from the checkpoint continues at 16 clips instead of starting over.
    saved_at.clear()
    args[args.index("--warmup-steps") + 1] = "24"
    summary = train_ppo.main(args + ["--resume"])
    assert saved_at == [24] and summary["clips"] == 24 and summary["mae_updates"] == 6


def test_any_registered_sampler_trains_through_the_registry(synthetic_root, tmp_path, capsys):
    """--method reinforce: the main job builds the sampler from agents.registry and checkpoints its state."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo

    out = tmp_path / "run"
    summary = train_ppo.main(_tiny_args(synthetic_root, out, 16, method="reinforce", checkpoint_every=8,
                                        image_every=8) + ["--verbose"])
    assert summary["method"] == "reinforce" and summary["clips"] == 24 and summary["mae_updates"] == 6
    assert "|    recon_loss" in capsys.readouterr().out  # --verbose brings SB3's tables back
    torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    state = load_checkpoint(out / "checkpoint.pt")
    agent_state = state["sampler"]["agent"]
    assert agent_state["num_timesteps"] == 16 and agent_state["n_updates"] == 4 and "policy" in agent_state
    header = (out / "tb" / "progress.csv").read_text().splitlines()[0].split(",")
    assert "train/policy_loss" in header and "env/recon_loss" in header
    # on the run's clip axis: 8 warm-up clips come first; the end (24) falls on the interval, so no second copy
    assert sorted(p.name for p in (out / "images").glob("*.png")) == ["masks_00000016.png", "masks_00000024.png"]
