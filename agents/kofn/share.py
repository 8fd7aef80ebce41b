"""Policy share: the learned sampler picks only a share of one side of the mask, the rest is uniform.

A K-of-N mask has K masked and V = N - K visible tokens. With a policy share ``alpha`` on the
``masked`` side (mask-hard: the sampler chooses which tokens to hide), the policy draws
``c = round(alpha * K)`` tokens from the exact conditional-Poisson distribution of
:mod:`agents.kofn.distribution` and the other ``K - c`` masked tokens are drawn uniformly from the
``N - c`` tokens it did not choose (HPM's "top predicted-loss share + random rest"). On the
``visible`` side (show-hard: the sampler chooses which tokens to show) the policy draws ``c =
round(alpha * V)`` visible tokens with the negated scores and the other ``V - c`` visible tokens
are uniform. ``alpha = 1`` is the plain K-subset distribution; ``alpha = 0`` is uniform random masking.

Scores keep one meaning on both sides: a higher score makes a token more likely to be MASKED.

Exact quantities (all checked against brute-force enumeration in the tests):

* inclusion of token i in the chosen side: ``q_i = pi_i + (1 - pi_i) * r`` with ``pi_i`` the
  policy part's inclusion probability and ``r = (m - c) / (N - c)`` (m the side's size); the
  masked-token probability is ``q_i`` (masked side) or ``1 - q_i`` (visible side). It is affine in
  ``pi_i``, so token-level PPO's per-token ratio ``q_i / q_i_old`` stays exact and unbiased;
* ``log P(mask)``: the side set ``A`` (``|A| = m``) arises from every policy subset ``P`` inside it,
  ``P(A) = e_c(x_A) / e_c(x) / C(N - c, m - c)`` with ``x = exp(side scores)``;
* the policy part's entropy ``H(P)`` and its uniform maximum ``log C(N, c)`` (the entropy floor acts on
  it: the random rest adds entropy the sampler does not control).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from agents.kofn.distribution import KSubsetDistribution, log_normalizer, topk_mask

__all__ = ["ShareSide", "PolicyShareDistribution", "chosen_count", "log_binomial"]

ShareSide = Literal["masked", "visible"]
"""Which side of the mask the policy chooses a share of: ``masked`` (mask-hard) or ``visible`` (show-hard)."""


def log_binomial(n: int, k: int) -> float:
    """``log C(n, k)`` (0 for k in {0, n})."""
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def chosen_count(share: float, side_size: int) -> int:
    """Tokens the policy chooses: ``round(share * side_size)``, at least 1 when ``share > 0``."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"policy share must be in [0, 1], got {share}")
    if share == 0.0 or side_size == 0:
        return 0
    return min(side_size, max(1, round(share * side_size)))


class PolicyShareDistribution:
    """K-of-N masks whose ``side`` is chosen ``share`` by the policy and the rest uniformly (module docstring).

    Args:
        scores: ``(B, N)`` masking scores (higher = more likely masked).
        k: masked tokens per clip.
        side: ``masked`` or ``visible``.
        share: the policy's share of that side, in [0, 1].
    """

    def __init__(self, scores: Tensor, k: int, side: ShareSide, share: float) -> None:
        if scores.dim() != 2:
            raise ValueError(f"scores must be (B, N), got shape {tuple(scores.shape)}")
        if side not in ("masked", "visible"):
            raise ValueError(f"unknown side {side!r}; choose 'masked' or 'visible'")
        n = scores.shape[-1]
        if not 0 <= k <= n:
            raise ValueError(f"k must be in [0, N={n}], got K={k}")
        self.scores, self.k, self.side, self.share = scores, k, side, share
        self.num_tokens = n
        self.side_size = k if side == "masked" else n - k
        self.chosen = chosen_count(share, self.side_size)
        self.side_scores = scores if side == "masked" else -scores
        self.policy = KSubsetDistribution(self.side_scores, self.chosen, validate=False)
        self.rest_share = (self.side_size - self.chosen) / max(n - self.chosen, 1)
        """``r``: the probability that a token the policy did not choose joins the side."""

    def _to_mask(self, side_set: Tensor) -> Tensor:
        return side_set if self.side == "masked" else 1.0 - side_set

    def _side_set(self, mask: Tensor) -> Tensor:
        return mask if self.side == "masked" else 1.0 - mask

    def side_inclusion(self, pi: Tensor) -> Tensor:
        """``q = pi + (1 - pi) r``: probability that each token ends up on the chosen side."""
        return pi + (1.0 - pi) * self.rest_share

    def inclusion_probs(self) -> Tensor:
        """``P(token i masked)``, ``(B, N)``; rows sum to K; differentiable when the scores are."""
        return self._to_mask(self.side_inclusion(self.policy.inclusion_probs()))

    def inclusion_probs_and_entropy(self) -> tuple[Tensor, Tensor]:
        """Masked-token probabilities ``(B, N)`` and the policy part's entropy ``(B,)`` from one differentiation."""
        pi, entropy = self.policy.inclusion_probs_and_entropy()
        return self._to_mask(self.side_inclusion(pi)), entropy

    def entropy(self) -> Tensor:
        """Exact entropy of the policy part (nats), ``(B,)``."""
        return self.policy.entropy()

    def uniform_entropy(self) -> float:
        """The policy part's largest possible entropy, ``log C(N, c)``."""
        return log_binomial(self.num_tokens, self.chosen)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Exact sample: ``(B, N)`` float {0,1} masks with exactly K ones."""
        picked = self.policy.sample(generator).detach()
        rest = self.side_size - self.chosen
        if rest:
            u = torch.rand(picked.shape, generator=generator, device=picked.device, dtype=torch.float32)
            u = u.masked_fill(picked > 0.5, -1.0)  # never re-draw a token the policy chose
            picked = picked + topk_mask(u, rest).to(picked.dtype)
        return self._to_mask(picked).to(self.scores.dtype)

    def mode(self) -> Tensor:
        """Most likely mask: the K highest scores (the side's most likely members), ``(B, N)`` float."""
        return topk_mask(self.scores, self.k)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Exact ``log P(actions)`` of masks ``(B, N)`` summed over every policy subset inside the side set."""
        side_set = self._side_set(actions.to(self.side_scores.dtype)) > 0.5
        if bool((side_set.sum(-1) != self.side_size).any()):
            raise ValueError(f"each action must mask exactly K={self.k} of N={self.num_tokens} tokens")
        c, n, m = self.chosen, self.num_tokens, self.side_size
        members = self.side_scores[side_set].reshape(-1, m)  # each row holds its side's m scores in order
        inside = log_normalizer(members, c) if c else members.new_zeros(members.shape[0])
        total = log_normalizer(self.side_scores, c) if c else inside
        return inside - total - log_binomial(n - c, m - c)
