"""Token-level PPO: per-token advantages and per-token clipped ratios of exact inclusion probabilities.

A clip-level reward carries almost no signal about which of ~500 tokens mattered: at mask ratio
0.9 the policy-gradient SNR of the scalar reward is ~0.01 per clip, of per-token credit ~1.
:class:`TokenPPO` is SB3's ``PPO`` with

* a rollout buffer (:class:`TokenRolloutBuffer`) that also keeps every clip's per-token errors
  (from the env's ``info["token_error"]``, see ``EnvConfig.token_info``) and the sampling policy's
  exact per-token inclusion probabilities;
* a ``train`` that ascends the per-token surrogate of :mod:`agents.kofn.credit` (per-token
  advantages over the masked tokens, per-token ratios ``pi_i / pi_i_old`` clipped per token,
  gradients through the exact ``d log e_K / d s`` of the K-subset distribution), in the
  configured :data:`~agents.kofn.credit.Direction`.

Everything else is PPO's: ``learn``, callbacks, logger, ``save``/``load``, schedules, ``target_kl``.
The scalar reward still flows into the buffer (value bookkeeping and episode statistics) but does
not enter the policy update.

Build it SB3-style, ``TokenPPO(TokenTATSPolicy, env, direction="mask_hard", ...)``, or from a
typed config, ``TokenPPOConfig(...).build(env, seed=0)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generator, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn
from torch import Tensor
from torch.nn import functional as F

from agents.algorithms.base import DDPTarget, SB3Sampler, require_token_info
from agents.algorithms.configs import DiversityConfig, TokenPPOConfig
from agents.algorithms.diversity import EntropyFloor
from agents.kofn.credit import (
    DEFAULT_DIRECTION, AdvantageKind, Direction, bernoulli_kl, direction_sign, observed_tokens, token_advantages,
    token_policy_loss,
)
from agents.policies.token_policy import TokenTATSPolicy
from tats_env.env.spaces import KOfNMask

__all__ = ["TokenRolloutBufferSamples", "TokenRolloutBuffer", "TokenPPO", "TokenPPOConfig", "token_errors_from_infos"]


class TokenRolloutBufferSamples(NamedTuple):
    """SB3's rollout minibatch plus the per-token data."""

    observations: Tensor
    actions: Tensor
    old_values: Tensor
    old_log_prob: Tensor
    advantages: Tensor
    returns: Tensor
    token_errors: Tensor
    """``(batch, N)`` per-token errors (NaN at visible tokens)."""
    old_inclusion: Tensor
    """``(batch, N)`` inclusion probabilities of the policy that sampled the masks."""


