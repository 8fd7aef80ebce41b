"""Up-front checks of the benchmark's options: every problem is one line naming its option, before any cell runs.

:func:`benchmark_problems` collects them (budget arithmetic, data without a val split, options the matrix sets
per cell, out-of-range values of the env and sampler configs, bad ``--mae-overrides``, a method whose env
contradicts ``--reward.mode``, finished cells in ``--out`` computed with other settings);
:func:`check_benchmark` raises one :class:`agents.job.validation.ConfigError` holding all of them, which
``benchmark_algos.py`` prints as ``benchmark_algos.py: error: ...`` lines (exit 2).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from agents.job.validation import ConfigError, check_device, flag_problems
from agents.kofn.credit import Direction
from agents.registry import SAMPLERS, SamplerConfig, sampler_env_config
from tats_env.checks import config_problems
from tats_env.env import EnvConfig

if TYPE_CHECKING:
    from agents.bench.matrix import BenchmarkConfig, Cell

__all__ = ["benchmark_problems", "check_benchmark", "changed_settings", "selection_problems"]


def _budget_problems(cfg: BenchmarkConfig) -> Iterator[str]:
    if cfg.num_envs < 1:
        yield f"--num-envs {cfg.num_envs}: must be >= 1"
        return
    if cfg.total_clips < cfg.num_envs or cfg.total_clips % cfg.num_envs:
        yield f"--total-clips {cfg.total_clips}: must be a positive multiple of --num-envs {cfg.num_envs}"
    elif cfg.warmup_clips % cfg.num_envs or not 0 <= cfg.warmup_clips < cfg.total_clips:
        yield (f"--warmup-clips {cfg.warmup_clips}: must be a multiple of --num-envs {cfg.num_envs} below "
               f"--total-clips {cfg.total_clips}")
    for flag, value, low in (("--eval-clips", cfg.eval_clips, 0), ("--curve-points", cfg.curve_points, 0),
                             ("--curve-clips", cfg.curve_clips, 1), ("--jobs", cfg.jobs, 1),
                             ("--threads", cfg.threads, 1)):
        if value < low:
            yield f"{flag} {value}: must be >= {low}"
    if not 0.0 < cfg.eval_mask_ratio < 1.0:
        yield f"--eval-mask-ratio {cfg.eval_mask_ratio}: must be in (0, 1)"
    if cfg.downstream_videos_per_class is not None and cfg.downstream_videos_per_class < 1:
        yield f"--downstream-videos-per-class {cfg.downstream_videos_per_class}: must be >= 1 (or unset)"


def selection_problems(cfg: BenchmarkConfig) -> Iterator[str]:
    """What is wrong with the selection of cells (methods, seeds, ratios, directions), one line each."""
    unknown = sorted((set(cfg.methods) | set(cfg.sweep_methods)) - set(SAMPLERS))
    if unknown:
        yield f"--methods {' '.join(unknown)}: unknown methods; choose from {' '.join(sorted(SAMPLERS))}"
    for flag, values in (("--methods", cfg.methods), ("--seeds", cfg.seeds), ("--ratios", cfg.ratios)):
        if not values:
            yield f"{flag}: select at least one"
    bad = [r for r in cfg.ratios if not 0.0 < r < 1.0]
    if bad:
        yield f"--ratios {' '.join(map(str, bad))}: every ratio must be in (0, 1)"
    if not cfg.directions or set(cfg.directions) - set(get_args(Direction)):
        yield f"--directions {' '.join(cfg.directions)}: choose one or both of show_hard mask_hard"


def _env_problems(cfg: BenchmarkConfig) -> Iterator[str]:
    if cfg.env.seed != EnvConfig.seed or cfg.env.split != EnvConfig.split:
        yield "--seed / --split: every cell trains on the train split with its seed from --seeds; set --seeds"
    if cfg.sampler.direction != SamplerConfig.direction:
        yield (f"--direction {cfg.sampler.direction}: the benchmark runs every direction listed in --directions "
               "(one row each); set that instead")
    data = cfg.env.data
    if data != "synthetic" and not (Path(data) / "val.txt").is_file():
        yield f"--data {data}: the benchmark needs held-out clips; pass 'synthetic' or a folder holding train.txt and val.txt"
    yield from flag_problems(cfg, config_problems(cfg.env, "env."))
    yield from flag_problems(cfg, config_problems(cfg.sampler, "sampler."))
    device = check_device(cfg.device)
    if device:
        yield f"--device {cfg.device}: {device}"
    from agents.bench.matrix import mae_config  # the matrix module imports this one

    try:
        mae_config(cfg)
    except (ValueError, TypeError) as exc:
        yield str(exc) if str(exc).startswith("--") else f"--mae-overrides {' '.join(cfg.mae_overrides)}: {exc}"
    if cfg.env.reward.mode is not None:
        yield (f"--reward.mode {cfg.env.reward.mode}: the benchmark sets each learned row's reward mode from its "
               "direction (--directions); leave it unset")
        return
    for method in dict.fromkeys(m for m in (*cfg.methods, *cfg.sweep_methods) if m in SAMPLERS):
        for direction in (cfg.directions if SAMPLERS[method].directional else ("",)):
            sampler = dataclasses.replace(cfg.sampler, direction=direction) if direction else cfg.sampler
            try:  # the env each cell will build (per-token info, reward mode) must be buildable
                sampler_env_config(method, cfg.env, sampler)
            except ValueError as exc:
                yield f"--methods {method}: {exc}"


def changed_settings(cfg: BenchmarkConfig, cell: Cell) -> list[str] | None:
    """The settings that differ between ``cell``'s finished JSON in ``--out`` and now (None when not finished)."""
    from agents.bench.matrix import cell_path, settings

    path = cell_path(cfg.out, cell)
    if not path.is_file():
        return None
    saved: dict[str, Any] = json.loads(path.read_text()).get("settings", {})
    now = settings(cfg, cell)
    return sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))


def benchmark_problems(cfg: BenchmarkConfig) -> list[str]:
    """Every problem of ``cfg`` (after ``--quick``), one line each naming its option; empty when it can run."""
    problems = [*_budget_problems(cfg), *selection_problems(cfg), *_env_problems(cfg)]
    if problems:
        return problems
    from agents.bench.matrix import cell_path, list_cells

    for cell in list_cells(cfg):
        changed = changed_settings(cfg, cell)
        if changed:
            problems.append(f"--out {cfg.out}: {cell_path(cfg.out, cell)} was computed with different settings "
                            f"({', '.join(changed)}); use another --out, or delete the file to recompute the cell")
    return problems


def check_benchmark(cfg: BenchmarkConfig) -> None:
    """Raise :class:`ConfigError` listing every problem of ``cfg`` (one per line), or return when it can run."""
    problems = benchmark_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))
