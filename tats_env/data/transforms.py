"""Spatial clip transforms on whole clips: VideoMAE's multi-scale crop, eval crops, normalisation.

Clips are uint8 ``torch`` tensors ``(T, H, W, C)`` as decoded; an optional foreground mask
``(T, H, W)`` receives exactly the same crop, resize and flip (nearest-neighbour resampling),
so it stays aligned with the pixels. Every clip is resized with one ``F.interpolate`` call
over all its frames. The output is a normalised float32 ``(C, T, S, S)`` tensor, the layout
VideoMAE models take, and a float32 ``(T, S, S)`` mask in {0, 1}.

A transform is split into *parameters* (a :class:`CropBox`, drawn with a numpy generator) and
their *application* (:func:`apply_crop`), so one decoded clip can be cut several ways.

Horizontal flipping is off by default: a mirrored clip of "moving left" is a clip of "moving
right" (and clockwise becomes counter-clockwise), so for direction-sensitive classes such as
Something-Something or the synthetic motion dataset a flip silently changes the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MULTISCALE_SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
"""VideoMAE's GroupMultiScaleCrop scales, as fractions of the short side."""

# Fixed offsets of the multi-scale crop on a 5x5 lattice of the free space (x, y in quarters):
# four corners, centre, edge midpoints and the quarter points (TSN's "more fixed crops").
_FIXED_OFFSETS: tuple[tuple[int, int], ...] = (
    (0, 0), (4, 0), (0, 4), (4, 4), (2, 2),
    (0, 2), (4, 2), (2, 4), (2, 0),
    (1, 1), (3, 1), (1, 3), (3, 3),
)


@dataclass(frozen=True)
class CropBox:
    """A crop in source-pixel coordinates, then an optional horizontal flip of the result."""

    top: int
    left: int
    height: int
    width: int
    flip: bool = False


