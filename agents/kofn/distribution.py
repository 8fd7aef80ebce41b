"""Exact K-of-N mask distribution: the conditional-Poisson k-subset distribution.

A mask picks exactly ``K`` of ``N`` tokens (1 = masked). Given per-token scores ``s``,

    p(S) = exp(sum_{i in S} s_i) / e_K(exp(s)),   |S| = K,

where ``e_K`` is the K-th elementary symmetric polynomial. Everything is computed in log space,
batched over rows, on the scores' device and differentiable with autograd.

``e_0..e_K`` are the coefficients of ``prod_i (1 + exp(s_i) z)`` truncated to degree ``K``. They
are computed with a product tree: leaves ``[0, s_i]`` (log coefficients) are merged pairwise,
one batched log-sum-exp convolution per level, so there are ``log2 N`` levels instead of an
``O(N)`` Python loop. Level ``l`` holds ``N / 2^l`` polynomials of length ``min(2^l, K) + 1``;
the largest intermediate has ``O(B * N * K)`` entries. Exact sampling walks back down the same
tree: a node that must contribute ``c`` items gives ``j`` of them to its left child with
probability proportional to ``e_j(left) * e_{c-j}(right)``.

Masking ``K`` tokens is the same as keeping ``N - K`` visible ones, and with scores ``-s`` the
complement subset has the same probability. The distribution therefore works internally with
``min(K, N - K)`` (cost ``O(N * min(K, N-K))``) and with scores shifted by a per-row constant
(which leaves p(S) unchanged) to keep the log-normaliser small and float32 round-off low.

Entropy ``H = log e_K - sum_i pi_i s_i`` needs the inclusion probabilities
``pi = d log e_K / d s``; they are taken with ``torch.autograd.grad(create_graph=True)`` so the
entropy bonus itself has gradients (PPO then back-propagates through a double backward). The
tree is cached and shared by ``sample``, ``log_prob`` and ``entropy``; a ``backward()`` through it
frees its graph, so the distribution then builds a fresh one on the next differentiable call
(``log_prob`` or ``entropy`` after ``backward()`` gives the same values and gradients as a new
distribution).

Score range: the policy head should keep its scores bounded, e.g. ``c * tanh(raw / c)`` with
``c`` around 10. The distribution itself is tested to stay finite and exact for ``|s|`` up to
50; scores must be finite (no ``-inf`` for "never pick").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from stable_baselines3.common.distributions import Distribution
from torch import Tensor, nn

from tats_env.mae.masking import topk_mask as masking_topk

__all__ = [
    "log_esp", "log_normalizer", "inclusion_probs", "sample_kofn", "topk_mask",
    "KSubsetDistribution", "KOfNMaskDistribution", "kofn_kl_divergence",
]

# Finite stand-in for log(0): unlike -inf it keeps logsumexp gradients NaN-free when every
# term of a sum is "zero" (padding leaves), and it stays finite after the ~log2(N) additions
# of the tree.
_LOG_ZERO = -1e30


def _as_float(scores: Tensor) -> Tensor:
    """Promote half / bfloat16 scores to float32 (the tree needs the dynamic range)."""
    if not scores.is_floating_point():
        raise TypeError(f"scores must be a floating point tensor, got {scores.dtype}")
    if scores.dtype in (torch.float16, torch.bfloat16):
        return scores.float()
    return scores


def _check_k(n: int, k: int) -> None:
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, N={n}], got K={k}")


def _merge(a: Tensor, b: Tensor, k: int) -> Tensor:
    """Multiply polynomials pairwise in log space, truncated to degree ``k``.

    ``a`` and ``b`` are ``(B, P, L)`` log coefficients (degree 0 first); returns ``(B, P, L_out)``
    with ``L_out = min(2L - 1, k + 1)`` and ``out[c] = logsumexp_j a[j] + b[c - j]``.
    """
    la, lb = a.shape[-1], b.shape[-1]
    l_out = min(la + lb - 1, k + 1)
    # Pad b with log(0) so that b[c - j] exists for every (j, c); window w of the unfolded view
    # holds b[c - (la - 1 - w)] at position c, so pairing it with a reversed gives the convolution.
    b_pad = F.pad(b, (la - 1, max(0, l_out - lb)), value=_LOG_ZERO)
    windows = b_pad.unfold(-1, l_out, 1)[..., :la, :]  # (B, P, la, l_out) view, no copy
    terms = a.flip(-1).unsqueeze(-1) + windows
    return torch.logsumexp(terms, dim=-2)


def _unit_node(like: Tensor) -> Tensor:
    """The constant polynomial 1 in log space, shaped ``(B, 1, L)`` like ``like``."""
    node = like.new_full((like.shape[0], 1, like.shape[-1]), _LOG_ZERO)
    node[..., 0] = 0.0
    return node


def _product_tree(logits: Tensor, k: int) -> list[Tensor]:
    """All levels of the product tree of ``prod_i (1 + exp(logits_i) z)``, truncated to degree k.

    ``logits`` is ``(B, N)``. Level 0 holds the leaves ``(B, N', min(2, k+1))``; a level with an
    odd number of nodes gets one constant-1 node appended so it pairs up (``N'`` is N rounded up
    to even). The last level is the root ``(B, 1, k + 1)``.
    """
    level = torch.stack([torch.zeros_like(logits), logits], dim=-1)[..., : min(2, k + 1)]
    levels = []
    while True:
        if level.shape[1] > 1 and level.shape[1] % 2:
            level = torch.cat([level, _unit_node(level)], dim=1)
        levels.append(level)
        if level.shape[1] == 1:
            return levels
        level = _merge(level[:, 0::2], level[:, 1::2], k)


def _shift(logits: Tensor, k: int) -> Tensor:
    """Detached per-row constant: the mean of the top-k scores (0 when k = 0).

    Subtracting it makes the most likely subset's score ~0, so ``log e_k`` stays of the order of
    ``log C(N, k)`` instead of ``50 * k``. The gradient of ``log e_k`` is exactly invariant to the
    shift (inclusion probabilities sum to k), so detaching it is exact.
    """
    if k == 0:
        return logits.new_zeros(logits.shape[:-1] + (1,))
    return logits.detach().topk(k, dim=-1).values.mean(dim=-1, keepdim=True)


def _flatten(scores: Tensor) -> tuple[Tensor, torch.Size]:
    if scores.dim() < 1:
        raise ValueError("scores must have at least one dimension (the N tokens)")
    return scores.reshape(-1, scores.shape[-1]), scores.shape[:-1]


def log_esp(logits: Tensor, k: int) -> Tensor:
    """Log elementary symmetric polynomials ``log e_0 .. log e_k`` of ``exp(logits)``.

    Args:
        logits: scores of shape ``(*batch, N)``.
        k: highest degree, ``0 <= k <= N``.

    Returns:
        ``(*batch, k + 1)`` tensor; entry ``j`` is ``log e_j(exp(logits))``. Differentiable.
    """
    flat, batch = _flatten(_as_float(logits))
    _check_k(flat.shape[-1], k)
    c = _shift(flat, k)
    root = _product_tree(flat - c, k)[-1][:, 0]
    degrees = torch.arange(k + 1, device=flat.device, dtype=flat.dtype)
    return (root + degrees * c).reshape(*batch, k + 1)


def _canonical(scores: Tensor, k: int) -> tuple[Tensor, int, bool, Tensor]:
    """Map ``(scores, k)`` to the cheaper of the mask / visible-set problems, shifted.

    Returns ``(t, k', flip, c)``: ``k' = min(k, N - k)``, ``flip`` True when the problem is over
    the ``N - k`` visible tokens with negated scores, and ``t = ±scores - c`` with ``c`` the
    detached ``(B, 1)`` shift.
    """
    n = scores.shape[-1]
    _check_k(n, k)
    flip = n - k < k
    t = -scores if flip else scores
    kc = n - k if flip else k
    c = _shift(t, kc)
    return t - c, kc, flip, c


def log_normalizer(logits: Tensor, k: int) -> Tensor:
    """``log e_k(exp(logits))`` per row, shape ``(*batch,)``; cost ``O(N min(k, N-k))``."""
    flat, batch = _flatten(_as_float(logits))
    t, kc, flip, c = _canonical(flat, k)
    out = _product_tree(t, kc)[-1][:, 0, kc] + kc * c[:, 0]
    if flip:  # e_k(x) = prod(x) * e_{N-k}(1 / x)
        out = out + flat.sum(dim=-1)
    return out.reshape(batch)


def inclusion_probs(logits: Tensor, k: int) -> Tensor:
    """Marginal inclusion probabilities ``pi_i = P(i in S) = d log e_k / d s_i``, ``(*batch, N)``.

    Differentiable when ``logits`` requires grad and grad mode is on (double backward).
    """
    flat, _ = _flatten(logits)
    return KSubsetDistribution(flat, k).inclusion_probs().reshape(logits.shape)


@torch.no_grad()
def _sample_counts(
    levels: list[Tensor], n: int, k: int, generator: torch.Generator | None
) -> Tensor:
    """Exact k-subset sample from the product tree ``levels``; ``(B, n)`` int64 0/1 mask."""
    leaves = levels[0]
    bsz, device, dtype = leaves.shape[0], leaves.device, leaves.dtype
    if k == 0:
        return torch.zeros(bsz, n, dtype=torch.long, device=device)
    counts = torch.full((bsz, 1), k, dtype=torch.long, device=device)
    tiny = torch.finfo(dtype).tiny
    for children in reversed(levels[:-1]):
        left, right = children[:, 0::2], children[:, 1::2]  # (B, P, L)
        counts = counts[:, : left.shape[1]]  # drop the parent level's padding node
        width = left.shape[-1]
        j = torch.arange(width, device=device)
        rest = counts.unsqueeze(-1) - j  # items the right child must then take
        valid = (rest >= 0) & (rest < width)
        split = left + right.gather(-1, rest.clamp(0, width - 1))
        split = split.masked_fill(~valid, float("-inf"))
        u = torch.rand(split.shape, generator=generator, device=device, dtype=dtype)
        gumbel = -torch.log(-torch.log(u.clamp_min(tiny)))
        take = torch.argmax(split + gumbel, dim=-1)  # Gumbel-max: exact categorical draw
        counts = torch.stack([take, counts - take], dim=-1).reshape(bsz, -1)
    return counts[:, :n]


def sample_kofn(logits: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw one exact sample per row; ``(*batch, N)`` float {0, 1} mask with exactly k ones."""
    flat, batch = _flatten(_as_float(logits))
    t, kc, flip, _ = _canonical(flat.detach(), k)
    mask = _sample_counts(_product_tree(t, kc), t.shape[-1], kc, generator)
    if flip:
        mask = 1 - mask
    return mask.to(logits.dtype).reshape(*batch, flat.shape[-1])


def topk_mask(scores: Tensor, k: int) -> Tensor:
    """Most likely subset: the k highest scores, ties broken by the lower index. Float mask."""
    _check_k(scores.shape[-1], k)
    return masking_topk(scores.detach(), k).to(scores.dtype)


class KSubsetDistribution:
    """Conditional-Poisson distribution over k-subsets of N tokens with scores ``(B, N)``.

    Args:
        scores: per-token logits, shape ``(B, N)`` (any float dtype; half is computed in float32).
        k: subset size.
        validate: if True, ``log_prob`` checks that each action is a {0,1} mask with k ones
            (one host sync per call).
    """

    def __init__(self, scores: Tensor, k: int, validate: bool = True) -> None:
        if scores.dim() != 2:
            raise ValueError(f"scores must be (B, N), got shape {tuple(scores.shape)}")
        self.scores = scores
        self.k = k
        self.validate = validate
        self.num_tokens = scores.shape[-1]
        self._t, self._kc, self._flip, _ = _canonical(_as_float(scores), k)
        self._levels: list[Tensor] | None = None
        # Shared with the tree's backward hook (a dict, not self, so the hook keeps no cycle through the tree).
        self._graph_state = {"freed": False, "own_grad": False}

    def _needs_graph(self) -> bool:
        return torch.is_grad_enabled() and self._t.requires_grad

    def _tree(self) -> list[Tensor]:
        """Product tree of the canonical scores, cached (shared by sampling, log_prob and entropy).

        Rebuilt when a graph is needed and the cached tree has none, or when a ``backward()`` went through it
        (which frees its saved tensors).
        """
        stale = self._levels is None or (self._needs_graph() and (self._levels[-1].grad_fn is None
                                                                   or self._graph_state["freed"]))
        if stale:
            self._levels = _product_tree(self._t, self._kc)
            self._graph_state["freed"] = False
            self._watch_backward(self._levels[0])
        assert self._levels is not None
        return self._levels

    def _watch_backward(self, leaves: Tensor) -> None:
        """Flag the tree as freed when any backward other than :meth:`_pi_and_logz`'s own reaches its leaves.

        Every gradient from the tree to the scores passes the leaf level, so its node runs in every backward
        that may have freed the tree's saved tensors (a ``retain_graph=True`` backward only costs a rebuild).
        """
        if leaves.grad_fn is None:
            return
        state = self._graph_state

        def mark_freed(*_: object) -> None:
            if not state["own_grad"]:
                state["freed"] = True

        leaves.grad_fn.register_hook(mark_freed)

    def log_normalizer_shifted(self) -> Tensor:
        """``log e_k'`` of the canonical (complemented, shifted) scores, ``(B,)``."""
        return self._tree()[-1][:, 0, self._kc]

    def _canonical_mask(self, actions: Tensor) -> Tensor:
        a = actions.to(self._t.dtype)
        return 1.0 - a if self._flip else a

    def check_actions(self, actions: Tensor) -> None:
        """Raise ``ValueError`` unless ``actions`` is a ``(B, N)`` {0,1} mask with exactly k ones."""
        if actions.shape != self.scores.shape:
            raise ValueError(
                f"actions must have shape {tuple(self.scores.shape)}, got {tuple(actions.shape)}"
            )
        binary = (actions == 0) | (actions == 1)
        bad = ~binary.all(dim=-1) | (actions.sum(dim=-1) != self.k)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"each action must be a 0/1 mask with exactly K={self.k} ones; row {row} is not "
                f"(sum {actions[row].sum().item():g})"
            )

    def log_prob(self, actions: Tensor) -> Tensor:
        """Exact ``log p(actions)``, ``(B,)``: sum of chosen scores minus ``log e_k``."""
        if self.validate:
            self.check_actions(actions)
        chosen = (self._canonical_mask(actions) * self._t).sum(dim=-1)
        return chosen - self.log_normalizer_shifted()

    def _pi_and_logz(self) -> tuple[Tensor, Tensor]:
        """Canonical inclusion probabilities and ``log e_k'``, with the graph when needed."""
        if self._needs_graph():
            logz = self.log_normalizer_shifted()
            self._graph_state["own_grad"] = True  # create_graph=True keeps the tree: no rebuild needed
            try:
                (pi,) = torch.autograd.grad(logz.sum(), self._t, create_graph=True)
            finally:
                self._graph_state["own_grad"] = False
            return pi, logz
        # Values only: differentiate a detached copy (leaving inference mode if needed, since
        # inference tensors cannot be recorded by autograd).
        with torch.inference_mode(False), torch.enable_grad():
            t = self._t.detach().clone().requires_grad_(True)
            logz = _product_tree(t, self._kc)[-1][:, 0, self._kc]
            (pi,) = torch.autograd.grad(logz.sum(), t)
        return pi, logz.detach()

    def inclusion_probs(self) -> Tensor:
        """``P(i in S)`` for every token, ``(B, N)``; rows sum to k."""
        if self._kc == 0:
            return torch.full_like(self._t, float(self._flip))
        pi, _ = self._pi_and_logz()
        return 1.0 - pi if self._flip else pi

    def entropy(self) -> Tensor:
        """Closed-form entropy ``log e_k - sum_i pi_i s_i``, ``(B,)``, differentiable."""
        if self._kc == 0:
            return self._t.new_zeros(self._t.shape[0])
        pi, logz = self._pi_and_logz()
        h = logz - (pi * self._t).sum(dim=-1)
        return h.clamp_min(0.0)  # round-off can give -1e-6 for near-deterministic rows

    def inclusion_probs_and_entropy(self) -> tuple[Tensor, Tensor]:
        """``(inclusion_probs (B, N), entropy (B,))`` from ONE differentiation of ``log e_k``.

        What token-level PPO needs each minibatch; both carry the graph when the scores do.
        """
        if self._kc == 0:
            return self.inclusion_probs(), self.entropy()
        pi, logz = self._pi_and_logz()
        entropy = (logz - (pi * self._t).sum(dim=-1)).clamp_min(0.0)
        return (1.0 - pi if self._flip else pi), entropy

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Exact sample, ``(B, N)`` float {0,1} mask with exactly k ones per row."""
        levels = [level.detach() for level in self._tree()]
        mask = _sample_counts(levels, self.num_tokens, self._kc, generator)
        if self._flip:
            mask = 1 - mask
        return mask.to(self.scores.dtype)

    def mode(self) -> Tensor:
        """Most likely mask: top-k scores (ties -> lower index), ``(B, N)`` float."""
        return topk_mask(self.scores, self.k)

    def kl_divergence(self, other: KSubsetDistribution) -> Tensor:
        """``KL(self || other)`` for the same N and k: ``sum pi (s - s') - log Z + log Z'``."""
        if other.k != self.k or other.num_tokens != self.num_tokens:
            raise ValueError("KL needs two distributions with the same N and K")
        pi, logz = self._pi_and_logz()
        kl = (pi * (self._t - other._t)).sum(dim=-1) - logz + other.log_normalizer_shifted()
        return kl.clamp_min(0.0)


def kofn_kl_divergence(p: KSubsetDistribution, q: KSubsetDistribution) -> Tensor:
    """``KL(p || q)`` between two k-subset distributions with the same N and K, ``(B,)``."""
    return p.kl_divergence(q)


class KOfNMaskDistribution(Distribution):
    """Stable-baselines3 ``Distribution`` over binary masks with exactly ``k`` of ``num_tokens`` ones.

    Actions are float {0, 1} tensors ``(B, N)``, the layout SB3 stores for a ``MultiBinary(N)``
    action space. ``proba_distribution(scores)`` takes per-token scores ``(B, N)``, usually from
    the policy's own token head; keep them bounded (see the module docstring).

    Args:
        num_tokens: N.
        k: number of ones (masked tokens) per action.
        validate_actions: check in ``log_prob`` that actions have exactly k ones (ValueError).
    """

    distribution: KSubsetDistribution  # type: ignore[assignment]

    def __init__(self, num_tokens: int, k: int, validate_actions: bool = True) -> None:
        super().__init__()
        _check_k(num_tokens, k)
        self.num_tokens = num_tokens
        self.k = k
        self.validate_actions = validate_actions

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        """Not used: SB3's stock policies cannot drive a custom distribution, and :class:`agents.TATSPolicy`
        scores tokens with its own per-token head. Required by SB3's abstract ``Distribution``."""
        raise NotImplementedError("KOfNMaskDistribution takes per-token scores from the policy (TATSPolicy's "
                                  "token head); it builds no network of its own")

    def proba_distribution(self, action_logits: Tensor) -> KOfNMaskDistribution:
        """Set the per-token scores ``(B, N)``; returns self."""
        if action_logits.shape[-1] != self.num_tokens:
            raise ValueError(
                f"expected scores with last dim {self.num_tokens}, got {tuple(action_logits.shape)}"
            )
        scores = action_logits.reshape(-1, self.num_tokens)
        self.distribution = KSubsetDistribution(scores, self.k, validate=self.validate_actions)
        return self

    def log_prob(self, actions: Tensor) -> Tensor:
        """Exact log-likelihood of masks ``(B, N)``, shape ``(B,)``."""
        return self.distribution.log_prob(actions.reshape(-1, self.num_tokens))

    def entropy(self) -> Tensor:
        """Exact entropy, shape ``(B,)``."""
        return self.distribution.entropy()

    def sample(self) -> Tensor:
        """Exact sample ``(B, N)`` float mask with k ones per row."""
        return self.distribution.sample()

    def mode(self) -> Tensor:
        """Top-k mask ``(B, N)``."""
        return self.distribution.mode()

    def actions_from_params(self, action_logits: Tensor, deterministic: bool = False) -> Tensor:
        """Set the scores and return a sample (or the mode when ``deterministic``)."""
        self.proba_distribution(action_logits)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, action_logits: Tensor) -> tuple[Tensor, Tensor]:
        """Set the scores, sample, and return ``(actions, log_prob)``."""
        actions = self.actions_from_params(action_logits)
        return actions, self.log_prob(actions)
