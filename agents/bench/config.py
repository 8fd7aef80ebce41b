"""The benchmark's options (:class:`BenchmarkConfig`), without torch: what ``tats-bench --help`` is built from.

Kept apart from the harness (:mod:`agents.bench.matrix`, which re-exports it) so that the command line is
parsed before torch, stable-baselines3 or any algorithm is imported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, get_args

import tyro

from agents.job.config import cpu_env
from agents.kofn.directions import Direction
from agents.registry import SAMPLERS, SamplerConfig, default_matrix, fixed_maskers, recommended_diversity
from tats_env.downstream.protocol_config import ProbeConfig, ProtocolConfig, ShortRecipe
from tats_env.env.config import EnvConfig

__all__ = ["SamplerName", "WarmupMasker", "default_env", "BenchmarkConfig"]

SamplerName = Literal[tuple(SAMPLERS)]  # type: ignore[valid-type]
WarmupMasker = Literal[fixed_maskers()]  # type: ignore[valid-type]


def default_env() -> EnvConfig:
    """The benchmark's env: the main job's CPU recipe (:func:`agents.job.config.cpu_env`), plus the paired
    random-mask reward baseline and float16 observations.

    The baseline costs one extra MAE forward per step, so only learned samplers pay it (fixed maskers
    ignore the reward and run with ``baseline="none"``).
    """
    env = cpu_env()
    return dataclasses.replace(env, obs_dtype="float16", reward=dataclasses.replace(env.reward, baseline="random"))


@dataclass
class BenchmarkConfig:
    """Benchmark RL samplers and fixed maskers on the masking env at an equal pre-training budget."""

    env: Annotated[EnvConfig, tyro.conf.arg(name="")] = field(default_factory=default_env)
    """The masking env of every cell: data ("synthetic" or a folder holding train.txt and val.txt), MAE preset,
    reward (--reward.*), MAE optimisation (--mae.*); --mask-ratio is the ratio of the methods outside
    --sweep-methods. Each cell's seed comes from --seeds (leave --seed alone)."""
    sampler: Annotated[SamplerConfig, tyro.conf.arg(name="")] = field(
        default_factory=lambda: SamplerConfig(diversity=recommended_diversity()))
    """Hyperparameters of every sampler (--diversity.*, --token-ppo.*, --tats.*, --ppo.*, --a2c.*, --sac.*,
    --reinforce.*): the same source as the main job's, with its measured best mask diversity (policy share 0.5 of
    the direction's side) for the token-level rows of both directions."""
    mae_overrides: tuple[str, ...] = ()
    """get_preset overrides as key=value (e.g. num_frames=8 image_size=32 depth=2)."""
    out: Path = Path("runs/benchmark")
    """Output folder: cells/ (one JSON per finished cell), results.csv, results.md, PNG plots."""
    methods: tuple[SamplerName, ...] = default_matrix()  # type: ignore[valid-type]
    """Samplers of the registry (agents.registry), and scratch (no pre-training: the same initial encoder
    straight to probe / fine-tune, the reference). The composition oracles (show_moving_*, hide_moving_*,
    temporal_split_*: they read the foreground masks) run only when named."""
    sweep_methods: tuple[SamplerName, ...] = ("token_ppo", "tube", "random")  # type: ignore[valid-type]
    """Methods run at every ratio of --ratios; the others run at --mask-ratio only."""
    directions: tuple[Direction, ...] = get_args(Direction)
    """Directions of the token-level learners (token_ppo, reinforce_token): one row each (reinforce_adamae is
    show-hard only; the other methods have no direction). Replaces --direction in the benchmark."""
    ratios: tuple[float, ...] = (0.75, 0.9, 0.95)
    """Mask ratios of the sweep."""
    seeds: tuple[int, ...] = (0, 1)
    """Seeds: MAE and sampler initialisation, clip order, masks. Every method sees the same ones."""
    total_clips: int = 1536
    """Pre-training budget per cell in clips (a multiple of num_envs): total_clips / num_envs MAE updates."""
    warmup_clips: int = 192
    """Clips of the budget learned samplers spend with --warmup-masker masks first (0 disables)."""
    warmup_masker: WarmupMasker = "random"  # type: ignore[valid-type]
    """Fixed masker of the learned samplers' warm-up (as the main job's --warmup-masker)."""
    num_envs: int = 8
    """Clips per env step, i.e. per MAE update."""
    eval_mask_ratio: float = 0.9
    """Ratio of the common random mask used for the held-out reconstruction loss of every cell."""
    eval_seed: int = 1234
    """Seed of the common held-out mask."""
    eval_clips: int = 96
    """Held-out (val) clips for the final reconstruction loss (0 = the whole val split)."""
    curve_points: int = 8
    """Held-out evaluations during pre-training (learning curves)."""
    curve_clips: int = 32
    """Held-out clips per learning-curve point."""
    downstream: bool = True
    """Probe and fine-tune every cell's encoder; --no-downstream skips both (motion lift, held-out loss and speed
    only: a quick comparison of the samplers themselves)."""
    probe: ProbeConfig = field(default_factory=lambda: ProtocolConfig().probe)
    """The frozen-feature probe of every cell's encoder: the CPU protocol's main metric
    (:mod:`tats_env.downstream.protocol`; quadrant pooling, L-BFGS, deterministic)."""
    finetune: ShortRecipe = field(default_factory=lambda: ProtocolConfig().finetune)
    """The protocol's short fine-tune of every cell's encoder (head pooled like the probe)."""
    head_from_probe: bool = ProtocolConfig.head_from_probe
    """LP-FT: the fine-tune's head starts as the probe (see ProtocolConfig.head_from_probe)."""
    run_finetune: bool = True
    """Fine-tune every cell's encoder after the probe (--no-run-finetune: probe only, the slow half skipped)."""
    downstream_videos_per_class: int | None = None
    """Use only the first train and val videos of each class of --data for the probe and fine-tune (quick runs;
    every class stays in, however the lists are ordered)."""
    device: str = "auto"
    """Torch device of every cell: auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps."""
    threads: int = 1
    """Torch CPU threads per cell process."""
    jobs: int = 1
    """Cells run in parallel (each in its own process with --threads threads)."""
    keep_encoders: bool = True
    """Keep each cell's exported encoder (cells/<cell>/encoder)."""
    progress: bool = False
    """Show SB3 progress bars inside the cells."""
    isolate: bool = True
    """Run every cell in a fresh spawned process (its own peak memory, a crash stays in the cell);
    --no-isolate runs them in this process (debugging, samplers registered at run time)."""
    report_only: bool = False
    """Run no cell: rewrite results.csv/md and the plots from the cells already finished in --out
    (e.g. while a long run is still going, or after it was stopped)."""
    quick: bool = False
    """CI smoke run: tiny budget and MAE, ppo_tats/reinforce/random at the main ratio, one seed, 2 jobs."""
