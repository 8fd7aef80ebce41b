"""The TATS actor-critic network: trajectory attention over token embeddings, a score per token.

Input: the environment's observation, token embeddings ``(B, N, D_obs)`` laid out on the
``(T', H', W')`` token grid, time-major. The network projects them to its own width, adds fixed
space-time positions, runs trajectory-attention blocks and produces

* an actor latent per token ``(B, N, d)`` (the policy turns it into one score per token), and
* a critic latent per clip ``(B, d)`` (mean over tokens), for the value.

The actor and critic share the trunk (``share_trunk=True``, cheapest) or each get their own
(the default: a value head on the scorer's trunk hijacks the scorer). The defaults are the small
scorer every learner of the registry uses (32 wide, one block, two heads).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from agents.policies.trajectory_attention import TrajectoryBlock
from tats_env.checks import FieldChecks
from tats_env.mae.layers import sincos_position_table


def network_size_problems(dim: int, depth: int, num_heads: int, mlp_ratio: float,
                          score_limit: float) -> Iterator[tuple[str, str]]:
    """Range rules every scorer network's size fields share (see :mod:`tats_env.checks`)."""
    if dim < 1:
        yield "dim", "must be >= 1"
    if depth < 1:
        yield "depth", "must be >= 1"
    if num_heads < 1:
        yield "num_heads", "must be >= 1"
    elif dim >= 1 and dim % num_heads:
        yield "dim", f"must be a multiple of num_heads ({num_heads})"
    if not mlp_ratio > 0:
        yield "mlp_ratio", "must be > 0"
    if not score_limit > 0:
        yield "score_limit", "must be > 0"


@dataclass(frozen=True)
class TATSConfig(FieldChecks):
    """Sizes of the trajectory-aware scorer network (the defaults: the small scorer every learner uses)."""

    dim: int = 32
    """Width of the scorer's tokens."""
    depth: int = 1
    """Trajectory-attention blocks per trunk."""
    num_heads: int = 2
    """Attention heads."""
    mlp_ratio: float = 2.0
    """MLP hidden width as a multiple of ``dim``."""
    drop_path: float = 0.0
    """Stochastic depth of the last block."""
    share_trunk: bool = False
    """One trunk for actor and critic (cheapest); False (default) gives the critic its own trunk."""
    score_limit: float = 10.0
    """Scores are squashed to ``(-limit, limit)`` by ``limit * tanh(raw / limit)``: keeps the
    K-of-N distribution well conditioned and bounds how peaked the policy can get."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        yield from network_size_problems(self.dim, self.depth, self.num_heads, self.mlp_ratio, self.score_limit)
        if not 0.0 <= self.drop_path < 1.0:
            yield "drop_path", "must be in [0, 1)"


class TrajectoryTrunk(nn.Module):
    """Input projection + fixed space-time positions + trajectory-attention blocks + final norm."""

    def __init__(self, obs_dim: int, grid: tuple[int, int, int], cfg: TATSConfig) -> None:
        super().__init__()
        num_tokens = grid[0] * grid[1] * grid[2]
        self.input_norm = nn.LayerNorm(obs_dim)
        self.input_proj = nn.Linear(obs_dim, cfg.dim)
        self.register_buffer("pos_embed", sincos_position_table(num_tokens, cfg.dim), persistent=False)
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist()
        self.blocks = nn.ModuleList(
            TrajectoryBlock(cfg.dim, cfg.num_heads, grid, mlp_ratio=cfg.mlp_ratio, drop_path=rate) for rate in rates
        )
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, tokens: Tensor) -> Tensor:
        """``(B, N, D_obs)`` -> ``(B, N, dim)``."""
        x = self.input_proj(self.input_norm(tokens)) + self.pos_embed.to(tokens.dtype)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class TATSNetwork(nn.Module):
    """SB3 "mlp_extractor" of :class:`agents.TATSPolicy`: ``forward`` -> (actor latent, critic latent).

    ``latent_dim_pi`` is the per-token actor width and ``latent_dim_vf`` the clip-level critic width,
    the attribute names SB3's ``ActorCriticPolicy`` reads.
    """

    def __init__(self, obs_dim: int, grid: tuple[int, int, int], cfg: TATSConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or TATSConfig()
        self.grid = grid
        self.actor_trunk = TrajectoryTrunk(obs_dim, grid, self.cfg)
        self.critic_trunk = None if self.cfg.share_trunk else TrajectoryTrunk(obs_dim, grid, self.cfg)
        self.latent_dim_pi = self.cfg.dim
        self.latent_dim_vf = self.cfg.dim
        self.apply(init_sampler_weights)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Actor latent ``(B, N, dim)`` and critic latent ``(B, dim)`` (one trunk pass when shared)."""
        actor = self.actor_trunk(tokens)
        if self.critic_trunk is None:
            return actor, actor.mean(dim=1)
        return actor, self.critic_trunk(tokens).mean(dim=1)

    def forward_actor(self, tokens: Tensor) -> Tensor:
        """Actor latent only."""
        return self.actor_trunk(tokens)

    def forward_critic(self, tokens: Tensor) -> Tensor:
        """Critic latent only."""
        trunk = self.critic_trunk or self.actor_trunk
        return trunk(tokens).mean(dim=1)


def init_sampler_weights(module: nn.Module) -> None:
    """ViT-style initialisation: truncated-normal (std 0.02) linears with zero bias, unit norms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
