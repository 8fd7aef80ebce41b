"""Fixed token maskers, vectorised on the clips' device, with exact counts.

Every masker is called as ``masker(videos (B, C, T, H, W), spec, mask_ratio, generator=None)`` and
returns a bool ``(B, N)`` mask, True = masked, with exactly
``K = spec.num_masked(mask_ratio)`` masked tokens in every row, on the device of the input
clips. Exact counts everywhere mean any masker can stand in for a learned sampler in the
environment (whose action space is "exactly K of N"). Where the classic recipe's count
differs (tube masking masks whole tubes), the remainder is documented per masker.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from tats_env.config import VideoSpec
from tats_env.mae.composition import COMPOSITION_MASKERS
from tats_env.mae.masker_names import MASKER_NAMES, check_names


def topk_mask(scores: Tensor, k: int) -> Tensor:
    """Bool mask of the ``k`` highest scores along the last dim; ties go to the lower index (deterministic)."""
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    return mask.scatter_(-1, order[..., :k], True)


def _uniform(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, device=like.device, generator=generator)


def random_mask(
    videos: Tensor, spec: VideoSpec, mask_ratio: float, generator: torch.Generator | None = None
) -> Tensor:
    """Uniformly random K-of-N tokens per clip (MAE / VideoMAE random masking)."""
    b = videos.shape[0]
    return topk_mask(_uniform((b, spec.num_tokens), videos, generator), spec.num_masked(mask_ratio))


def tube_mask(
    videos: Tensor, spec: VideoSpec, mask_ratio: float, generator: torch.Generator | None = None
) -> Tensor:
    """VideoMAE tube masking: the same spatial positions masked in every temporal slot.

    ``K // T'`` whole tubes are masked; the remaining ``K % T'`` tokens come from one more
    tube (random temporal slots of it), so the count is exactly K like every other masker.
    """
    b = videos.shape[0]
    t, h, w = spec.grid
    k = spec.num_masked(mask_ratio)
    tube_priority = _uniform((b, 1, h * w), videos, generator).argsort(dim=2).argsort(dim=2).float()
    # Priorities of different tubes differ by >= 1; the in-tube noise (< 1) only orders the partial tube.
    in_tube = _uniform((b, t, 1), videos, generator)
    scores = tube_priority + in_tube
    return topk_mask(scores.reshape(b, -1), k)


def running_cell_mask(
    videos: Tensor,
    spec: VideoSpec,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    cell_size: int = 2,
) -> Tensor:
    """VideoMAE V2's running-cell masking, generalised to any ratio with an exact count.

    Each ``cell_size x cell_size`` cell ranks its positions by a phase that shifts by one at
    every temporal slot, so the visible positions run through the cell over time. With a
    ratio of ``1 - m / cell_size**2`` this is exactly V2's pattern; for other ratios the
    boundary phase is split at random. Each clip gets a random starting phase.
    """
    b = videos.shape[0]
    t, h, w = spec.grid
    c2 = cell_size * cell_size
    rows = torch.arange(h, device=videos.device) % cell_size
    cols = torch.arange(w, device=videos.device) % cell_size
    local = (rows[:, None] * cell_size + cols[None, :]).reshape(1, 1, h * w)
    step = torch.arange(t, device=videos.device).reshape(1, t, 1)
    start = torch.randint(0, c2, (b, 1, 1), device=videos.device, generator=generator)
    phase = (local + step + start) % c2
    scores = phase.float() + _uniform((b, t, h * w), videos, generator)
    return topk_mask(scores.reshape(b, -1), spec.num_masked(mask_ratio))


def token_motion_energy(videos: Tensor, spec: VideoSpec) -> Tensor:
    """Mean absolute frame difference inside each token ``(B, N)`` (the first frame reuses the second)."""
    diff = (videos[:, :, 1:] - videos[:, :, :-1]).abs().mean(dim=1)
    diff = torch.cat((diff[:, :1], diff), dim=1)
    kernel = (spec.tubelet_size, spec.patch_size, spec.patch_size)
    return F.avg_pool3d(diff.unsqueeze(1).float(), kernel, kernel).flatten(1)


def motion_energy_mask(
    videos: Tensor,
    spec: VideoSpec,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    temperature: float = 0.0,
) -> Tensor:
    """Mask the tokens with the most motion (frame-difference energy).

    ``temperature == 0`` masks the top-K energies; ``temperature > 0`` samples K tokens
    without replacement with probabilities ``softmax(energy_z / temperature)`` (Gumbel top-k),
    where ``energy_z`` is the energy standardised per clip.
    """
    energy = token_motion_energy(videos, spec)
    if temperature > 0:
        z = (energy - energy.mean(1, keepdim=True)) / (energy.std(1, keepdim=True) + 1e-6)
        gumbel = -torch.log(-torch.log(_uniform(tuple(z.shape), videos, generator).clamp_min(1e-20)))
        energy = z / temperature + gumbel
    return topk_mask(energy, spec.num_masked(mask_ratio))


def decoder_subset(
    mask: Tensor,
    videos: Tensor,
    spec: VideoSpec,
    decoder_mask_ratio: float,
    kind: str = "running_cell",
    generator: torch.Generator | None = None,
) -> Tensor:
    """VideoMAE V2's dual masking: which masked tokens the decoder reconstructs, bool ``(B, N)``, a subset of ``mask``.

    Every clip decodes exactly ``D = max(1, round((1 - decoder_mask_ratio) * K))`` of its K masked tokens,
    whatever the encoder mask (fixed or learned). ``running_cell``: the masked tokens that V2's running-cell
    decoder mask at ``decoder_mask_ratio`` leaves visible come first, ties and the rest broken at random (V2's
    choice whenever the two masks are compatible, an exact count when they are not); ``random``: D masked tokens
    uniformly at random (every masked token equally likely to be decoded, whatever the encoder mask).
    """
    if not 0.0 < decoder_mask_ratio < 1.0:
        raise ValueError(f"decoder_mask_ratio must be in (0, 1), got {decoder_mask_ratio}")
    k = int(mask[0].sum())
    keep = max(1, round((1.0 - decoder_mask_ratio) * k))
    noise = _uniform(tuple(mask.shape), videos, generator)
    if kind == "running_cell":
        priority = (~running_cell_mask(videos, spec, decoder_mask_ratio, generator)).float() + noise
    elif kind == "random":
        priority = noise
    else:
        raise ValueError(f"unknown decoder masking {kind!r}; choose 'running_cell' or 'random'")
    return topk_mask(priority.masked_fill(~mask, -1.0), keep)


MASKERS: dict[str, Callable[..., Tensor]] = {
    "random": random_mask,
    "tube": tube_mask,
    "running_cell": running_cell_mask,
    "motion_energy": motion_energy_mask,
    **COMPOSITION_MASKERS,  # oracles of controlled composition (need foreground masks): diagnosis
}
check_names(MASKERS, MASKER_NAMES)


def get_masker(name: str) -> Callable[..., Tensor]:
    """Look up a fixed masker by name (``random``, ``tube``, ``running_cell``, ``motion_energy`` and the
    composition maskers of :mod:`tats_env.mae.composition`)."""
    try:
        return MASKERS[name]
    except KeyError:
        raise KeyError(f"unknown masker {name!r}; choose one of {sorted(MASKERS)}") from None


def token_foreground(foreground: Tensor, spec: VideoSpec, threshold: float = 0.25) -> Tensor:
    """Which tokens lie on the foreground: pixel masks ``(B, T, H, W)`` -> bool ``(B, N)``.

    A token counts as foreground when at least ``threshold`` of its pixels are.
    """
    kernel = (spec.tubelet_size, spec.patch_size, spec.patch_size)
    share = F.avg_pool3d(foreground.unsqueeze(1).float(), kernel, kernel).flatten(1)
    return share >= threshold
