"""An AdaMAE-style token sampler trained by REINFORCE with a baseline, on the exact K-of-N distribution.

AdaMAE (Bandara et al. 2023) scores every token with one transformer block over the token
embeddings, samples the visible tokens from independent categoricals and trains the sampler
with ``-(reward) * log p``. We keep the network and the estimator but draw the masks from the
exact conditional-Poisson K-subset distribution (:class:`agents.kofn_distribution.KSubsetDistribution`),
so ``log p(mask)`` is the true log-probability of the K-of-N mask that was applied, and subtract
a baseline that does not depend on the sampled mask (an exponential moving average of past
rewards, or a learned value of the clip), which keeps the gradient estimator unbiased.

:class:`Reinforce` drives any SB3 ``VecEnv`` whose action space is :class:`tats_env.KOfNMask`
and whose observation is token embeddings ``(N, D)``, e.g. :func:`tats_env.make_vec_env`. Its
``learn(total_clips, callback=...)`` is the shared :class:`agents.loop.StepwiseAgent` loop and
accepts stable-baselines3 callbacks, so :class:`agents.callbacks.EnvStatsCallback` and friends
work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv
from torch import Tensor, nn

from agents.kofn_distribution import KSubsetDistribution
from agents.loop import StepwiseAgent
from agents.tats_network import init_sampler_weights
from tats_env.env.spaces import KOfNMask
from tats_env.mae.layers import Block, sincos_position_table

__all__ = ["TokenScoreNetConfig", "TokenScoreNet", "Reinforce", "reinforce_loss"]

BaselineKind = Literal["ema", "value", "none"]


@dataclass(frozen=True)
class TokenScoreNetConfig:
    """Sizes of the AdaMAE-style token network."""

    dim: int = 64
    """Width of the sampler's tokens."""
    depth: int = 1
    """Standard transformer blocks (AdaMAE uses one)."""
    num_heads: int = 2
    """Attention heads."""
    mlp_ratio: float = 2.0
    """MLP hidden width as a multiple of ``dim``."""
    score_limit: float = 10.0
    """Scores are squashed to ``(-limit, limit)`` (``limit * tanh(raw / limit)``), as in TATS."""


