"""Benchmark samplers on the masking env: which one gives the best encoder for the same budget?

A *cell* is one method at one mask ratio and one seed. Every cell pre-trains a fresh MAE from
the same initialisation (per seed) on the same clip stream for exactly ``total_clips`` clips
(``total_clips / num_envs`` MAE updates). Learned samplers first spend ``warmup_clips`` of
that budget with random masks (as ``train_ppo.py`` does); fixed maskers use their own masks
throughout. Then it measures

* the reconstruction loss on held-out (val) clips under ONE common random mask (eval mode),
* the frozen-feature probe and short fine-tune top-1 of the exported encoder, measured as the CPU
  evaluation protocol does (:mod:`tats_env.downstream.protocol`: quadrant-pooled probe, short recipe),
* motion precision of the masks (share of masked tokens on moving foreground) next to the
  foreground share (what random masks score),
* pre-training wall time, clips/s and the peak resident memory of the cell's own process.

The ``scratch`` method skips pre-training (same initial encoder, same downstream recipe): the
random-init reference that tells whether pre-training helped at all at this budget. For the
positive control, the from-scratch ViT and a ranking that refuses when they fail, pass the cells'
exports (``cells/<cell>/encoder``) to ``experiments/evaluate_encoder.py``.

Each cell runs in a fresh spawned process (:func:`tats_env.timing.run_isolated`) and
writes ``cells/<cell>.json`` atomically when it finishes; a re-run skips finished cells.
:mod:`agents.bench.report` turns the cell files into ``results.csv``, ``results.md`` and plots.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.utils import set_random_seed

from agents.bench.checks import check_benchmark, selection_problems
from agents.bench.config import BenchmarkConfig, default_env  # re-exported: their old home
from agents.bench.evaluation import CellStatsCallback, HeldOutClips
from agents.bench.report import write_report
from agents.job.pretrain import PretrainHooks, PretrainPlan, pretrain
from agents.registry import (
    SAMPLERS, SamplerConfig, build_sampler, sampler_env_config, sampler_hyperparams,
)
from tats_env.device import resolve_device
from tats_env.commandline import config_to_dict
from tats_env.config import MAEConfig, VideoSpec, preset_with_overrides
from tats_env.env import EnvConfig, VideoMaskingVecEnv
from tats_env.timing import run_isolated
from tats_env.downstream import ClipSet, ProbeConfig, ShortRecipe, linear_probe, load_clipset
from tats_env.downstream.protocol import short_finetune
from tats_env.export import export_encoder, load_encoder
from tats_env.utils import atomic_write_json, peak_rss_mb

__all__ = ["BenchmarkConfig", "BenchmarkResult", "Cell", "QUICK", "apply_quick", "list_cells", "run_cell",
           "run_benchmark"]

# What --quick changes (fields still at their defaults only; explicit choices are kept).
QUICK: dict[str, Any] = {
    "methods": ("ppo_tats", "reinforce", "random"), "seeds": (0,), "ratios": (0.9,),
    "mae_overrides": ("num_frames=8", "image_size=32", "embed_dim=32", "depth=1", "num_heads=2",
                      "decoder_embed_dim=16", "decoder_depth=1", "decoder_num_heads=2"),
    "total_clips": 16, "warmup_clips": 8, "num_envs": 4, "eval_clips": 8,
    "curve_points": 2, "curve_clips": 4, "probe": ProbeConfig(max_iter=20, batch_size=8),
    "finetune": ShortRecipe(epochs=1, batch_size=4), "downstream_videos_per_class": 2, "jobs": 2,
}

# Fields that change a cell's result (besides the env and the method's hyperparameters); a finished cell is
# reused only if they are unchanged.
_RESULT_FIELDS = ("downstream", "mae_overrides", "total_clips", "warmup_clips", "warmup_masker", "num_envs",
                  "eval_mask_ratio", "eval_seed",
                  "eval_clips", "probe", "finetune", "head_from_probe", "run_finetune", "downstream_videos_per_class",
                  "device")


def apply_quick(cfg: BenchmarkConfig) -> BenchmarkConfig:
    """``cfg`` with the :data:`QUICK` settings for every field left at its default."""
    if not cfg.quick:
        return cfg
    defaults = BenchmarkConfig()
    changes: dict[str, Any] = {k: v for k, v in QUICK.items() if getattr(cfg, k) == getattr(defaults, k)}
    engine = cfg.env.engine_config
    if engine.warmup_updates == defaults.env.engine_config.warmup_updates:  # 4 updates in all: warm up in 1
        changes["env"] = dataclasses.replace(cfg.env, engine_config=dataclasses.replace(engine, warmup_updates=1))
    return dataclasses.replace(cfg, **changes)


def mae_config(cfg: BenchmarkConfig) -> MAEConfig:
    """The preset with the ``key=value`` overrides (values parsed as YAML scalars)."""
    return preset_with_overrides(cfg.env.preset, cfg.mae_overrides)


@dataclass(frozen=True)
class Cell:
    """One method at one mask ratio and one seed."""

    method: str
    mask_ratio: float
    seed: int
    direction: str = ""
    """The token-level learners' direction (``show_hard`` / ``mask_hard``); empty for the other methods."""

    @property
    def label(self) -> str:
        """Row label of reports: the method, with ``@direction`` for token-level learners."""
        return f"{self.method}@{self.direction}" if self.direction else self.method

    @property
    def name(self) -> str:
        """File-name-safe identifier, e.g. ``ppo_tats_r0.9_s0`` or ``token_ppo-mask_hard_r0.9_s0``."""
        method = f"{self.method}-{self.direction}" if self.direction else self.method
        return f"{method}_r{self.mask_ratio:g}_s{self.seed}"

    def sampler_config(self, cfg: SamplerConfig) -> SamplerConfig:
        """The benchmark's sampler hyperparameters with this cell's direction."""
        return dataclasses.replace(cfg, direction=self.direction) if self.direction else cfg


