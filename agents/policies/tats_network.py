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

import torch
from torch import Tensor, nn

from agents.policies.configs import TATSConfig
from agents.policies.trajectory_attention import TrajectoryBlock
from tats_env.mae.layers import sincos_position_table


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
