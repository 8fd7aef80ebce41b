"""Tests for the exact K-of-N (conditional-Poisson) mask distribution."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import pytest
import torch
from stable_baselines3.common.distributions import Distribution

from agents.kofn.distribution import (
    KOfNMaskDistribution,
    KSubsetDistribution,
    inclusion_probs,
    kofn_kl_divergence,
    log_esp,
    log_normalizer,
    sample_kofn,
    topk_mask,
)

SMALL_K = [1, 2, 3, 5]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    """Tensors here are tiny: intra-op threads only add sync cost (severe on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def all_subsets(n: int, k: int) -> torch.Tensor:
    """Every k-subset of range(n) as a (C(n, k), n) float64 0/1 matrix."""
    rows = []
    for subset in itertools.combinations(range(n), k):
        row = torch.zeros(n, dtype=torch.float64)
        row[list(subset)] = 1.0
        rows.append(row)
    return torch.stack(rows)


def enum_log_probs(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force: (subsets (C, n), log p (B, C)) by explicit normalisation."""
    subsets = all_subsets(scores.shape[-1], k)
    logits = scores @ subsets.T
    return subsets, logits - torch.logsumexp(logits, dim=-1, keepdim=True)


def enum_entropy(scores: torch.Tensor, k: int) -> torch.Tensor:
    _, logp = enum_log_probs(scores, k)
    return -(logp.exp() * logp).sum(-1)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-10) -> bool:
    """Tight float64 comparison (no loose default rtol)."""
    return torch.allclose(a, b.to(a.dtype), rtol=tol, atol=tol)


def small_scores(n: int = 6, batch: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, generator=gen, dtype=torch.float64) * 1.5


def chi2_critical(dof: int, z: float = 3.719) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z=3.719: p = 1e-4)."""
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + z * math.sqrt(c)) ** 3


@pytest.mark.parametrize("n", [1, 5, 6, 9])
def test_log_esp_matches_enumeration_every_degree(n: int) -> None:
    scores = small_scores(n)
    out = log_esp(scores, n)
    assert out.shape == (3, n + 1)
    assert close(out[:, 0], torch.zeros(3, dtype=torch.float64))
    for j in range(1, n + 1):
        expected = torch.logsumexp(scores @ all_subsets(n, j).T, dim=-1)
        assert close(out[:, j], expected), j
    # Truncated computation agrees with the full one.
    assert close(log_esp(scores, n // 2), out[:, : n // 2 + 1])


@pytest.mark.parametrize("k", SMALL_K)
def test_log_prob_and_normaliser_match_enumeration(k: int) -> None:
    scores = small_scores()
    subsets, logp = enum_log_probs(scores, k)
    assert close(log_normalizer(scores, k), torch.logsumexp(scores @ subsets.T, -1))
    dist = KSubsetDistribution(scores, k)
    for row in range(scores.shape[0]):
        lp = KSubsetDistribution(scores[row].expand(len(subsets), -1), k).log_prob(subsets)
        assert close(lp, logp[row])
        assert close(lp.exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    assert dist.log_prob(subsets[:3]).shape == (3,)


@pytest.mark.parametrize("k", SMALL_K)
def test_entropy_inclusion_and_kl_match_enumeration(k: int) -> None:
    scores = small_scores()
    other = small_scores(seed=1)
    subsets, logp = enum_log_probs(scores, k)
    _, logq = enum_log_probs(other, k)
    p = logp.exp()
    dist = KSubsetDistribution(scores, k)
    assert close(dist.entropy(), enum_entropy(scores, k))
    pi = dist.inclusion_probs()
    assert close(pi, p @ subsets)
    assert close(pi.sum(-1), torch.full((3,), float(k), dtype=torch.float64))
    assert close(inclusion_probs(scores, k), pi)
    kl = kofn_kl_divergence(dist, KSubsetDistribution(other, k))
    assert close(kl, (p * (logp - logq)).sum(-1))
    assert torch.all(kofn_kl_divergence(dist, KSubsetDistribution(scores + 3.0, k)) < 1e-12)


@pytest.mark.parametrize("k", SMALL_K)
def test_gradients_match_enumeration(k: int) -> None:
    base = small_scores()
    subsets, _ = enum_log_probs(base, k)
    actions = subsets[[0, len(subsets) // 2, -1]]

    s1 = base.clone().requires_grad_(True)
    dist = KSubsetDistribution(s1, k)
    loss = dist.log_prob(actions).sum() + 0.7 * dist.entropy().sum()
    g1, = torch.autograd.grad(loss, s1)

    s2 = base.clone().requires_grad_(True)
    _, logp = enum_log_probs(s2, k)
    idx = torch.tensor([0, len(subsets) // 2, len(subsets) - 1])
    ent = -(logp.exp() * logp).sum(-1)
    loss2 = logp.gather(1, idx[:, None]).sum() + 0.7 * ent.sum()
    g2, = torch.autograd.grad(loss2, s2)
    assert torch.isfinite(g1).all()
    assert close(g1, g2)
    # The entropy alone must carry a non-trivial gradient (the PPO entropy bonus).
    s3 = base.clone().requires_grad_(True)
    g3, = torch.autograd.grad(KSubsetDistribution(s3, k).entropy().sum(), s3)
    assert g3.abs().max() > 1e-3


@pytest.mark.parametrize("n,k", [(6, 1), (6, 2), (6, 3), (6, 5), (5, 2), (7, 4)])
def test_sampling_frequencies_match_enumeration(n: int, k: int) -> None:
    scores = small_scores(n, batch=1, seed=n + k)
    subsets, logp = enum_log_probs(scores, k)
    draws = 20_000
    gen = torch.Generator().manual_seed(1234)
    samples = sample_kofn(scores.expand(draws, -1), k, generator=gen)
    assert samples.dtype == torch.float64
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(samples.sum(-1) == k)
    # Index every sample by its subset code and compare counts with the exact probabilities.
    code = (samples * (2.0 ** torch.arange(n, dtype=torch.float64))).sum(-1).long()
    subset_code = (subsets * (2.0 ** torch.arange(n, dtype=torch.float64))).sum(-1).long()
    observed = (code[:, None] == subset_code[None, :]).sum(0).double()
    assert observed.sum() == draws
    expected = logp[0].exp() * draws
    chi2 = ((observed - expected) ** 2 / expected).sum().item()
    assert chi2 < chi2_critical(len(subsets) - 1), chi2


def test_sampling_marginals_large_tree() -> None:
    """Deeper tree with truncation (K < node sizes) and odd-level padding: compare marginals."""
    n, k, draws = 37, 9, 10_000
    scores = small_scores(n, batch=1, seed=7)
    dist = KSubsetDistribution(scores.expand(draws, -1), k)
    samples = dist.sample(generator=torch.Generator().manual_seed(0))
    assert torch.all(samples.sum(-1) == k)
    pi = inclusion_probs(scores, k)[0]
    freq = samples.mean(0)
    sigma = (pi * (1 - pi) / draws).sqrt()
    assert torch.all((freq - pi).abs() < 5 * sigma + 1e-9)


def test_sampling_is_reproducible_and_respects_extreme_scores() -> None:
    scores = torch.tensor([[50.0, -50.0, 49.0, -50.0, 48.0, -49.0, -50.0]])
    mask = sample_kofn(scores.expand(100, -1), 3)
    assert torch.all(mask == torch.tensor([1.0, 0, 1, 0, 1, 0, 0]))
    s = small_scores(11, batch=4)
    a = sample_kofn(s, 4, generator=torch.Generator().manual_seed(3))
    b = sample_kofn(s, 4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("k", SMALL_K)
def test_mode_is_top_k_and_most_likely(k: int) -> None:
    scores = small_scores()
    subsets, logp = enum_log_probs(scores, k)
    mode = KSubsetDistribution(scores, k).mode()
    assert torch.equal(mode, subsets[logp.argmax(-1)])
    ties = torch.tensor([[1.0, 2.0, 2.0, 1.0, 2.0, 0.0]])
    expected_ties = {1: [0, 1, 0, 0, 0, 0], 2: [0, 1, 1, 0, 0, 0], 3: [0, 1, 1, 0, 1, 0],
                     4: [1, 1, 1, 0, 1, 0], 5: [1, 1, 1, 1, 1, 0]}
    assert topk_mask(ties, k).tolist() == [expected_ties[k]]
    assert topk_mask(ties, 4).tolist() == [expected_ties[4]]


@pytest.mark.parametrize("n,k", [(1568, 157), (512, 461)])
@pytest.mark.parametrize("pattern", ["uniform", "bimodal"])
def test_numerical_stability_large(n: int, k: int, pattern: str) -> None:
    gen = torch.Generator().manual_seed(n + k)
    if pattern == "uniform":
        raw = (torch.rand(4, n, generator=gen) * 2 - 1) * 50
    else:
        raw = torch.where(torch.rand(4, n, generator=gen) < 0.5, 50.0, -50.0)
        raw[1] = 0.0  # all ties: the uniform distribution over C(n, k) subsets
    scores = raw.clone().requires_grad_(True)
    dist = KSubsetDistribution(scores, k)
    actions = dist.sample()
    assert torch.all(actions.sum(-1) == k)
    lp = dist.log_prob(actions)
    ent = dist.entropy()
    assert torch.isfinite(lp).all() and torch.all(lp <= 1e-3)
    assert torch.isfinite(ent).all() and torch.all(ent >= 0)
    log_binom = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    assert torch.all(ent <= log_binom + 1e-2 * log_binom)
    if pattern == "bimodal":  # equal scores: p is uniform, H = log C(n, k)
        assert abs(ent[1].item() - log_binom) < 1e-3 * log_binom
        assert abs(lp[1].item() + log_binom) < 1e-3 * log_binom
    (lp.sum() + ent.sum()).backward()
    assert torch.isfinite(scores.grad).all()
    # float32 agrees with float64 on the normaliser.
    z32 = log_normalizer(raw, k)
    z64 = log_normalizer(raw.double(), k)
    assert torch.allclose(z32.double(), z64, rtol=1e-5, atol=1e-2)
    with torch.no_grad():  # the graph of the tree was freed by backward()
        pi = dist.inclusion_probs()
    assert torch.all((pi >= -1e-5) & (pi <= 1 + 1e-5))
    assert torch.allclose(pi.sum(-1), torch.full((4,), float(k)), rtol=1e-4)


def test_complement_trick_is_exact() -> None:
    n = 10
    scores = small_scores(n, batch=2)
    for k in range(n + 1):
        direct = log_esp(scores, k)[:, k]  # log_esp never uses the complement
        assert close(log_normalizer(scores, k), direct)
        via_complement = log_normalizer(-scores, n - k) + scores.sum(-1)
        assert close(via_complement, direct)
    k = 7
    mask = sample_kofn(scores, k)
    p = KSubsetDistribution(scores, k)
    q = KSubsetDistribution(-scores, n - k)
    assert close(p.log_prob(mask), q.log_prob(1 - mask))
    assert close(p.entropy(), q.entropy())
    assert close(p.inclusion_probs(), 1 - q.inclusion_probs())


def test_shift_invariance_and_large_offsets() -> None:
    scores = small_scores()
    subsets, logp = enum_log_probs(scores, 3)
    shifted = KSubsetDistribution(scores + torch.tensor([[1000.0], [-700.0], [0.5]],
                                                        dtype=torch.float64), 3)
    lp = torch.stack([shifted.log_prob(subsets[i].expand(3, -1)) for i in range(len(subsets))], 1)
    assert close(lp, logp, 1e-9)


def test_entropy_without_grad_and_half_inputs() -> None:
    scores = small_scores().requires_grad_(True)
    with torch.no_grad():
        ent = KSubsetDistribution(scores, 2).entropy()
    assert ent.grad_fn is None
    assert close(ent, enum_entropy(scores.detach(), 2))
    with torch.inference_mode():
        assert close(KSubsetDistribution(scores, 2).entropy(), ent)
    half = scores.detach().to(torch.bfloat16)
    dist = KSubsetDistribution(half, 2)
    assert dist.entropy().dtype == torch.float32
    assert dist.sample().dtype == torch.bfloat16


def test_edge_cases_k_zero_and_full() -> None:
    scores = small_scores(4)
    for k in (0, 4):
        dist = KSubsetDistribution(scores, k)
        mask = dist.sample()
        assert torch.all(mask.sum(-1) == k)
        assert close(dist.log_prob(mask), torch.zeros(3, dtype=torch.float64))
        assert close(dist.entropy(), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError):
        log_normalizer(scores, 5)


def test_sb3_distribution_round_trip() -> None:
    n, k, batch, latent = 12, 4, 5, 7
    dist = KOfNMaskDistribution(n, k)
    assert isinstance(dist, Distribution)
    with pytest.raises(NotImplementedError, match="token head"):
        dist.proba_distribution_net(latent)
    head = torch.nn.Linear(latent, n)
    latent_x = torch.randn(batch, latent)
    scores = head(latent_x)
    assert dist.proba_distribution(scores) is dist
    actions = dist.sample()
    assert actions.shape == (batch, n) and actions.dtype == torch.float32
    assert torch.all(actions.sum(-1) == k)
    assert dist.log_prob(actions).shape == (batch,)
    ent = dist.entropy()
    assert ent.shape == (batch,)
    ent.sum().backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert torch.equal(dist.get_actions(deterministic=True), topk_mask(scores, k))
    acts = dist.actions_from_params(scores.detach(), deterministic=True)
    assert torch.equal(acts, topk_mask(scores, k))
    acts, lp = dist.log_prob_from_params(scores.detach())
    assert acts.shape == (batch, n) and lp.shape == (batch,)
    assert torch.all(lp <= 0)


def test_log_prob_rejects_wrong_number_of_ones() -> None:
    dist = KOfNMaskDistribution(6, 3).proba_distribution(torch.zeros(2, 6))
    bad = torch.tensor([[1.0, 1, 1, 0, 0, 0], [1.0, 1, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="K=3"):
        dist.log_prob(bad)
    with pytest.raises(ValueError, match="K=3"):
        dist.log_prob(torch.tensor([[2.0, 1, 0, 0, 0, 0]] * 2))
    unchecked = KOfNMaskDistribution(6, 3, validate_actions=False).proba_distribution(
        torch.zeros(2, 6)
    )
    assert unchecked.log_prob(bad).shape == (2,)


def _entropy_and_grad(dist: KSubsetDistribution, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distribution's entropy and its gradient w.r.t. ``scores`` (scores' .grad left untouched)."""
    entropy = dist.entropy()
    (grad,) = torch.autograd.grad(entropy.sum(), scores)
    return entropy.detach(), grad


@pytest.mark.parametrize("k", [3, 9])  # k = 9 of 12 takes the complement path
@pytest.mark.parametrize("first", ["log_prob", "entropy"])
def test_entropy_and_log_prob_after_backward_match_a_fresh_distribution(k: int, first: str) -> None:
    """A backward() through the cached product tree frees its graph: later calls must rebuild it, not fail."""
    scores = torch.randn(4, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(k)).requires_grad_()
    dist = KSubsetDistribution(scores, k)
    actions = dist.sample(torch.Generator().manual_seed(0))
    used = dist.log_prob(actions) if first == "log_prob" else dist.entropy()
    used.sum().backward()

    entropy, grad = _entropy_and_grad(dist, scores)
    fresh_entropy, fresh_grad = _entropy_and_grad(KSubsetDistribution(scores, k), scores)
    torch.testing.assert_close(entropy, fresh_entropy)
    torch.testing.assert_close(grad, fresh_grad)

    dist.entropy().sum().backward()  # and again, after a second backward through the rebuilt tree
    log_prob = dist.log_prob(actions)
    (grad,) = torch.autograd.grad(log_prob.sum(), scores)
    fresh = KSubsetDistribution(scores, k).log_prob(actions)
    (fresh_grad,) = torch.autograd.grad(fresh.sum(), scores)
    torch.testing.assert_close(log_prob.detach(), fresh.detach())
    torch.testing.assert_close(grad, fresh_grad)


def test_entropy_reuses_the_tree_of_log_prob_without_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuild only follows a backward: log_prob then entropy (PPO's minibatch) builds the tree once."""
    import agents.kofn.distribution as module

    builds = []
    real = module._product_tree

    def counted(logits: torch.Tensor, k: int) -> list[torch.Tensor]:
        builds.append(k)
        return real(logits, k)

    monkeypatch.setattr(module, "_product_tree", counted)
    scores = torch.randn(2, 10, requires_grad=True)
    dist = KSubsetDistribution(scores, 4)
    (dist.log_prob(dist.sample()) + dist.entropy()).sum().backward()
    assert len(builds) == 1
