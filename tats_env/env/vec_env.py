"""The batched masking environment as a stable-baselines3 ``VecEnv``.

One ``step`` = ONE batched MAE forward/backward for all sub-envs on the chosen device.
SB3 conventions: every episode lasts one step, so every ``done`` is True and the env
auto-resets (draws the next B clips) inside ``step_wait``; ``infos[i]["terminal_observation"]``
is the observation the finished episode's action was taken on (a one-step episode has no
later state; SB3 only reads it to bootstrap truncated episodes, and ours never truncate).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from tats_env.config import MAEConfig
from tats_env.data import VideoClipDataset
from tats_env.env.core import EnvConfig, MaskingCore, env_config_from_options
from tats_env.env.engine import CoTrainingEngine
from tats_env.env.masking_env import check_render_mode


class VideoMaskingVecEnv(VecEnv):
    """B masking episodes per step, backed by one :class:`~tats_env.env.core.MaskingCore` (SB3 ``VecEnv`` API).

    Per clip, observations, actions, rewards and info entries are those of
    :class:`~tats_env.env.masking_env.VideoMaskingEnv`; batched:

    * ``reset()`` -> observations ``(B, N, D)``; ``step(actions)`` takes masks ``(B, N)`` (each row K-of-N,
      :attr:`action_space` is the single :class:`~tats_env.env.spaces.KOfNMask`, as SB3 expects) and returns
      ``(observations of the next B clips, rewards (B,) float32, dones (B,) all True, infos)``.
    * ``infos`` is a list of B dicts: the step's info of each clip plus ``terminal_observation`` (the
      observation the action was taken on) and ``TimeLimit.truncated=False``.
    * ``render()`` / ``render(mode="rgb_array")`` with ``render_mode="rgb_array"``: one ``(H, W, 3)`` uint8 image
      of the last step's first clips with their masks and reconstruction (:meth:`MaskingCore.render_image`).

    The gymnasium 1.x vector API is :class:`~tats_env.env.vector_env.VideoMaskingVectorEnv`
    (``gym.make_vec``).
    """

    def __init__(
        self,
        num_envs: int,
        config: EnvConfig | None = None,
        device: str | torch.device = "cpu",
        mae_config: MAEConfig | None = None,
        dataset: VideoClipDataset | None = None,
        engine: CoTrainingEngine | None = None,
        render_mode: str | None = None,
    ) -> None:
        check_render_mode(render_mode)
        self.render_mode = render_mode  # read by VecEnv.__init__ through get_attr
        self.core = MaskingCore(num_envs, config, device, mae_config, dataset, engine)
        self.core.keep_step_clips = render_mode == "rgb_array"
        super().__init__(num_envs, self.core.observation_space, self.core.action_space)
        self._actions: np.ndarray | torch.Tensor | None = None
        self._obs: np.ndarray | None = None

    @property
    def engine(self) -> CoTrainingEngine:
        """The co-trained MAE and its optimizer."""
        return self.core.engine

    # --- what samplers and training code may use (reachable through SB3 VecEnv wrappers) -------------------

    @property
    def token_grid(self) -> tuple[int, int, int]:
        """The token grid ``(T', H', W')`` of observations and masks."""
        return self.core.token_grid

    @property
    def token_info(self) -> bool:
        """Whether ``infos`` carry per-token errors (``token_info=True`` when the env was built)."""
        return self.core.token_info

    @property
    def current_videos(self) -> torch.Tensor:
        """The current clips ``(B, C, T, H, W)`` on the device (benchmarks, visualisations)."""
        return self.core.current_videos

    @property
    def skipped_videos(self) -> int:
        """Bad videos skipped so far (counted, never fatal)."""
        return self.core.clips.skipped

    def rank_seed(self, seed: int) -> int:
        """This process's own seed for random masks under torch.distributed (``seed`` in one process)."""
        return self.core.rank_seed(seed)

    def fixed_masks(self, masker: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """A fixed masker's masks ``(B, N)`` bool for the current clips (:meth:`MaskingCore.fixed_masks`)."""
        return self.core.fixed_masks(masker, generator)

    def mask_image(self, mask: Any, scores: torch.Tensor | None = None, num_clips: int = 4,
                   probabilities: bool = False) -> np.ndarray:
        """A labelled image of the current clips with ``mask`` and their reconstruction (:meth:`MaskingCore.mask_image`)."""
        return self.core.mask_image(mask, scores, num_clips, probabilities)

    def state_dict(self) -> dict[str, Any]:
        """The env's learned state (MAE, optimizer, schedule, reward statistics, counters), for checkpoints."""
        return self.core.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.core.load_state_dict(state)

    def reset(self) -> np.ndarray:
        """Draw B clips (reseeding first if :meth:`seed` was called); observations ``(B, N, D)``."""
        if self._seeds[0] is not None:
            self.core.seed(int(self._seeds[0]))
        self._reset_seeds()
        self._reset_options()
        self._obs = self.core.reset()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        """Store the B masks ``(B, N)`` (1 = masked) for :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Score the stored masks, update the MAE once, auto-reset; returns SB3's 4-tuple."""
        if self._actions is None or self._obs is None:
            raise RuntimeError("call reset() and step_async() before step_wait()")
        rewards, infos = self.core.step(self._actions)
        self._actions = None
        for i, info in enumerate(infos):
            info["terminal_observation"] = self._obs[i].copy()
            info["TimeLimit.truncated"] = False
        self._obs = self.core.reset()
        dones = np.ones(self.num_envs, dtype=bool)
        return self._obs.copy(), rewards, dones, infos

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the clip stream at the next :meth:`reset` (SB3 semantics: env i gets ``seed + i``)."""
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        self._seeds = [seed + i for i in range(self.num_envs)]
        return self._seeds

    def close(self) -> None:
        """Release data workers."""
        self.core.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attributes of the (shared) env, one entry per selected sub-env."""
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the shared env (sub-envs are one object)."""
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        """Call a method of the shared env once per selected sub-env index."""
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Sub-envs are not gymnasium envs, so never wrapped."""
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """No per-env images (the sub-envs share one batch): :meth:`render` draws them all in one image."""
        return [None for _ in range(self.num_envs)]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """The last step's mask image ``(H, W, 3)`` uint8 (env created with ``render_mode="rgb_array"``).

        SB3's rules otherwise: a ``mode`` other than the env's ``render_mode``, or no mode at all, warns and
        returns None.
        """
        if self.render_mode != "rgb_array" or mode not in (None, "rgb_array"):
            return super().render(mode)
        return self.core.render_image()

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)


def masking_core(env: Any) -> MaskingCore:
    """The :class:`MaskingCore` behind a masking env, a ``VecEnv`` or any stack of SB3 / gymnasium wrappers."""
    inner = getattr(env, "unwrapped", env)
    while not hasattr(inner, "core") and hasattr(inner, "venv"):
        inner = inner.venv
    core = getattr(inner, "core", None)
    if not isinstance(core, MaskingCore):
        raise TypeError(f"expected a tats_env masking env, got {type(env).__name__}")
    return core


def make_vec_env(
    data: str = "synthetic",
    preset: str = "tiny",
    mask_ratio: float = 0.9,
    num_envs: int = 8,
    device: str | torch.device = "cpu",
    mae_config: MAEConfig | None = None,
    dataset: VideoClipDataset | None = None,
    engine: CoTrainingEngine | None = None,
    render_mode: str | None = None,
    **config: Any,
) -> VideoMaskingVecEnv:
    """The batched masking env (SB3 ``VecEnv``): ``num_envs`` clips per step, one MAE update per step on ``device``.

    Remaining keyword arguments are :class:`~tats_env.env.core.EnvConfig` fields
    (``reward``, ``engine_config``, ``invalid_action``, ``obs_dtype``, ``num_workers``, ``seed``, ...).
    """
    env_config = env_config_from_options(config, data=str(data), preset=preset, mask_ratio=mask_ratio)
    return VideoMaskingVecEnv(num_envs, env_config, device, mae_config, dataset, engine, render_mode)
