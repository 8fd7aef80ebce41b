"""One learn loop for the samplers that are not stable-baselines3 algorithms.

:class:`StepwiseSampler` runs the masking env one step (``num_envs`` one-step episodes) at a time:
``act`` picks the masks, the env scores them and updates its MAE, ``update`` may take a
gradient step on that batch. ``learn`` drives SB3 callbacks exactly as an SB3 algorithm does
(``on_training_start``, ``on_rollout_start``, ``on_step`` with ``locals`` holding ``infos``,
``rewards`` and ``new_obs``, ``on_rollout_end``, ``on_training_end``), so the main job's and the
benchmark's callbacks work unchanged. :class:`agents.algorithms.reinforce.Reinforce` and
:class:`agents.algorithms.fixed_masker.FixedMasker` are its subclasses; it implements the
:class:`~agents.algorithms.base.Sampler` interface for them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ProgressBarCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv

from agents.algorithms.base import DDPTarget

__all__ = ["StepwiseSampler", "init_sb3_callback"]


def init_sb3_callback(agent: Any, callback: BaseCallback | list[BaseCallback] | None,
                      progress_bar: bool = False) -> BaseCallback:
    """Combine ``callback`` (one, a list, or None) into a ``CallbackList`` bound to ``agent``.

    ``agent`` duck-types an SB3 ``BaseAlgorithm`` for callbacks: ``num_timesteps``, ``logger``,
    ``get_env()``; ``learn`` must pass ``total_timesteps`` in its locals for the progress bar.
    """
    callbacks = callback if isinstance(callback, list) else ([callback] if callback is not None else [])
    if progress_bar:
        callbacks = [*callbacks, ProgressBarCallback()]
    combined = CallbackList(callbacks)
    combined.init_callback(agent)
    return combined


class StepwiseSampler:
    """Base class: act on a batch of clips, let the env score and learn, optionally update; repeat.

    Subclasses implement :meth:`act` (and :meth:`predict`); learners also :meth:`update`,
    :attr:`network`, their state and :meth:`ddp_targets`.

    Args:
        env: an SB3 ``VecEnv`` over the masking problem (possibly wrapped, e.g. in ``VecMonitor``).
        log_interval: updates between two ``logger.dump`` calls.
    """

    def __init__(self, env: VecEnv, log_interval: int = 10) -> None:
        self.env = env
        self.log_interval = max(1, log_interval)
        self.num_timesteps = 0
        """Clips (SB3 timesteps) seen so far."""
        self.n_updates = 0
        """Gradient steps taken so far (counted by the subclass's :meth:`update`)."""
        self.logger = Logger(folder=None, output_formats=[])
        """SB3 logger; replace it with :meth:`set_logger` to write stdout / CSV / TensorBoard."""
        self._last_obs: np.ndarray | None = None

    needs_token_info: ClassVar[bool] = False

    @property
    def network(self) -> nn.Module | None:
        """The scorer network (None: a fixed masker)."""
        return None

    @property
    def rollout_clips(self) -> int:
        """One env step: these samplers update after every batch."""
        return self.env.num_envs

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """Masks ``(B, N)`` int8 for observations ``(B, N, D)`` (SB3's ``predict`` signature)."""
        raise NotImplementedError

    def predict_masks(self, observation: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Masks ``(B, N)`` int8 (what :meth:`predict` returns)."""
        return self.predict(observation, deterministic=deterministic)[0]

    def predict_scores(self, observation: np.ndarray) -> Tensor | None:
        """Per-token scores (None: no scorer)."""
        return None

    def ddp_targets(self) -> list[DDPTarget]:
        """Nothing to average across ranks (learners override this)."""
        return []

    def reseed(self, seed: int) -> None:
        """Restart the sampler's own random streams (none here)."""

    def sampler_state(self) -> dict[str, Any]:
        """:meth:`state_dict`, for checkpoints."""
        return {"agent": self.state_dict()}

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`sampler_state`."""
        self.load_state_dict(state["agent"])

    def get_env(self) -> VecEnv:
        """The training env (what SB3 callbacks read as ``training_env``)."""
        return self.env

    def set_logger(self, logger: Logger) -> None:
        """Use an SB3 logger (e.g. from ``stable_baselines3.common.logger.configure``)."""
        self.logger = logger

    def act(self, observation: np.ndarray) -> tuple[np.ndarray, Any]:
        """Masks ``(B, N)`` int8 for observations ``(B, N, D)`` and whatever :meth:`update` needs."""
        raise NotImplementedError

    def update(self, context: Any, rewards: np.ndarray, infos: list[dict[str, Any]]) -> dict[str, float]:
        """Learn from one scored batch; returns statistics to log (``train/<key>``). Default: no learning."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Counters for checkpoints; learners add their weights and optimizer."""
        return {"num_timesteps": self.num_timesteps, "n_updates": self.n_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.num_timesteps = int(state["num_timesteps"])
        self.n_updates = int(state["n_updates"])

    def learn(self, total_timesteps: int, callback: BaseCallback | list[BaseCallback] | None = None,
              reset_num_timesteps: bool = True, progress_bar: bool = False,
              log_interval: int | None = None) -> "StepwiseSampler":
        """Step the env with :meth:`act` and :meth:`update` until ``total_timesteps`` more clips are done.

        Every env step is one batch of ``num_envs`` one-step episodes. A callback returning False
        from ``on_step`` stops training right after that env step (as in SB3). The logger is
        dumped every ``log_interval`` env steps (default: the constructor's) and after the last
        step, learners or not, so a fixed masker's env statistics are logged too.
        """
        interval = self.log_interval if log_interval is None else max(1, log_interval)
        if total_timesteps < 1:
            raise ValueError(f"total_timesteps must be >= 1, got {total_timesteps}")
        if reset_num_timesteps:
            self.num_timesteps = 0
        total_timesteps = total_timesteps + (0 if reset_num_timesteps else self.num_timesteps)
        cb = init_sb3_callback(self, callback, progress_bar)
        self._last_obs = self.env.reset()
        cb.on_training_start(locals(), globals())
        iteration = 0
        while self.num_timesteps < total_timesteps:
            cb.on_rollout_start()
            actions, context = self.act(self._last_obs)
            new_obs, rewards, dones, infos = self.env.step(actions)
            self.num_timesteps += self.env.num_envs
            cb.update_locals(locals())
            if not cb.on_step():
                break
            stats = self.update(context, rewards, infos)
            for key, value in stats.items():
                self.logger.record(f"train/{key}", value)
            self._last_obs = new_obs
            cb.on_rollout_end()
            if stats:
                self.logger.record("train/n_updates", self.n_updates)
            iteration += 1
            if iteration % interval == 0:
                self.logger.dump(self.num_timesteps)
        if iteration % interval:  # the statistics of a last partial interval
            self.logger.dump(self.num_timesteps)
        cb.on_training_end()
        return self
