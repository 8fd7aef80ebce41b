"""Spatial transforms: multi-scale crop, eval crops, mask alignment and normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tats_env.config import IMAGENET_DEFAULT_MEAN as MEAN, IMAGENET_DEFAULT_STD as STD
from tats_env.data.transforms import (
    CropBox,
    EvalTransform,
    TrainTransform,
    apply_crop,
    denormalize,
    eval_crop_boxes,
    multiscale_crop_box,
    normalize,
)


def _box_clip(t: int = 4, h: int = 48, w: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Black clip with a white rectangle whose position changes per frame; mask = the rectangle."""
    video = torch.zeros(t, h, w, 3, dtype=torch.uint8)
    mask = torch.zeros(t, h, w, dtype=torch.bool)
    for i in range(t):
        mask[i, 10 + i : 26 + i, 5 + 6 * i : 25 + 6 * i] = True
    video[mask] = 255
    return video, mask


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def test_multiscale_crop_sizes_offsets_and_no_flip_by_default() -> None:
    rng = np.random.default_rng(0)
    h, w, size = 120, 160, 64
    sides = [int(120 * s) for s in (1.0, 0.875, 0.75, 0.66)]  # 120, 105, 90, 79
    seen_sides = set()
    for _ in range(500):
        box = multiscale_crop_box(h, w, size, rng)
        assert box.height in sides and box.width in sides
        assert abs(sides.index(box.height) - sides.index(box.width)) <= 1  # max_distort 1
        assert 0 <= box.top <= h - box.height and 0 <= box.left <= w - box.width
        # fixed offsets sit on the quarter lattice of the free space
        assert box.left in {q * (w - box.width) // 4 for q in range(5)}
        assert box.top in {q * (h - box.height) // 4 for q in range(5)}
        assert not box.flip
        seen_sides.add((box.height, box.width))
    assert len(seen_sides) == 10  # 4 square pairs + 6 one-step distortions


def test_random_offsets_and_flip_probability() -> None:
    rng = np.random.default_rng(1)
    boxes = [multiscale_crop_box(100, 200, 32, rng, fix_crop=False, flip_prob=0.5) for _ in range(400)]
    lefts = {b.left for b in boxes}
    assert len(lefts) > 40  # not restricted to 5 lattice positions
    flips = sum(b.flip for b in boxes)
    assert 140 < flips < 260


def test_crop_snaps_to_image_size_within_three_pixels() -> None:
    rng = np.random.default_rng(2)
    heights = {multiscale_crop_box(66, 66, 64, rng).height for _ in range(200)}
    assert 64 in heights and 66 not in heights


def test_train_transform_mask_follows_crop_and_flip() -> None:
    video, mask = _box_clip()
    transform = TrainTransform(32, MEAN, STD, flip_prob=0.5)
    rng = np.random.default_rng(3)
    masks = []
    for _ in range(12):
        clip, out_mask = transform(video, mask, rng=rng)
        assert clip.shape == (3, 4, 32, 32) and clip.dtype == torch.float32
        assert out_mask is not None and out_mask.shape == (4, 32, 32) and out_mask.dtype == torch.float32
        assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
        bright = denormalize(clip, MEAN, STD).mean(0) > 0.5  # (T, S, S)
        assert _iou(bright, out_mask.bool()) > 0.85
        masks.append(out_mask)
    assert any(not torch.equal(masks[0], m) for m in masks[1:])


def test_apply_crop_exact_slice_without_resize_and_flip() -> None:
    video = torch.randint(0, 256, (3, 40, 50, 3), dtype=torch.uint8)
    mask = torch.rand(3, 40, 50) > 0.5
    frames, out_mask = apply_crop(video, CropBox(5, 7, 32, 32, flip=True), 32, mask)
    expected = video[:, 5:37, 7:39].permute(0, 3, 1, 2).float().flip(-1)
    torch.testing.assert_close(frames, expected)
    assert torch.equal(out_mask.bool(), mask[:, 5:37, 7:39].flip(-1))
    with pytest.raises(ValueError, match="outside"):
        apply_crop(video, CropBox(20, 0, 32, 32), 32)


def test_eval_boxes_centre_and_three_views() -> None:
    assert eval_crop_boxes(48, 64, 32) == [CropBox(0, 8, 48, 48)]
    assert [b.left for b in eval_crop_boxes(48, 64, 32, spatial_views=3)] == [0, 8, 16]
    assert [b.top for b in eval_crop_boxes(64, 48, 32, spatial_views=3)] == [0, 8, 16]
    # short side resized to 64 then a 32 crop = a 24-pixel square of the 48-pixel short side
    assert eval_crop_boxes(48, 64, 32, short_side=64) == [CropBox(12, 20, 24, 24)]
    with pytest.raises(ValueError, match="short_side"):
        eval_crop_boxes(48, 64, 32, short_side=16)


def test_eval_transform_values_and_views() -> None:
    video = torch.randint(0, 256, (2, 32, 48, 3), dtype=torch.uint8)
    clip, mask = EvalTransform(32, MEAN, STD)(video)
    assert mask is None
    expected = normalize(video[:, :, 8:40].permute(0, 3, 1, 2).float(), MEAN, STD)
    torch.testing.assert_close(clip, expected)
    _, fg = _box_clip(2, 32, 48)
    views, view_masks = EvalTransform(32, MEAN, STD, spatial_views=3)(video, fg)
    assert views.shape == (3, 3, 2, 32, 32) and view_masks.shape == (3, 2, 32, 32)
    torch.testing.assert_close(views[1], expected)
    assert torch.equal(view_masks[0].bool(), fg[:, :, 0:32])
    assert torch.equal(view_masks[2].bool(), fg[:, :, 16:48])


def test_normalize_uses_mean_std_and_denormalize_inverts() -> None:
    frames = torch.empty(2, 3, 4, 4)
    for c in range(3):
        frames[:, c] = 255.0 * MEAN[c]
    out = normalize(frames, MEAN, STD)
    assert out.shape == (3, 2, 4, 4)
    torch.testing.assert_close(out, torch.zeros_like(out), atol=1e-5, rtol=0)
    white = normalize(torch.full((1, 3, 2, 2), 255.0), MEAN, STD)
    torch.testing.assert_close(white[:, 0, 0, 0], torch.tensor([(1 - m) / s for m, s in zip(MEAN, STD)]))
    torch.testing.assert_close(denormalize(white, MEAN, STD), torch.ones_like(white))


def test_bad_shapes_are_reported() -> None:
    transform = TrainTransform(32, MEAN, STD)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\(T, H, W, C\)"):
        transform(torch.zeros(3, 32, 32, dtype=torch.uint8), rng=rng)
    with pytest.raises(ValueError, match="uint8"):
        transform(torch.zeros(2, 32, 32, 3), rng=rng)
    with pytest.raises(ValueError, match=r"mask shape \(2, 30, 32\)"):
        transform(torch.zeros(2, 32, 32, 3, dtype=torch.uint8), torch.zeros(2, 30, 32), rng=rng)
    with pytest.raises(ValueError, match="C=3"):
        normalize(torch.zeros(2, 4, 8, 8), MEAN, STD)
