"""Score actions for any algorithm: a ``Box(-1, 1, (N,))`` whose top-K entries are masked."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from tats_env.env.spaces import KOfNMask, scores_to_mask


def _score_space(mask_space: spaces.Space) -> spaces.Box:
    if not isinstance(mask_space, KOfNMask):
        raise TypeError(f"TopKScoreAction wraps an env with a KOfNMask action space, got {mask_space}")
    return spaces.Box(-1.0, 1.0, (int(mask_space.n),), dtype=np.float32)


class TopKScoreAction(gym.ActionWrapper):
    """Expose ``Box(-1, 1, (N,), float32)`` scores; the K highest are masked (ties -> lower index).

    Lets continuous-action algorithms (SAC, TD3, DDPG, PPO-Gaussian) drive the single-clip env;
    :class:`TopKScoreVecAction` does the same for the batched ``VecEnv`` (:func:`score_actions`
    picks the right one).
    """

    def __init__(self, env: gym.Env) -> None:
        if isinstance(env, VecEnv):
            raise TypeError("TopKScoreAction wraps a gymnasium env; use TopKScoreVecAction (or score_actions) "
                            "for a VecEnv")
        super().__init__(env)
        self.mask_space: KOfNMask = env.action_space  # type: ignore[assignment]
        self.action_space = _score_space(env.action_space)

    def action(self, action: np.ndarray) -> np.ndarray:
        """Scores ``(N,)`` -> int8 mask with exactly K ones."""
        scores = np.asarray(action, dtype=np.float32)
        if scores.shape != self.action_space.shape:
            raise ValueError(f"expected score actions of shape {self.action_space.shape}, got {scores.shape}")
        return scores_to_mask(scores[None], self.mask_space.k)[0].numpy().astype(np.int8)


class TopKScoreVecAction(VecEnvWrapper):
    """The batched form of :class:`TopKScoreAction` for :func:`tats_env.make_vec_env` (any SB3 ``VecEnv``)."""

    def __init__(self, venv: VecEnv) -> None:
        self.mask_space: KOfNMask = venv.action_space  # type: ignore[assignment]
        super().__init__(venv, action_space=_score_space(venv.action_space))

    def step_async(self, actions: np.ndarray) -> None:
        """Convert scores ``(B, N)`` to masks and forward them."""
        scores = np.asarray(actions, dtype=np.float32)
        expected = (self.num_envs, *self.action_space.shape)
        if scores.shape != expected:
            raise ValueError(f"expected score actions of shape {expected}, got {scores.shape}")
        self.venv.step_async(scores_to_mask(scores, self.mask_space.k).numpy().astype(np.int8))

    def step_wait(self) -> VecEnvStepReturn:
        """Forwarded unchanged."""
        return self.venv.step_wait()

    def reset(self) -> np.ndarray:
        """Forwarded unchanged."""
        return self.venv.reset()


def score_actions(env: gym.Env | VecEnv) -> TopKScoreAction | TopKScoreVecAction:
    """Wrap a masking env (single or batched) so that it takes ``Box(-1, 1, (N,))`` scores."""
    return TopKScoreVecAction(env) if isinstance(env, VecEnv) else TopKScoreAction(env)
