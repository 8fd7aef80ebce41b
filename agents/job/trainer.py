"""Co-training of the video MAE and a masking sampler: the library behind ``train_ppo.py``.

The run, top to bottom (:meth:`CoTrainer.run`): check every option (:mod:`agents.job.validation`)
and the run folder (:mod:`agents.job.run_dir`: no silent overwrite, resume keeps the saved
config), seed everything once, build the env (per-token info as the sampler needs, through the
registry) and the sampler, then :func:`agents.job.pretrain.pretrain`: a fixed-masker warm-up in
checkpointed chunks and the sampler phase (checkpoints at rollout boundaries, TensorBoard
statistics, mask images); export the encoder, write ``summary.json``. Both phases log the same
statistics on one clip axis (:mod:`agents.job.run_logger`) and move one progress bar
(:mod:`agents.job.progress`); a diverging run stops before anything non-finite is saved
(:mod:`agents.job.guards`). The sampler is used only through :class:`agents.algorithms.base.Sampler`.
Under ``torchrun`` the hooks marked ``[distributed]`` hand over to :mod:`agents.job.distributed`
(DDP, global clip counters, rank-0-only writing); in one process they change nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecMonitor

from agents.algorithms.base import Sampler
from agents.job import distributed  # [distributed] torchrun / DDP hooks
from agents.job.callbacks import CheckpointEveryCallback, EnvStatsCallback, MaskImageCallback
from agents.job.checkpoint import CHECKPOINT_NAME, find_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from agents.job.config import TrainConfig
from agents.job.guards import (
    NonFiniteGuardCallback, Part, StopRequest, TrainingInterrupted, check_finite, divergence_advice, diverged_parts,
)
from agents.job.motion_curve import MotionCurveCallback, quarter_summary
from agents.job.pretrain import PretrainHooks, PretrainPlan, pretrain
from agents.job.progress import ProgressCallback, RunProgress, TerminalSummary, one_line_warnings
from agents.job.run_dir import (
    CONFIG_NAME, SUMMARY_NAME, RunDirLock, check_resume_config, check_resume_position, prepare_run_dir, read_saved_config,
)
from agents.job.run_logger import RunLogger, make_run_logger, pending_records, restore_pending_records
from agents.job.validation import ConfigError, validate_train_config
from tats_env import device as tats_device
from agents.registry import build_sampler, sampler_env_config, sampler_spec
from tats_env.config import MAEConfig
from tats_env.env import VideoMaskingVecEnv
from tats_env.utils import atomic_write_json, git_commit, git_dirty, nonfinite_tensors, package_versions

__all__ = ["CoTrainer", "train", "build_env", "resolve_device", "seed_everything", "MIN_STEPS_PER_DUMP"]

MIN_STEPS_PER_DUMP = 4
CONTENT_BLIND_OVERLAP = 0.5
"""Visible overlap across a batch's clips above which the summary warns that the sampler has become content-blind
(independent random masks score 0, one mask for every clip 1; the collapse seen on a held-out set kept the same
border rows visible in every clip)."""
"""The logger dumps once per rollout of the sampler, and at least every this many env steps apart."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; under torchrun ``cuda`` is ``cuda:LOCAL_RANK``."""
    return distributed.rank_device(tats_device.resolve_device(name))  # [distributed]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (every device) with ``seed``; ``deterministic`` also asks torch for
    deterministic kernels only (and cuBLAS for a fixed workspace, which it needs for that)."""
    set_random_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def build_env(cfg: TrainConfig, device: torch.device, mae_config: MAEConfig | None = None) -> VideoMaskingVecEnv:
    """The batched masking env of the config, as the sampler needs it; the MAE's cosine spans the whole run unless set.
    ``mae_config`` replaces the preset's MAE (benchmarks at other clip sizes)."""
    engine = cfg.env.engine_config
    if engine.total_updates is None:
        global_batch = cfg.num_envs * distributed.get_world_size()  # [distributed] clips are counted globally
        engine = dataclasses.replace(engine, total_updates=(cfg.total_steps + cfg.warmup_steps) // global_batch)
    env = sampler_env_config(cfg.method, dataclasses.replace(cfg.env, engine_config=engine), cfg.sampler)
    return VideoMaskingVecEnv(cfg.num_envs, env, device, mae_config)


def _round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value``."""
    return math.ceil(value / multiple) * multiple


class CoTrainer(PretrainHooks):
    """Holds the env, the sampler and the run folder; ``run()`` trains, checkpoints, resumes and exports.

    The constructor checks the options and the run folder before anything is loaded or built
    (:class:`ConfigError`, :class:`agents.job.run_dir.RunDirError`), then builds env and sampler.
    It is the :class:`~agents.job.pretrain.PretrainHooks` of its own pre-training loop.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        validate_train_config(cfg)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.checkpoint_path = self.out / CHECKPOINT_NAME
        self.lock: RunDirLock | None = None
        self.stop = StopRequest()
        self.wall_before = 0.0
        """Training seconds of the earlier processes of this run, up to the checkpoint resumed from."""
        self._started: float | None = None
        self._pending_log: dict[str, Any] = {}
        try:
            self._prepare_run_dir()
            if cfg.resume:
                check_resume_position(self.out, cfg.total_steps, cfg.warmup_steps)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.env.seed, cfg.deterministic)  # the one seeding point: before env, MAE and sampler exist
        self.env = build_env(cfg, self.device)
        self.monitored = VecMonitor(self.env)
        self.sampler: Sampler = build_sampler(cfg.method, self.monitored, cfg.sampler, cfg.env.seed, self.device)
        self.warmup_done = 0
        self.motion_curve = MotionCurveCallback()
        """Per-step motion statistics of the sampler phase (checkpointed: the quarters survive a resume)."""
        self.logger: RunLogger | None = None
        self.progress: RunProgress | None = None
        distributed.distribute_trainer(self)  # [distributed] DDP of the MAE and the sampler; no-op in one process

    def _prepare_run_dir(self) -> None:
        """Refuse or clear an existing run (new runs), check the saved config (resumed runs), drop stale temporaries."""
        if distributed.is_main_process():  # [distributed] rank 0 prepares the folder, the others wait for it
            self.lock = RunDirLock.acquire(self.out)  # before the folder check: a second run at once is refused
            try:
                prepare_run_dir(self.out, self.cfg.resume, self.cfg.overwrite)
            except BaseException:
                self.lock.release()
                raise
        distributed.barrier()
        if self.cfg.resume:
            check_resume_config(read_saved_config(TrainConfig, self.out), self.cfg, self.out)

    @property
    def clips_done(self) -> int:
        """Clips of the whole run so far: warm-up plus sampler."""
        return self.warmup_done + self.sampler.num_timesteps

    # --- checkpoints -------------------------------------------------------------------------------------

    def save(self) -> Path:
        """Write the atomic checkpoint of the whole run state (rank 0 alone under torchrun); refuses (keeping the
        last one) if anything is non-finite."""
        if not distributed.is_main_process():  # [distributed]
            return self.checkpoint_path
        engine = self.env.engine
        state = {
            "format": 3,
            "config": self.cfg.to_dict(),
            "mae_config": engine.mae_config.to_dict(),
            "mae_state": engine.model.state_dict(),
            "core": self.env.state_dict(),
            "sampler": self.sampler.sampler_state(),
            "num_timesteps": self.sampler.num_timesteps,
            "warmup_done": self.warmup_done,
            # A step without moving tokens records NaN with weight 0; store 0 (still weight 0) so the finite check passes.
            "motion_curve": [{k: v if math.isfinite(v) else 0.0 for k, v in row.items()} for row in self.motion_curve.rows],
            "rng": rng_state(),
            "wall_time_s": self.wall_time(),
            "pending_log": pending_records(self.logger) if self.logger is not None else {},
        }
        bad = nonfinite_tensors(state)
        if bad:
            check_finite(state, f"checkpoint at {self.clips_done} clips",
                         "not written; " + "; ".join(f"the {'MAE' if part == 'mae' else 'sampler'} diverged: "
                                                     + self.divergence_advice(part) for part in diverged_parts(bad)))
        return save_checkpoint(state, self.checkpoint_path)

    def divergence_advice(self, part: Part) -> str:
        """What a divergence of ``part`` leaves and what to change (:func:`agents.job.guards.divergence_advice`)."""
        return divergence_advice(part, self.checkpoint_path, float(self.env.engine.optimizer.param_groups[0]["lr"]),
                                 self.cfg.sampler, sampler_spec(self.cfg.method).sections)

    def wall_time(self) -> float:
        """Training seconds of the whole run: earlier processes (up to their checkpoint) plus this one."""
        return self.wall_before + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def restore(self, path: Path) -> None:
        """Load a checkpoint written by :meth:`save` into this trainer."""
        state = load_checkpoint(path, allow_pickle=True)
        self.env.load_state_dict(state["core"])
        self.sampler.load_sampler_state(state["sampler"])
        self.warmup_done = int(state["warmup_done"])
        self.motion_curve.rows = list(state.get("motion_curve", []))
        set_rng_state(state["rng"])
        self.wall_before = float(state.get("wall_time_s", 0.0))
        self._pending_log = dict(state.get("pending_log", {}))
        # The clip order cannot resume mid-epoch; the sampler's next reset continues from a stream seeded
        # by the position (this replaces the seed the sampler queued at construction).
        position = self.cfg.env.seed + 1 + self.sampler.num_timesteps + self.warmup_done
        self.env.seed(position)
        distributed.reseed_rank(position, self.sampler)  # [distributed] ranks > 0: their own streams again

    def _resume(self) -> int:
        """Restore the run's checkpoint; returns the clips of the run it had done (warm-up and sampler)."""
        ckpt = find_checkpoint(self.out)
        if ckpt is None:  # prepare_run_dir checked it; the folder changed since
            raise FileNotFoundError(f"--resume: no {CHECKPOINT_NAME} in {self.out}")
        self.restore(ckpt)
        if self.sampler.num_timesteps > 0 and self.cfg.warmup_steps > self.warmup_done:
            raise ConfigError(f"--warmup-steps {self.cfg.warmup_steps}: this run's sampler started after "
                              f"{self.warmup_done} warm-up clips; the warm-up can only be extended before that")
        return self.clips_done

    # --- the pre-training loop's hooks -------------------------------------------------------------------

    def _planned_clips(self) -> int:
        """Clips the run will have done at its end (warm-up chunks and sampler rollouts round up)."""
        cfg = self.cfg
        warm = max(self.warmup_done, _round_up(cfg.warmup_steps, cfg.num_envs))
        remaining = max(cfg.total_steps - self.sampler.num_timesteps, 0)
        return warm + self.sampler.num_timesteps + _round_up(remaining, self.sampler.rollout_clips)

    def log_interval(self, sampler: Sampler | None) -> int:
        """Learn iterations between logger dumps: one per rollout of the run's sampler, at least
        :data:`MIN_STEPS_PER_DUMP` env steps apart (the warm-up dumps as often, one step per iteration)."""
        steps_per_dump = max(self.sampler.rollout_clips // self.cfg.num_envs, MIN_STEPS_PER_DUMP)
        steps_per_iteration = 1 if sampler is None else max(1, sampler.rollout_clips // self.cfg.num_envs)
        return max(1, steps_per_dump // steps_per_iteration)

    def on_phase(self, name: str) -> None:
        """Show the phase on the bar; its statistics continue on the run's clip axis."""
        assert self.progress is not None and self.logger is not None
        self.progress.set_phase(name)
        self.logger.offset = 0 if name.startswith("warm-up") else self.warmup_done

    def on_warmup_chunk(self, warmup_done: int) -> None:
        """Checkpoint after every warm-up chunk, so a killed warm-up resumes; stop there after a Ctrl-C."""
        self.warmup_done = warmup_done
        self.save()
        if self.stop.requested:
            raise TrainingInterrupted(self.out, self.clips_done)

    def _save_and_stop(self) -> None:
        """At a rollout start after a Ctrl-C: save the checkpoint there and stop."""
        self.save()
        raise TrainingInterrupted(self.out, self.clips_done)

    def warmup_callbacks(self) -> list[BaseCallback]:
        """Divergence guard, env statistics, mask images (``images/warmup/``), progress."""
        assert self.progress is not None
        return distributed.rank_callbacks([  # [distributed] global clip counter first; images on rank 0
            NonFiniteGuardCallback(self.cfg.max_skipped_updates, advice=self.divergence_advice),
            EnvStatsCallback(self.cfg.sampler.direction),
            MaskImageCallback(self.cfg.image_every, self.out / "images" / "warmup", final_at=self.cfg.warmup_steps),
            ProgressCallback(self.progress, offset=0),
        ])

    def sampler_callbacks(self) -> list[BaseCallback]:
        """Divergence guard, env statistics, mask images, checkpoints, progress."""
        cfg = self.cfg
        assert self.progress is not None
        return distributed.rank_callbacks([  # [distributed] global clip counter first; images on rank 0
            NonFiniteGuardCallback(cfg.max_skipped_updates, advice=self.divergence_advice),
            EnvStatsCallback(cfg.sampler.direction),
            self.motion_curve,
            MaskImageCallback(cfg.image_every, self.out / "images", offset=self.warmup_done),
            CheckpointEveryCallback(cfg.checkpoint_every, self.save,
                                    stop=lambda: self.stop.requested, on_stop=self._save_and_stop),
            ProgressCallback(self.progress, offset=self.warmup_done),
        ])

    @contextlib.contextmanager
    def _terminal(self, resume_at: int | None) -> Iterator[RunProgress]:
        """The progress bar, the logger (CSV/TensorBoard continued at ``resume_at``, one-line summaries) and
        one-line warnings, for the duration of training."""
        cfg = self.cfg
        main = distributed.is_main_process()  # [distributed] one bar, one log: rank 0's
        progress = RunProgress(self._planned_clips(), self.clips_done, cfg.progress_bar and main)
        summary = TerminalSummary(progress, cfg.summary_every)
        self.logger = (make_run_logger(self.out / "tb", resume_at, cfg.verbose, extra=[summary]) if main
                       else RunLogger(None, []))
        restore_pending_records(self.logger, self._pending_log)  # recorded by the checkpoint's process, not yet written
        self.progress = progress
        try:
            with one_line_warnings(progress):
                yield progress
            summary.flush()
        finally:
            progress.close()
            self.logger.close()

    def _announce(self, resumed_from: int | None) -> None:
        """One line: what this run does, where, on what."""
        cfg = self.cfg
        what = f"resuming at {self.clips_done:,} clips" if resumed_from is not None else "new run"
        warm = f"warm-up {cfg.warmup_steps:,} clips ({cfg.warmup_masker} masks), " if cfg.warmup_steps else ""
        assert self.progress is not None
        self.progress.write(f"{self.out} ({what}): {warm}{cfg.method} {cfg.total_steps:,} clips, "
                            f"{cfg.num_envs} clips/step on {self.device}; tensorboard --logdir {self.out / 'tb'}")

    # --- the run -----------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Warm up, train the sampler, checkpoint, export; returns a summary (also written to summary.json)."""
        resumed_from = self._resume() if self.cfg.resume else None
        if distributed.is_main_process():  # [distributed]
            atomic_write_json(self.cfg.to_dict(), self.out / CONFIG_NAME)
        self._started = time.perf_counter()
        cfg = self.cfg
        plan = PretrainPlan(warmup_clips=cfg.warmup_steps, warmup_masker=cfg.warmup_masker,
                            sampler_clips=cfg.total_steps, seed=cfg.env.seed,
                            warmup_chunk=max(cfg.checkpoint_every, cfg.num_envs))
        with self._terminal(self.clips_done if resumed_from is not None else None) as progress, self.stop:
            self.stop.write = lambda line: progress.write(line, file=sys.stderr)
            self._announce(resumed_from)
            self.warmup_done = pretrain(self.monitored, self.sampler, plan, self, warmup_done=self.warmup_done,
                                        name=cfg.method)
        wall = self.wall_time()
        exports = self.export()
        summary = self._summary(exports, wall, resumed_from)
        summary.update(distributed.distributed_summary(self))  # [distributed] world_size, global batch, digests
        if distributed.is_main_process():  # [distributed]
            atomic_write_json(summary, self.out / SUMMARY_NAME)
        return summary

    def _summary(self, exports: dict[str, Path], wall: float, resumed_from: int | None) -> dict[str, Any]:
        """What ``summary.json`` holds: where everything is, how much was done, what went wrong on the way."""
        images = self.out / "images"
        clips = self.env.core.clips
        return {
            "run_dir": str(self.out),
            "method": self.cfg.method,
            "motion_lift": self.motion_lift(),
            "mask_composition": self.mask_composition(),
            "checkpoint": str(self.checkpoint_path) if self.checkpoint_path.is_file() else None,  # none after 0 clips
            "config": str(self.out / CONFIG_NAME),
            "tensorboard": str(self.out / "tb"),
            "images": str(images) if any(images.rglob("*.png")) else None,
            "exports": {fmt: str(path) for fmt, path in exports.items()},
            "clips": self.clips_done,
            "mae_updates": self.env.engine.num_updates,
            "skipped_mae_updates": self.env.engine.skipped_updates,
            "wall_time_s": round(wall, 1),
            "resumed_from": resumed_from,
            "versions": package_versions(),
            "git_commit": git_commit(),
            "git_dirty": git_dirty(),
            "skipped_videos": clips.skipped,
            "bad_videos": clips.bad_videos,
        }

    def motion_lift(self) -> dict[str, Any]:
        """First- and last-quarter mean motion lift of the sampler phase in the run's direction (0 = random masking,
        1 = the best K-of-N mask; None without foreground masks or with fewer than 4 sampler steps), with the
        standard error over steps."""
        direction = self.cfg.sampler.direction
        key = f"motion_lift_{direction}"
        out: dict[str, Any] = {"direction": direction, "first_quarter": None, "last_quarter": None,
                               "first_quarter_se": None, "last_quarter_se": None, "steps": len(self.motion_curve.rows)}
        if len(self.motion_curve.rows) >= 4:
            quarters = quarter_summary(self.motion_curve.rows, (key,))[key]
            for name in ("first", "last"):
                for suffix in ("", "_se"):
                    value = quarters[f"{name}{suffix}"]
                    out[f"{name}_quarter{suffix}"] = round(value, 4) if math.isfinite(value) else None
        return out

    def mask_composition(self) -> dict[str, Any]:
        """Last-quarter means over the sampler phase (None with fewer than 4 sampler steps or without foreground
        masks): moving tokens visible / hidden per clip (random masks: ``m V / N`` visible), the masks' visible
        overlap across the clips of a batch (0 = independent random masks, 1 = one mask for every clip: a
        content-blind policy; needs no foreground masks) and ``content_blind`` (overlap above
        :data:`CONTENT_BLIND_OVERLAP`)."""
        keys = ("moving_visible", "moving_hidden", "visible_overlap")
        out: dict[str, Any] = dict.fromkeys(keys)
        out["content_blind"] = None
        if len(self.motion_curve.rows) >= 4:
            quarters = quarter_summary(self.motion_curve.rows, keys)
            for key in keys:
                value = quarters[key]["last"]
                out[key] = round(value, 4) if math.isfinite(value) else None
            if out["visible_overlap"] is not None:
                out["content_blind"] = out["visible_overlap"] > CONTENT_BLIND_OVERLAP
        return out

    def export(self) -> dict[str, Path]:
        """Export the co-trained encoder in every configured format under ``out/encoder-<format>`` (finite weights
        only; rank 0 alone under torchrun)."""
        from tats_env.export import export_encoder

        if not distributed.is_main_process():  # [distributed]
            return {}
        check_finite(self.env.engine.model.state_dict(), "the MAE's weights", "no export written")
        return {
            fmt: export_encoder(self.env.engine.model, self.out / f"encoder-{fmt}", format=fmt, overwrite=True)
            for fmt in self.cfg.export_formats
        }

    def close(self) -> None:
        """Release data workers and the run folder's lock."""
        try:
            self.env.close()
        finally:
            if self.lock is not None:
                self.lock.release()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run :class:`CoTrainer` for ``cfg`` and return its summary (under torchrun: in its process group)."""
    with distributed.distributed_session(resolve_device(cfg.device)):  # [distributed] no-op outside torchrun
        trainer = CoTrainer(cfg)
        try:
            return trainer.run()
        finally:
            trainer.close()
