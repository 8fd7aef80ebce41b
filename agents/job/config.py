"""The main job's one configuration (:class:`TrainConfig`) and the CPU training recipe both the job and the benchmark use."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from agents.registry import SamplerConfig, fixed_maskers, learned_samplers, recommended_sampler
from tats_env.commandline import config_to_dict, parse
from tats_env.env.config import EngineConfig, EnvConfig, RewardConfig
from tats_env.export_info import ExportFormat

__all__ = ["TrainConfig", "cpu_env", "parse_train_config"]

LearnedSampler = Literal[learned_samplers()]  # type: ignore[valid-type]
WarmupMasker = Literal[fixed_maskers()]  # type: ignore[valid-type]


def cpu_env() -> EnvConfig:
    """The CPU training recipe of the main job and the benchmark: the one place it is written.

    An absolute MAE learning rate of 2e-3 with a 50-update warm-up (VideoMAE's ``blr * batch / 256``
    is far too small at batch 8) and rewards standardised with running statistics (the MAE's loss
    drifts as it learns).
    """
    return EnvConfig(engine_config=EngineConfig(lr=2e-3, warmup_updates=50), reward=RewardConfig(normalize=True))


@dataclass
class TrainConfig:
    """Co-train a video MAE and a masking sampler (TATS + token-level PPO by default) on the masking env, then export
    the encoder."""

    env: Annotated[EnvConfig, tyro.conf.arg(name="")] = field(default_factory=cpu_env)
    """The masking env: data, MAE preset, mask ratio, reward (--reward.*), MAE optimisation (--mae.*), seed."""
    sampler: Annotated[SamplerConfig, tyro.conf.arg(name="")] = field(default_factory=recommended_sampler)
    """Hyperparameters of every sampler (--direction, --diversity.*, --token-ppo.*, --tats.*, --ppo.*, --a2c.*,
    --sac.*, --reinforce.*); --method picks one. Defaults: the measured best, show-hard with a policy share of 0.5
    (agents.registry.recommended_sampler)."""
    method: LearnedSampler = "token_ppo"  # type: ignore[valid-type]
    """Which registered learned sampler to train (agents.registry)."""
    num_envs: int = 8
    """Clips per env step (one batched MAE update per step)."""
    total_steps: int = 1600
    """Training clips of the sampler phase (SB3 timesteps; one clip = one one-step episode); 0 with a long
    --warmup-steps is plain VideoMAE pre-training with --warmup-masker (the no-sampler baseline)."""
    warmup_steps: int = 800
    """Clips of MAE warm-up with a fixed masker before the sampler takes over (0 disables); checkpointed
    every --checkpoint-every clips, so a killed warm-up resumes too."""
    warmup_masker: WarmupMasker = "random"  # type: ignore[valid-type]
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
    overwrite: bool = False
    """Start a new run in an --out that already holds one, deleting its checkpoint, config, summary, logs,
    images and exports first (without it, such an --out is refused)."""
    progress_bar: bool = True
    """Show a progress bar (on a terminal) with the latest clips/s, MAE loss and motion figures."""
    summary_every: int = 10
    """Rollouts (logger dumps) between two one-line summaries on the terminal."""
    verbose: bool = False
    """Also print SB3's full statistics table at every rollout (they always go to TensorBoard and progress.csv)."""
    deterministic: bool = False
    """``torch.use_deterministic_algorithms(True)``: bitwise-repeatable runs on GPU too, at some speed cost
    (ops without a deterministic kernel then raise). On the CPU runs repeat exactly without it."""
    max_skipped_updates: int = 10
    """Consecutive MAE updates with a non-finite loss or gradient (each skipped) that stop the run."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested values (what ``config.json`` holds)."""
        return config_to_dict(self)


def parse_train_config(argv: Sequence[str] | None = None, prog: str | None = None) -> TrainConfig:
    """The command line's :class:`TrainConfig`; with ``--resume``, parsed on top of the run's saved config.

    Options given on the command line that differ from the saved run raise
    :class:`agents.job.validation.ConfigError` unless they are safe to change
    (:data:`agents.job.run_dir.SAFE_ON_RESUME`).
    """
    cfg = parse(TrainConfig, argv, prog=prog)
    from agents.job.run_dir import parse_resumed  # after the parse: --help imports no torch
    from agents.job.validation import validate_train_config

    validate_train_config(cfg)  # the flags as given, before the run folder is read
    if not cfg.resume:
        return cfg
    resumed = parse_resumed(TrainConfig, list(argv) if argv is not None else None, cfg.out)
    return dataclasses.replace(resumed, out=cfg.out, resume=True)
