"""Token-level credit assignment for K-of-N masking: per-token advantages and the per-token PPO surrogate.

Notation: a clip has N tokens; the policy draws the masked set S (|S| = K) from the exact
conditional-Poisson distribution p_theta(S) ~ exp(sum_{i in S} s_i); pi_i(theta) = P(i in S) are
its inclusion probabilities (sum_i pi_i = K for every theta). The MAE reports the error e_i(S) of
every masked token i in S; the clip reward is R(S) = (1/K) sum_{i in S} e_i(S).

**Objective.** Per-token advantages A_i(S) (see :func:`token_advantages`) define

    J(theta) = (1/K) sum_i pi_i(theta) * Abar_i,   Abar_i = E_{S ~ p_old}[A_i(S) | i in S],

the expected per-token credit of the masked set under the policy. Because pi_i / pi_i_old is the
exact importance weight of the marginal event {i in S}, the per-token surrogate

    L(theta) = (1/K) sum_{i in S} A_i(S) * pi_i(theta) / pi_i_old,   S ~ p_old,

is an unbiased estimate of J(theta) at EVERY theta, not only near theta_old (the joint ratio
p(S)/p_old(S) of scalar PPO, a product over ~50 visible-token factors, is not needed). At
theta = theta_old its gradient is (1/K) sum_{i in S} A_i grad log pi_i, an unbiased estimate of
grad J = (1/K) sum_i Abar_i grad pi_i. PPO's clipping is applied per token:
min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i) with r_i = pi_i / pi_i_old.

**Relation to the clip reward.** With c_i(theta) = E_theta[e_i(S) | i in S],
E_theta[R] = (1/K) sum_i pi_i(theta) c_i(theta), so

    grad E[R] = (1/K) sum_i c_i grad pi_i  +  (1/K) sum_i pi_i grad c_i.

With A_i = e_i - b (b a per-clip constant, independent of S) the estimator follows exactly the
first term, the direct effect of moving masking probability between tokens whose errors are held
at their current values; it drops the second, interaction term (how the choice of visible tokens
changes the other tokens' errors). Any per-clip constant b leaves the gradient unbiased, since
sum_i grad pi_i = grad K = 0; a per-token baseline would not (it changes J), so there is no
per-token critic. The default ``relative`` advantage divides by the clip's mean masked error
(A_i = e_i / ebar_S - 1, scale-free across clips and across the MAE's training); ebar_S depends
on S only through an O(1/K) share, a small bias this module accepts. ``direction`` flips the
sign: ``mask_hard`` ascends J (hard tokens get masked), ``show_hard`` descends it (masking
probability moves to easy tokens, so hard tokens become visible; AdaMAE's effective rule).
"""

from __future__ import annotations

import torch
from torch import Tensor

from agents.kofn.directions import DEFAULT_DIRECTION, REWARD_MODE, AdvantageKind, Direction, direction_sign

__all__ = ["Direction", "DEFAULT_DIRECTION", "REWARD_MODE", "AdvantageKind", "direction_sign", "token_advantages",
           "observed_tokens", "token_policy_loss",
           "bernoulli_kl"]

def token_advantages(errors: Tensor, mask: Tensor, direction: Direction = DEFAULT_DIRECTION,
                     kind: AdvantageKind = "relative") -> Tensor:
    """Per-token advantages ``(B, N)`` from the per-token errors and the masks (0 at visible tokens).

    Args:
        errors: ``(B, N)`` per-token errors; values at visible tokens are ignored (NaN allowed).
        mask: ``(B, N)`` bool, True = masked (the tokens whose error was observed).
        direction: sign convention, see :data:`Direction`.
        kind: baseline and scale, see :data:`AdvantageKind`. ``ebar`` is the clip's mean masked
            error, so ``relative`` and ``centered`` advantages average to 0 over a clip's masked tokens.

    A masked token whose error is NaN was not observed (the decoder skipped it under dual masking) and gets
    no credit; a clip with an infinite error at a masked token (a diverged MAE step, whose reward the env zeroes
    too) gets none at all: all its advantages are 0.
    """
    dtype = torch.promote_types(errors.dtype, torch.float32)  # half -> float32; float64 stays
    errors = errors.to(dtype)
    mask = observed_tokens(errors, mask)
    clip_ok = (torch.isfinite(errors) | ~mask).all(1, keepdim=True)
    mask = mask & clip_ok
    e = torch.where(mask, errors, torch.zeros((), dtype=dtype, device=errors.device))
    if kind == "raw":
        adv = e
    else:
        ebar = e.sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp_min(1)
        if kind == "relative":
            adv = e / ebar.clamp_min(torch.finfo(dtype).tiny) - 1.0
        elif kind == "centered":
            adv = e - ebar
        else:
            raise ValueError(f"unknown advantage kind {kind!r}; choose 'relative', 'centered' or 'raw'")
    return torch.where(mask, adv * direction_sign(direction), torch.zeros_like(adv))


def observed_tokens(errors: Tensor, mask: Tensor) -> Tensor:
    """Masked tokens whose error was measured, ``(B, N)`` bool: ``mask`` minus the NaN errors.

    Under dual masking (``--mae.decoder-mask-ratio``) the decoder reconstructs a subset of the masked tokens
    drawn independently of the sampler's scores, so restricting the per-token surrogate to it keeps the
    estimator unbiased up to a constant factor (exactly so for ``random`` decoder masking, where every masked
    token is decoded with the same probability).
    """
    return mask.bool() & ~torch.isnan(errors)


def token_policy_loss(inclusion: Tensor, old_inclusion: Tensor, advantages: Tensor, mask: Tensor,
                      clip_range: float | None) -> tuple[Tensor, Tensor]:
    """Per-token clipped PPO surrogate (to minimise) and the clipped share of masked tokens.

    ``-(1 / |masked|) sum_{masked i} min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i)`` with
    ``r_i = inclusion_i / old_inclusion_i``; the mean runs over every masked token of the batch
    (each clip contributes its K tokens, i.e. the (1/K) sum of the module docstring averaged over
    clips). ``clip_range=None`` gives the unclipped importance-weighted surrogate.

    Args:
        inclusion: ``(B, N)`` inclusion probabilities under the current policy (with the graph).
        old_inclusion: ``(B, N)`` inclusion probabilities of the policy that sampled ``mask``.
        advantages: ``(B, N)`` per-token advantages (only masked entries are used).
        mask: ``(B, N)`` bool sampled masks.
        clip_range: PPO's epsilon, or None.
    """
    mask = mask.bool()
    ratio = inclusion / old_inclusion.clamp_min(torch.finfo(torch.float32).tiny)
    surrogate = ratio * advantages
    if clip_range is not None:
        surrogate = torch.minimum(surrogate, ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * advantages)
        clipped = ((ratio - 1.0).abs() > clip_range) & mask
    else:
        clipped = torch.zeros_like(mask)
    count = mask.sum().clamp_min(1)
    loss = -(surrogate * mask).sum() / count
    return loss, clipped.sum().float() / count


def bernoulli_kl(p: Tensor, q: Tensor) -> Tensor:
    """Mean over tokens of ``KL(Bernoulli(p_i) || Bernoulli(q_i))``: how far the per-token marginals moved."""
    eps = 1e-7
    p, q = p.clamp(eps, 1 - eps), q.clamp(eps, 1 - eps)
    return (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean()