class TokenRolloutBuffer(RolloutBuffer):
    """SB3 ``RolloutBuffer`` that also stores per-token errors and old inclusion probabilities ``(N,)`` per clip.

    :meth:`add_tokens` fills the slot that the next :meth:`add` will fill (SB3 calls ``env.step``
    before ``add``); ``get`` yields :class:`TokenRolloutBufferSamples`.
    """

    token_errors: np.ndarray
    old_inclusion: np.ndarray
    _token_names = ("token_errors", "old_inclusion")

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 device: torch.device | str = "auto", gae_lambda: float = 1, gamma: float = 0.99, n_envs: int = 1) -> None:
        if not isinstance(action_space, spaces.MultiBinary) or np.ndim(action_space.n) != 0:
            raise TypeError(f"TokenRolloutBuffer needs a K-of-N (MultiBinary(N)) action space, got {action_space}")
        self.num_tokens = int(action_space.n)
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)

    def reset(self) -> None:
        """Clear the buffer (SB3's arrays and the per-token arrays)."""
        shape = (self.buffer_size, self.n_envs, self.num_tokens)
        self.token_errors = np.zeros(shape, dtype=np.float32)
        self.old_inclusion = np.zeros(shape, dtype=np.float32)
        super().reset()

    def add_tokens(self, errors: np.ndarray, inclusion: Tensor | np.ndarray) -> None:
        """Per-token errors ``(n_envs, N)`` as the env reports them (NaN at visible tokens) and old inclusion probabilities."""
        if self.full:
            raise RuntimeError("the token rollout buffer is full; call reset() first")
        self.token_errors[self.pos] = errors
        if isinstance(inclusion, Tensor):
            inclusion = inclusion.detach().cpu().numpy()
        self.old_inclusion[self.pos] = inclusion

    def get(self, batch_size: int | None = None) -> Generator[TokenRolloutBufferSamples, None, None]:  # type: ignore[override]
        """Minibatches in random order, as :class:`TokenRolloutBufferSamples`."""
        if not self.generator_ready:
            for name in self._token_names:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
        yield from super().get(batch_size)  # type: ignore[misc]

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> TokenRolloutBufferSamples:  # type: ignore[override]
        base = super()._get_samples(batch_inds, env)
        extra = (self.to_torch(self.token_errors[batch_inds]), self.to_torch(self.old_inclusion[batch_inds]))
        return TokenRolloutBufferSamples(*base, *extra)

    def masked_advantage_scale(self, direction: Direction, kind: AdvantageKind) -> float:
        """Standard deviation of the per-token advantages over every masked token of the rollout (>= 1e-8)."""
        errors = torch.from_numpy(self.token_errors.reshape(-1, self.num_tokens))
        mask = observed_tokens(errors, torch.from_numpy(self.actions.reshape(-1, self.num_tokens) > 0.5))
        adv = token_advantages(errors, mask, direction, kind)[mask]
        return max(float(adv.std()) if adv.numel() > 1 else 1.0, 1e-8)


class _TokenRecorder(VecEnvWrapper):
    """Passes ``step`` through and writes the step's per-token data into the algorithm's buffer."""

    def __init__(self, venv: VecEnv, model: "TokenPPO") -> None:
        super().__init__(venv)
        self.model = model

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        inclusion = self.model.policy.rollout_inclusion
        assert inclusion is not None, "the policy did not record inclusion probabilities"
        self.model.rollout_buffer.add_tokens(token_errors_from_infos(infos), inclusion)
        return obs, rewards, dones, infos


def token_errors_from_infos(infos: list[dict[str, Any]]) -> np.ndarray:
    """The step's per-token errors ``(B, N)`` float32 (NaN at visible tokens) from ``info["token_error"]``.

    When the rows are views of one ``(B, N)`` array (as the masking env hands them over), that
    array is returned without a copy.
    """
    if any("token_error" not in info for info in infos):
        raise RuntimeError("token-level learners need per-token errors in info['token_error']: create the masking "
                           "env with token_info=True")
    rows = [info["token_error"] for info in infos]
    base = rows[0].base
    if (isinstance(base, np.ndarray) and base.shape == (len(rows), rows[0].shape[0])
            and all(row.base is base and row.ctypes.data == base[i].ctypes.data for i, row in enumerate(rows))):
        return base
    return np.stack(rows).astype(np.float32, copy=False)


