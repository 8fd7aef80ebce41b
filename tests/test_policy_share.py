"""The policy-share distribution against brute-force enumeration at small N."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from agents.kofn.share import PolicyShareDistribution, chosen_count


def subsets(n: int, k: int) -> list[tuple[int, ...]]:
    return list(itertools.combinations(range(n), k))


def enumerated_mask_probs(scores: torch.Tensor, k: int, side: str, share: float) -> dict[tuple[int, ...], float]:
    """P(masked set) by summing p(policy subset) x uniform(rest) over every way the mask can arise."""
    n = scores.numel()
    m = k if side == "masked" else n - k
    c = chosen_count(share, m)
    side_scores = scores if side == "masked" else -scores
    policy = {p: math.exp(float(side_scores[list(p)].sum())) for p in subsets(n, c)}
    z = sum(policy.values())
    probs: dict[tuple[int, ...], float] = {}
    for side_set in subsets(n, m):
        total = sum(w for p, w in policy.items() if set(p) <= set(side_set)) / z / math.comb(n - c, m - c)
        masked = side_set if side == "masked" else tuple(i for i in range(n) if i not in side_set)
        probs[masked] = total
    return probs


def as_mask(n: int, masked: tuple[int, ...]) -> torch.Tensor:
    row = torch.zeros(n, dtype=torch.float64)
    row[list(masked)] = 1.0
    return row


@pytest.mark.parametrize("side,k,share", [("masked", 3, 0.5), ("masked", 5, 0.4), ("visible", 3, 0.5),
                                          ("visible", 2, 1.0), ("masked", 3, 0.0)])
def test_log_prob_inclusion_and_entropy_equal_enumeration(side, k, share):
    n = 7
    scores = torch.randn(n, generator=torch.Generator().manual_seed(k), dtype=torch.float64) * 1.5
    probs = enumerated_mask_probs(scores, k, side, share)
    assert sum(probs.values()) == pytest.approx(1.0)
    dist = PolicyShareDistribution(scores[None], k, side, share)
    masks = torch.stack([as_mask(n, s) for s in probs])
    exact = torch.tensor(list(probs.values()), dtype=torch.float64)
    log_p = PolicyShareDistribution(scores.expand(len(masks), n), k, side, share).log_prob(masks)
    torch.testing.assert_close(log_p.exp(), exact, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(dist.inclusion_probs()[0], exact @ masks, rtol=1e-9, atol=1e-12)
    # The policy part's entropy by enumeration of its own c-subsets.
    m = k if side == "masked" else n - k
    c = chosen_count(share, m)
    side_scores = scores if side == "masked" else -scores
    weights = torch.tensor([float(side_scores[list(p)].sum()) for p in subsets(n, c)], dtype=torch.float64)
    p = torch.softmax(weights, 0)
    assert float(dist.entropy()[0]) == pytest.approx(float(-(p * p.log()).sum()), abs=1e-9)
    assert dist.uniform_entropy() == pytest.approx(math.log(math.comb(n, c)))


def test_sampling_frequencies_match_enumeration():
    n, k, side, share = 6, 2, "visible", 0.5
    scores = torch.tensor([2.0, -1.0, 0.5, 0.0, -2.0, 1.0])
    probs = enumerated_mask_probs(scores.double(), k, side, share)
    draws = 40_000
    dist = PolicyShareDistribution(scores.expand(draws, n), k, side, share)
    masks = dist.sample(torch.Generator().manual_seed(0))
    assert torch.all(masks.sum(1) == k)
    counts: dict[tuple[int, ...], int] = {}
    for row in masks.bool():
        key = tuple(int(i) for i in row.nonzero().flatten())
        counts[key] = counts.get(key, 0) + 1
    for masked, p in probs.items():
        sd = math.sqrt(p * (1 - p) / draws)
        assert abs(counts.get(masked, 0) / draws - p) < 5 * sd + 1e-4, masked


def test_inclusion_gradient_is_the_enumerated_gradient():
    n, k, side, share = 7, 4, "masked", 0.5
    scores = torch.randn(n, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    weights = torch.arange(n, dtype=torch.float64)
    (PolicyShareDistribution(scores[None], k, side, share).inclusion_probs()[0] @ weights).backward()
    grad = scores.grad.clone()
    scores.grad = None
    probs = enumerated_mask_probs(scores.detach(), k, side, share)
    # Finite differences of the enumerated objective.
    eps, numeric = 1e-6, torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        for sign in (1, -1):
            shifted = scores.detach().clone()
            shifted[i] += sign * eps
            p = enumerated_mask_probs(shifted, k, side, share)
            numeric[i] += sign * sum(v * float(as_mask(n, s) @ weights) for s, v in p.items()) / (2 * eps)
    assert sum(probs.values()) == pytest.approx(1.0)
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-7)


def test_share_one_is_the_plain_distribution_and_share_zero_is_uniform():
    from agents.kofn.distribution import KSubsetDistribution

    scores = torch.randn(3, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    full = PolicyShareDistribution(scores, 4, "masked", 1.0)
    torch.testing.assert_close(full.inclusion_probs(), KSubsetDistribution(scores, 4).inclusion_probs())
    uniform = PolicyShareDistribution(scores, 4, "visible", 0.0)
    torch.testing.assert_close(uniform.inclusion_probs(), torch.full_like(scores, 4 / 9))
    with pytest.raises(ValueError, match="policy share"):
        PolicyShareDistribution(scores, 4, "masked", 1.5)
    with pytest.raises(ValueError, match="exactly K=4"):
        full.log_prob(torch.zeros(3, 9, dtype=torch.float64))
