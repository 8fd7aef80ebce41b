"""Pictures people would rather look at: clips with their masks and the MAE's reconstructions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tats_env.config import VideoSpec
from tats_env.mae.model import VideoMAE


def _token_mask_to_pixels(mask: Tensor, spec: VideoSpec) -> Tensor:
    """Bool ``(B, N)`` token mask -> bool ``(B, T, H, W)`` pixel mask."""
    t, h, w = spec.grid
    grid = mask.reshape(-1, t, h, w)
    grid = grid.repeat_interleave(spec.tubelet_size, 1)
    grid = grid.repeat_interleave(spec.patch_size, 2)
    return grid.repeat_interleave(spec.patch_size, 3)


ROW_LABELS = ("clip", "masked", "reconstruction")
"""Row labels of one clip in :func:`mask_reconstruction_grid` without scores."""
ROW_LABELS_WITH_SCORES = ("clip", "scores", "masked", "reconstruction")
"""Row labels of one clip with the sampler's score map."""
LEGEND = ("grey: masked token | red outline: moving pixels",
          "scores (row 'scores', per clip min..max): blue = low, likely visible; yellow = high, likely masked")
"""Legend lines under a labelled grid."""


@torch.no_grad()
def mask_reconstruction_grid(
    model: VideoMAE,
    videos: Tensor,
    mask: Tensor,
    num_clips: int = 4,
    num_frames: int = 4,
    foreground: Tensor | None = None,
    scores: Tensor | None = None,
) -> np.ndarray:
    """An RGB ``uint8`` image ``(H, W, 3)``: per clip, a row each of input, masked input, reconstruction.

    Columns are ``num_frames`` evenly spaced frames. Masked patches are drawn grey; where
    ``foreground`` ``(B, T, H, W)`` is given, the input row outlines moving pixels in red. With the
    sampler's per-token ``scores`` ``(B, N)`` (higher = more likely masked) a heat-map row sits
    between the input and the masked input: each clip's scores rescaled to its own min..max,
    dark blue (low: kept visible) to yellow (high: masked), moving pixels outlined in red as above.
    """
    spec = model.spec
    videos, mask = videos[:num_clips], mask[:num_clips].to(videos.device)
    was_training = model.training
    model.eval()
    recon = model.reconstruct(videos, mask)
    model.train(was_training)
    pixels = (videos.float() * model.pixel_std + model.pixel_mean).clamp(0, 1)
    hidden = _token_mask_to_pixels(mask, spec).unsqueeze(1)
    masked = torch.where(hidden, torch.full_like(pixels, 0.5), pixels)
    heat = None if scores is None else _heat_map(scores[:num_clips].to(pixels.device), spec)
    if foreground is not None:
        fg = foreground[:num_clips].to(pixels.device).bool().unsqueeze(1)
        edge = fg & ~torch.nn.functional.max_pool3d(
            (~fg).float(), (1, 3, 3), 1, (0, 1, 1)
        ).eq(0)
        red = torch.tensor([1.0, 0.0, 0.0], device=pixels.device).view(1, 3, 1, 1, 1)
        pixels = torch.where(edge, red.expand_as(pixels), pixels)
        if heat is not None:
            heat = torch.where(edge, red.expand_as(heat), heat)
    frames = torch.linspace(0, spec.num_frames - 1, num_frames).round().long()
    panels = (pixels, masked, recon) if heat is None else (pixels, heat, masked, recon)
    rows = []
    for clip in range(videos.shape[0]):
        for row in panels:
            rows.append(torch.cat(list(row[clip][:, frames].permute(1, 0, 2, 3)), dim=2))  # C, H, F*W
    image = torch.cat(rows, dim=1)  # C, rows*H, F*W
    return (image.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def _heat_map(scores: Tensor, spec: VideoSpec) -> Tensor:
    """Per-token scores ``(B, N)`` -> RGB ``(B, 3, T, H, W)`` in [0, 1], each clip on its own min..max."""
    s = scores.float()
    low, high = s.min(1, keepdim=True).values, s.max(1, keepdim=True).values
    level = ((s - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    t, h, w = spec.grid
    level = level.reshape(-1, t, h, w).repeat_interleave(spec.tubelet_size, 1)
    level = level.repeat_interleave(spec.patch_size, 2).repeat_interleave(spec.patch_size, 3).unsqueeze(1)
    # Dark blue (0.1, 0.1, 0.5) -> yellow (1, 0.9, 0.1): legible beside grey masks and red outlines.
    start = torch.tensor([0.1, 0.1, 0.5], device=s.device).view(1, 3, 1, 1, 1)
    end = torch.tensor([1.0, 0.9, 0.1], device=s.device).view(1, 3, 1, 1, 1)
    return start + (end - start) * level


def label_grid(image: np.ndarray, row_labels: tuple[str, ...], num_clips: int, upscale: int | None = None,
               legend: tuple[str, ...] = LEGEND) -> np.ndarray:
    """``image`` from :func:`mask_reconstruction_grid` with a left margin naming every row, clip numbers,
    a legend underneath and nearest-neighbour upscaling (default: 2x for rows under 128 pixels).

    ``row_labels`` are one clip's rows (:data:`ROW_LABELS` or :data:`ROW_LABELS_WITH_SCORES`).
    """
    from PIL import Image, ImageDraw

    rows = len(row_labels) * num_clips
    if rows < 1 or image.shape[0] % rows:
        raise ValueError(f"an image of height {image.shape[0]} does not split into {rows} rows "
                         f"({num_clips} clips x {len(row_labels)} labels)")
    row_height = image.shape[0] // rows
    scale = upscale if upscale is not None else max(1, 128 // row_height)
    big = image.repeat(scale, 0).repeat(scale, 1) if scale > 1 else image
    line = 12  # the default bitmap font's line height
    margin = 8 + 7 * max(len(f"{label} {num_clips}") for label in row_labels)
    canvas = Image.new("RGB", (margin + big.shape[1], big.shape[0] + 6 + line * len(legend)), "white")
    canvas.paste(Image.fromarray(big), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    step = row_height * scale
    for row in range(rows):
        clip, label = divmod(row, len(row_labels))
        text = f"{row_labels[label]} {clip + 1}" if label == 0 else row_labels[label]
        draw.text((4, row * step + max(0, step // 2 - line // 2)), text, fill="black")
        if label == 0 and row:
            draw.line([(0, row * step), (canvas.width, row * step)], fill="black")
    for i, text in enumerate(legend):
        draw.text((4, big.shape[0] + 3 + i * line), text, fill="black")
    return np.asarray(canvas)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 image as PNG (parent folders created)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, image)
    return path