class TokenScoreNet(nn.Module):
    """Token embeddings ``(B, N, D)`` -> per-token scores ``(B, N)`` and a clip value ``(B,)``.

    Input norm and projection, fixed 1-D sin-cos positions, ``depth`` standard pre-norm
    transformer blocks, a final norm, a linear score head per token and a linear value head
    on the mean-pooled tokens (used only by the ``value`` baseline).
    """

    def __init__(self, obs_dim: int, num_tokens: int, cfg: TokenScoreNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or TokenScoreNetConfig()
        self.input_norm = nn.LayerNorm(obs_dim)
        self.input_proj = nn.Linear(obs_dim, self.cfg.dim)
        self.register_buffer("pos_embed", sincos_position_table(num_tokens, self.cfg.dim), persistent=False)
        self.blocks = nn.ModuleList(
            Block(self.cfg.dim, self.cfg.num_heads, mlp_ratio=self.cfg.mlp_ratio) for _ in range(self.cfg.depth)
        )
        self.norm = nn.LayerNorm(self.cfg.dim)
        self.score_head = nn.Linear(self.cfg.dim, 1)
        self.value_head = nn.Linear(self.cfg.dim, 1)
        self.apply(init_sampler_weights)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Bounded scores ``(B, N)`` float32 and values ``(B,)`` for observations ``(B, N, D)``."""
        x = self.input_proj(self.input_norm(tokens.float())) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        limit = self.cfg.score_limit
        scores = limit * torch.tanh(self.score_head(x).squeeze(-1) / limit)
        return scores, self.value_head(x.mean(dim=1)).squeeze(-1)


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


class Reinforce(StepwiseAgent):
    """REINFORCE with a baseline for K-of-N token masking (AdaMAE's estimator, exact log-probs).

    Args:
        env: SB3 ``VecEnv`` with token observations ``(N, D)`` and a :class:`KOfNMask` action space.
        learning_rate: Adam learning rate of the sampler.
        baseline: ``ema`` (moving average of past batch-mean rewards), ``value`` (learned clip
            value, MSE-trained) or ``none``.
        baseline_decay: EMA factor of the ``ema`` baseline (``b <- decay * b + (1 - decay) * mean r``).
        ent_coef: weight of the entropy bonus (exact entropy of the K-subset distribution, nats).
        vf_coef: weight of the value loss (``value`` baseline only).
        max_grad_norm: gradient clipping of the sampler (None disables).
        normalize_advantage: divide advantages by their batch standard deviation.
        policy_kwargs: :class:`TokenScoreNetConfig` fields (or a ``TokenScoreNetConfig``).
        seed: seeds torch/numpy, the env's clip stream and the mask sampler.
        device: torch device of the sampler network.
        log_interval: updates between two ``logger.dump`` calls.
    """

    def __init__(
        self,
        env: VecEnv,
        learning_rate: float = 3e-4,
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
        super().__init__(env, log_interval)
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

    def _obs_tensor(self, obs: np.ndarray | Tensor) -> Tensor:
        return torch.as_tensor(obs, device=self.device).float()

    def distribution(self, obs: np.ndarray | Tensor) -> tuple[KSubsetDistribution, Tensor]:
        """The K-subset distribution over masks for observations ``(B, N, D)``, and the values ``(B,)``."""
        scores, values = self.policy(self._obs_tensor(obs))
        return KSubsetDistribution(scores, self.k, validate=False), values

    @torch.no_grad()
    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Masks ``(B, N)`` int8 for observations ``(B, N, D)`` (SB3's ``predict`` signature).

        ``deterministic`` returns the most likely mask (top-K scores).
        """
        obs = np.asarray(observation)
        single = obs.ndim == 2
        dist, _ = self.distribution(obs[None] if single else obs)
        masks = dist.mode() if deterministic else dist.sample(self.generator)
        out = masks.cpu().numpy().astype(np.int8)
        return (out[0] if single else out), None

    def _baseline(self, values: Tensor) -> Tensor | float:
        """The baseline for this batch; it never looks at this batch's rewards (that would bias the gradient)."""
        if self.baseline_kind == "value":
            return values.detach()
        if self.baseline_kind == "ema":
            # First batch: no history yet, so no baseline (using its own mean would bias it).
            return 0.0 if self.ema_baseline is None else self.ema_baseline
        return 0.0

    def train_step(self, dist: KSubsetDistribution, masks: Tensor, values: Tensor, rewards: Tensor) -> dict[str, float]:
        """One gradient step on one batch of (mask, reward) pairs; returns the logged statistics."""
        log_prob = dist.log_prob(masks)
        baseline = self._baseline(values)
        loss, advantage = reinforce_loss(log_prob, rewards, baseline, self.normalize_advantage)
        stats = {"policy_loss": float(loss.detach()), "advantage_mean": float(advantage.mean())}
        if self.ent_coef > 0:
            entropy = dist.entropy().mean()
            loss = loss - self.ent_coef * entropy
            stats["entropy"] = float(entropy.detach())
        if self.baseline_kind == "value":
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

    def act(self, observation: np.ndarray) -> tuple[np.ndarray, tuple[KSubsetDistribution, Tensor, Tensor]]:
        """Sample masks from the current policy (with the graph, for :meth:`update`)."""
        self.policy.train()
        dist, values = self.distribution(observation)
        actions = dist.sample(self.generator)
        return actions.cpu().numpy().astype(np.int8), (dist, actions, values)

    def update(self, context: tuple[KSubsetDistribution, Tensor, Tensor], rewards: np.ndarray,
               infos: list[dict[str, Any]]) -> dict[str, float]:
        """One REINFORCE step on the batch just scored."""
        dist, actions, values = context
        return self.train_step(dist, actions, values, torch.as_tensor(rewards, device=self.device).float())

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
