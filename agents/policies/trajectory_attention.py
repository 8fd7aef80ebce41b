"""Trajectory attention (Motionformer, Patrick et al. 2021) over a (T frames x S tokens) grid.

Tokens are time-major: ``x`` has shape ``(B, T*S, D)`` and token ``n`` sits at frame
``n // S``, spatial position ``n % S``. There is no CLS token.

Stage 1 (spatial, per frame). Every query token ``q`` attends, separately in every frame
``t'``, over that frame's ``S`` tokens (softmax within the frame):

    y[q, t'] = sum_s softmax_s(q_q . k_{t',s} / sqrt(d)) v_{t',s}

giving one "trajectory token" per (query, frame), ``(B, H, N, T, d)``: where the content of
``q`` went in each frame.

Stage 2 (temporal). Query token ``q`` at frame ``t_q`` pools its trajectory over time, with
its own frame's trajectory token as query:

    out[q] = sum_t' softmax_t'(W_q2 y[q, t_q] . W_k2 y[q, t'] / sqrt(d)) W_v2 y[q, t']

followed by the output projection. ``W_q2`` (D -> D) and ``W_kv2`` (D -> 2D) act on all heads
concatenated, as in Motionformer.

Both stages run through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels
on GPU): stage 1 as ``B*T`` attention problems of ``N`` queries against one frame's ``S`` keys,
stage 2 as ``B*N`` problems of one query against ``T`` keys.

Memory: stage 1 materialises the queries repeated per frame and the trajectory tokens, each
``T * N * D`` values per clip, and stage 2 their keys/values (``2 * T * N * D``), i.e. about
``T`` times the activations of ordinary self-attention. At D=768, T=8 that is 3.1M values per
tensor per clip for N=512 (S=64) and 9.6M (38 MB in fp32) for N=1568 (S=196): fine for the
former, acceptable for the latter with moderate batch sizes (use bf16 autocast on GPU).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

__all__ = ["TrajectoryAttention", "TrajectoryBlock", "trajectory_attention_reference"]


def _grid_dims(grid: tuple[int, ...]) -> tuple[int, int]:
    """``(T, S)`` from ``(T, S)`` or ``(T, H, W)``."""
    if len(grid) not in (2, 3) or any(int(g) < 1 for g in grid):
        raise ValueError(f"grid must be (T, S) or (T, H, W) of positive ints, got {grid}")
    return int(grid[0]), int(math.prod(grid[1:]))


class TrajectoryAttention(nn.Module):
    """Multi-head trajectory attention over a ``(T, S)`` token grid, via SDPA.

    Args:
        dim: token width D (divisible by ``num_heads``).
        num_heads: heads H; head dim ``d = D / H``.
        grid: ``(T, S)`` or ``(T, H, W)``; inputs must have ``T * S`` tokens.
        qkv_bias: bias in the stage-1 qkv and the stage-2 q / kv projections.
        attn_drop: dropout on the attention weights of both stages (training only).
        proj_drop: dropout after the output projection.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid: tuple[int, int] | tuple[int, int, int],
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.num_frames, self.num_spatial = _grid_dims(tuple(grid))
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    @property
    def num_tokens(self) -> int:
        """``T * S``, the sequence length the layer expects."""
        return self.num_frames * self.num_spatial

    def _check(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.num_tokens or x.shape[2] != self.dim:
            raise ValueError(
                f"expected x of shape (B, {self.num_tokens}, {self.dim}) for grid "
                f"T={self.num_frames}, S={self.num_spatial}; got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T*S, D) -> (B, T*S, D)``."""
        self._check(x)
        bsz, n, _ = x.shape
        t, s, h, d = self.num_frames, self.num_spatial, self.num_heads, self.head_dim
        drop = self.attn_drop if self.training else 0.0

        q, k, v = self.qkv(x).view(bsz, n, 3, h, d).permute(2, 0, 3, 1, 4)  # each (B, H, N, d)
        # Stage 1: one attention problem per (clip, frame): all N queries vs that frame's S keys.
        q1 = q.unsqueeze(1).expand(bsz, t, h, n, d).reshape(bsz * t, h, n, d)
        k1 = k.view(bsz, h, t, s, d).transpose(1, 2).reshape(bsz * t, h, s, d)
        v1 = v.view(bsz, h, t, s, d).transpose(1, 2).reshape(bsz * t, h, s, d)
        y = F.scaled_dot_product_attention(q1, k1, v1, dropout_p=drop)  # (B*T, H, N, d)
        # Trajectory tokens with heads concatenated: (B, N, T, D).
        y = y.view(bsz, t, h, n, d).permute(0, 3, 1, 2, 4).reshape(bsz, n, t, self.dim)

        # Stage 2: the query is the trajectory token in the query's own frame.
        own_frame = torch.arange(n, device=x.device) // s
        y_own = y[:, torch.arange(n, device=x.device), own_frame]  # (B, N, D)
        q2 = self.proj_q(y_own).view(bsz * n, 1, h, d).transpose(1, 2)  # (B*N, H, 1, d)
        k2, v2 = self.proj_kv(y).view(bsz * n, t, 2, h, d).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q2, k2, v2, dropout_p=drop)  # (B*N, H, 1, d)
        out = out.reshape(bsz, n, self.dim)
        return self.proj_drop(self.proj(out))


def _linear(x: Tensor, layer: nn.Linear) -> Tensor:
    out = torch.einsum("...i,oi->...o", x, layer.weight)
    return out if layer.bias is None else out + layer.bias


def trajectory_attention_reference(x: Tensor, attn: TrajectoryAttention) -> Tensor:
    """Plain einsum + softmax trajectory attention with ``attn``'s weights (no SDPA, no dropout).

    The specification that :class:`TrajectoryAttention` is tested against.

    Args:
        x: ``(B, T*S, D)`` time-major tokens.
        attn: the module whose weights (``qkv``, ``proj_q``, ``proj_kv``, ``proj``) are used.

    Returns:
        ``(B, T*S, D)``.
    """
    attn._check(x)
    bsz, n, dim = x.shape
    t, s, h, d = attn.num_frames, attn.num_spatial, attn.num_heads, attn.head_dim
    scale = d**-0.5

    qkv = _linear(x, attn.qkv).reshape(bsz, n, 3, h, d)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, H, d)
    k = k.reshape(bsz, t, s, h, d)
    v = v.reshape(bsz, t, s, h, d)

    logits1 = torch.einsum("bqhc,bfshc->bqhfs", q, k) * scale
    weights1 = torch.softmax(logits1, dim=-1)  # over the S tokens of each frame
    y = torch.einsum("bqhfs,bfshc->bqfhc", weights1, v).reshape(bsz, n, t, dim)

    frame_of = torch.arange(n, device=x.device) // s
    y_own = y[:, torch.arange(n, device=x.device), frame_of]  # (B, N, D)
    q2 = _linear(y_own, attn.proj_q).reshape(bsz, n, h, d)
    kv2 = _linear(y, attn.proj_kv).reshape(bsz, n, t, 2, h, d)
    k2, v2 = kv2[:, :, :, 0], kv2[:, :, :, 1]  # (B, N, T, H, d)

    logits2 = torch.einsum("bnhc,bnfhc->bnhf", q2, k2) * scale
    weights2 = torch.softmax(logits2, dim=-1)  # over the T frames of the trajectory
    out = torch.einsum("bnhf,bnfhc->bnhc", weights2, v2).reshape(bsz, n, dim)
    return _linear(out, attn.proj)


class TrajectoryBlock(nn.Module):
    """Pre-norm transformer block with trajectory attention.

    ``x + DropPath(Attn(LN(x)))`` then ``x + DropPath(MLP(LN(x)))``.

    Args:
        dim: token width D.
        num_heads: attention heads.
        grid: ``(T, S)`` or ``(T, H, W)``.
        mlp_ratio: MLP hidden width as a multiple of D.
        drop_path: stochastic depth rate.
        qkv_bias: see :class:`TrajectoryAttention`.
        attn_drop: see :class:`TrajectoryAttention`.
        proj_drop: dropout after the attention projection and inside the MLP.
        norm_layer: normalisation layer factory.
        act_layer: MLP activation.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid: tuple[int, int] | tuple[int, int, int],
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        act_layer: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = TrajectoryAttention(
            dim, num_heads, grid, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop
        )
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T*S, D) -> (B, T*S, D)``."""
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))
