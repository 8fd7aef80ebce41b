"""SB3 callbacks for co-training: env statistics, mask/reconstruction images, atomic checkpoints.

They reach the env only through its public surface (``engine``, ``skipped_videos``,
``mask_image``; SB3's VecEnv wrappers forward these) and the sampler only through
:class:`agents.algorithms.base.Sampler` (``predict_masks``, ``predict_scores``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Image, TensorBoardOutputFormat

from agents.algorithms.base import mask_probabilities
from agents.kofn.credit import DEFAULT_DIRECTION, Direction
from tats_env.visualize import save_png

ENV_STAT_KEYS = ("recon_loss", "moving_visible", "moving_hidden", "motion_precision", "foreground_share", "motion_recall", "motion_lift_show_hard",
                 "motion_lift_mask_hard", "moving_static_error_ratio", "visible_overlap")


class EnvStatsCallback(BaseCallback):
    """Logs the env's MAE loss, reward, motion precision (with its random-mask baseline), motion lift in both
    directions (and as ``env/motion_lift`` in the run's ``direction``), the moving/static error ratio and clips/s."""

    def __init__(self, direction: Direction = DEFAULT_DIRECTION, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.direction_key = f"env/motion_lift_{direction}"

    def _on_training_start(self) -> None:
        self._last_time = time.perf_counter()
        self._last_steps = self.num_timesteps

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals["infos"]
        for key in ENV_STAT_KEYS:
            values = [info[key] for info in infos if key in info and np.isfinite(info[key])]
            if values:
                self.logger.record_mean(f"env/{key}", float(np.mean(values)))
        self.logger.record_mean("env/reward", float(np.mean(self.locals["rewards"])))
        lift = self.logger.name_to_value.get(self.direction_key)
        if lift is not None:
            self.logger.record("env/motion_lift", lift)
        return True

    def _on_rollout_end(self) -> None:
        now = time.perf_counter()
        clips = self.num_timesteps - self._last_steps
        if clips > 0 and now > self._last_time:
            self.logger.record("time/clips_per_s", clips / (now - self._last_time))
        self._last_time, self._last_steps = now, self.num_timesteps
        engine = self.training_env.engine
        self.logger.record("mae/lr", float(engine.optimizer.param_groups[0]["lr"]))
        self.logger.record("mae/updates", engine.num_updates)
        self.logger.record("env/skipped_videos", self.training_env.skipped_videos)


IMAGE_KEY = "images/masks_reconstructions"


class MaskImageCallback(BaseCallback):
    """A PNG (and a TensorBoard image) of clips, the sampler's masking probabilities (or scores) as a heat map,
    its masks and the reconstructions: every ``every`` clips of the run and once when the phase ends.

    Clips are counted on the run's axis: the learner's ``num_timesteps`` plus ``offset`` (the warm-up clips
    before the sampler phase), so the images of both phases share one count and a phase shorter than
    ``every`` still gets one. ``final_at``: write at training end only when the run's count has reached it
    (the warm-up runs in chunks; only its last chunk ends the phase); 0 writes at every end.
    """

    def __init__(self, every: int, out_dir: str | Path, num_clips: int = 4, offset: int = 0, final_at: int = 0,
                 verbose: int = 0) -> None:
        super().__init__(verbose)
        self.every = max(1, every)
        self.out_dir = Path(out_dir)
        self.num_clips = num_clips
        self.offset = offset
        self.final_at = final_at
        self._next = 0
        self._last_obs: np.ndarray | None = None
        self._written_at = -1

    @property
    def run_clips(self) -> int:
        """Clips of the run so far (the learner's count plus the offset)."""
        return self.offset + self.num_timesteps

    def _on_training_start(self) -> None:
        self._next = (self.run_clips // self.every + 1) * self.every

    def _on_step(self) -> bool:
        self._last_obs = self.locals["new_obs"]
        if self.run_clips >= self._next:
            self._next = (self.run_clips // self.every + 1) * self.every
            self.write(self._last_obs)
        return True

    def _on_training_end(self) -> None:
        if self._last_obs is None or self.run_clips < self.final_at or self._written_at == self.run_clips:
            return
        image = self.draw(self._last_obs)
        # The phase's last logger dump came before this point: write the image to TensorBoard directly
        # (a dump now would add a row of empty columns to progress.csv).
        for output in self.logger.output_formats:
            if isinstance(output, TensorBoardOutputFormat):
                output.write({IMAGE_KEY: Image(image, "HWC")}, {IMAGE_KEY: None}, self.run_clips)

    def draw(self, obs: np.ndarray) -> np.ndarray:
        """Draw the current clips with the sampler's deterministic masks and its probability of masking each
        token (fixed 0..1 scale; its scores per clip min..max when it has no probabilities); saves the PNG
        ``masks_<run clips>.png`` and returns the image."""
        mask = self.model.predict_masks(obs, deterministic=True)
        probs = mask_probabilities(self.model, obs)
        scores = probs if probs is not None else self.model.predict_scores(obs)
        image = self.training_env.mask_image(mask, scores, self.num_clips, probabilities=probs is not None)
        save_png(self.out_dir / f"masks_{self.run_clips:08d}.png", image)
        self._written_at = self.run_clips
        return image

    def write(self, obs: np.ndarray) -> Path:
        """:meth:`draw` and record the image for the logger's next TensorBoard dump; returns the PNG path."""
        image = self.draw(obs)
        self.logger.record(IMAGE_KEY, Image(image, "HWC"), exclude=("stdout", "log", "json", "csv"))
        return self.out_dir / f"masks_{self._written_at:08d}.png"


class CheckpointEveryCallback(BaseCallback):
    """Calls ``save()`` every ``every`` clips and once more when training ends.

    Saves at the start of a rollout, after the previous policy update and before new data is
    collected, so a checkpoint never holds a half-filled rollout buffer. When ``stop()`` is true at a
    rollout start (a Ctrl-C asked for it), ``on_stop()`` is called there instead: it saves and raises to end training.
    """

    def __init__(self, every: int, save: Callable[[], Path], verbose: int = 0, stop: Callable[[], bool] | None = None,
                 on_stop: Callable[[], None] | None = None) -> None:
        super().__init__(verbose)
        self.every = max(1, every)
        self.save = save
        self.stop = stop
        self.on_stop = on_stop
        self._next = 0

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        if self.stop is not None and self.on_stop is not None and self.stop():
            self.on_stop()
            return
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every + 1) * self.every
            self.save()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.save()