class TokenPPO(SB3Sampler, PPO):
    """PPO with token-level credit for K-of-N masking samplers (see the module docstring).

    Args:
        policy: :class:`TokenTATSPolicy` (default) or a subclass.
        env: VecEnv with token observations ``(N, D)``, a :class:`tats_env.KOfNMask` action space
            and ``info["token_error"]`` per step (a :mod:`tats_env` masking env built with
            ``token_info=True``; :func:`agents.registry.sampler_env_config` sets it).
        direction: ``mask_hard`` (hard tokens masked; the default) or ``show_hard`` (hard tokens become visible).
        advantage: ``relative`` (e_i / ebar - 1), ``centered`` (e_i - ebar) or ``raw`` (e_i).
        diversity: policy share (of the masked set for ``mask_hard``, of the visible set for ``show_hard``; the
            rest uniform, its exact per-token inclusion probabilities in the ratios), its schedule and an entropy
            floor (:class:`agents.algorithms.diversity.DiversityConfig`; its ``signal`` is the env's business).
        **kwargs: ``stable_baselines3.PPO`` arguments (``normalize_advantage`` divides the
            per-token advantages by their standard deviation over the rollout's masked tokens;
            ``clip_range`` clips every token's ratio).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"TokenTATSPolicy": TokenTATSPolicy}
    needs_token_info: ClassVar[bool] = True
    distributed_method: ClassVar[str | None] = "evaluate_tokens"
    rollout_buffer: TokenRolloutBuffer
    policy: TokenTATSPolicy

    def __init__(self, policy: type[TokenTATSPolicy] | str = TokenTATSPolicy, env: VecEnv | str | None = None,
                 direction: Direction = DEFAULT_DIRECTION, advantage: AdvantageKind = "relative",
                 diversity: DiversityConfig | None = None, **kwargs: Any) -> None:
        direction_sign(direction)  # validates
        self.diversity = diversity or DiversityConfig()
        self.floor: EntropyFloor | None = None
        if advantage not in ("relative", "centered", "raw"):
            raise ValueError(f"unknown advantage {advantage!r}; choose 'relative', 'centered' or 'raw'")
        self.direction: Direction = direction
        self.advantage: AdvantageKind = advantage
        kwargs.setdefault("rollout_buffer_class", TokenRolloutBuffer)
        if not issubclass(kwargs["rollout_buffer_class"], TokenRolloutBuffer):
            raise TypeError("TokenPPO needs a TokenRolloutBuffer (or subclass) as rollout_buffer_class")
        if env is not None and not isinstance(env, str):
            if not isinstance(env.action_space, KOfNMask):
                raise TypeError(f"TokenPPO needs a KOfNMask action space (exactly K of N tokens), got {env.action_space}")
            require_token_info(env, "TokenPPO")
        super().__init__(policy, env, **kwargs)  # type: ignore[arg-type]

    def _setup_model(self) -> None:
        super()._setup_model()
        # After SB3's load the counters are back already, so a ramped share resumes where it was.
        self.policy.set_share("masked" if self.direction == "mask_hard" else "visible", self.policy_share())
        if self.diversity.entropy_floor is not None:
            self.floor = EntropyFloor(self.diversity.entropy_floor, self.diversity.floor_lr, self.device)
            self.log_ent_coef = self.floor.log_coef  # saved and restored by SB3Sampler.sampler_state
            self.ent_coef_optimizer = self.floor.optimizer

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        if self.floor is not None:
            state_dicts, variables = [*state_dicts, "ent_coef_optimizer"], [*variables, "log_ent_coef"]
        return state_dicts, variables

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "floor", "log_ent_coef", "ent_coef_optimizer"]

    def policy_share(self) -> float:
        """The policy share for the next rollout: :attr:`diversity`'s schedule at the sampler phase's progress."""
        # SB3 sets _total_timesteps in learn() (the whole phase's clips when it resumes with
        # reset_num_timesteps=False); before the first learn() the phase has not started.
        progress = self.num_timesteps / self._total_timesteps if self._total_timesteps else 0.0
        return self.diversity.share_at(progress)

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        """As PPO's, checking that the new env reports per-token errors."""
        require_token_info(env, "TokenPPO")
        super().set_env(env, force_reset)

    def ddp_targets(self) -> list[DDPTarget]:
        """``policy.evaluate_tokens`` builds the loss (its value output may stay unused)."""
        return [DDPTarget(self.policy, "evaluate_tokens", find_unused_parameters=True)]

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer,
                         n_rollout_steps: int) -> bool:
        """PPO's rollout collection, with every step's per-token data recorded into the buffer; the policy share of
        the rollout is fixed here (the update that follows evaluates the same distribution)."""
        self.policy.set_share(self.policy.share_side, self.policy_share())
        return super().collect_rollouts(_TokenRecorder(env, self), callback, rollout_buffer, n_rollout_steps)

    def train(self) -> None:
        """Update the sampler on the rollout with the per-token clipped surrogate (``n_epochs`` passes)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = float(self.clip_range(self._current_progress_remaining))  # type: ignore[operator]
        scale = 1.0
        if self.normalize_advantage:
            scale = self.rollout_buffer.masked_advantage_scale(self.direction, self.advantage)
        logs: dict[str, list[float]] = {k: [] for k in ("pg", "value", "entropy", "clip", "kl", "token_kl",
                                                        "entropy_share")}
        uniform_entropy = max(self.policy.uniform_entropy(), 1e-12)
        continue_training = True
        loss = torch.zeros(())
        for epoch in range(self.n_epochs):
            for data in self.rollout_buffer.get(self.batch_size):
                mask = observed_tokens(data.token_errors, data.actions > 0.5)  # decoded tokens under dual masking
                adv = token_advantages(data.token_errors, mask, self.direction, self.advantage) / scale
                values, log_prob, inclusion, entropy = self.policy.evaluate_tokens(data.observations, data.actions)
                policy_loss, clip_fraction = token_policy_loss(inclusion, data.old_inclusion, adv, mask, clip_range)
                value_loss = F.mse_loss(data.returns, values.flatten())
                entropy_loss = -entropy.mean()
                entropy_share = entropy / uniform_entropy
                if self.floor is not None:
                    loss = policy_loss + self.floor.penalty(entropy_share) + self.vf_coef * value_loss
                else:
                    loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                logs["entropy_share"].append(float(entropy_share.detach().mean()))
                with torch.no_grad():
                    log_ratio = log_prob - data.old_log_prob
                    approx_kl = float(((log_ratio.exp() - 1) - log_ratio).mean())
                    token_kl = float(bernoulli_kl(data.old_inclusion, inclusion.detach()))
                for key, value in (("pg", policy_loss), ("value", value_loss), ("entropy", entropy_loss),
                                   ("clip", clip_fraction)):
                    logs[key].append(float(value.detach()))
                logs["kl"].append(approx_kl)
                logs["token_kl"].append(token_kl)
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl:.2f}")
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                if self.floor is not None:
                    self.floor.update(entropy_share)
            self._n_updates += 1
            if not continue_training:
                break
        self._record_train_logs(logs, loss, clip_range, scale)

    def _record_train_logs(self, logs: dict[str, list[float]], loss: Tensor, clip_range: float, scale: float) -> None:
        buffer = self.rollout_buffer
        record = self.logger.record
        record("train/policy_gradient_loss", float(np.mean(logs["pg"])))
        record("train/value_loss", float(np.mean(logs["value"])))
        record("train/entropy_loss", float(np.mean(logs["entropy"])))
        record("train/clip_fraction", float(np.mean(logs["clip"])))
        record("train/approx_kl", float(np.mean(logs["kl"])))
        record("train/token_kl", float(np.mean(logs["token_kl"])))
        record("train/loss", float(loss.detach()))
        record("train/advantage_scale", scale)
        record("train/explained_variance", float(explained_variance(buffer.values.flatten(), buffer.returns.flatten())))
        record("train/n_updates", self._n_updates, exclude="tensorboard")
        record("train/clip_range", clip_range)
        record("train/entropy_share", float(np.mean(logs["entropy_share"])))
        record("train/policy_share", self.policy.share)
        # Spread of the sampling policy's per-token masking probabilities within a clip (0: uniform over tokens).
        record("train/inclusion_spread", float(buffer.old_inclusion.reshape(-1, buffer.num_tokens).std(1).mean()))
        if self.floor is not None:
            record("train/ent_coef", self.floor.coef)
