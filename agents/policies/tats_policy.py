"""``TATSPolicy``: the trajectory-aware adaptive token sampler as an SB3 ``ActorCriticPolicy``.

Works with PPO and A2C on :func:`tats_env.make_vec_env` (observation: token embeddings
``(N, D)``; action: :class:`tats_env.KOfNMask`). The actor scores every token with the
trajectory-attention network; the action distribution is the exact conditional-Poisson
K-subset distribution (:class:`agents.kofn.distribution.KOfNMaskDistribution`).

SB3's orthogonal initialisation is designed for MLPs; it would overwrite the transformer's
initialisation, so ``ortho_init`` is always off here and the network keeps its own init.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import Tensor, nn

from agents.kofn.distribution import KOfNMaskDistribution, KSubsetDistribution
from agents.policies.tats_network import TATSConfig, TATSNetwork, init_sampler_weights
from tats_env.env.spaces import KOfNMask


class TokenEmbeddings(BaseFeaturesExtractor):
    """Identity features extractor that keeps the ``(B, N, D)`` token layout (no flattening)."""

    def __init__(self, observation_space: gym.spaces.Box) -> None:
        if len(observation_space.shape) != 2:
            raise ValueError(f"TATSPolicy expects token observations (N, D), got shape {observation_space.shape}")
        super().__init__(observation_space, features_dim=int(observation_space.shape[1]))

    def forward(self, observations: Tensor) -> Tensor:
        """Token embeddings as float32."""
        return observations.float()


def infer_grid(num_tokens: int, grid: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """The ``(T', H', W')`` token grid; by default the square grid with 8 temporal slots (VideoMAE's 16 frames / 2)."""
    if grid is not None:
        t, h, w = grid
        if t * h * w != num_tokens:
            raise ValueError(f"grid {grid} has {t * h * w} tokens but the observation has {num_tokens}")
        return t, h, w
    for t in (8, 4, 2, 1, 16):
        side = round((num_tokens / t) ** 0.5)
        if num_tokens % t == 0 and side * side * t == num_tokens:
            return t, side, side
    raise ValueError(f"cannot infer a (T', H', W') grid for {num_tokens} tokens; pass policy_kwargs={{'grid': ...}}")


class TATSPolicy(ActorCriticPolicy):
    """Trajectory-aware sampler: per-token scores -> exact K-of-N masks, clip value.

    Extra policy kwargs: ``tats_config`` (:class:`agents.policies.tats_network.TATSConfig`), ``grid``
    (the token grid; inferred as a square grid with 8 temporal slots unless given; the training
    code passes the env's) and ``entropy_grad`` (False: ``evaluate_actions`` returns the entropy
    without a graph, saving the double backward through the distribution when ``ent_coef == 0``).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Space,
        lr_schedule: Schedule,
        tats_config: TATSConfig | None = None,
        grid: tuple[int, int, int] | None = None,
        entropy_grad: bool = True,
        ortho_init: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, KOfNMask):
            raise TypeError(f"TATSPolicy needs a KOfNMask action space (exactly K of N tokens), got {action_space}")
        if ortho_init:
            warnings.warn("TATSPolicy ignores ortho_init=True: it would overwrite the transformer initialisation")
        for key in ("net_arch", "features_extractor_class", "use_sde"):
            if kwargs.get(key):
                raise ValueError(f"TATSPolicy does not use {key!r}; size the sampler with tats_config")
        self.tats_config = tats_config or TATSConfig()
        self.entropy_grad = entropy_grad
        self.grid = infer_grid(int(observation_space.shape[0]), tuple(grid) if grid is not None else None)
        kwargs.setdefault("optimizer_kwargs", {"eps": 1e-5})
        super().__init__(
            observation_space, action_space, lr_schedule, ortho_init=False,
            features_extractor_class=TokenEmbeddings, share_features_extractor=True, **kwargs,
        )

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = TATSNetwork(self.features_dim, self.grid, self.tats_config)

    def _build(self, lr_schedule: Schedule) -> None:
        self._build_mlp_extractor()
        space: KOfNMask = self.action_space  # type: ignore[assignment]
        self.action_dist = KOfNMaskDistribution(int(space.n), space.k)
        self.action_net = nn.Linear(self.mlp_extractor.latent_dim_pi, 1)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        init_sampler_weights(self.action_net)
        init_sampler_weights(self.value_net)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def token_scores(self, latent_pi: Tensor) -> Tensor:
        """Bounded per-token scores ``(B, N)`` from the actor latent ``(B, N, d)``."""
        limit = self.tats_config.score_limit
        raw = self.action_net(latent_pi).squeeze(-1).float()
        return limit * torch.tanh(raw / limit)

    @torch.no_grad()
    def predict_scores(self, obs: Tensor) -> Tensor:
        """Per-token scores ``(B, N)`` for token observations ``(B, N, D)`` (higher = more likely masked)."""
        features = self.extract_features(torch.as_tensor(obs, device=self.device))
        return self.token_scores(self.mlp_extractor.forward_actor(features))

    @torch.no_grad()
    def predict_mask_probs(self, obs: Tensor) -> Tensor:
        """Each token's probability of being masked ``(B, N)`` under the policy's K-subset distribution."""
        return KSubsetDistribution(self.predict_scores(obs), self.action_dist.k, validate=False).inclusion_probs()

    def _get_action_dist_from_latent(self, latent_pi: Tensor) -> Distribution:
        return self.action_dist.proba_distribution(self.token_scores(latent_pi))

    def evaluate_actions(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Values, exact log-probabilities and entropies of ``actions`` (masks) under the current policy."""
        features = self.extract_features(obs)
        latent_pi, latent_vf = self.mlp_extractor(features)
        scores = self.token_scores(latent_pi)
        distribution = self.action_dist.proba_distribution(scores)
        log_prob = distribution.log_prob(actions)
        if self.entropy_grad:
            entropy = distribution.entropy()
        else:
            with torch.no_grad():
                entropy = KSubsetDistribution(scores.detach(), self.action_dist.k, validate=False).entropy()
        return self.value_net(latent_vf), log_prob, entropy

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(tats_config=self.tats_config, grid=self.grid, entropy_grad=self.entropy_grad)
        for key in ("net_arch", "activation_fn", "use_sde", "log_std_init", "squash_output", "full_std",
                    "use_expln", "features_extractor_class", "features_extractor_kwargs", "ortho_init"):
            data.pop(key, None)
        return data
