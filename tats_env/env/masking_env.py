"""The single-clip masking environment, ``TATS/VideoMasking-v0``.

One episode = one clip. The observation is the clip's token embeddings ``(N, D)`` from the
co-trained MAE; the action masks exactly K tokens; ``step`` updates the MAE once and
returns the reward from the masked tokens' reconstruction error; ``terminated=True``.
The env is ``nondeterministic`` in gymnasium's sense: its reward model learns.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from tats_env.config import MAEConfig
from tats_env.data import VideoClipDataset
from tats_env.env.core import MaskingCore, env_config_from_options
from tats_env.env.engine import CoTrainingEngine

RENDER_MODES = ["rgb_array"]
"""The render modes of every masking env: ``rgb_array``, the latest step's mask image (:meth:`MaskingCore.render_image`)."""


def check_render_mode(render_mode: str | None) -> None:
    """``ValueError`` unless ``render_mode`` is None or one of :data:`RENDER_MODES`."""
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode {render_mode!r} is not supported; choose one of {RENDER_MODES} or None")


class VideoMaskingEnv(gym.Env):
    """Gymnasium view of :class:`~tats_env.env.core.MaskingCore` with batch size 1.

    Keyword arguments are :class:`~tats_env.env.core.EnvConfig` fields (``data``, ``preset``,
    ``mask_ratio``, ``reward``, ``invalid_action``, ...), plus ``device``, ``render_mode`` and optionally a
    prepared ``mae_config``, ``dataset`` or shared ``engine``. ``gym.make_vec`` builds the batched
    :class:`~tats_env.env.vector_env.VideoMaskingVectorEnv` instead (one MAE for all sub-envs).

    **Observation**: the clip's tubelet embeddings from the co-trained MAE's patch embedding (no positions),
    ``Box(-inf, inf, (N, D))`` of ``obs_dtype`` (float32 or float16); N tokens in time-major order over the
    token grid ``(T', H', W')``, D the MAE's embedding width.

    **Action**: :class:`~tats_env.env.spaces.KOfNMask` ``(N,)`` {0, 1}, 1 = masked, exactly
    ``K = round(mask_ratio * N)`` ones; ``sample()`` draws a uniformly random legal mask. A wrong count
    raises ``ValueError`` (or is repaired with ``invalid_action="repair"``); algorithms with free-form actions
    use :class:`~tats_env.TopKScoreAction` / :func:`~tats_env.score_actions`.

    **Reward** (float32, per clip): the MAE's mean reconstruction error of the masked tokens (those decoded, under
    dual masking), from the forward
    pass of the step's MAE update, before its optimizer step (``reward.mode``: +error ``adversarial``, -error ``cooperative``; with
    ``reward.baseline="random"`` minus the error under a fresh random K-of-N mask; optionally normalised). A
    non-finite error gives 0.

    **Episode**: one step; ``terminated`` is always True, ``truncated`` always False.

    **Info** of a step, per clip: ``label`` (class), ``recon_loss`` (the clip's masked error),
    ``batch_recon_loss`` (the MAE's loss on the whole batch), ``mask_ratio`` (K / N), ``mae_lr``,
    ``action_repaired`` (bool), ``visible_overlap`` (content-blindness across the batch; NaN for one clip);
    ``baseline_recon_loss`` with the random baseline; with foreground masks (the synthetic data) the motion
    statistics ``moving_visible``, ``moving_hidden``, ``motion_precision``, ``foreground_share``,
    ``motion_recall``, ``motion_lift_show_hard``, ``motion_lift_mask_hard``, ``moving_error``, ``static_error``,
    ``moving_static_error_ratio``; with ``token_info=True`` the arrays ``token_error``, ``token_mask`` and
    ``token_foreground`` ``(N,)`` (see :class:`~tats_env.env.core.EnvConfig`). Reset info: ``label``.

    **Render** (``render_mode="rgb_array"``): an ``(H, W, 3)`` uint8 image of the latest step's clips
    with their masks and the MAE's reconstruction (:mod:`tats_env.visualize`); before the first step, of the
    current clips under a random mask (row ``random mask``).
    """

    metadata = {"render_modes": RENDER_MODES, "render_fps": 1}

    def __init__(
        self,
        device: str | torch.device = "cpu",
        mae_config: MAEConfig | None = None,
        dataset: VideoClipDataset | None = None,
        engine: CoTrainingEngine | None = None,
        render_mode: str | None = None,
        **config: Any,
    ) -> None:
        check_render_mode(render_mode)
        self.render_mode = render_mode
        self.core = MaskingCore(1, env_config_from_options(config), device, mae_config, dataset, engine)
        self.core.keep_step_clips = render_mode == "rgb_array"
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self._has_clip = False

    @property
    def engine(self) -> CoTrainingEngine:
        """The co-trained MAE and its optimizer."""
        return self.core.engine

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw one clip; ``seed`` restarts the clip stream (same seed -> same clips)."""
        super().reset(seed=seed)
        if seed is not None:
            self.core.seed(seed)
        obs = self.core.reset()[0]
        self._has_clip = True
        return obs, {"label": int(self.core.batch["label"][0])}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Mask, reconstruct, update the MAE; returns ``(zeros, reward, True, False, info)`` (the episode is over)."""
        if not self._has_clip:
            raise RuntimeError("call reset() before step(): every episode is one step long")
        action = np.asarray(action)
        if action.ndim != 1:
            raise ValueError(f"expected {self.action_space} actions of shape ({self.action_space.n},), got shape {action.shape}")
        rewards, infos = self.core.step(action[None])
        self._has_clip = False
        obs = np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)
        return obs, float(rewards[0]), True, False, infos[0]

    def render(self) -> np.ndarray | None:
        """The latest step's mask image ``(H, W, 3)`` uint8 with ``render_mode="rgb_array"``; None without a render mode."""
        if self.render_mode is None:
            return None
        return self.core.render_image()

    def close(self) -> None:
        """Release data workers."""
        self.core.close()
