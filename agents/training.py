"""Co-training of the video MAE and the TATS sampler with PPO: the library behind ``train_ppo.py``."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList, ProgressBarCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecMonitor

from agents.fixed_masker import FixedMaskerAgent
from agents.callbacks import CheckpointEveryCallback, EnvStatsCallback, MaskImageCallback
from agents.checkpoint import CHECKPOINT_NAME, atomic_torch_save, find_checkpoint, load_checkpoint, rng_state, set_rng_state
from agents.policy import TATSPolicy
from agents.tats_network import TATSConfig
from tats_env.env import EngineConfig, RewardConfig, VideoMaskingVecEnv, make_vec_env


@dataclass
class TrainConfig:
    """Co-train a video MAE and the TATS sampler (PPO) on the masking env, then export the encoder."""

    data: str = "synthetic"
    """Videos: "synthetic" (embedded motion dataset), a `path label` list file, or a folder."""
    preset: str = "tiny"
    """MAE size preset: tiny (CPU), small, base, large."""
    mask_ratio: float = 0.9
    """Share of tokens masked in every clip."""
    num_envs: int = 8
    """Clips per env step (one batched MAE update per step)."""
    total_steps: int = 6000
    """Training clips for the PPO phase (SB3 timesteps; one clip = one one-step episode); 0 with a long
    --warmup-steps is plain VideoMAE pre-training with --warmup-masker (the no-sampler baseline)."""
    warmup_steps: int = 800
    """Clips of MAE warm-up with a fixed masker before the sampler takes over (0 disables); checkpointed
    every --checkpoint-every clips, so a killed warm-up resumes too."""
    warmup_masker: str = "random"
    """Fixed masker used during warm-up: random, tube, running_cell, motion_energy."""
    device: str = "auto"
    """Torch device: auto (cuda if available), cpu, cuda, cuda:1, ..."""
    out: Path = Path("runs/tats")
    """Run folder: TensorBoard events, images, checkpoint, exported encoder."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint."""
    seed: int = 0
    """Seed of data order, augmentation, masks and networks."""
    mae_lr: float = 2e-3
    """Peak learning rate of the MAE (absolute; VideoMAE's blr*batch/256 is far too small at batch 8)."""
    mae_warmup_updates: int = 50
    """Linear lr warm-up of the MAE, in optimizer steps."""
    reward_mode: Literal["adversarial", "cooperative"] = "adversarial"
    """adversarial: reward = masked-token error (hunt hard tokens); cooperative: its negative."""
    reward_baseline: Literal["none", "random"] = "none"
    """Subtract the error under a random mask of the same clip (paired control variate; +1 MAE forward)."""
    normalize_reward: bool = True
    """Standardise rewards with running statistics (the MAE loss drifts as it learns)."""
    learning_rate: float = 1e-3
    """Sampler (PPO) learning rate."""
    n_steps: int = 4
    """Env steps per PPO rollout (rollout size = n_steps * num_envs clips)."""
    batch_size: int = 8
    """PPO minibatch size in clips (below the rollout size, so later minibatches see ratio != 1;
    small minibatches keep the sampler's activation memory low)."""
    n_epochs: int = 1
    """PPO epochs per rollout."""
    clip_range: float = 0.2
    """PPO ratio clipping."""
    ent_coef: float = 0.0
    """Entropy bonus weight (entropy of the exact K-of-N distribution, in nats)."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Sampler gradient clipping."""
    sampler_dim: int = 32
    """Width of the trajectory-attention sampler."""
    sampler_depth: int = 1
    """Trajectory-attention blocks."""
    sampler_heads: int = 2
    """Attention heads of the sampler."""
    share_trunk: bool = True
    """Actor and critic share the trajectory-attention trunk."""
    num_workers: int = 0
    """DataLoader workers decoding videos (0 decodes in the main process)."""
    checkpoint_every: int = 2000
    """Clips between checkpoints (always one at the end)."""
    image_every: int = 2000
    """Clips between mask/reconstruction images."""
    export_formats: tuple[str, ...] = ("native", "hf")
    """Encoder export formats written at the end (native, videomae, hf)."""
    progress_bar: bool = True
    """Show a progress bar."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        out = dataclasses.asdict(self)
        out["out"] = str(self.out)
        out["export_formats"] = list(self.export_formats)
        return out


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_env(cfg: TrainConfig, device: torch.device) -> VideoMaskingVecEnv:
    """The batched masking env the config describes."""
    total_updates = (cfg.total_steps + cfg.warmup_steps) // cfg.num_envs
    engine = EngineConfig(lr=cfg.mae_lr, warmup_updates=cfg.mae_warmup_updates, total_updates=total_updates)
    return make_vec_env(
        data=cfg.data, preset=cfg.preset, mask_ratio=cfg.mask_ratio, num_envs=cfg.num_envs, device=device,
        engine_config=engine, reward=RewardConfig(mode=cfg.reward_mode, baseline=cfg.reward_baseline, normalize=cfg.normalize_reward),
        num_workers=cfg.num_workers, seed=cfg.seed,
    )


def build_ppo(cfg: TrainConfig, env: Any, device: torch.device) -> PPO:
    """PPO with :class:`TATSPolicy` sized by the config (gamma 0: every episode is one step)."""
    spec = env.unwrapped.core.spec
    tats = TATSConfig(dim=cfg.sampler_dim, depth=cfg.sampler_depth, num_heads=cfg.sampler_heads, share_trunk=cfg.share_trunk)
    return PPO(
        TATSPolicy, env, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs, gamma=0.0, gae_lambda=1.0, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, device=device,
        policy_kwargs={"tats_config": tats, "grid": spec.grid, "entropy_grad": cfg.ent_coef > 0},
    )


def warm_up_mae(env: VideoMaskingVecEnv, clips: int, masker_name: str, seed: int) -> int:
    """Train the env's MAE on ``clips`` clips with a fixed masker; returns the clips used."""
    agent = FixedMaskerAgent(env, masker_name)
    agent.generator.manual_seed(seed)
    return agent.learn(clips).num_timesteps


