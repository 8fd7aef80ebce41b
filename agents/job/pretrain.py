"""The one pre-training loop of the main job and the benchmark: a fixed-masker warm-up, then the sampler.

``pretrain(env, sampler, plan, hooks)`` spends ``plan.warmup_clips`` clips training the env's MAE
with a fixed masker from the registry (in chunks, so the main job can checkpoint between them and
a killed warm-up resumes), then lets the sampler learn until it has seen ``plan.sampler_clips``
clips. What differs between the callers (their callbacks, logger, progress bar, checkpoints)
comes in through :class:`PretrainHooks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from agents.algorithms.base import Sampler
from agents.registry import build_sampler

__all__ = ["PretrainPlan", "PretrainHooks", "warm_up", "pretrain"]


@dataclass(frozen=True)
class PretrainPlan:
    """How many clips each phase spends, and with which warm-up masker."""

    warmup_clips: int
    """Clips of MAE training with ``warmup_masker`` before the sampler starts (0: none)."""
    warmup_masker: str
    """A fixed masker of the registry (``random``, ``tube``, ...)."""
    sampler_clips: int
    """Clips the sampler has seen at the end (its ``num_timesteps``)."""
    seed: int
    """Seed of the warm-up's clip stream and masks; chunk ``c`` starting after ``w`` clips uses ``seed + w``."""
    warmup_chunk: int | None = None
    """Clips per warm-up chunk (None: one chunk)."""


class PretrainHooks:
    """What a caller adds around the two phases; every default does nothing."""

    logger: Any = None
    """An SB3 logger for both phases (None: each sampler's own)."""
    progress_bar: bool = False
    """SB3's progress bar during the sampler phase."""

    def warmup_callbacks(self) -> list[BaseCallback]:
        """Fresh callbacks for one warm-up chunk."""
        return []

    def sampler_callbacks(self) -> list[BaseCallback]:
        """Callbacks of the sampler phase."""
        return []

    def log_interval(self, sampler: Sampler | None) -> int:
        """Env steps between two logger dumps (``sampler`` None: the warm-up)."""
        return 1

    def on_phase(self, name: str) -> None:
        """A phase starts: ``"warm-up (<masker>)"`` or the sampler's name."""

    def on_warmup_chunk(self, warmup_done: int) -> None:
        """A warm-up chunk ended after ``warmup_done`` warm-up clips in all."""


def warm_up(env: VecEnv, clips: int, masker: str, seed: int, start: int = 0,
            callbacks: list[BaseCallback] | None = None, logger: Any = None, log_interval: int = 1,
            sampler: Sampler | None = None) -> int:
    """Train the env's MAE on ``clips`` clips with the fixed masker ``masker``; returns the clips used.

    The clip stream restarts from ``seed``, so a chunk resumed after a kill sees the same clips.
    The masker counts from ``start`` (the warm-up clips done before), so callbacks and the logger
    see the warm-up's clip count. ``sampler``, when given, does the warm-up instead of a new masker
    (the benchmark's fixed-masker cells: one masker for the whole budget); its own clip count is
    left as it was.
    """
    agent = sampler if sampler is not None else build_sampler(masker, env, seed=seed, device=env.engine.device)
    own = agent.num_timesteps
    if logger is not None:
        agent.set_logger(logger)
    agent.num_timesteps = start
    agent.learn(clips, callback=callbacks or [], reset_num_timesteps=False, log_interval=log_interval)
    done = agent.num_timesteps - start
    if sampler is not None:
        agent.num_timesteps = own
    return done


def pretrain(env: VecEnv, sampler: Sampler | None, plan: PretrainPlan, hooks: PretrainHooks | None = None,
             warmup_done: int = 0, warmup_sampler: Sampler | None = None, name: str = "sampler") -> int:
    """Warm the env's MAE up (from ``warmup_done`` clips on), then train ``sampler``; returns the warm-up clips done.

    ``sampler`` None stops after the warm-up. ``warmup_sampler`` replaces the registry's warm-up
    masker (see :func:`warm_up`).
    """
    hooks = hooks or PretrainHooks()
    if warmup_done < plan.warmup_clips:
        hooks.on_phase(f"warm-up ({plan.warmup_masker})")
    while warmup_done < plan.warmup_clips:
        chunk = min(plan.warmup_clips - warmup_done, plan.warmup_chunk or plan.warmup_clips)
        warmup_done += warm_up(env, chunk, plan.warmup_masker, plan.seed + warmup_done, start=warmup_done,
                               callbacks=hooks.warmup_callbacks(), logger=hooks.logger,
                               log_interval=hooks.log_interval(None), sampler=warmup_sampler)
        hooks.on_warmup_chunk(warmup_done)
    remaining = plan.sampler_clips - (sampler.num_timesteps if sampler is not None else plan.sampler_clips)
    if sampler is not None and remaining > 0:
        hooks.on_phase(name)
        if hooks.logger is not None:
            sampler.set_logger(hooks.logger)
        sampler.learn(remaining, callback=hooks.sampler_callbacks(), reset_num_timesteps=False,
                      log_interval=hooks.log_interval(sampler), progress_bar=hooks.progress_bar)
    return warmup_done
