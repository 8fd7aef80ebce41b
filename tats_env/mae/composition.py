"""Diagnostic maskers of controlled composition: exactly how many MOVING tokens stay visible.

These maskers read the clip's moving-foreground tokens (the synthetic dataset's stored masks;
any list file whose videos have foreground files), so they are oracles, not samplers a user
would train with. They answer one question a learned sampler cannot: which visible / hidden
composition of moving tokens does the encoder need? Every masker returns exactly
``K = spec.num_masked(mask_ratio)`` masked tokens per clip (True = masked), like the fixed
maskers of :mod:`tats_env.mae.masking`, so it can drive the masking env and the benchmark.

With N tokens, K masked, V = N - K visible and m moving tokens in a clip:

* :class:`ShowMoving` (``show_moving_<j>``): exactly ``min(j, m, V)`` moving tokens visible,
  the rest of the visible budget uniform at random among the static tokens (``j = None``: as
  many movers as fit, ``min(m, V)``). When a clip has fewer static tokens than the remaining
  budget, more movers are shown (the only way to keep exactly V visible).
* :class:`HideMovingShare` (``hide_moving_<q>``): exactly ``round(q m)`` movers hidden, i.e.
  ``m - round(q m)`` visible (capped at V), the rest random among the static tokens. A uniformly
  random mask hides ``K / N`` of the movers in expectation.
* :class:`TemporalSplit` (``temporal_split_<j>``): ``min(j, ...)`` movers visible, drawn only from
  the first half of the clip's temporal slots; every mover of the second half is hidden (the
  encoder sees where a mover starts and the decoder must predict where it goes).

Random tokens come from the ``generator`` (on the clips' device), so a seed gives the same masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tats_env.config import VideoSpec
from tats_env.mae.masker_names import COMPOSITION_MASKER_NAMES, check_names

__all__ = ["CompositionMasker", "ShowMoving", "HideMovingShare", "TemporalSplit", "COMPOSITION_MASKERS",
           "visible_moving_counts", "compose_visible"]


def _tiered_rank(tiers: list[Tensor], noise: Tensor) -> Tensor:
    """Random rank ``(B, N)`` of every token: members of ``tiers[0]`` first (in random order), then ``tiers[1]``, ...;
    tokens in no tier rank last."""
    keys = noise + float(len(tiers))
    for level in reversed(range(len(tiers))):
        keys = torch.where(tiers[level], noise + float(level), keys)
    return keys.argsort(dim=1).argsort(dim=1)


def compose_visible(candidates: Tensor, num_shown: Tensor, fill: list[Tensor], num_visible: int,
                    generator: torch.Generator | None = None) -> Tensor:
    """Masks ``(B, N)`` (True = masked) that show ``num_shown[b]`` random ``candidates`` and fill the rest of
    the ``num_visible`` budget with random tokens of ``fill[0]``, then of ``fill[1]``, ... .

    ``candidates`` and the ``fill`` sets are disjoint bool ``(B, N)`` sets; with
    ``num_shown <= candidates.sum(1)`` and ``num_visible - num_shown <= sum of the fill sets`` every row
    has exactly ``num_visible`` visible tokens.
    """
    shape = candidates.shape
    noise_a = torch.rand(shape, device=candidates.device, generator=generator)
    noise_b = torch.rand(shape, device=candidates.device, generator=generator)
    shown = candidates & (_tiered_rank([candidates], noise_a) < num_shown[:, None])
    pool = torch.zeros_like(candidates)
    for tier in fill:
        pool = pool | tier
    filled = pool & (_tiered_rank(fill, noise_b) < (num_visible - num_shown)[:, None])
    return ~(shown | filled)


def visible_moving_counts(moving: Tensor, wanted: Tensor, num_visible: int, candidates: Tensor | None = None) -> Tensor:
    """Movers to show per clip: ``wanted`` clipped to what exists and fits, and raised where the static tokens
    alone cannot fill the visible budget."""
    candidates = moving if candidates is None else candidates
    static = (~moving).sum(1)
    shown = torch.minimum(wanted, candidates.sum(1)).clamp(0, num_visible)
    return torch.maximum(shown, num_visible - static).clamp_max(candidates.sum(1))


@dataclass(frozen=True)
class CompositionMasker:
    """Base: a masker called as ``masker(videos, spec, mask_ratio, generator=None, foreground=...)``.

    ``foreground`` is the clips' moving tokens, bool ``(B, N)`` (see
    :func:`tats_env.mae.masking.token_foreground`); it is required.
    """

    needs_foreground = True
    """The masking env passes the batch's moving tokens to maskers that declare this."""

    def _shown(self, moving: Tensor, spec: VideoSpec, num_visible: int) -> tuple[Tensor, Tensor]:
        """The candidate movers to show ``(B, N)`` and how many of them ``(B,)``."""
        raise NotImplementedError

    def __call__(self, videos: Tensor, spec: VideoSpec, mask_ratio: float, generator: torch.Generator | None = None,
                 foreground: Tensor | None = None) -> Tensor:
        if foreground is None:
            raise ValueError(f"{type(self).__name__} needs the clips' moving tokens (foreground masks); this data "
                             "has none (use the synthetic dataset or videos with foreground files)")
        moving = foreground.bool().to(videos.device)
        if moving.shape != (videos.shape[0], spec.num_tokens):
            raise ValueError(f"foreground tokens have shape {tuple(moving.shape)}, expected "
                             f"{(videos.shape[0], spec.num_tokens)}")
        num_visible = spec.num_tokens - spec.num_masked(mask_ratio)
        candidates, shown = self._shown(moving, spec, num_visible)
        # Static tokens fill the rest of the budget; movers that are not candidates only where the static ones run out.
        return compose_visible(candidates, shown, [~moving, moving & ~candidates], num_visible, generator)