def list_cells(cfg: BenchmarkConfig) -> list[Cell]:
    """The selected cells, seed by seed (a partial run has every method for the first seeds)."""
    problems = list(selection_problems(cfg))
    if problems:
        raise ValueError("; ".join(problems))
    cells = []
    for seed in cfg.seeds:
        for method in cfg.methods:
            ratios = cfg.ratios if method in cfg.sweep_methods else (cfg.env.mask_ratio,)
            spec = SAMPLERS[method]
            directions: tuple[str, ...] = ("",)
            if spec.directional:  # one row per direction it can learn (AdaMAE's rule: show-hard only)
                directions = tuple(d for d in cfg.directions if d in spec.directions) or spec.directions[:1]
            cells += [Cell(method, float(ratio), int(seed), d) for ratio in ratios for d in directions]
    return cells


def settings(cfg: BenchmarkConfig, cell: Cell) -> dict[str, Any]:
    """JSON-ready fields that determine a cell's result: the env (its ratio and seed are the cell's), the
    budget and evaluation fields, and the method's hyperparameters."""
    env = config_to_dict(dataclasses.replace(cfg.env, mask_ratio=EnvConfig.mask_ratio, seed=EnvConfig.seed))
    values = {"env": env, **{k: getattr(cfg, k) for k in _RESULT_FIELDS}}
    values |= {k: config_to_dict(v) for k, v in values.items() if dataclasses.is_dataclass(v)}  # probe, finetune
    values = json.loads(json.dumps(values, default=str))
    values["hyperparams"] = sampler_hyperparams(cell.method, cell.sampler_config(cfg.sampler))
    return values


def downstream_clipsets(cfg: BenchmarkConfig, spec: VideoSpec) -> tuple[ClipSet, ClipSet]:
    """The train and val clips of the probe and fine-tune: one centre clip per video of ``cfg.env.data``, at most
    ``downstream_videos_per_class`` videos of each class when set (list files are often sorted by class)."""
    return (load_clipset(cfg.env.data, spec, "train", max_per_class=cfg.downstream_videos_per_class),
            load_clipset(cfg.env.data, spec, "val", max_per_class=cfg.downstream_videos_per_class))


def measure_downstream(cfg: BenchmarkConfig, export: Path, seed: int) -> dict[str, Any]:
    """The CPU protocol's frozen probe and (``run_finetune``) short fine-tune of one exported encoder.

    Train and val clips are the train and val splits of the cell's data, one centre clip per video.
    Returns ``probe_top1``, ``finetune_top1`` (None when skipped), ``num_classes``, ``num_val_clips``,
    ``probe_s`` and ``finetune_s``.
    """
    encoder = load_encoder(export)
    train, val = downstream_clipsets(cfg, encoder.cfg.video)
    num_classes = max(train.num_classes, val.num_classes)
    start = time.perf_counter()
    probe = linear_probe(encoder, train, val, cfg.probe, num_classes)
    probe_s = time.perf_counter() - start
    tuned = None
    if cfg.run_finetune:
        # the probe left the encoder as it was (eval mode, no gradients): fine-tune that same one
        tuned = short_finetune(encoder, train, val, cfg.finetune, cfg.probe, seed=seed,
                               num_classes=num_classes, head_from_probe=cfg.head_from_probe)
    return {"probe_top1": probe.top1, "finetune_top1": None if tuned is None else tuned.top1,
            "num_classes": num_classes, "num_val_clips": len(val), "probe_s": probe_s,
            "finetune_s": None if tuned is None else tuned.wall_s}


