"""The action space "exactly K of N tokens masked" (single and batched), and checking / repairing actions against it."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from tats_env.env.config import InvalidActionMode  # re-exported: its old home
from tats_env.mae.masking import topk_mask




class KOfNMask(spaces.MultiBinary):
    """``MultiBinary(N)`` restricted to masks with exactly ``K`` ones (1 = masked).

    ``sample()`` draws a uniformly random legal mask (int8, like ``MultiBinary``);
    ``contains()`` also checks the count, so gymnasium's and SB3's checkers test legality.
    """

    def __init__(self, n: int, k: int, seed: int | np.random.Generator | None = None) -> None:
        if not 0 < k < n:
            raise ValueError(f"KOfNMask needs 0 < k < n, got k={k}, n={n}")
        super().__init__(n, seed=seed)
        self.k = int(k)

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """A random mask with exactly K ones (``mask``/``probability`` are not supported)."""
        if mask is not None or probability is not None:
            raise ValueError("KOfNMask.sample() draws uniform K-of-N masks; mask/probability are not supported")
        out = np.zeros(self.n, dtype=np.int8)
        out[self.np_random.choice(int(self.n), size=self.k, replace=False)] = 1
        return out

    def contains(self, x: Any) -> bool:
        """True for a {0, 1} array of shape ``(N,)`` with exactly K ones."""
        if not super().contains(x):
            return False
        return int(np.asarray(x).sum()) == self.k

    def __repr__(self) -> str:
        return f"KOfNMask(n={self.n}, k={self.k})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, KOfNMask) and self.n == other.n and self.k == other.k


class BatchedKOfNMask(spaces.MultiBinary):
    """``num_envs`` rows of :class:`KOfNMask`: ``MultiBinary((num_envs, N))`` with exactly ``K`` ones per row.

    The batched action space of :class:`~tats_env.env.vector_env.VideoMaskingVectorEnv`, and what gymnasium's
    ``batch_space`` makes of a :class:`KOfNMask` (so ``gym.make_vec(..., vectorization_mode="sync")`` keeps
    the constraint too). ``sample()`` draws every row uniformly and independently (int8).
    """

    def __init__(self, num_envs: int, n: int, k: int, seed: int | np.random.Generator | None = None) -> None:
        if num_envs < 1:
            raise ValueError(f"BatchedKOfNMask needs num_envs >= 1, got {num_envs}")
        if not 0 < k < n:
            raise ValueError(f"BatchedKOfNMask needs 0 < k < n, got k={k}, n={n}")
        super().__init__((int(num_envs), int(n)), seed=seed)
        self.num_envs, self.k = int(num_envs), int(k)

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """``(num_envs, N)`` int8, each row a uniformly random mask with exactly K ones."""
        if mask is not None or probability is not None:
            raise ValueError("BatchedKOfNMask.sample() draws uniform K-of-N masks; mask/probability are not supported")
        num_envs, n = (int(d) for d in self.n)
        # The K smallest of N i.i.d. uniforms sit at a uniformly random K-subset of the positions.
        chosen = np.argpartition(self.np_random.random((num_envs, n)), self.k - 1, axis=1)[:, : self.k]
        out = np.zeros((num_envs, n), dtype=np.int8)
        np.put_along_axis(out, chosen, 1, axis=1)
        return out

    def contains(self, x: Any) -> bool:
        """True for a {0, 1} array of shape ``(num_envs, N)`` with exactly K ones in every row."""
        if not super().contains(x):
            return False
        return bool((np.asarray(x).sum(axis=1) == self.k).all())

    def __repr__(self) -> str:
        return f"BatchedKOfNMask(num_envs={self.num_envs}, n={int(self.n[1])}, k={self.k})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, BatchedKOfNMask) and self.n == other.n and self.k == other.k


@batch_space.register(KOfNMask)
def _batch_kofn(space: KOfNMask, n: int = 1) -> BatchedKOfNMask:
    """gymnasium's ``batch_space`` for :class:`KOfNMask` (its MultiBinary rule would drop the count)."""
    return BatchedKOfNMask(n, int(space.n), space.k, seed=copy.deepcopy(space.np_random))


def action_to_mask(
    actions: np.ndarray | torch.Tensor,
    num_envs: int,
    space: KOfNMask,
    invalid_action: InvalidActionMode = "raise",
) -> tuple[torch.Tensor, np.ndarray]:
    """Check a batch of actions ``(B, N)`` against ``space``; return bool masks and a repaired flag per row.

    Wrong shape, non-numeric dtype, NaN or values other than 0/1 always raise ``ValueError``
    naming the expected space. A wrong number of ones raises (pointing to
    :class:`tats_env.TopKScoreAction`) unless ``invalid_action="repair"``: then the first
    surplus ones (by token index) are cleared, or the first zeros are set, deterministically,
    and the row is flagged.
    """
    n, k = int(space.n), space.k
    arr = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
    expected = f"{space} actions of shape ({num_envs}, {n}) with values in {{0, 1}} and exactly {k} ones"
    if arr.shape != (num_envs, n):
        raise ValueError(f"expected {expected}; got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"expected {expected}; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(f"expected {expected}; got NaN")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"expected {expected}; got values {np.unique(arr)[:8].tolist()}")
    mask = torch.from_numpy(arr.astype(bool, copy=True))
    counts = mask.sum(dim=1)
    wrong = counts != k
    repaired = wrong.numpy().copy()
    if bool(wrong.any()):
        if invalid_action != "repair":
            rows = torch.nonzero(wrong).flatten().tolist()
            raise ValueError(
                f"expected {expected}; rows {rows[:8]} have {counts[wrong][:8].tolist()} ones. "
                "Algorithms with free-form actions should drive the env through tats_env.TopKScoreAction "
                "(Box scores, top-K masked), or create the env with invalid_action='repair'."
            )
        mask[wrong] = repair_masks(mask[wrong], k)
    return mask, repaired


def repair_masks(mask: torch.Tensor, k: int) -> torch.Tensor:
    """Deterministically fix the count of each row: keep existing ones first, lowest indices first."""
    n = mask.shape[1]
    # Existing ones rank above zeros; among equals the lower index wins (stable top-K).
    scores = mask.float() * 2 - torch.arange(n, dtype=torch.float32) / n
    return topk_mask(scores, k)


def scores_to_mask(scores: np.ndarray | torch.Tensor, k: int) -> torch.Tensor:
    """Top-K of per-token scores ``(B, N)`` -> bool mask; NaN scores raise ``ValueError``."""
    t = torch.as_tensor(scores, dtype=torch.float32)
    if torch.isnan(t).any():
        raise ValueError("score actions contain NaN")
    return topk_mask(t, k)
