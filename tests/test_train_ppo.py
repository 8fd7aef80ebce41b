"""The main job: a smoke run writes everything, and a killed run resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from agents.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "train_ppo.py"


def _tiny_args(data: Path, out: Path, total: int, **extra: object) -> list[str]:
    args = ["--data", str(data), "--out", str(out), "--num-envs", "4", "--total-steps", str(total),
            "--warmup-steps", "8", "--tats.dim", "32", "--no-progress-bar", "--seed", "0"]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def test_smoke_run_writes_events_images_checkpoint_and_exports(synthetic_root, tmp_path):
    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo

    out = tmp_path / "run"
    summary = train_ppo.main(_tiny_args(synthetic_root, out, 32, checkpoint_every=16, image_every=16))
    assert summary["clips"] == 40 and summary["mae_updates"] == 10
    events = list((out / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    progress = (out / "tb" / "progress.csv").read_text().splitlines()
    header = progress[0].split(",")
    for column in ("env/recon_loss", "env/motion_precision", "env/foreground_share", "train/approx_kl",
                   "train/clip_fraction", "train/entropy_loss", "train/value_loss", "time/clips_per_s"):
        assert column in header, column
    assert sorted(p.name for p in (out / "images").glob("*.png")) == ["masks_00000016.png", "masks_00000032.png"]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["num_timesteps"] == 32 and state["warmup_done"] == 8
    assert {"sampler", "core", "rng", "mae_state", "mae_config"} <= set(state)
    assert {"policy", "policy.optimizer"} <= set(state["sampler"]["params"])
    assert (out / "encoder-native" / "model.safetensors").is_file()
    assert (out / "encoder-hf" / "config.json").is_file()
    assert json.loads((out / "summary.json").read_text())["checkpoint"] == str(out / "checkpoint.pt")


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
    from agents.training import CoTrainer, TrainConfig
    from tats_env.commandline import parse

    rollout = 4 * 4  # n_steps x num_envs: SB3 trains in whole rollouts
    args = _tiny_args(synthetic_root, out, done + rollout, checkpoint_every=8, image_every=10_000) + ["--resume"]
    trainer = CoTrainer(parse(TrainConfig, args))
    trainer.restore(ckpt)
    weight = trainer.env.engine.model.encoder.blocks[0].attn.qkv.weight
    assert torch.equal(weight, saved["mae_state"]["encoder.blocks.0.attn.qkv.weight"])
    assert trainer.agent.num_timesteps == done
    trainer.close()

    summary = train_ppo.main(args)
    assert summary["resumed_from"] == done
    assert summary["clips"] == done + rollout + 8  # PPO clips + warm-up clips
    assert summary["mae_updates"] == saved["core"]["engine"]["num_updates"] + rollout // 4


def test_warmup_only_run_checkpoints_in_chunks_and_resumes(synthetic_root, tmp_path, monkeypatch):
    """--total-steps 0 is plain VideoMAE pre-training; its warm-up saves every checkpoint_every clips."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo
    from agents import training

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


def test_any_registered_sampler_trains_through_the_registry(synthetic_root, tmp_path):
    """--method reinforce: the main job builds the sampler from agents.registry and checkpoints its state."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo

    out = tmp_path / "run"
    summary = train_ppo.main(_tiny_args(synthetic_root, out, 16, method="reinforce", checkpoint_every=8,
                                        image_every=8))
    assert summary["method"] == "reinforce" and summary["clips"] == 24 and summary["mae_updates"] == 6
    state = load_checkpoint(out / "checkpoint.pt")
    agent_state = state["sampler"]["agent"]
    assert agent_state["num_timesteps"] == 16 and agent_state["n_updates"] == 4 and "policy" in agent_state
    header = (out / "tb" / "progress.csv").read_text().splitlines()[0].split(",")
    assert "train/policy_loss" in header and "env/recon_loss" in header
    assert sorted(p.name for p in (out / "images").glob("*.png")) == ["masks_00000008.png", "masks_00000016.png"]
