"""AdaMAE's token scorer: one standard transformer block over the token embeddings, a score per token.

Used by :class:`agents.algorithms.reinforce.Reinforce` (all three REINFORCE rules). Smaller and
simpler than the trajectory-attention scorer of :mod:`agents.policies.tats_network`: standard
self-attention over all tokens with fixed 1-D positions, as AdaMAE's sampler.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from agents.policies.configs import TokenScoreNetConfig
from agents.policies.tats_network import init_sampler_weights
from tats_env.mae.layers import Block, sincos_position_table

__all__ = ["TokenScoreNetConfig", "TokenScoreNet"]


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
