"""Co-training of the video MAE and a masking sampler (TATS + PPO by default): the library behind ``train_ppo.py``.

The run, top to bottom (:meth:`CoTrainer.run`): warm the env's MAE up with a fixed masker (in
checkpointed chunks), let the sampler learn on the env for ``total_steps`` clips (checkpoints at
rollout boundaries, TensorBoard statistics, mask images), export the encoder, write
``summary.json``. Every setting comes from one nested :class:`TrainConfig`; samplers are built
through :mod:`agents.registry`. Nothing here imports the benchmark layer (:mod:`agents.bench`).
Under ``torchrun`` the hooks marked ``[distributed]`` hand over to :mod:`agents.distributed`
(DDP, global clip counters, rank-0-only writing); in one process they change nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import tyro
from stable_baselines3.common.callbacks import BaseCallback, ProgressBarCallback
from stable_baselines3.common.vec_env import VecMonitor

from agents.callbacks import CheckpointEveryCallback, EnvStatsCallback, MaskImageCallback
from agents import distributed  # [distributed] torchrun / DDP hooks
from agents.checkpoint import (
    CHECKPOINT_NAME, atomic_torch_save, find_checkpoint, load_checkpoint, load_sampler_state, rng_state,
    sampler_state, set_rng_state,
)
from agents.hyperparams import SamplerConfig
from agents.registry import FIXED_MASKERS, LEARNED_SAMPLERS, build_sampler
from tats_env.commandline import config_to_dict
from tats_env.env import EngineConfig, EnvConfig, RewardConfig, VideoMaskingVecEnv
from tats_env.export import ExportFormat

__all__ = ["TrainConfig", "CoTrainer", "train", "build_env", "resolve_device", "default_env"]

LearnedSampler = Literal[LEARNED_SAMPLERS]  # type: ignore[valid-type]
FixedMasker = Literal[FIXED_MASKERS]  # type: ignore[valid-type]


def default_env() -> EnvConfig:
    """The main job's env on the CPU recipe.

    An absolute MAE learning rate of 2e-3 with a 50-update warm-up (VideoMAE's ``blr * batch / 256``
    is far too small at batch 8) and rewards standardised with running statistics (the MAE's loss
    drifts as it learns).
    """
    return EnvConfig(engine_config=EngineConfig(lr=2e-3, warmup_updates=50), reward=RewardConfig(normalize=True))


@dataclass
class TrainConfig:
    """Co-train a video MAE and a masking sampler (TATS + PPO by default) on the masking env, then export the encoder."""

    env: Annotated[EnvConfig, tyro.conf.arg(name="")] = field(default_factory=default_env)
    """The masking env: data, MAE preset, mask ratio, reward (--reward.*), MAE optimisation (--mae.*), seed."""
    sampler: Annotated[SamplerConfig, tyro.conf.arg(name="")] = field(default_factory=SamplerConfig)
    """Hyperparameters of every sampler (--tats.*, --ppo.*, --a2c.*, --sac.*, --reinforce.*); --method picks one."""
    method: LearnedSampler = "ppo_tats"  # type: ignore[valid-type]
    """Which registered learned sampler to train (agents.registry)."""
    num_envs: int = 8
    """Clips per env step (one batched MAE update per step)."""
    total_steps: int = 6000
    """Training clips of the sampler phase (SB3 timesteps; one clip = one one-step episode); 0 with a long
    --warmup-steps is plain VideoMAE pre-training with --warmup-masker (the no-sampler baseline)."""
    warmup_steps: int = 800
    """Clips of MAE warm-up with a fixed masker before the sampler takes over (0 disables); checkpointed
    every --checkpoint-every clips, so a killed warm-up resumes too."""
    warmup_masker: FixedMasker = "random"  # type: ignore[valid-type]
    """Fixed masker of the warm-up."""
    device: str = "auto"
    """Torch device: auto (cuda if available), cpu, cuda, cuda:1, ..."""
    out: Path = Path("runs/tats")
    """Run folder: TensorBoard events, images, checkpoint, exported encoder."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint."""
    checkpoint_every: int = 2000
    """Clips between checkpoints (always one at the end)."""
    image_every: int = 2000
    """Clips between mask/reconstruction images."""
    export_formats: tuple[ExportFormat, ...] = ("native", "hf")
    """Encoder export formats written at the end."""
    progress_bar: bool = True
    """Show a progress bar."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested values (what ``config.json`` holds)."""
        return config_to_dict(self)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; under torchrun ``cuda`` is ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return distributed.rank_device(torch.device(name))  # [distributed]