class _CellHooks(PretrainHooks):
    """The benchmark's hooks of the one pre-training loop: the cell's statistics in both phases."""

    def __init__(self, stats: CellStatsCallback, progress_bar: bool) -> None:
        self.stats = stats
        self.progress_bar = progress_bar

    def warmup_callbacks(self) -> list[Any]:
        return [self.stats]

    def sampler_callbacks(self) -> list[Any]:
        return [self.stats]


def _pretrain(cell: Cell, cfg: BenchmarkConfig, env: Any, stats: CellStatsCallback, device: torch.device) -> Any:
    """Spend the cell's budget through :func:`agents.job.pretrain.pretrain`: the warm-up masker first for learned
    samplers, then the method itself; a fixed masker spends the warm-up's share with its own masks.

    Returns the method's sampler (None for ``scratch``, which does not pre-train).
    """
    spec = SAMPLERS[cell.method]
    if spec.kind == "scratch":
        return None
    # Build the sampler before the warm-up: SB3 seeds the env's clip stream at construction and the
    # warm-up's reset consumes that seed. Fixed maskers also learn in two calls, so every cell
    # resets the env at the same points and sees the same clips in the same order.
    sampler = build_sampler(cell.method, env, cell.sampler_config(cfg.sampler), cell.seed, device)
    plan = PretrainPlan(warmup_clips=cfg.warmup_clips, warmup_masker=cfg.warmup_masker,
                        sampler_clips=cfg.total_clips - cfg.warmup_clips, seed=cell.seed)
    pretrain(env, sampler, plan, _CellHooks(stats, cfg.progress), warmup_sampler=None if spec.learned else sampler,
             name=cell.method)
    expected = cfg.total_clips // cfg.num_envs
    if env.engine.num_updates != expected or stats.clips != cfg.total_clips:
        raise RuntimeError(f"{cell.name}: {env.engine.num_updates} MAE updates / {stats.clips} clips, "
                           f"expected {expected} / {cfg.total_clips}")
    return sampler


