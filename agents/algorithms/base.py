"""The one interface every registered sampler satisfies, and its implementation for SB3 algorithms.

A *sampler* picks which tokens of a clip to mask: learned (token PPO, REINFORCE, SB3 PPO/A2C/SAC)
or fixed (a masker). The main job, its checkpoints, guards and torch.distributed code, and the
benchmark talk to samplers only through :class:`Sampler`, so a new algorithm needs no branch
anywhere else:

* ``learn(total_timesteps, callback=..., reset_num_timesteps=..., log_interval=..., progress_bar=...)``
  with SB3 callbacks, ``predict(obs, deterministic=...)`` (actions in the sampler's own action space,
  as SB3 defines it) and :meth:`Sampler.predict_masks` (always masks); ``num_timesteps`` counts clips;
* :meth:`Sampler.predict_scores`: per-token scores for the mask images (None without a scorer); optionally
  ``predict_mask_probs(observation)``: each token's probability of being masked ``(B, N)`` (or None), which the
  images draw on a fixed 0..1 scale instead (:func:`mask_probabilities`);
* :attr:`Sampler.network`: the scorer network (its weights are checked for non-finite values and
  compared across ranks), None for fixed maskers;
* :meth:`Sampler.sampler_state` / :meth:`Sampler.load_sampler_state`: everything a resumed run needs;
* :attr:`Sampler.rollout_clips`: clips between two updates (``learn`` rounds its budget up to it);
* :meth:`Sampler.ddp_targets`: which of its modules' loss-building methods torch.distributed must wrap
  so that gradients are averaged across ranks (raises when the algorithm cannot train that way);
* :meth:`Sampler.reseed`: its own random streams from a seed (every rank gets its own);
* ``needs_token_info``: whether it reads the env's per-token errors; the registry builds the env with
  ``token_info`` set accordingly (nothing flips env state later).

:class:`SB3Sampler` implements the interface for any stable-baselines3 algorithm through SB3's
public API (``get_parameters`` / ``set_parameters``, ``policy``, ``n_steps``).
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Sampler", "DDPTarget", "SB3Sampler", "ONE_STEP_EPISODES", "require_token_info", "mask_probabilities"]

ONE_STEP_EPISODES: dict[str, float] = {"gamma": 0.0, "gae_lambda": 1.0}
"""Every episode of the masking env is one step: the advantage is the reward minus the clip's value. Not a choice,
so not a field of any config; the SB3 learners' builders pass it."""


class DDPTarget(NamedTuple):
    """A module whose method ``method`` builds the loss: torch.distributed wraps that method in DDP."""

    module: nn.Module
    method: str
    find_unused_parameters: bool = True
    """True where an output of the method may stay out of the loss (a value head without a value loss)."""