@dataclass(frozen=True)
class ShowMoving(CompositionMasker):
    """Exactly ``j`` moving tokens visible (``None``: as many as fit), the rest of the visible budget static."""

    j: int | None = 0

    def _shown(self, moving: Tensor, spec: VideoSpec, num_visible: int) -> tuple[Tensor, Tensor]:
        wanted = torch.full((moving.shape[0],), num_visible if self.j is None else self.j, device=moving.device)
        return moving, visible_moving_counts(moving, wanted, num_visible)


@dataclass(frozen=True)
class HideMovingShare(CompositionMasker):
    """Exactly ``round(share * m)`` of the clip's ``m`` movers hidden (the visible ones capped at the budget)."""

    share: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {self.share}")

    def _shown(self, moving: Tensor, spec: VideoSpec, num_visible: int) -> tuple[Tensor, Tensor]:
        m = moving.sum(1)
        wanted = m - torch.round(self.share * m.double()).long()
        return moving, visible_moving_counts(moving, wanted, num_visible)


@dataclass(frozen=True)
class TemporalSplit(CompositionMasker):
    """``j`` movers visible, all from the first half of the temporal slots; every later mover hidden."""

    j: int = 4

    def _shown(self, moving: Tensor, spec: VideoSpec, num_visible: int) -> tuple[Tensor, Tensor]:
        t, h, w = spec.grid
        slot = torch.arange(spec.num_tokens, device=moving.device) // (h * w)
        early = moving & (slot < max(1, t // 2))[None, :]
        wanted = torch.full((moving.shape[0],), self.j, device=moving.device)
        return early, visible_moving_counts(moving, wanted, num_visible, candidates=early)


COMPOSITION_MASKERS: dict[str, CompositionMasker] = {
    **{f"show_moving_{j}": ShowMoving(j) for j in (0, 2, 4, 8)},
    "show_moving_all": ShowMoving(None),
    **{f"hide_moving_{round(100 * q)}": HideMovingShare(q) for q in (0.8, 0.9)},
    "temporal_split_4": TemporalSplit(4),
}
"""The diagnostic maskers by registry name (``show_moving_<j>``, ``hide_moving_<percent>``, ``temporal_split_<j>``)."""

check_names(COMPOSITION_MASKERS, COMPOSITION_MASKER_NAMES)
