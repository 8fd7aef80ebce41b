"""An AdaMAE-style token sampler trained by REINFORCE: three update rules on one network and one loop.

AdaMAE (Bandara et al. 2023) scores every token with one transformer block over the token
embeddings, samples the visible tokens from a softmax over tokens (categorical sampling without
replacement) and trains the sampler with ``-mean over masked tokens of log p_i * error_i``.
:class:`Reinforce` keeps the network and offers three rules (``rule=``):

* ``clip``: REINFORCE on the clip reward with the EXACT K-of-N log-probability: masks drawn from
  the conditional-Poisson K-subset distribution (:class:`agents.kofn.distribution.KSubsetDistribution`),
  ``-(reward - baseline) * log p(mask)`` with a baseline that does not depend on the sampled mask
  (moving average of past rewards, or a learned clip value), so the estimator is unbiased.
* ``token``: the exact token-level rule: the same K-subset distribution, per-token advantages from
  the env's per-token errors and ``-(1/K) sum_{masked i} A_i log pi_i`` with ``pi_i`` the exact
  inclusion probabilities (the one-update, ratio-free case of :class:`agents.algorithms.token_ppo.TokenPPO`;
  objective and direction in :mod:`agents.kofn.credit`).
* ``adamae``: AdaMAE's own rule: ``p = softmax(scores)`` over tokens, the N - K visible tokens
  drawn from it without replacement (Gumbel top-k, the same law as sequential categorical draws),
  loss ``-mean_{masked i} log p_i * e_i`` with the raw errors, no baseline. ``log p_i`` is not the
  probability of anything the sampler drew (the rule's known approximation); raising ``p_i`` of
  a hard masked token makes it more likely VISIBLE next time, so the rule is show-hard by nature.

:class:`Reinforce` drives any SB3 ``VecEnv`` whose action space is :class:`tats_env.KOfNMask`
and whose observation is token embeddings ``(N, D)``, e.g. :func:`tats_env.make_vec_env`. Its
``learn(total_timesteps, callback=...)`` is the shared :class:`agents.algorithms.stepwise.StepwiseSampler`
loop and accepts stable-baselines3 callbacks. Its network is AdaMAE's scorer
(:class:`agents.policies.score_net.TokenScoreNet`); :class:`ReinforceConfig` holds its hyperparameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv
from torch import Tensor, nn

from agents.algorithms.base import DDPTarget, require_token_info
from agents.algorithms.configs import BaselineKind, ReinforceConfig, RuleKind
from agents.algorithms.stepwise import StepwiseSampler
from agents.algorithms.token_ppo import token_errors_from_infos
from agents.kofn.distribution import KSubsetDistribution
from agents.policies.score_net import TokenScoreNet, TokenScoreNetConfig
from agents.kofn.credit import (
    DEFAULT_DIRECTION, AdvantageKind, Direction, direction_sign, observed_tokens, token_advantages, token_policy_loss,
)
from tats_env.env.spaces import KOfNMask

__all__ = ["Reinforce", "ReinforceConfig", "reinforce_loss", "adamae_loss", "adamae_sample"]

def reinforce_loss(log_prob: Tensor, rewards: Tensor, baseline: Tensor | float,
                   normalize_advantage: bool = False) -> tuple[Tensor, Tensor]:
    """Score-function surrogate ``-mean((reward - baseline) * log p(mask))`` and the advantages.

    Its gradient is an unbiased estimate of ``-grad E[reward]`` whenever ``baseline`` does not
    depend on the sampled masks (it is detached here). ``normalize_advantage`` divides the
    advantages by their standard deviation (a per-batch step-size rescaling, not a bias).
    """
    advantage = (rewards - baseline).detach()
    if normalize_advantage and advantage.numel() > 1:
        advantage = advantage / (advantage.std() + 1e-8)
    return -(advantage * log_prob).mean(), advantage


def adamae_sample(scores: Tensor, num_visible: int, generator: torch.Generator | None = None) -> Tensor:
    """AdaMAE's masks ``(B, N)`` float (1 = masked): ``num_visible`` tokens drawn without replacement from ``softmax(scores)``.

    Gumbel top-k: the ``num_visible`` largest ``scores + Gumbel noise`` are exactly a sequential
    categorical draw without replacement (what ``torch.multinomial(p, V, replacement=False)`` gives).
    """
    u = torch.rand(scores.shape, generator=generator, device=scores.device).clamp_min(torch.finfo(torch.float32).tiny)
    keys = scores.detach().float() - torch.log(-torch.log(u))
    visible = keys.topk(num_visible, dim=-1).indices
    return torch.ones_like(keys).scatter_(-1, visible, 0.0)


def adamae_loss(scores: Tensor, masks: Tensor, errors: Tensor) -> Tensor:
    """AdaMAE's sampler loss ``-mean over masked tokens of log softmax(scores)_i * error_i`` (errors detached;
    values at visible tokens, e.g. NaN, are ignored)."""
    masked = observed_tokens(errors, masks)  # NaN errors (undecoded under dual masking) are not observed
    log_p = torch.log_softmax(scores.float(), dim=-1)
    # Zero the visible tokens' errors before the product: a NaN there would poison the gradient.
    weights = torch.where(masked, errors.detach().float(), torch.zeros_like(log_p))
    return -(log_p * weights).sum() / masked.sum().clamp_min(1)


class Reinforce(StepwiseSampler):
    """REINFORCE for K-of-N token masking: clip reward, exact token-level or AdaMAE's rule (module docstring).

    Args:
        env: SB3 ``VecEnv`` with token observations ``(N, D)`` and a :class:`KOfNMask` action space
            (and ``info["token_error"]`` for the ``token`` and ``adamae`` rules: build a
            :mod:`tats_env` masking env with ``token_info=True``).
        learning_rate: Adam learning rate of the sampler.
        rule: ``clip``, ``token`` or ``adamae``.
        direction: ``token`` rule only: ``show_hard`` or ``mask_hard`` (:data:`agents.kofn.credit.Direction`;
            None: :data:`~agents.kofn.credit.DEFAULT_DIRECTION`); ``adamae`` is show-hard by construction
            (None gives it that) and rejects ``mask_hard``.
        advantage: ``token`` rule only: ``relative``, ``centered`` or ``raw`` per-token advantages.
        baseline: ``clip`` rule only: ``ema`` (moving average of past batch-mean rewards), ``value``
            (learned clip value, MSE-trained) or ``none``.

        baseline_decay: EMA factor of the ``ema`` baseline (``b <- decay * b + (1 - decay) * mean r``).
        ent_coef: weight of the entropy bonus (exact entropy of the K-subset distribution, nats).
        vf_coef: weight of the value loss (``value`` baseline only).
        max_grad_norm: gradient clipping of the sampler (None disables).
        normalize_advantage: divide advantages by their batch standard deviation (``clip`` and ``token`` rules).
        policy_kwargs: :class:`TokenScoreNetConfig` fields (or a ``TokenScoreNetConfig``).
        seed: seeds torch/numpy, the env's clip stream and the mask sampler.
        device: torch device of the sampler network.
        log_interval: updates between two ``logger.dump`` calls.
    """

    def __init__(
        self,
        env: VecEnv,
        learning_rate: float = 3e-4,
        rule: RuleKind = "clip",
        direction: Direction | None = None,
        advantage: AdvantageKind = "relative",
        baseline: BaselineKind = "ema",
        baseline_decay: float = 0.9,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        normalize_advantage: bool = False,
        policy_kwargs: dict[str, Any] | TokenScoreNetConfig | None = None,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        log_interval: int = 10,
    ) -> None:
        space = env.action_space
        if not isinstance(space, KOfNMask):
            raise TypeError(f"Reinforce needs a KOfNMask action space (exactly K of N tokens), got {space}")
        shape = env.observation_space.shape
        if shape is None or len(shape) != 2 or shape[0] != space.n:
            raise ValueError(f"Reinforce expects token observations of shape ({space.n}, D), got {shape}")
        if baseline not in ("ema", "value", "none"):
            raise ValueError(f"unknown baseline {baseline!r}; choose 'ema', 'value' or 'none'")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        if rule not in ("clip", "token", "adamae"):
            raise ValueError(f"unknown rule {rule!r}; choose 'clip', 'token' or 'adamae'")
        if direction is None:  # AdaMAE's rule has one direction; the others take the library's default
            direction = "show_hard" if rule == "adamae" else DEFAULT_DIRECTION
        direction_sign(direction)  # validates
        if rule == "adamae" and direction != "show_hard":
            raise ValueError("AdaMAE's rule raises the visibility of hard tokens (show_hard); use rule='token' "
                             "for mask_hard")
        if rule != "clip":
            require_token_info(env, f"Reinforce(rule={rule!r})")
        super().__init__(env, log_interval)
        self.needs_token_info = rule != "clip"
        self.rule: RuleKind = rule
        self.direction: Direction = direction
        self.advantage: AdvantageKind = advantage
        self.k = space.k
        self.device = torch.device(device)
        self.baseline_kind = baseline
        self.baseline_decay = baseline_decay
        self.ent_coef, self.vf_coef = ent_coef, vf_coef
        self.max_grad_norm = max_grad_norm
        self.normalize_advantage = normalize_advantage
        self.seed = seed
        if seed is not None:
            set_random_seed(seed)
            env.seed(seed)
        cfg = policy_kwargs if isinstance(policy_kwargs, TokenScoreNetConfig) else TokenScoreNetConfig(**(policy_kwargs or {}))
        self.policy = TokenScoreNet(int(shape[1]), int(space.n), cfg).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=learning_rate)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
        self.ema_baseline: float | None = None
        """Current moving-average baseline (None before the first batch)."""

    @property
    def network(self) -> nn.Module:
        """AdaMAE's token scorer."""
        return self.policy

    def ddp_targets(self) -> list[DDPTarget]:
        """The scorer's forward builds every loss (unused value head unless the value baseline is on)."""
        return [DDPTarget(self.policy, "forward", find_unused_parameters=self.baseline_kind != "value")]

    def reseed(self, seed: int) -> None:
        """Restart the mask sampling stream."""
        self.generator.manual_seed(seed)

    def _obs_tensor(self, obs: np.ndarray | Tensor) -> Tensor:
        return torch.as_tensor(obs, device=self.device).float()

    def distribution(self, obs: np.ndarray | Tensor) -> tuple[KSubsetDistribution, Tensor]:
        """The K-subset distribution over masks for observations ``(B, N, D)``, and the values ``(B,)``."""
        scores, values = self.policy(self._obs_tensor(obs))
        return KSubsetDistribution(scores, self.k, validate=False), values

    def _masks(self, scores: Tensor, deterministic: bool = False) -> Tensor:
        """Masks ``(B, N)`` float drawn by the rule's sampler (or its most likely mask)."""
        num_tokens = scores.shape[-1]
        if self.rule == "adamae":
            if deterministic:
                visible = scores.detach().topk(num_tokens - self.k, dim=-1).indices
                return torch.ones_like(scores).scatter_(-1, visible, 0.0)
            return adamae_sample(scores, num_tokens - self.k, self.generator)
        dist = KSubsetDistribution(scores.detach(), self.k, validate=False)
        return dist.mode() if deterministic else dist.sample(self.generator)

    @torch.no_grad()
    def predict_scores(self, observation: np.ndarray) -> Tensor:
        """Per-token scores ``(B, N)``, higher = more likely masked (AdaMAE's visibility logits negated)."""
        scores, _ = self.policy(self._obs_tensor(observation))
        return -scores if self.rule == "adamae" else scores

    @torch.no_grad()
    def predict_mask_probs(self, observation: np.ndarray) -> Tensor | None:
        """Each token's probability of being masked ``(B, N)`` (K-subset rule); None for AdaMAE's draw without
        replacement, whose inclusion probabilities have no closed form."""
        if self.rule == "adamae":
            return None
        scores, _ = self.policy(self._obs_tensor(observation))
        return KSubsetDistribution(scores, self.k, validate=False).inclusion_probs()

    @torch.no_grad()
    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Masks ``(B, N)`` int8 for observations ``(B, N, D)`` (SB3's ``predict`` signature).

        ``deterministic`` returns the most likely mask (top-K masking scores).
        """
        obs = np.asarray(observation)
        single = obs.ndim == 2
        scores, _ = self.policy(self._obs_tensor(obs[None] if single else obs))
        out = self._masks(scores, deterministic).cpu().numpy().astype(np.int8)
        return (out[0] if single else out), None

    def _baseline(self, values: Tensor) -> Tensor | float:
        """The baseline for this batch; it never looks at this batch's rewards (that would bias the gradient)."""
        if self.baseline_kind == "value":
            return values.detach()
        if self.baseline_kind == "ema":
            # First batch: no history yet, so no baseline (using its own mean would bias it).
            return 0.0 if self.ema_baseline is None else self.ema_baseline
        return 0.0

    def _token_rule_loss(self, dist: KSubsetDistribution, masks: Tensor, errors: Tensor) -> tuple[Tensor, dict[str, float]]:
        """``-(1/K) sum_{masked i} A_i log pi_i`` through the exact inclusion probabilities (ratio 1 at theta_old)."""
        mask = observed_tokens(errors, masks)  # the decoded tokens under dual masking
        adv = token_advantages(errors, mask, self.direction, self.advantage)
        if self.normalize_advantage and int(mask.sum()) > 1:
            adv = adv / (adv[mask].std() + 1e-8)
        inclusion = dist.inclusion_probs()
        loss, _ = token_policy_loss(inclusion, inclusion.detach(), adv, mask, None)
        return loss, {"advantage_std": float(adv[mask].std())}

    def train_step(self, scores: Tensor, masks: Tensor, values: Tensor, rewards: Tensor,
                   errors: Tensor | None = None) -> dict[str, float]:
        """One gradient step on one batch; ``scores`` ``(B, N)`` with the graph, ``errors`` ``(B, N)``
        per-token errors (``token``/``adamae`` rules). Returns the logged statistics."""
        baseline = self._baseline(values)
        dist = KSubsetDistribution(scores, self.k, validate=False)
        if self.rule == "clip":
            loss, advantage = reinforce_loss(dist.log_prob(masks), rewards, baseline, self.normalize_advantage)
            stats = {"advantage_mean": float(advantage.mean())}
        elif errors is None:
            raise ValueError(f"rule={self.rule!r} needs the per-token errors")
        elif self.rule == "token":
            loss, stats = self._token_rule_loss(dist, masks, errors)
        else:
            loss, stats = adamae_loss(scores, masks, errors), {}
        stats["policy_loss"] = float(loss.detach())
        if self.ent_coef > 0:
            # AdaMAE's sampler: entropy of its softmax over tokens; otherwise the exact K-subset entropy.
            log_p = torch.log_softmax(scores.float(), dim=-1)
            entropy = (-(log_p.exp() * log_p).sum(-1) if self.rule == "adamae" else dist.entropy()).mean()
            loss = loss - self.ent_coef * entropy
            stats["entropy"] = float(entropy.detach())
        if self.baseline_kind == "value" and self.rule == "clip":
            value_loss = nn.functional.mse_loss(values, rewards)
            loss = loss + self.vf_coef * value_loss
            stats["value_loss"] = float(value_loss.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.max_grad_norm is not None:
            stats["grad_norm"] = float(nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm))
        self.optimizer.step()
        batch_mean = float(rewards.mean())
        if self.ema_baseline is None:
            self.ema_baseline = batch_mean
        else:
            self.ema_baseline = self.baseline_decay * self.ema_baseline + (1 - self.baseline_decay) * batch_mean
        stats["baseline"] = float(torch.as_tensor(baseline, dtype=torch.float32).mean())
        self.n_updates += 1
        return stats

    def act(self, observation: np.ndarray) -> tuple[np.ndarray, tuple[Tensor, Tensor, Tensor]]:
        """Sample masks with the rule's sampler; keeps the scores' graph for :meth:`update`."""
        self.policy.train()
        scores, values = self.policy(self._obs_tensor(observation))
        actions = self._masks(scores)
        return actions.cpu().numpy().astype(np.int8), (scores, actions, values)

    def update(self, context: tuple[Tensor, Tensor, Tensor], rewards: np.ndarray,
               infos: list[dict[str, Any]]) -> dict[str, float]:
        """One REINFORCE step on the batch just scored (per-token errors from ``infos`` for the token rules)."""
        scores, actions, values = context
        errors = None
        if self.rule != "clip":
            errors = torch.from_numpy(np.array(token_errors_from_infos(infos), dtype=np.float32)).to(self.device)
        return self.train_step(scores, actions, values, torch.as_tensor(rewards, device=self.device).float(), errors)

    def state_dict(self) -> dict[str, Any]:
        """Network, optimizer and baseline state, for checkpoints."""
        return {**super().state_dict(), "policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "ema_baseline": self.ema_baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        super().load_state_dict(state)
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema_baseline = state["ema_baseline"]
