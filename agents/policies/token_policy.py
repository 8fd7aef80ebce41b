"""``TokenTATSPolicy``: the TATS sampler for token-level PPO (per-token inclusion probabilities, no critic on the scorer).

Same trajectory-attention scorer and exact K-of-N distribution as :class:`agents.TATSPolicy`, with
two differences that token-level PPO needs:

* ``forward`` (what SB3 calls while collecting rollouts) also keeps the sampling policy's exact
  inclusion probabilities ``pi_i_old`` of the batch in :attr:`TokenTATSPolicy.rollout_inclusion`;
* :meth:`TokenTATSPolicy.evaluate_tokens` returns the inclusion probabilities under the current
  weights WITH the graph (gradients flow through ``d log e_K / d s``, no approximation).

The critic never shares the scorer's trunk (a value head on it hijacks the scorer): ``critic="none"``
(default) keeps only the value head's bias, fed zeros, so SB3's value bookkeeping works at no
cost; ``critic="separate"`` gives the clip value its own trajectory-attention trunk (diagnostics
only: token-level advantages use no critic).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.type_aliases import Schedule
from torch import Tensor, nn

from agents.kofn.distribution import KSubsetDistribution
from agents.policies.configs import CriticKind
from agents.kofn.share import PolicyShareDistribution, ShareSide, chosen_count, log_binomial
from agents.policies.tats_policy import TATSPolicy
from agents.policies.tats_network import TATSConfig, TATSNetwork, TrajectoryTrunk, init_sampler_weights

__all__ = ["CriticKind", "ScorerNetwork", "TokenTATSPolicy"]

class ScorerNetwork(nn.Module):
    """SB3 "mlp_extractor" with the scorer trunk only: the critic latent is one zero per clip."""

    def __init__(self, obs_dim: int, grid: tuple[int, int, int], cfg: TATSConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.grid = grid
        self.actor_trunk = TrajectoryTrunk(obs_dim, grid, cfg)
        self.latent_dim_pi = cfg.dim
        self.latent_dim_vf = 1
        self.apply(init_sampler_weights)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Actor latent ``(B, N, dim)`` and a zero critic latent ``(B, 1)``."""
        return self.actor_trunk(tokens), tokens.new_zeros(tokens.shape[0], 1)

    def forward_actor(self, tokens: Tensor) -> Tensor:
        """Actor latent only."""
        return self.actor_trunk(tokens)

    def forward_critic(self, tokens: Tensor) -> Tensor:
        """Zero critic latent ``(B, 1)`` (the value is the value head's bias)."""
        return tokens.new_zeros(tokens.shape[0], 1)


class TokenTATSPolicy(TATSPolicy):
    """TATS scorer for :class:`agents.algorithms.token_ppo.TokenPPO`: exact per-token inclusion probabilities.

    Extra policy kwargs besides :class:`agents.TATSPolicy`'s: ``critic`` (``"none"`` or
    ``"separate"``, see the module docstring). ``tats_config.share_trunk`` is ignored (forced off).
    """

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Space, lr_schedule: Schedule,
                 tats_config: TATSConfig | None = None, critic: CriticKind = "none", **kwargs: Any) -> None:
        if critic not in ("none", "separate"):
            raise ValueError(f"unknown critic {critic!r}; choose 'none' or 'separate'")
        self.critic = critic
        cfg = dataclasses.replace(tats_config or TATSConfig(), share_trunk=False)
        self.rollout_inclusion: Tensor | None = None
        """Inclusion probabilities ``(B, N)`` of the last :meth:`forward` (the sampling policy's pi_old)."""
        self.share_side: ShareSide = "masked"
        """The side of the mask the policy chooses a share of (see :meth:`set_share`)."""
        self.share = 1.0
        """The policy's share of :attr:`share_side`; the rest is uniform (1 = the policy decides the whole mask)."""
        super().__init__(observation_space, action_space, lr_schedule, tats_config=cfg, **kwargs)

    def _build_mlp_extractor(self) -> None:
        if self.critic == "none":
            self.mlp_extractor = ScorerNetwork(self.features_dim, self.grid, self.tats_config)
        else:
            self.mlp_extractor = TATSNetwork(self.features_dim, self.grid, self.tats_config)

    def set_share(self, side: ShareSide, share: float) -> None:
        """Let the policy choose ``share`` of the ``side`` set and draw the rest uniformly
        (:class:`agents.kofn.share.PolicyShareDistribution`); ``share=1`` is the plain K-subset distribution."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"policy share must be in [0, 1], got {share}")
        if side not in ("masked", "visible"):
            raise ValueError(f"unknown side {side!r}; choose 'masked' or 'visible'")
        self.share_side, self.share = side, float(share)

    def chosen_tokens(self) -> int:
        """Tokens the policy itself chooses per clip (K when it decides the whole mask)."""
        k = self.action_dist.k
        if self.share >= 1.0:
            return k
        return chosen_count(self.share, k if self.share_side == "masked" else self.action_dist.num_tokens - k)

    def uniform_entropy(self) -> float:
        """Largest entropy of the policy's own part: ``log C(N, c)`` with c = :meth:`chosen_tokens`."""
        return log_binomial(self.action_dist.num_tokens, self.chosen_tokens())

    def _distribution(self, scores: Tensor) -> KSubsetDistribution | PolicyShareDistribution:
        if self.share < 1.0:
            return PolicyShareDistribution(scores, self.action_dist.k, self.share_side, self.share)
        return KSubsetDistribution(scores, self.action_dist.k, validate=False)

    def forward(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Masks, values and exact log-probabilities; keeps the batch's inclusion probabilities."""
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        distribution = self._distribution(self.token_scores(latent_pi))
        actions = distribution.mode() if deterministic else distribution.sample()
        self.rollout_inclusion = distribution.inclusion_probs().detach()
        return actions, self.value_net(latent_vf), distribution.log_prob(actions)

    @torch.no_grad()
    def predict_mask_probs(self, obs: Tensor) -> Tensor:
        """Each token's probability of being masked ``(B, N)`` under the distribution the rollouts sample
        (with the policy share: the policy's part and the uniform rest together)."""
        return self._distribution(self.predict_scores(obs)).inclusion_probs()

    def _predict(self, observation: Tensor, deterministic: bool = False) -> Tensor:
        """Masks for ``predict`` from the same (share-aware) distribution the rollouts sample."""
        latent_pi = self.mlp_extractor.forward_actor(self.extract_features(observation))
        distribution = self._distribution(self.token_scores(latent_pi))
        return distribution.mode() if deterministic else distribution.sample()

    def evaluate_tokens(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Values ``(B, 1)``, joint log-probabilities ``(B,)``, inclusion probabilities ``(B, N)`` and
        entropies ``(B,)`` of masks ``actions`` under the current weights, all differentiable."""
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        distribution = self._distribution(self.token_scores(latent_pi))
        inclusion, entropy = distribution.inclusion_probs_and_entropy()
        return self.value_net(latent_vf), distribution.log_prob(actions), inclusion, entropy

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["critic"] = self.critic
        return data
