"""Composition maskers: exactly K masked, exactly the requested number of moving tokens visible."""

from __future__ import annotations

import pytest
import torch

from tats_env.config import get_preset
from tats_env.mae.composition import COMPOSITION_MASKERS, HideMovingShare, ShowMoving, TemporalSplit
from tats_env.mae.masking import MASKERS

SPEC = get_preset("tiny32").video  # 256 tokens on a (4, 8, 8) grid
RATIO = 0.95
K = SPEC.num_masked(RATIO)
V = SPEC.num_tokens - K  # 13


def _foreground(shares: list[float], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(len(shares), SPEC.num_tokens, generator=g) < torch.tensor(shares)[:, None]


def _call(masker, foreground: torch.Tensor, seed: int = 1) -> torch.Tensor:
    videos = torch.zeros(len(foreground), 3, SPEC.num_frames, SPEC.image_size, SPEC.image_size)
    return masker(videos, SPEC, RATIO, generator=torch.Generator().manual_seed(seed), foreground=foreground)


@pytest.mark.parametrize("j", [0, 2, 4, 8])
def test_show_moving_shows_exactly_j_movers_and_masks_exactly_k(j):
    fg = _foreground([0.15, 0.3, 0.6, 0.1])
    mask = _call(ShowMoving(j), fg)
    assert mask.dtype == torch.bool and (mask.sum(1) == K).all()
    assert ((fg & ~mask).sum(1) == j).all()


def test_show_moving_caps_at_what_exists_and_fills_with_movers_when_static_runs_out():
    fg = _foreground([0.0, 0.01, 0.99])  # no mover; ~3 movers; ~3 static tokens
    mask = _call(ShowMoving(8), fg)
    assert (mask.sum(1) == K).all()
    shown = (fg & ~mask).sum(1)
    assert shown[0] == 0 and shown[1] == min(8, int(fg[1].sum()))
    static = int((~fg[2]).sum())
    assert shown[2] == V - static and ((~fg[2]) & mask[2]).sum() == 0  # every static token visible
    everything = _call(ShowMoving(None), _foreground([0.15, 0.3]))
    assert ((_foreground([0.15, 0.3]) & ~everything).sum(1) == V).all()  # as many movers as fit


def test_hide_share_hides_exactly_that_share_of_the_movers():
    fg = _foreground([0.15, 0.3, 0.05])
    mask = _call(HideMovingShare(0.9), fg)
    m = fg.sum(1)
    hidden = (fg & mask).sum(1)
    expected = torch.maximum(torch.round(0.9 * m.double()).long(), m - V)  # at most V movers can be visible
    assert torch.equal(hidden, expected) and (mask.sum(1) == K).all()


def test_temporal_split_shows_early_movers_only_and_hides_every_later_one():
    fg = _foreground([0.2, 0.4])
    mask = _call(TemporalSplit(4), fg)
    slot = torch.arange(SPEC.num_tokens) // SPEC.tokens_per_frame
    visible_movers = fg & ~mask
    assert (visible_movers.sum(1) == 4).all() and (mask.sum(1) == K).all()
    assert not visible_movers[:, slot >= SPEC.grid[0] // 2].any()


def test_masks_are_random_and_repeat_with_the_generator_seed():
    fg = _foreground([0.2, 0.2])
    a, b, c = _call(ShowMoving(4), fg, seed=3), _call(ShowMoving(4), fg, seed=3), _call(ShowMoving(4), fg, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_registry_names_and_a_clear_error_without_foreground():
    assert {"show_moving_0", "show_moving_all", "hide_moving_90", "temporal_split_4"} <= set(COMPOSITION_MASKERS)
    assert set(COMPOSITION_MASKERS) <= set(MASKERS)
    videos = torch.zeros(2, 3, SPEC.num_frames, SPEC.image_size, SPEC.image_size)
    with pytest.raises(ValueError, match="foreground"):
        ShowMoving(2)(videos, SPEC, RATIO)
    with pytest.raises(ValueError, match="share"):
        HideMovingShare(1.5)


def test_the_env_passes_foreground_to_composition_maskers(synthetic_root):
    from tats_env.env import make_vec_env

    env = make_vec_env(data=str(synthetic_root), preset="tiny", mask_ratio=0.9, num_envs=4)
    try:
        env.reset()
        fg = env.core.foreground_tokens()
        mask = env.core.fixed_masks(ShowMoving(2), torch.Generator().manual_seed(0))
        shown = (fg & ~mask).sum(1)
        assert torch.equal(shown, torch.clamp(fg.sum(1), max=2))
        _, _, _, infos = env.step(mask.numpy().astype("int8"))
        assert [info["moving_visible"] for info in infos] == shown.float().tolist()
    finally:
        env.close()