def run_cell(cell: Cell, cfg: BenchmarkConfig) -> dict[str, Any]:
    """Pre-train, evaluate and fine-tune one cell in this process; returns its record (metrics + curves)."""
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    cell_dir = Path(cfg.out) / "cells" / cell.name
    device = resolve_device(cfg.device)
    set_random_seed(cell.seed)  # the MAE's initialisation depends on the seed only
    spec = SAMPLERS[cell.method]
    learned = spec.learned
    env_config = dataclasses.replace(
        cfg.env, mask_ratio=cell.mask_ratio, seed=cell.seed,
        engine_config=dataclasses.replace(cfg.env.engine_config, total_updates=cfg.total_clips // cfg.num_envs),
        # Fixed maskers ignore the reward: they skip the baseline's extra forward, so clips/s stays their own.
        reward=cfg.env.reward if learned else dataclasses.replace(cfg.env.reward, baseline="none"),
    )
    if spec.build is not None:  # per-token info and the reward mode as the sampler needs them
        env_config = sampler_env_config(cell.method, env_config, cell.sampler_config(cfg.sampler))
    env = VideoMaskingVecEnv(cfg.num_envs, env_config, device, mae_config(cfg))
    try:
        heldout = HeldOutClips(cfg.env.data, env.core.spec, cfg.eval_clips, cfg.eval_mask_ratio, cfg.eval_seed)
        stats = CellStatsCallback(env.engine, heldout, cfg.total_clips, cfg.warmup_clips, cfg.curve_points,
                                  cfg.curve_clips)
        pretrain_start = time.perf_counter()
        sampler = _pretrain(cell, cfg, env, stats, device)
        pretrain_s = time.perf_counter() - pretrain_start
        peak_rss = peak_rss_mb()
        val_loss = heldout.loss(env.engine)
        encoder = export_encoder(env.engine.model, cell_dir / "encoder", format="native", overwrite=True)
    finally:
        env.close()
    downstream = measure_downstream(cfg, encoder, cell.seed) if cfg.downstream else {
        "probe_top1": None, "finetune_top1": None, "num_classes": None, "num_val_clips": None, "probe_s": None,
        "finetune_s": None}
    network = sampler.network if sampler is not None else None
    metrics = {
        "method": cell.label, "mask_ratio": cell.mask_ratio, "seed": cell.seed, "clips": stats.clips,
        "mae_updates": env.engine.num_updates, "warmup_clips": cfg.warmup_clips if learned else 0,
        "val_recon_loss": val_loss, **stats.summary(), **downstream, "pretrain_s": pretrain_s,
        "clips_per_s": stats.clips / pretrain_s if stats.clips else None, "peak_rss_mb": peak_rss,
        "sampler_params": sum(p.numel() for p in network.parameters()) if network is not None else 0,
        "wall_s": time.perf_counter() - start,
    }
    if not cfg.keep_encoders:
        shutil.rmtree(cell_dir / "encoder", ignore_errors=True)
    return {"cell": dataclasses.asdict(cell), "settings": settings(cfg, cell), "metrics": metrics,
            "curves": {"train": stats.train_curve, "heldout": stats.heldout_curve},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _run_cell_reporting(cell: Cell, cfg: BenchmarkConfig) -> dict[str, Any]:
    """:func:`run_cell` for a child process: a failure carries the child's traceback to the parent."""
    try:
        return run_cell(cell, cfg)
    except Exception:
        raise RuntimeError(traceback.format_exc()) from None


def cell_path(out: Path, cell: Cell) -> Path:
    """Completion marker and record of a cell."""
    return Path(out) / "cells" / f"{cell.name}.json"


def _finished(cfg: BenchmarkConfig, cell: Cell) -> bool:
    """True when the cell's JSON exists (:func:`check_benchmark` has refused one computed with other settings)."""
    return cell_path(cfg.out, cell).is_file()


def _run_one(cfg: BenchmarkConfig, cell: Cell, log: Any) -> str | None:
    """Run a cell in its own process and store it; returns an error message instead of raising."""
    error_file = Path(cfg.out) / "cells" / f"{cell.name}.error.txt"
    try:
        record = run_isolated(_run_cell_reporting, cell, cfg) if cfg.isolate else run_cell(cell, cfg)
    except Exception as exc:  # noqa: BLE001 - one failed cell must not stop the matrix
        message = f"{type(exc).__name__}: {exc}"
        error_file.parent.mkdir(parents=True, exist_ok=True)
        error_file.write_text(message + "\n")
        print(f"[benchmark] {cell.name} FAILED (see {error_file}): {message.splitlines()[-1]}", file=log, flush=True)
        return message
    error_file.unlink(missing_ok=True)
    atomic_write_json(record, cell_path(cfg.out, cell), indent=1)
    m = record["metrics"]
    speed = f"{m['clips_per_s']:.1f} clips/s, " if m["clips_per_s"] else ""
    accuracy = (f"probe {100 * m['probe_top1']:.1f}%, fine-tune {100 * m['finetune_top1']:.1f}%, "
                if m["probe_top1"] is not None else "")
    lift = " ".join(f"{name} {m[key]:+.3f}," for name, key in (("lift show", "motion_lift_show_hard"),
                                                               ("lift mask", "motion_lift_mask_hard"))
                    if m.get(key) is not None)
    print(f"[benchmark] {cell.name}: held-out loss {m['val_recon_loss']:.4f}, {accuracy}{lift} {speed}"
          f"{m['wall_s']:.0f} s", file=log, flush=True)
    return None


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` did and wrote."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)


def run_benchmark(cfg: BenchmarkConfig, log: Any = sys.stdout) -> BenchmarkResult:
    """Run every unfinished selected cell (``cfg.jobs`` at a time), then write the report over all finished cells."""
    cfg = apply_quick(cfg)
    check_benchmark(cfg)  # every problem, one line each, before any cell
    cells = list_cells(cfg)
    result = BenchmarkResult()
    todo: list[Cell] = []
    for cell in cells:
        if _finished(cfg, cell):
            result.skipped.append(cell.name)
        else:
            todo.append(cell)
    if cfg.report_only:
        print(f"[benchmark] report only: {len(result.skipped)} of {len(cells)} selected cells finished -> {cfg.out}",
              file=log, flush=True)
        todo = []
    else:
        print(f"[benchmark] {len(cells)} cells: {len(result.skipped)} finished, {len(todo)} to run "
              f"({cfg.jobs} at a time) -> {cfg.out}", file=log, flush=True)
    with ThreadPoolExecutor(max_workers=max(1, cfg.jobs)) as pool:
        errors = list(pool.map(lambda c: _run_one(cfg, c, log), todo))
    for cell, error in zip(todo, errors):
        if error is None:
            result.ran.append(cell.name)
        else:
            result.failed[cell.name] = error
    result.outputs = write_report(cfg.out)
    return result