def build_env(cfg: TrainConfig, device: torch.device) -> VideoMaskingVecEnv:
    """The batched masking env of the config; the MAE's cosine spans the whole run unless set."""
    engine = cfg.env.engine_config
    if engine.total_updates is None:
        global_batch = cfg.num_envs * distributed.get_world_size()  # [distributed] clips are counted globally
        engine = dataclasses.replace(engine, total_updates=(cfg.total_steps + cfg.warmup_steps) // global_batch)
    return VideoMaskingVecEnv(cfg.num_envs, dataclasses.replace(cfg.env, engine_config=engine), device)


def warm_up_mae(env: VideoMaskingVecEnv, clips: int, masker_name: str, seed: int) -> int:
    """Train the env's MAE on ``clips`` clips with a fixed masker (from the registry); returns the clips used.

    The clip stream restarts from ``seed``, so a chunk resumed after a kill sees the same clips.
    """
    agent = build_sampler(masker_name, env, seed=seed, device=env.core.device)
    return agent.learn(clips, callback=distributed.clip_counters()).num_timesteps  # [distributed] global clips


class CoTrainer:
    """Holds the env, the sampler and the run folder; ``run()`` trains, checkpoints, resumes and exports."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        self.env = build_env(cfg, self.device)
        self.monitored = VecMonitor(self.env)
        self.agent = build_sampler(cfg.method, self.monitored, cfg.sampler, cfg.env.seed, self.device)
        self.agent.set_logger(distributed.run_logger(self.out / "tb"))  # [distributed] rank 0 writes
        self.warmup_done = 0
        self.checkpoint_path = self.out / CHECKPOINT_NAME
        distributed.distribute_trainer(self)  # [distributed] DDP of the MAE and the sampler; no-op in one process

    def save(self) -> Path:
        """Write the atomic checkpoint of the whole run state (rank 0 alone under torchrun)."""
        if not distributed.is_main_process():  # [distributed]
            return self.checkpoint_path
        core = self.env.core
        state = {
            "format": 2,
            "config": self.cfg.to_dict(),
            "mae_config": core.engine.mae_config.to_dict(),
            "mae_state": core.engine.model.state_dict(),
            "core": core.state_dict(),
            "sampler": sampler_state(self.agent),
            "num_timesteps": self.agent.num_timesteps,
            "warmup_done": self.warmup_done,
            "rng": rng_state(),
        }
        return atomic_torch_save(state, self.checkpoint_path)

    def restore(self, path: Path) -> None:
        """Load a checkpoint written by :meth:`save` into this trainer."""
        state = load_checkpoint(path)
        self.env.core.load_state_dict(state["core"])
        load_sampler_state(self.agent, state["sampler"])
        self.warmup_done = int(state["warmup_done"])
        set_rng_state(state["rng"])
        # The clip order cannot resume mid-epoch; the sampler's next reset continues from a stream seeded
        # by the position (this replaces the seed the sampler queued at construction).
        self.env.seed(self.cfg.env.seed + 1 + self.agent.num_timesteps + self.warmup_done)
        distributed.reseed_rank(self.cfg.env.seed + 1 + self.agent.num_timesteps + self.warmup_done,
                                self.agent)  # [distributed] ranks > 0: their own streams again

    def _callbacks(self) -> list[BaseCallback]:
        cfg = self.cfg
        callbacks: list[BaseCallback] = [
            EnvStatsCallback(),
            MaskImageCallback(cfg.image_every, self.out / "images"),
            CheckpointEveryCallback(cfg.checkpoint_every, self.save),
        ]
        if cfg.progress_bar:
            callbacks.append(ProgressBarCallback())
        return distributed.rank_callbacks(callbacks)  # [distributed] global clip counter; images on rank 0

    def run(self) -> dict[str, Any]:
        """Warm up, train the sampler, checkpoint, export; returns a summary (also written to summary.json)."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        resumed_from = None
        if cfg.resume:
            ckpt = find_checkpoint(self.out)
            if ckpt is None:
                raise FileNotFoundError(f"--resume: no {CHECKPOINT_NAME} in {self.out}")
            self.restore(ckpt)
            resumed_from = self.agent.num_timesteps
        if distributed.is_main_process():  # [distributed]
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        start = time.perf_counter()
        while self.warmup_done < cfg.warmup_steps:  # in checkpoint-sized chunks, so a killed warm-up resumes
            chunk = min(cfg.warmup_steps - self.warmup_done, max(cfg.checkpoint_every, cfg.num_envs))
            self.warmup_done += warm_up_mae(self.env, chunk, cfg.warmup_masker, cfg.env.seed + self.warmup_done)
            self.save()
        remaining = max(cfg.total_steps - self.agent.num_timesteps, 0)
        if remaining > 0:
            self.agent.learn(remaining, callback=self._callbacks(), reset_num_timesteps=False, log_interval=1)
        wall = time.perf_counter() - start
        exports = self.export()
        summary = {
            "run_dir": str(self.out),
            "method": cfg.method,
            "checkpoint": str(self.checkpoint_path),
            "tensorboard": str(self.out / "tb"),
            "images": str(self.out / "images"),
            "exports": {fmt: str(path) for fmt, path in exports.items()},
            "clips": self.agent.num_timesteps + self.warmup_done,
            "mae_updates": self.env.engine.num_updates,
            "wall_time_s": round(wall, 1),
            "resumed_from": resumed_from,
            "skipped_videos": self.env.core.clips.skipped,
        }
        summary.update(distributed.distributed_summary(self))  # [distributed] world_size, global batch, digests
        if distributed.is_main_process():  # [distributed]
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def export(self) -> dict[str, Path]:
        """Export the co-trained encoder in every configured format under ``out/encoder-<format>`` (rank 0 alone)."""
        from tats_env.export import export_encoder

        if not distributed.is_main_process():  # [distributed]
            return {}
        return {
            fmt: export_encoder(self.env.engine.model, self.out / f"encoder-{fmt}", format=fmt, overwrite=True)
            for fmt in self.cfg.export_formats
        }

    def close(self) -> None:
        """Release data workers."""
        self.env.close()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run :class:`CoTrainer` for ``cfg`` and return its summary (under torchrun: in its process group)."""
    with distributed.distributed_session(resolve_device(cfg.device)):  # [distributed] no-op outside torchrun
        trainer = CoTrainer(cfg)
        try:
            return trainer.run()
        finally:
            trainer.close()