def check_clip(video: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """Raise ``ValueError`` unless ``video`` is ``(T, H, W, C)`` uint8 and ``mask`` is ``(T, H, W)``."""
    if video.dim() != 4 or video.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 clip of shape (T, H, W, C), got {video.dtype} {tuple(video.shape)}")
    if mask is not None and tuple(mask.shape) != tuple(video.shape[:3]):
        raise ValueError(
            f"foreground mask shape {tuple(mask.shape)} does not match the clip's (T, H, W) = {tuple(video.shape[:3])}"
        )


def multiscale_crop_box(
    height: int,
    width: int,
    image_size: int,
    rng: np.random.Generator,
    *,
    scales: tuple[float, ...] = MULTISCALE_SCALES,
    max_distort: int = 1,
    fix_crop: bool = True,
    flip_prob: float = 0.0,
) -> CropBox:
    """Draw VideoMAE's multi-scale crop (TSN's GroupMultiScaleCrop) for a ``height x width`` frame.

    Crop sides are ``scale * min(height, width)`` for each scale (snapped to ``image_size`` when
    within 3 pixels); height and width scales are drawn as a pair whose indices in ``scales``
    differ by at most ``max_distort``, so mild aspect changes occur. With ``fix_crop`` the
    offset is one of 13 fixed positions (corners, centre, edge midpoints, quarter points),
    otherwise uniform. ``flip_prob`` is the chance of a horizontal flip (see module notes).
    """
    base = min(height, width)
    sides = [int(base * s) for s in scales]
    sides = [image_size if abs(s - image_size) < 3 else s for s in sides]
    pairs = [
        (min(sides[i], height), min(sides[j], width))
        for i in range(len(sides))
        for j in range(len(sides))
        if abs(i - j) <= max_distort
    ]
    crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
    crop_h, crop_w = max(crop_h, 1), max(crop_w, 1)
    free_h, free_w = height - crop_h, width - crop_w
    if fix_crop:
        qx, qy = _FIXED_OFFSETS[int(rng.integers(len(_FIXED_OFFSETS)))]
        left, top = qx * free_w // 4, qy * free_h // 4
    else:
        left, top = int(rng.integers(free_w + 1)), int(rng.integers(free_h + 1))
    flip = bool(flip_prob > 0 and rng.random() < flip_prob)
    return CropBox(top=top, left=left, height=crop_h, width=crop_w, flip=flip)


def eval_crop_boxes(
    height: int,
    width: int,
    image_size: int,
    *,
    short_side: int | None = None,
    spatial_views: int = 1,
) -> list[CropBox]:
    """Eval crops: resize the short side to ``short_side``, then crop ``image_size`` squares.

    Expressed as square boxes in source coordinates (side ``image_size * min(H, W) / short_side``)
    that are then resized to ``image_size``. ``spatial_views=1`` gives the centre crop;
    ``spatial_views=3`` gives VideoMAE's three test crops along the long side (left, centre,
    right for landscape; top, middle, bottom for portrait). ``short_side`` defaults to
    ``image_size`` (the crop then spans the whole short side).
    """
    if spatial_views < 1:
        raise ValueError(f"spatial_views must be >= 1, got {spatial_views}")
    short = image_size if short_side is None else short_side
    if short < image_size:
        raise ValueError(f"short_side={short} is smaller than image_size={image_size}")
    side = max(1, min(round(image_size * min(height, width) / short), height, width))
    free_h, free_w = height - side, width - side
    if spatial_views == 1:
        return [CropBox(top=free_h // 2, left=free_w // 2, height=side, width=side)]
    steps = np.linspace(0.0, 1.0, spatial_views)
    if width >= height:
        return [CropBox(free_h // 2, int(round(s * free_w)), side, side) for s in steps]
    return [CropBox(int(round(s * free_h)), free_w // 2, side, side) for s in steps]


def apply_crop(
    video: torch.Tensor,
    box: CropBox,
    image_size: int,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Crop ``box`` out of a ``(T, H, W, C)`` uint8 clip, resize to ``image_size``, flip if asked.

    Returns float32 frames ``(T, C, S, S)`` on the 0-255 scale (bilinear with antialiasing)
    and, if ``mask`` was given, a float32 ``(T, S, S)`` mask in {0, 1} (nearest neighbour).
    """
    check_clip(video, mask)
    _, height, width, _ = video.shape
    if box.top < 0 or box.left < 0 or box.top + box.height > height or box.left + box.width > width:
        raise ValueError(f"crop {box} falls outside the {height}x{width} frame")
    rows = slice(box.top, box.top + box.height)
    cols = slice(box.left, box.left + box.width)
    # (T, H, W, C) -> (T, C, H, W) is a channels-last view, which interpolate handles fast.
    frames = video[:, rows, cols, :].permute(0, 3, 1, 2).float()
    if (box.height, box.width) != (image_size, image_size):
        frames = F.interpolate(
            frames, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
    out_mask = None
    if mask is not None:
        out_mask = mask[:, rows, cols].to(torch.float32).unsqueeze(1)
        if (box.height, box.width) != (image_size, image_size):
            out_mask = F.interpolate(out_mask, size=(image_size, image_size), mode="nearest-exact")
        out_mask = (out_mask.squeeze(1) > 0.5).to(torch.float32)
    if box.flip:
        frames = frames.flip(-1)
        out_mask = out_mask.flip(-1) if out_mask is not None else None
    return frames.contiguous(), out_mask


def normalize(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``(T, C, H, W)`` float frames on the 0-255 scale -> normalised float32 ``(C, T, H, W)``.

    ``mean`` and ``std`` are per channel on the 0-1 scale (ImageNet's by default in ``VideoSpec``).
    """
    if frames.dim() != 4 or frames.shape[1] != len(mean) or len(mean) != len(std):
        raise ValueError(
            f"expected frames (T, C={len(mean)}, H, W) and {len(mean)} mean/std values, "
            f"got {tuple(frames.shape)} with mean {mean} std {std}"
        )
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32).view(1, -1, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], dtype=torch.float32).view(1, -1, 1, 1)
    return (frames.float() * scale - shift).permute(1, 0, 2, 3).contiguous()


def denormalize(video: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Inverse of :func:`normalize` for viewing: ``(..., C, T, H, W)`` -> 0-1 floats, same layout."""
    shape = (len(mean), 1, 1, 1)
    m = torch.tensor(mean, dtype=video.dtype, device=video.device).view(shape)
    s = torch.tensor(std, dtype=video.dtype, device=video.device).view(shape)
    return (video * s + m).clamp(0.0, 1.0)


class TrainTransform:
    """Multi-scale crop (+ optional flip) to ``image_size``, then normalisation.

    Call with a uint8 ``(T, H, W, C)`` clip, an optional ``(T, H, W)`` mask and a generator;
    returns ``(video (C, T, S, S) float32, mask (T, S, S) float32 or None)``.
    """

    def __init__(
        self,
        image_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        scales: tuple[float, ...] = MULTISCALE_SCALES,
        max_distort: int = 1,
        fix_crop: bool = True,
        flip_prob: float = 0.0,
    ) -> None:
        self.image_size = image_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.scales, self.max_distort, self.fix_crop, self.flip_prob = tuple(scales), max_distort, fix_crop, flip_prob

    def sample_box(self, height: int, width: int, rng: np.random.Generator) -> CropBox:
        """Draw the crop (and flip) for a ``height x width`` source frame."""
        return multiscale_crop_box(
            height, width, self.image_size, rng,
            scales=self.scales, max_distort=self.max_distort, fix_crop=self.fix_crop, flip_prob=self.flip_prob,
        )

    def __call__(
        self, video: torch.Tensor, mask: torch.Tensor | None = None, *, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        check_clip(video, mask)
        box = self.sample_box(int(video.shape[1]), int(video.shape[2]), rng)
        frames, out_mask = apply_crop(video, box, self.image_size, mask)
        return normalize(frames, self.mean, self.std), out_mask


class EvalTransform:
    """Short-side resize + centre crop (or ``spatial_views`` crops), then normalisation.

    Call with a uint8 ``(T, H, W, C)`` clip and an optional ``(T, H, W)`` mask; returns
    ``(video, mask)`` shaped ``(C, T, S, S)`` / ``(T, S, S)``, or with a leading views axis
    ``(V, C, T, S, S)`` / ``(V, T, S, S)`` when ``spatial_views > 1``.
    """

    def __init__(
        self,
        image_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        short_side: int | None = None,
        spatial_views: int = 1,
    ) -> None:
        self.image_size, self.short_side, self.spatial_views = image_size, short_side, spatial_views
        self.mean, self.std = tuple(mean), tuple(std)

    def boxes(self, height: int, width: int) -> list[CropBox]:
        """The crop boxes for a ``height x width`` source frame."""
        return eval_crop_boxes(
            height, width, self.image_size, short_side=self.short_side, spatial_views=self.spatial_views
        )

    def __call__(
        self, video: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        check_clip(video, mask)
        boxes = self.boxes(int(video.shape[1]), int(video.shape[2]))
        views = [apply_crop(video, box, self.image_size, mask) for box in boxes]
        clips = [normalize(frames, self.mean, self.std) for frames, _ in views]
        masks = [m for _, m in views]
        if self.spatial_views == 1:
            return clips[0], masks[0]
        return torch.stack(clips), (torch.stack(masks) if mask is not None else None)  # type: ignore[arg-type]
