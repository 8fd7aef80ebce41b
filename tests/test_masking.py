"""Fixed maskers: exact counts, device, structure, determinism."""

import pytest
import torch

from tats_env.config import get_preset
from tats_env.mae import MASKERS, get_masker, motion_energy_mask, running_cell_mask, token_foreground, topk_mask, tube_mask

SPEC = get_preset("tiny").video  # 8 x 8 x 8 = 512 tokens


@pytest.mark.parametrize("name", sorted(MASKERS))
@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9, 0.95])
def test_exact_count_dtype_device(name, ratio):
    videos = torch.randn(5, 3, SPEC.num_frames, SPEC.image_size, SPEC.image_size)
    masker = get_masker(name)
    extra = {}
    if getattr(masker, "needs_foreground", False):  # composition maskers: moving tokens of every share
        extra["foreground"] = torch.rand(5, SPEC.num_tokens) < torch.linspace(0.0, 1.0, 5)[:, None]
    mask = masker(videos, SPEC, ratio, generator=torch.Generator().manual_seed(1), **extra)
    assert mask.dtype == torch.bool
    assert mask.device == videos.device
    assert mask.shape == (5, SPEC.num_tokens)
    assert torch.all(mask.sum(1) == SPEC.num_masked(ratio))


def test_on_meta_device_stays_on_device():
    videos = torch.randn(2, 3, SPEC.num_frames, SPEC.image_size, SPEC.image_size, device="meta")
    scores = torch.randn(2, SPEC.num_tokens, device="meta")
    assert topk_mask(scores, 10).device.type == "meta"
    assert videos.device.type == "meta"


def test_seeded_maskers_are_reproducible_and_vary():
    videos = torch.randn(3, 3, SPEC.num_frames, SPEC.image_size, SPEC.image_size)
    for name in ("random", "tube", "running_cell"):
        masker = get_masker(name)
        a = masker(videos, SPEC, 0.9, generator=torch.Generator().manual_seed(7))
        b = masker(videos, SPEC, 0.9, generator=torch.Generator().manual_seed(7))
        c = masker(videos, SPEC, 0.9, generator=torch.Generator().manual_seed(8))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_tube_mask_is_tubes_plus_one_partial():
    videos = torch.randn(4, 3, SPEC.num_frames, SPEC.image_size, SPEC.image_size)
    t, h, w = SPEC.grid
    k = SPEC.num_masked(0.9)  # 461 = 57 full tubes of 8 + 5
    per_location = tube_mask(videos, SPEC, 0.9).reshape(4, t, h * w).sum(1)
    for row in per_location:
        counts = torch.bincount(row, minlength=t + 1)
        assert counts[t] == k // t
        assert counts[k % t] == 1
        assert counts.sum() == h * w


def test_running_cell_visible_tokens_move_through_cells():
    videos = torch.zeros(1, 3, SPEC.num_frames, SPEC.image_size, SPEC.image_size)
    t, h, w = SPEC.grid
    mask = running_cell_mask(videos, SPEC, 0.75).reshape(t, h, w)
    # at ratio 1 - 1/4 every 2x2 cell keeps exactly one visible token, at a new position each slot
    cells = (~mask).reshape(t, h // 2, 2, w // 2, 2).sum(dim=(2, 4))
    assert torch.all(cells == 1)
    assert not torch.equal(mask[0], mask[1])
    assert torch.equal(mask[0], mask[4])  # period of 4 slots for 2x2 cells


def test_motion_energy_masks_moving_region():
    videos = torch.zeros(2, 3, SPEC.num_frames, SPEC.image_size, SPEC.image_size)
    # a flickering square in the top-left 16x16 corner: 2x2 patches per slot move, the rest is still
    videos[:, :, 1::2, :16, :16] = 1.0
    energy_mask = motion_energy_mask(videos, SPEC, 0.1)
    fg = torch.zeros(2, SPEC.num_frames, SPEC.image_size, SPEC.image_size)
    fg[:, :, :16, :16] = 1
    on_fg = token_foreground(fg, SPEC)
    assert on_fg.sum(1).tolist() == [32, 32]
    # K = 51 > 32 moving tokens: all moving tokens must be masked
    assert torch.all(energy_mask[on_fg])
    sampled = motion_energy_mask(videos, SPEC, 0.1, temperature=0.1, generator=torch.Generator().manual_seed(0))
    assert torch.all(sampled.sum(1) == SPEC.num_masked(0.1))
    assert sampled[on_fg].float().mean() > 0.9


def test_topk_ties_break_to_lower_index():
    scores = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0]])
    assert topk_mask(scores, 2).tolist() == [[False, True, True, False, False]]


def test_unknown_masker_names_choices():
    with pytest.raises(KeyError, match="running_cell"):
        get_masker("nope")
