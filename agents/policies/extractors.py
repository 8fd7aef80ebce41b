"""Features extractors for SB3's standard policies on token observations ``(N, D)``."""

from __future__ import annotations

from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

__all__ = ["TokenProjection"]


class TokenProjection(BaseFeaturesExtractor):
    """Small token-wise features for MLP policies: per-token LayerNorm + Linear(D, dim) + GELU, flattened.

    ``(B, N, D)`` -> ``(B, N * dim)``; at ``dim=4`` the tiny preset's 512 x 192 observation becomes
    2048 features instead of 98304, so SAC's actor and critics stay small.
    """

    def __init__(self, observation_space: spaces.Box, dim: int = 4) -> None:
        if observation_space.shape is None or len(observation_space.shape) != 2:
            raise ValueError(f"TokenProjection expects token observations (N, D), got {observation_space.shape}")
        n, d = observation_space.shape
        super().__init__(observation_space, features_dim=int(n) * dim)
        self.net = nn.Sequential(nn.LayerNorm(int(d)), nn.Linear(int(d), dim), nn.GELU())

    def forward(self, observations: Tensor) -> Tensor:
        """Token embeddings ``(B, N, D)`` -> flat features ``(B, N * dim)``."""
        return self.net(observations.float()).flatten(1)
