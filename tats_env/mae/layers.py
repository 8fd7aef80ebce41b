"""ViT building blocks with VideoMAE's parameter names, on ``F.scaled_dot_product_attention``.

Names follow the original VideoMAE code so that state dicts map one-to-one:
``patch_embed.proj``, ``blocks.N.norm1``, ``blocks.N.attn.qkv`` (no bias) plus
``blocks.N.attn.q_bias`` / ``blocks.N.attn.v_bias`` (the key has no bias),
``blocks.N.attn.proj``, ``blocks.N.norm2``, ``blocks.N.mlp.fc1`` / ``fc2``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from tats_env.config import VideoSpec


class PatchEmbed3d(nn.Module):
    """Tubelet embedding: a strided ``Conv3d`` from ``(B, C, T, H, W)`` to tokens ``(B, N, D)``.

    Tokens come out time-major (index ``t * H' * W' + h * W' + w``), as in VideoMAE.
    """

    def __init__(self, spec: VideoSpec, embed_dim: int) -> None:
        super().__init__()
        self.spec = spec
        kernel = (spec.tubelet_size, spec.patch_size, spec.patch_size)
        self.proj = nn.Conv3d(spec.in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, videos: Tensor) -> Tensor:
        """Embed a batch of clips; raises ``ValueError`` naming the expected shape."""
        spec = self.spec
        expected = (spec.in_chans, spec.num_frames, spec.image_size, spec.image_size)
        if videos.ndim != 5 or tuple(videos.shape[1:]) != expected:
            raise ValueError(
                f"expected videos of shape (B, {', '.join(map(str, expected))}) = (B, C, T, H, W), "
                f"got {tuple(videos.shape)}"
            )
        return self.proj(videos).flatten(2).transpose(1, 2)

    def forward_selected(self, videos: Tensor, keep: Tensor) -> Tensor:
        """Embed only the tokens where ``keep`` ``(B, N)`` is True (the same count per row): ``(B, kept, D)``.

        The strided convolution is a linear map of each tubelet, so the kept tubelets are gathered
        first and multiplied by the same weights: equal to ``forward(videos)[keep]`` up to float
        summation order, at the cost of the kept tokens only (10% of them at mask ratio 0.9).
        """
        spec = self.spec
        if videos.ndim != 5 or tuple(videos.shape[1:]) != (spec.in_chans, spec.num_frames, spec.image_size,
                                                            spec.image_size):
            return self.forward(videos)  # raises the error that names the expected shape
        b, c, t, h, w = videos.shape
        pt, p = spec.tubelet_size, spec.patch_size
        tubelets = videos.reshape(b, c, t // pt, pt, h // p, p, w // p, p).permute(0, 2, 4, 6, 1, 3, 5, 7)
        tubelets = tubelets.reshape(b, -1, c * pt * p * p)[keep].reshape(b, -1, c * pt * p * p)
        return F.linear(tubelets, self.proj.weight.reshape(self.proj.out_channels, -1), self.proj.bias)


class Attention(nn.Module):
    """Multi-head self-attention with VideoMAE's ``qkv`` + ``q_bias``/``v_bias`` layout."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Attend over all tokens of ``x`` ``(B, L, D)``."""
        b, n, d = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``(B, L, D)`` tokens."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def run_blocks(blocks: nn.ModuleList, x: Tensor, use_checkpoint: bool) -> Tensor:
    """Run ``blocks`` in order, with activation checkpointing while training if asked."""
    for block in blocks:
        if use_checkpoint and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x


def sincos_position_table(num_positions: int, dim: int) -> Tensor:
    """VideoMAE's fixed 1-D sin-cos table ``(1, num_positions, dim)``, interleaved.

    Entry ``[0, pos, j]`` is ``sin(pos / 10000^(2*(j//2)/dim))`` for even ``j`` and the
    cosine of the same angle for odd ``j`` (not the concatenated layout of MAE/BERT).
    """
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    exponent = 2 * (torch.arange(dim, dtype=torch.float64) // 2) / dim
    angles = position / torch.pow(10000.0, exponent)
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float().unsqueeze(0)


def separable_position_table(grid: tuple[int, int, int], dim: int) -> Tensor:
    """Separable 3-D sin-cos table ``(1, T' * H' * W', dim)`` in token order (time-major).

    The channels are split into three bands, one per axis (``w`` and ``h`` get ``2 * (dim // 6)``
    channels each, ``t`` the rest); each band is the 1-D interleaved table of
    :func:`sincos_position_table` evaluated at that axis' coordinate, so tokens at the same
    time step share their time band exactly (unlike the 1-D table over the flat index).
    """
    if dim % 2 or dim < 6:
        raise ValueError(f"a separable 3-D position table needs an even width >= 6, got {dim}")
    t, h, w = grid
    spatial = 2 * (dim // 6)
    bands = (dim - 2 * spatial, spatial, spatial)
    coords = torch.stack(torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"), -1)
    coords = coords.reshape(-1, 3)
    parts = [sincos_position_table(size, width)[0, coords[:, axis]]
             for axis, (size, width) in enumerate(zip(grid, bands, strict=True))]
    return torch.cat(parts, dim=1).unsqueeze(0)


def position_table(spec: VideoSpec, dim: int, kind: str) -> Tensor:
    """The fixed position table of ``kind`` (``"1d"``: VideoMAE's, ``"3d"``: separable) for ``spec``'s tokens."""
    if kind == "1d":
        return sincos_position_table(spec.num_tokens, dim)
    if kind == "3d":
        return separable_position_table(spec.grid, dim)
    raise ValueError(f"unknown position table {kind!r}; choose '1d' or '3d'")


def init_vit_weights(module: nn.Module) -> None:
    """VideoMAE initialisation: xavier-uniform linears with zero bias, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv3d):
        # Treat the tubelet projection as a linear layer, as MAE does for its patch embedding.
        fan_out = module.out_channels
        fan_in = module.weight[0].numel()
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        nn.init.uniform_(module.weight, -bound, bound)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