class CoTrainer:
    """Holds the env, PPO and run folder; ``run()`` trains, checkpoints, resumes and exports."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        self.env = build_env(cfg, self.device)
        self.monitored = VecMonitor(self.env)
        self.model = build_ppo(cfg, self.monitored, self.device)
        self.model.set_logger(configure(str(self.out / "tb"), ["stdout", "csv", "tensorboard"]))
        self.warmup_done = 0
        self.checkpoint_path = self.out / CHECKPOINT_NAME

    def save(self) -> Path:
        """Write the atomic checkpoint of the whole run state."""
        core = self.env.core
        state = {
            "format": 1,
            "config": self.cfg.to_dict(),
            "mae_config": core.engine.mae_config.to_dict(),
            "mae_state": core.engine.model.state_dict(),
            "core": core.state_dict(),
            "policy": self.model.policy.state_dict(),
            "policy_optimizer": self.model.policy.optimizer.state_dict(),
            "num_timesteps": self.model.num_timesteps,
            "n_updates": self.model._n_updates,
            "warmup_done": self.warmup_done,
            "rng": rng_state(),
        }
        return atomic_torch_save(state, self.checkpoint_path)

    def restore(self, path: Path) -> None:
        """Load a checkpoint written by :meth:`save` into this trainer."""
        state = load_checkpoint(path)
        self.env.core.load_state_dict(state["core"])
        self.model.policy.load_state_dict(state["policy"])
        self.model.policy.optimizer.load_state_dict(state["policy_optimizer"])
        self.model.num_timesteps = int(state["num_timesteps"])
        self.model._n_updates = int(state["n_updates"])
        self.warmup_done = int(state["warmup_done"])
        set_rng_state(state["rng"])
        # The clip order cannot resume mid-epoch; continue from a stream seeded by the position.
        self.env.core.seed(self.cfg.seed + 1 + self.model.num_timesteps + self.warmup_done)
        self.env._reset_seeds()  # drop the seed PPO queued at construction: it would restart the stream

    def run(self) -> dict[str, Any]:
        """Warm up, train with PPO, checkpoint, export; returns a summary (also written to summary.json)."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        resumed_from = None
        if cfg.resume:
            ckpt = find_checkpoint(self.out)
            if ckpt is None:
                raise FileNotFoundError(f"--resume: no {CHECKPOINT_NAME} in {self.out}")
            self.restore(ckpt)
            resumed_from = self.model.num_timesteps
        (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        start = time.perf_counter()
        while self.warmup_done < cfg.warmup_steps:  # in checkpoint-sized chunks, so a killed warm-up resumes
            chunk = min(cfg.warmup_steps - self.warmup_done, max(cfg.checkpoint_every, cfg.num_envs))
            self.warmup_done += warm_up_mae(self.env, chunk, cfg.warmup_masker, cfg.seed + self.warmup_done)
            self.save()
        remaining = max(cfg.total_steps - self.model.num_timesteps, 0)
        callbacks = [
            EnvStatsCallback(),
            MaskImageCallback(cfg.image_every, self.out / "images"),
            CheckpointEveryCallback(cfg.checkpoint_every, self.save),
        ]
        if cfg.progress_bar:
            callbacks.append(ProgressBarCallback())
        if remaining > 0:
            self.model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False, log_interval=1)
        wall = time.perf_counter() - start
        exports = self.export()
        summary = {
            "run_dir": str(self.out),
            "checkpoint": str(self.checkpoint_path),
            "tensorboard": str(self.out / "tb"),
            "images": str(self.out / "images"),
            "exports": {fmt: str(path) for fmt, path in exports.items()},
            "clips": self.model.num_timesteps + self.warmup_done,
            "mae_updates": self.env.engine.num_updates,
            "wall_time_s": round(wall, 1),
            "resumed_from": resumed_from,
            "skipped_videos": self.env.core.clips.skipped,
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def export(self) -> dict[str, Path]:
        """Export the co-trained encoder in every configured format under ``out/encoder-<format>``."""
        from tats_env.export import export_encoder

        return {
            fmt: export_encoder(self.env.engine.model, self.out / f"encoder-{fmt}", format=fmt, overwrite=True)
            for fmt in self.cfg.export_formats
        }

    def close(self) -> None:
        """Release data workers."""
        self.env.close()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run :class:`CoTrainer` for ``cfg`` and return its summary."""
    trainer = CoTrainer(cfg)
    try:
        return trainer.run()
    finally:
        trainer.close()
