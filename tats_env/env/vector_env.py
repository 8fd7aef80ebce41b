"""The batched masking environment in gymnasium 1.x's vector API: what ``gym.make_vec("TATS/VideoMasking-v0")`` builds.

Like the SB3 :class:`~tats_env.env.vec_env.VideoMaskingVecEnv`, it is one
:class:`~tats_env.env.core.MaskingCore`: ``num_envs`` clips per step, ONE batched MAE update, one MAE shared by
every sub-env (gymnasium's ``SyncVectorEnv`` would build one MAE per sub-env and learn nothing together).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from tats_env.config import MAEConfig
from tats_env.data import VideoClipDataset
from tats_env.env.core import MaskingCore, env_config_from_options
from tats_env.env.engine import CoTrainingEngine
from tats_env.env.masking_env import RENDER_MODES, check_render_mode


class VideoMaskingVectorEnv(VectorEnv):
    """``num_envs`` masking episodes per step over one shared MAE, as a ``gymnasium.vector.VectorEnv``.

    ``gym.make_vec(ENV_ID, num_envs=B, **options)`` builds it (the ``vector_entry_point``); options are those
    of :class:`~tats_env.env.masking_env.VideoMaskingEnv` (:class:`~tats_env.env.core.EnvConfig` fields,
    ``device``, ``render_mode``, ``mae_config``, ``dataset``, ``engine``) plus ``autoreset_mode``. Per clip,
    observations, actions, rewards and info entries are those of ``VideoMaskingEnv``; batched:

    * :attr:`single_observation_space` ``Box (N, D)``, :attr:`observation_space` ``Box (B, N, D)``;
      :attr:`single_action_space` :class:`~tats_env.env.spaces.KOfNMask` ``(N,)``, :attr:`action_space`
      :class:`~tats_env.env.spaces.BatchedKOfNMask` ``(B, N)`` whose ``sample()`` gives K ones in every row.
    * ``step(actions)`` -> ``(observations (B, N, D), rewards (B,) float32, terminations (B,) all True,
      truncations (B,) all False, infos)``; ``infos`` in gymnasium's dict-of-arrays form (``infos[key][i]``
      for sub-env i, with the mask ``infos["_" + key]``).
    * Every episode lasts one step, so every sub-env ends on every step. ``autoreset_mode``
      (``metadata["autoreset_mode"]``):

      - ``SAME_STEP`` (default, like the SB3 VecEnv): ``step`` returns the next B clips' observations;
        ``infos["final_info"]`` holds the finished step's info (``recon_loss``, ...), ``infos["final_obs"]``
        the terminal observations (zeros, as ``VideoMaskingEnv.step`` returns), and ``infos["label"]`` the new
        clips' labels.
      - ``NEXT_STEP`` (what gymnasium's observation wrappers need): ``step`` returns zeros and the step's info;
        the following ``step`` ignores its actions, draws the next clips and returns reward 0, not terminated.
      - ``DISABLED``: ``step`` returns zeros and the step's info; call ``reset()`` before the next step.

    * ``reset(seed=s)`` restarts the shared clip stream (a list of seeds: its first entry seeds it) and the
      action space's sampler; ``options={"reset_mask": m}`` must reset every sub-env (they share one batch).
    * ``render()`` with ``render_mode="rgb_array"``: one ``(H, W, 3)`` uint8 image of the latest step's first
      clips (up to 4) with their masks and the MAE's reconstruction (:meth:`MaskingCore.render_image`).
    """

    metadata = {"render_modes": RENDER_MODES, "render_fps": 1, "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 8,
        device: str | torch.device = "cpu",
        mae_config: MAEConfig | None = None,
        dataset: VideoClipDataset | None = None,
        engine: CoTrainingEngine | None = None,
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP,
        **config: Any,
    ) -> None:
        check_render_mode(render_mode)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = render_mode
        self.num_envs = num_envs
        self.core = MaskingCore(num_envs, env_config_from_options(config), device, mae_config, dataset, engine)
        self.core.keep_step_clips = render_mode == "rgb_array"
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._has_clips = False  # the current clips are waiting for their step
        self._autoreset_next = False  # NEXT_STEP: the next step() draws the next clips
        self._terminal_obs = np.zeros(self.single_observation_space.shape, dtype=self.single_observation_space.dtype)
        self._terminal_obs.flags.writeable = False  # one array shared by every final_obs entry

    @property
    def engine(self) -> CoTrainingEngine:
        """The co-trained MAE and its optimizer (one for all sub-envs)."""
        return self.core.engine

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw B clips; observations ``(B, N, D)`` and infos (``label``)."""
        reset_mask = (options or {}).get("reset_mask")
        if reset_mask is not None and not np.asarray(reset_mask, dtype=bool).all():
            raise ValueError("reset_mask must select every sub-env: they share one batch of clips")
        first = seed[0] if isinstance(seed, Sequence) and not isinstance(seed, str) else seed
        super().reset(seed=first)
        if first is not None:
            self.core.seed(int(first))
            self.action_space.seed(self.core.rank_seed(int(first)))
        return self._next_clips(), self._batched_infos(self._reset_infos())

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Mask the current clips with ``actions`` ``(B, N)``, update the MAE once, autoreset per ``autoreset_mode``."""
        if self._autoreset_next:
            obs = self._next_clips()
            zeros = np.zeros(self.num_envs, dtype=bool)
            return obs, np.zeros(self.num_envs, dtype=np.float32), zeros, zeros.copy(), self._batched_infos(self._reset_infos())
        if not self._has_clips:
            raise RuntimeError("call reset() before step(): every episode is one step long"
                               + (" and autoreset is disabled" if self.autoreset_mode == AutoresetMode.DISABLED else ""))
        rewards, step_infos = self.core.step(actions)
        self._has_clips = False
        terminations, truncations = np.ones(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            obs = self._next_clips()
            finals = [{"final_obs": self._terminal_obs, "final_info": info} for info in step_infos]
            infos = self._batched_infos(finals, self._reset_infos())
        else:
            obs = np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)
            infos = self._batched_infos(step_infos)
            self._autoreset_next = self.autoreset_mode == AutoresetMode.NEXT_STEP
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The latest step's mask image ``(H, W, 3)`` uint8 with ``render_mode="rgb_array"``; None without a render mode."""
        if self.render_mode is None:
            return None
        return self.core.render_image()

    def close_extras(self, **kwargs: Any) -> None:
        """Release the clip stream's worker processes."""
        self.core.close()

    def _next_clips(self) -> np.ndarray:
        """Draw the next B clips (their observations ``(B, N, D)``)."""
        obs = self.core.reset()
        self._has_clips, self._autoreset_next = True, False
        return obs

    def _reset_infos(self) -> list[dict[str, Any]]:
        """One reset info per sub-env: the label of its new clip."""
        assert self.core.batch is not None
        return [{"label": int(label)} for label in self.core.batch["label"].tolist()]

    def _batched_infos(self, *per_env: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-env info dicts (one list per source, merged in order) in gymnasium's dict-of-arrays form."""
        infos: dict[str, Any] = {}
        for source in per_env:
            for i, info in enumerate(source):
                infos = self._add_info(infos, info, i)
        return infos