@runtime_checkable
class Sampler(Protocol):
    """What the main job, checkpoints, guards, DDP and the benchmark need from a sampler (module docstring)."""

    num_timesteps: int
    needs_token_info: ClassVar[bool]

    def learn(self, total_timesteps: int, callback: Any = None, **kwargs: Any) -> Any:
        """Train (or, for a fixed masker, drive the env) for ``total_timesteps`` more clips."""
        ...

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """Masks ``(B, N)`` for observations ``(B, N, D)``."""
        ...

    def predict_masks(self, observation: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Masks ``(B, N)`` int8 (1 = masked) for observations ``(B, N, D)``."""
        ...

    def predict_scores(self, observation: np.ndarray) -> Tensor | None:
        """Per-token scores ``(B, N)``, higher = more likely masked; None without a scorer."""
        ...

    def set_logger(self, logger: Any) -> None:
        """Use an SB3 logger."""
        ...

    @property
    def network(self) -> nn.Module | None:
        """The scorer network, None for fixed maskers."""
        ...

    @property
    def rollout_clips(self) -> int:
        """Clips between two updates."""
        ...

    def sampler_state(self) -> dict[str, Any]:
        """Weights, optimizer state and counters (tensors and plain containers only)."""
        ...

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`sampler_state` into a sampler built with the same configuration."""
        ...

    def ddp_targets(self) -> list[DDPTarget]:
        """Modules and loss methods whose gradients torch.distributed averages; [] if none; raises if it cannot."""
        ...

    def reseed(self, seed: int) -> None:
        """Restart the sampler's own random streams (mask sampling) from ``seed``."""
        ...


def mask_probabilities(sampler: Any, observation: np.ndarray) -> Tensor | None:
    """The sampler's probability of masking each token ``(B, N)`` (its optional ``predict_mask_probs``), else None."""
    predict = getattr(sampler, "predict_mask_probs", None)
    probs = predict(observation) if callable(predict) else None
    return None if probs is None else torch.as_tensor(probs).float()


def require_token_info(env: Any, owner: str) -> None:
    """Raise a clear error when ``env`` (a tats_env masking env, possibly wrapped) does not report per-token errors."""
    enabled = getattr(env, "token_info", None)
    if enabled is False:
        raise ValueError(f"{owner} needs per-token errors: build the env with token_info=True "
                         "(agents.registry.sampler_env_config sets it for every sampler that needs it)")


class SB3Sampler:
    """:class:`Sampler` for a stable-baselines3 algorithm (mix in before the SB3 class).

    ``distributed_method`` names the policy method that builds the loss (``evaluate_actions`` for
    PPO/A2C); None means the algorithm cannot average its updates across ranks (SAC's replay buffer).
    """

    needs_token_info: ClassVar[bool] = False
    distributed_method: ClassVar[str | None] = "evaluate_actions"

    @property
    def network(self) -> nn.Module | None:
        """The SB3 policy (actor, critic and, for SAC, the target critic)."""
        return getattr(self, "policy", None)

    @property
    def rollout_clips(self) -> int:
        """``n_steps x n_envs`` for on-policy algorithms, one env step otherwise."""
        return int(getattr(self, "n_steps", 1)) * int(self.n_envs)  # type: ignore[attr-defined]

    def predict_masks(self, observation: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """The policy's masks (its actions are masks; score-action algorithms override this)."""
        actions, _ = self.predict(observation, deterministic=deterministic)  # type: ignore[attr-defined]
        return np.asarray(actions).astype(np.int8)

    def predict_scores(self, observation: np.ndarray) -> Tensor | None:
        """The policy's per-token scores when it has a scorer (TATS policies), else None."""
        predict = getattr(self.policy, "predict_scores", None)  # type: ignore[attr-defined]
        return torch.as_tensor(predict(observation)).float() if callable(predict) else None

    def predict_mask_probs(self, observation: np.ndarray) -> Tensor | None:
        """Each token's probability of being masked ``(B, N)`` when the policy defines one (TATS policies), else None."""
        predict = getattr(self.policy, "predict_mask_probs", None)  # type: ignore[attr-defined]
        return torch.as_tensor(predict(observation)).float() if callable(predict) else None

    def sampler_state(self) -> dict[str, Any]:
        """Policy and optimizer state dicts (SB3's ``get_parameters``) and counters; SAC's temperature too.

        Replay buffers are not saved: a resumed SAC refills its buffer.
        """
        state: dict[str, Any] = {"params": self.get_parameters(), "num_timesteps": self.num_timesteps,  # type: ignore[attr-defined]
                                 "n_updates": self._n_updates}  # type: ignore[attr-defined]
        log_ent_coef = getattr(self, "log_ent_coef", None)
        if isinstance(log_ent_coef, torch.Tensor):
            state["log_ent_coef"] = log_ent_coef.detach().cpu().clone()
        return state

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`sampler_state` (SB3's ``set_parameters`` with an exact key match)."""
        self.set_parameters(state["params"], exact_match=True, device=self.device)  # type: ignore[attr-defined]
        self.num_timesteps = int(state["num_timesteps"])
        self._n_updates = int(state["n_updates"])
        if "log_ent_coef" in state:
            with torch.no_grad():
                self.log_ent_coef.copy_(state["log_ent_coef"])  # type: ignore[attr-defined]

    def ddp_targets(self) -> list[DDPTarget]:
        """The policy's loss-building method; an algorithm without one raises ``NotImplementedError``."""
        if self.distributed_method is None:
            raise NotImplementedError(f"{type(self).__name__} cannot train under torchrun (its updates are not "
                                      "averaged across ranks); use token_ppo, ppo_tats, a2c_tats or a reinforce sampler")
        return [DDPTarget(self.policy, self.distributed_method,  # type: ignore[attr-defined]
                          find_unused_parameters=getattr(self, "vf_coef", 0.0) == 0)]

    def reseed(self, seed: int) -> None:
        """SB3 samples from torch's global generator, which the caller seeds; nothing of its own to reseed."""
