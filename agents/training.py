"""Co-training of the video MAE and a masking sampler (TATS + PPO by default): the library behind ``train_ppo.py``.

The run, top to bottom (:meth:`CoTrainer.run`): check every option (:mod:`agents.validation`) and
the run folder (:mod:`agents.run_dir`: no silent overwrite, resume keeps the saved config), warm
the env's MAE up with a fixed masker (in checkpointed chunks), let the sampler learn on the env
for ``total_steps`` clips (checkpoints at rollout boundaries, TensorBoard statistics, mask
images), export the encoder, write ``summary.json``. Both phases log the same statistics on one
clip axis (:mod:`agents.run_logger`) and move one progress bar (:mod:`agents.progress`); a
diverging run stops before anything non-finite is saved (:mod:`agents.guards`). Every setting
comes from one nested :class:`TrainConfig`; samplers are built through :mod:`agents.registry`.
Nothing here imports the benchmark layer (:mod:`agents.bench`). Under ``torchrun`` the hooks marked
``[distributed]`` hand over to :mod:`agents.distributed` (DDP, global clip counters, rank-0-only
writing); in one process they change nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import tyro
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecMonitor

from agents import distributed  # [distributed] torchrun / DDP hooks
from agents.callbacks import CheckpointEveryCallback, EnvStatsCallback, MaskImageCallback
from agents.checkpoint import (
    CHECKPOINT_NAME, atomic_torch_save, find_checkpoint, load_checkpoint, load_sampler_state, rng_state,
    sampler_state, set_rng_state,
)
from agents.guards import NonFiniteGuardCallback, check_finite
from agents.hyperparams import SamplerConfig
from agents.motion_eval import MotionCurveCallback, quarter_summary
from agents.progress import ProgressCallback, RunProgress, TerminalSummary, one_line_warnings
from agents.registry import FIXED_MASKERS, LEARNED_SAMPLERS, build_sampler
from agents.run_dir import (
    CONFIG_NAME, SUMMARY_NAME, check_resume_config, parse_resumed, prepare_run_dir, read_saved_config,
)
from agents.run_logger import RunLogger, make_run_logger
from agents.validation import ConfigError, validate_train_config
from tats_env.commandline import config_to_dict, parse
from tats_env.env import EngineConfig, EnvConfig, RewardConfig, VideoMaskingVecEnv
from tats_env.export import ExportFormat
from tats_env.utils import atomic_write_json

__all__ = ["TrainConfig", "CoTrainer", "train", "build_env", "resolve_device", "default_env", "parse_train_config"]

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
    """Hyperparameters of every sampler (--direction, --token-ppo.*, --tats.*, --ppo.*, --a2c.*, --sac.*,
    --reinforce.*); --method picks one."""
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


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; under torchrun ``cuda`` is ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return distributed.rank_device(torch.device(name))  # [distributed]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (every device) with ``seed``; ``deterministic`` also asks torch for
    deterministic kernels only (and cuBLAS for a fixed workspace, which it needs for that)."""
    set_random_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def build_env(cfg: TrainConfig, device: torch.device) -> VideoMaskingVecEnv:
    """The batched masking env of the config; the MAE's cosine spans the whole run unless set."""
    engine = cfg.env.engine_config
    if engine.total_updates is None:
        global_batch = cfg.num_envs * distributed.get_world_size()  # [distributed] clips are counted globally
        engine = dataclasses.replace(engine, total_updates=(cfg.total_steps + cfg.warmup_steps) // global_batch)
    return VideoMaskingVecEnv(cfg.num_envs, dataclasses.replace(cfg.env, engine_config=engine), device)


def parse_train_config(argv: Sequence[str] | None = None) -> TrainConfig:
    """The command line's :class:`TrainConfig`; with ``--resume``, parsed on top of the run's saved config.

    Options given on the command line that differ from the saved run raise :class:`ConfigError`
    unless they are safe to change (:data:`agents.run_dir.SAFE_ON_RESUME`).
    """
    cfg = parse(TrainConfig, argv)
    validate_train_config(cfg)  # the flags as given, before the run folder is read
    if not cfg.resume:
        return cfg
    resumed = parse_resumed(TrainConfig, list(argv) if argv is not None else None, cfg.out)
    return dataclasses.replace(resumed, out=cfg.out, resume=True)


def warm_up_mae(env: VideoMaskingVecEnv, clips: int, masker_name: str, seed: int, start: int = 0,
                callback: list[BaseCallback] | None = None, logger: RunLogger | None = None,
                log_interval: int = 1) -> int:
    """Train the env's MAE on ``clips`` clips with a fixed masker (from the registry); returns the clips used.

    The clip stream restarts from ``seed``, so a chunk resumed after a kill sees the same clips.
    The masker counts from ``start`` (the warm-up clips done before), so callbacks and the logger
    see the warm-up's clip count; it dumps ``logger`` every ``log_interval`` env steps.
    """
    agent = build_sampler(masker_name, env, seed=seed, device=env.core.device)
    if logger is not None:
        agent.set_logger(logger)
    agent.num_timesteps = start
    agent.learn(clips, callback=callback, reset_num_timesteps=False, log_interval=log_interval)
    return agent.num_timesteps - start


def _round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value``."""
    return math.ceil(value / multiple) * multiple


class CoTrainer:
    """Holds the env, the sampler and the run folder; ``run()`` trains, checkpoints, resumes and exports.

    The constructor checks the options and the run folder before anything is loaded or built
    (:class:`ConfigError`, :class:`agents.run_dir.RunDirError`), then builds env and sampler.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        validate_train_config(cfg)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.checkpoint_path = self.out / CHECKPOINT_NAME
        self._prepare_run_dir()
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.env.seed, cfg.deterministic)  # the one seeding point: before env, MAE and sampler exist
        self.env = build_env(cfg, self.device)
        self.monitored = VecMonitor(self.env)
        self.agent = build_sampler(cfg.method, self.monitored, cfg.sampler, cfg.env.seed, self.device)
        self.warmup_done = 0
        self.motion_curve = MotionCurveCallback()
        """Per-step motion statistics of the sampler phase (checkpointed: the quarters survive a resume)."""
        self.logger: RunLogger | None = None
        self.progress: RunProgress | None = None
        distributed.distribute_trainer(self)  # [distributed] DDP of the MAE and the sampler; no-op in one process

    def _prepare_run_dir(self) -> None:
        """Refuse or clear an existing run (new runs), check the saved config (resumed runs), drop stale temporaries."""
        if distributed.is_main_process():  # [distributed] rank 0 prepares the folder, the others wait for it
            prepare_run_dir(self.out, self.cfg.resume, self.cfg.overwrite)
        distributed.barrier()
        if self.cfg.resume:
            check_resume_config(read_saved_config(TrainConfig, self.out), self.cfg, self.out)

    @property
    def clips_done(self) -> int:
        """Clips of the whole run so far: warm-up plus sampler."""
        return self.warmup_done + self.agent.num_timesteps

    def save(self) -> Path:
        """Write the atomic checkpoint of the whole run state (rank 0 alone under torchrun); refuses (keeping the
        last one) if anything is non-finite."""
        if not distributed.is_main_process():  # [distributed]
            return self.checkpoint_path
        core = self.env.core
        state = {
            "format": 3,
            "config": self.cfg.to_dict(),
            "mae_config": core.engine.mae_config.to_dict(),
            "mae_state": core.engine.model.state_dict(),
            "core": core.state_dict(),
            "sampler": sampler_state(self.agent),
            "num_timesteps": self.agent.num_timesteps,
            "warmup_done": self.warmup_done,
            # A step without moving tokens records NaN with weight 0; store 0 (still weight 0) so the finite check passes.
            "motion_curve": [{k: v if math.isfinite(v) else 0.0 for k, v in row.items()} for row in self.motion_curve.rows],
            "rng": rng_state(),
        }
        check_finite(state, f"checkpoint at {self.clips_done} clips",
                     f"not written, the last good {self.checkpoint_path} is kept; the run diverged: lower the "
                     "learning rate (--mae.lr, --ppo.learning-rate, ...) and start again")
        return atomic_torch_save(state, self.checkpoint_path)

    def restore(self, path: Path) -> None:
        """Load a checkpoint written by :meth:`save` into this trainer."""
        state = load_checkpoint(path, allow_pickle=True)
        self.env.core.load_state_dict(state["core"])
        load_sampler_state(self.agent, state["sampler"])
        self.warmup_done = int(state["warmup_done"])
        self.motion_curve.rows = list(state.get("motion_curve", []))
        set_rng_state(state["rng"])
        # The clip order cannot resume mid-epoch; the sampler's next reset continues from a stream seeded
        # by the position (this replaces the seed the sampler queued at construction).
        self.env.seed(self.cfg.env.seed + 1 + self.agent.num_timesteps + self.warmup_done)
        distributed.reseed_rank(self.cfg.env.seed + 1 + self.agent.num_timesteps + self.warmup_done,
                                self.agent)  # [distributed] ranks > 0: their own streams again

    def _resume(self) -> int:
        """Restore the run's checkpoint; returns the sampler clips it had done."""
        ckpt = find_checkpoint(self.out)
        if ckpt is None:  # prepare_run_dir checked it; the folder changed since
            raise FileNotFoundError(f"--resume: no {CHECKPOINT_NAME} in {self.out}")
        self.restore(ckpt)
        if self.agent.num_timesteps > 0 and self.cfg.warmup_steps > self.warmup_done:
            raise ConfigError(f"--warmup-steps {self.cfg.warmup_steps}: this run's sampler started after "
                              f"{self.warmup_done} warm-up clips; the warm-up can only be extended before that")
        return self.agent.num_timesteps

    def _planned_clips(self) -> int:
        """Clips the run will have done at its end (warm-up chunks and sampler rollouts round up)."""
        cfg = self.cfg
        warm = max(self.warmup_done, _round_up(cfg.warmup_steps, cfg.num_envs))
        rollout = cfg.num_envs * (getattr(self.agent, "n_steps", 1) if isinstance(self.agent, BaseAlgorithm) else 1)
        remaining = max(cfg.total_steps - self.agent.num_timesteps, 0)
        return warm + self.agent.num_timesteps + _round_up(remaining, rollout)

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
        self.agent.set_logger(self.logger)
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

    def _dump_interval(self) -> int:
        """Env steps between logger dumps of the stepwise learners and the warm-up (a PPO rollout)."""
        return max(1, getattr(self.agent, "n_steps", self.cfg.sampler.ppo.n_steps))

    def _warmup_callbacks(self) -> list[BaseCallback]:
        """Divergence guard, env statistics, mask images (``images/warmup/``), progress."""
        assert self.progress is not None
        return distributed.rank_callbacks([  # [distributed] global clip counter first; images on rank 0
            NonFiniteGuardCallback(self.cfg.max_skipped_updates),
            EnvStatsCallback(self.cfg.sampler.direction),
            MaskImageCallback(self.cfg.image_every, self.out / "images" / "warmup"),
            ProgressCallback(self.progress, offset=0),
        ])

    def _sampler_callbacks(self) -> list[BaseCallback]:
        """Divergence guard, env statistics, mask images, checkpoints, progress."""
        cfg = self.cfg
        assert self.progress is not None
        return distributed.rank_callbacks([  # [distributed] global clip counter first; images on rank 0
            NonFiniteGuardCallback(cfg.max_skipped_updates),
            EnvStatsCallback(cfg.sampler.direction),
            self.motion_curve,
            MaskImageCallback(cfg.image_every, self.out / "images"),
            CheckpointEveryCallback(cfg.checkpoint_every, self.save),
            ProgressCallback(self.progress, offset=self.warmup_done),
        ])

    def _warm_up(self) -> None:
        """Fixed-masker warm-up in checkpoint-sized chunks, so a killed warm-up resumes."""
        cfg = self.cfg
        assert self.progress is not None and self.logger is not None
        if self.warmup_done < cfg.warmup_steps:
            self.progress.set_phase(f"warm-up ({cfg.warmup_masker})")
            self.logger.offset = 0
        while self.warmup_done < cfg.warmup_steps:
            chunk = min(cfg.warmup_steps - self.warmup_done, max(cfg.checkpoint_every, cfg.num_envs))
            self.warmup_done += warm_up_mae(self.env, chunk, cfg.warmup_masker, cfg.env.seed + self.warmup_done,
                                            start=self.warmup_done, callback=self._warmup_callbacks(),
                                            logger=self.logger, log_interval=self._dump_interval())
            self.save()

    def _train_sampler(self) -> None:
        """The sampler phase: ``total_steps`` clips (whole rollouts) on the env."""
        cfg = self.cfg
        remaining = max(cfg.total_steps - self.agent.num_timesteps, 0)
        if remaining == 0:
            return
        assert self.progress is not None and self.logger is not None
        self.progress.set_phase(cfg.method)
        self.logger.offset = self.warmup_done
        interval = 1 if isinstance(self.agent, BaseAlgorithm) else self._dump_interval()
        self.agent.learn(remaining, callback=self._sampler_callbacks(), reset_num_timesteps=False,
                         log_interval=interval)

    def run(self) -> dict[str, Any]:
        """Warm up, train the sampler, checkpoint, export; returns a summary (also written to summary.json)."""
        resumed_from = self._resume() if self.cfg.resume else None
        if distributed.is_main_process():  # [distributed]
            atomic_write_json(self.cfg.to_dict(), self.out / CONFIG_NAME)
        start = time.perf_counter()
        with self._terminal(self.clips_done if resumed_from is not None else None):
            self._announce(resumed_from)
            self._warm_up()
            self._train_sampler()
        wall = time.perf_counter() - start
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
            "checkpoint": str(self.checkpoint_path),
            "config": str(self.out / CONFIG_NAME),
            "tensorboard": str(self.out / "tb"),
            "images": str(images) if any(images.rglob("*.png")) else None,
            "exports": {fmt: str(path) for fmt, path in exports.items()},
            "clips": self.clips_done,
            "mae_updates": self.env.engine.num_updates,
            "skipped_mae_updates": self.env.engine.skipped_updates,
            "wall_time_s": round(wall, 1),
            "resumed_from": resumed_from,
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
