"""Tests for trajectory attention: SDPA module vs einsum reference vs an explicit loop."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from agents.policies.trajectory_attention import (
    TrajectoryAttention,
    TrajectoryBlock,
    trajectory_attention_reference,
)

GRIDS = [(2, 2, 3), (1, 4), (1, 2, 3), (3, 5), (4, 2, 2), (2, 1), (3, 3, 2)]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    """Tensors here are tiny: intra-op threads only add sync cost (severe on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_attention(grid: tuple[int, ...], dim: int = 24, heads: int = 3,
                   dtype: torch.dtype = torch.float64, seed: int = 0,
                   std: float = 0.3) -> TrajectoryAttention:
    torch.manual_seed(seed)
    attn = TrajectoryAttention(dim, heads, grid).to(dtype).eval()
    with torch.no_grad():  # non-trivial biases so every parameter matters
        for p in attn.parameters():
            p.normal_(0.0, std)
    return attn


def num_tokens(grid: tuple[int, ...]) -> int:
    return math.prod(grid)


def loop_definition(x: torch.Tensor, attn: TrajectoryAttention) -> torch.Tensor:
    """Trajectory attention written token by token, straight from the definition (batch 1)."""
    t, s, h, d = attn.num_frames, attn.num_spatial, attn.num_heads, attn.head_dim
    n, dim = x.shape[1], attn.dim
    q, k, v = attn.qkv(x[0]).view(n, 3, h, d).unbind(1)
    out = []
    for qi in range(n):
        traj = torch.zeros(t, h, d, dtype=x.dtype)
        for f in range(t):
            for hh in range(h):
                keys, vals = k[f * s:(f + 1) * s, hh], v[f * s:(f + 1) * s, hh]
                w = torch.softmax(keys @ q[qi, hh] / math.sqrt(d), dim=0)
                traj[f, hh] = w @ vals
        traj = traj.reshape(t, dim)
        q2 = attn.proj_q(traj[qi // s]).view(h, d)
        k2, v2 = attn.proj_kv(traj).view(t, 2, h, d).unbind(1)
        heads = []
        for hh in range(h):
            w = torch.softmax(k2[:, hh] @ q2[hh] / math.sqrt(d), dim=0)
            heads.append(w @ v2[:, hh])
        out.append(attn.proj(torch.cat(heads)))
    return torch.stack(out)[None]


@pytest.mark.parametrize("grid", GRIDS)
def test_matches_reference_values_and_gradients_float64(grid: tuple[int, ...]) -> None:
    attn = make_attention(grid)
    x = torch.randn(2, num_tokens(grid), 24, dtype=torch.float64, requires_grad=True)
    out = attn(x)
    ref = trajectory_attention_reference(x, attn)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)

    probe = torch.randn_like(out)
    params = [x, *attn.parameters()]
    grads = torch.autograd.grad((out * probe).sum(), params)
    grads_ref = torch.autograd.grad((ref * probe).sum(), params)
    names = ["x", *(name for name, _ in attn.named_parameters())]
    for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-10)
        # With a single frame the temporal softmax is constant, so W_q2 gets no gradient (up to
        # float64 round-off of the softmax's backward, ~1e-12 on some kernels).
        assert (g.abs().sum() > 1e-9) != (grid[0] == 1 and name.startswith("proj_q")), name


@pytest.mark.parametrize("grid", [(2, 2, 3), (1, 4), (4, 2, 2)])
def test_matches_reference_float32(grid: tuple[int, ...]) -> None:
    attn = make_attention(grid, dtype=torch.float32, std=0.1)
    x = torch.randn(3, num_tokens(grid), 24, requires_grad=True)
    out, ref = attn(x), trajectory_attention_reference(x, attn)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    gx, = torch.autograd.grad(out.square().sum(), x)
    gx_ref, = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid", [(2, 3), (3, 2), (1, 3)])
def test_reference_follows_the_definition(grid: tuple[int, ...]) -> None:
    attn = make_attention(grid, dim=8, heads=2)
    x = torch.randn(1, num_tokens(grid), 8, dtype=torch.float64)
    expected = loop_definition(x, attn)
    torch.testing.assert_close(trajectory_attention_reference(x, attn), expected,
                               rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(attn(x), expected, rtol=1e-10, atol=1e-10)


def test_equivariant_to_spatial_and_frame_permutations() -> None:
    """No positional information inside the layer: permuting positions permutes outputs.

    The same spatial permutation in every frame, or a permutation of whole frames, must commute
    with the layer; a layout bug (e.g. reading tokens as space-major) breaks this.
    """
    t, s = 3, 4
    attn = make_attention((t, s))
    x = torch.randn(2, t * s, 24, dtype=torch.float64)
    grid_idx = torch.arange(t * s).view(t, s)
    for perm in (grid_idx[:, torch.tensor([2, 0, 3, 1])], grid_idx[torch.tensor([1, 2, 0])]):
        perm = perm.reshape(-1)
        torch.testing.assert_close(attn(x[:, perm]), attn(x)[:, perm], rtol=1e-10, atol=1e-10)
    # Mixing tokens across frames is *not* a symmetry (softmax is per frame).
    swap = torch.arange(t * s)
    swap[[0, s]] = swap[[s, 0]]
    swap[[1, s + 1]] = swap[[s + 1, 1]]
    assert not torch.allclose(attn(x[:, swap]), attn(x)[:, swap])


def test_rejects_wrong_shapes() -> None:
    attn = TrajectoryAttention(16, 4, (2, 2, 2))
    assert attn.num_tokens == 8
    with pytest.raises(ValueError, match="T=2, S=4"):
        attn(torch.randn(1, 9, 16))
    with pytest.raises(ValueError):
        TrajectoryAttention(10, 4, (2, 2))
    with pytest.raises(ValueError):
        TrajectoryAttention(16, 4, (2,))


def test_dropout_only_in_training() -> None:
    attn = TrajectoryAttention(16, 2, (2, 3), attn_drop=0.5)
    x = torch.randn(2, 6, 16)
    attn.eval()
    torch.testing.assert_close(attn(x), trajectory_attention_reference(x, attn))
    attn.train()
    torch.manual_seed(0)
    assert not torch.allclose(attn(x), trajectory_attention_reference(x, attn))


def test_block_forward_backward() -> None:
    grid = (2, 2, 2)
    block = TrajectoryBlock(32, 4, grid, mlp_ratio=2.0, drop_path=0.1)
    x = torch.randn(3, 8, 32, requires_grad=True)
    block.train()
    out = block(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    block.eval()
    with torch.no_grad():
        y = block(x)
        # Pre-norm residual structure, checked against the module's own parts.
        h = x + block.attn(block.norm1(x))
        torch.testing.assert_close(y, h + block.mlp(block.norm2(h)))
