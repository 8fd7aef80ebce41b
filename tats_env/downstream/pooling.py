"""How a clip's token features become one feature vector: shared by the frozen probe and the classifier head.

* ``"mean"``: mean over all tokens (``D`` features; VideoMAE's fine-tuning head; discards the
  order of events and where they happen).
* ``"time"``: mean over space for each temporal slot (``T' x D``).
* ``"quadrants"``: mean over each quarter of the frame (top-left, top-right, bottom-left,
  bottom-right token blocks) at each temporal slot (``T' x 4 x D``). Keeps *where* and *when*
  coarsely, which motion classes need; needs an even token grid side.
"""

from __future__ import annotations

from torch import Tensor

from tats_env.downstream.protocol_config import POOLINGS, Pooling  # re-exported: their old home

__all__ = ["POOLINGS", "Pooling", "check_pooling", "num_regions", "pool_regions", "pool_tokens"]




def check_pooling(grid: tuple[int, int, int], pooling: str) -> None:
    """Raise ``ValueError`` when ``pooling`` is unknown or cannot split a ``(T', H', W')`` token grid."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "quadrants" and (grid[1] % 2 or grid[2] % 2):
        raise ValueError(f"'quadrants' pooling needs an even token grid, got {grid[1]}x{grid[2]} tokens per frame "
                         "(image_size / patch_size must be even)")


def pool_regions(tokens: Tensor, grid: tuple[int, int, int], pooling: Pooling) -> Tensor:
    """``(B, N, D)`` token features -> ``(B, R, D)``: the mean feature of each of the ``R`` pooled regions."""
    check_pooling(grid, pooling)
    if pooling == "mean":
        return tokens.mean(dim=1, keepdim=True)
    b, n, d = tokens.shape
    t, h, w = grid
    if n != t * h * w:
        raise ValueError(f"{n} tokens do not fill the token grid {grid}")
    if pooling == "time":
        return tokens.reshape(b, t, h * w, d).mean(dim=2)
    x = tokens.reshape(b, t, 2, h // 2, 2, w // 2, d).mean(dim=(3, 5))  # (b, t, row half, col half, d)
    return x.reshape(b, t * 4, d)


def pool_tokens(tokens: Tensor, grid: tuple[int, int, int], pooling: Pooling) -> Tensor:
    """``(B, N, D)`` token features -> ``(B, R * D)``: the pooled regions concatenated."""
    return pool_regions(tokens, grid, pooling).flatten(1)


def num_regions(grid: tuple[int, int, int], pooling: Pooling) -> int:
    """How many regions ``pooling`` makes of a ``(T', H', W')`` token grid."""
    check_pooling(grid, pooling)
    return {"mean": 1, "time": grid[0], "quadrants": 4 * grid[0]}[pooling]
