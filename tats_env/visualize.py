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
"""Row labels of one clip with the sampler's score map (per clip min..max)."""
ROW_LABELS_WITH_PROBS = ("clip", "P(masked)", "masked", "reconstruction")
"""Row labels of one clip with the sampler's probability of masking each token (fixed 0..1 scale)."""
MASK_LEGEND = "grey: masked token | red outline: moving pixels"
SCORE_LEGEND = "row 'scores' (per clip min..max): blue = low, likely visible; yellow = high, likely masked"
PROB_LEGEND = "row 'P(masked)': probability the sampler masks the token, colour bar below (same scale in every image)"
LEGEND = (MASK_LEGEND,)
"""Legend of a grid without a heat-map row."""
COLOR_LOW = (0.1, 0.1, 0.5)
"""Heat-map colour of the lowest value (dark blue)."""
COLOR_HIGH = (1.0, 0.9, 0.1)
"""Heat-map colour of the highest value (yellow); legible beside grey masks and red outlines."""


def legend_for(row_labels: tuple[str, ...]) -> tuple[str, ...]:
    """The legend lines that describe exactly the rows drawn (no heat-map line without a heat-map row)."""
    lines = [MASK_LEGEND]
    if "scores" in row_labels:
        lines.append(SCORE_LEGEND)
    if "P(masked)" in row_labels:
        lines.append(PROB_LEGEND)
    return tuple(lines)


@torch.no_grad()
def mask_reconstruction_grid(
    model: VideoMAE,
    videos: Tensor,
    mask: Tensor,
    num_clips: int = 4,
    num_frames: int = 4,
    foreground: Tensor | None = None,
    scores: Tensor | None = None,
    fixed_scale: bool = False,
) -> np.ndarray:
    """An RGB ``uint8`` image ``(H, W, 3)``: per clip, a row each of input, masked input, reconstruction.

    Columns are ``num_frames`` evenly spaced frames. Masked patches are drawn grey; where
    ``foreground`` ``(B, T, H, W)`` is given, the input row outlines moving pixels in red. With the
    sampler's per-token ``scores`` ``(B, N)`` (higher = more likely masked) a heat-map row sits
    between the input and the masked input, dark blue (low: kept visible) to yellow (high: masked),
    moving pixels outlined in red as above: ``fixed_scale`` draws ``scores`` in [0, 1] on that one
    scale (probabilities: comparable between images), otherwise each clip is rescaled to its own min..max.
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
    heat = None if scores is None else _heat_map(scores[:num_clips].to(pixels.device), spec, fixed_scale)
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


def _heat_map(scores: Tensor, spec: VideoSpec, fixed_scale: bool = False) -> Tensor:
    """Per-token scores ``(B, N)`` -> RGB ``(B, 3, T, H, W)`` in [0, 1]: values in [0, 1] as they are
    (``fixed_scale``), else each clip on its own min..max."""
    s = scores.float()
    if fixed_scale:
        level = s.clamp(0, 1)
    else:
        low, high = s.min(1, keepdim=True).values, s.max(1, keepdim=True).values
        level = ((s - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    t, h, w = spec.grid
    level = level.reshape(-1, t, h, w).repeat_interleave(spec.tubelet_size, 1)
    level = level.repeat_interleave(spec.patch_size, 2).repeat_interleave(spec.patch_size, 3).unsqueeze(1)
    start = torch.tensor(COLOR_LOW, device=s.device).view(1, 3, 1, 1, 1)
    end = torch.tensor(COLOR_HIGH, device=s.device).view(1, 3, 1, 1, 1)
    return start + (end - start) * level


def label_grid(image: np.ndarray, row_labels: tuple[str, ...], num_clips: int, upscale: int | None = None,
               legend: tuple[str, ...] | None = None) -> np.ndarray:
    """``image`` from :func:`mask_reconstruction_grid` with a left margin naming every row, clip numbers,
    a legend underneath (default: :func:`legend_for` the rows) and nearest-neighbour upscaling (default: 2x
    for rows under 128 pixels). A ``P(masked)`` row adds a 0..1 colour bar under the legend.

    ``row_labels`` are one clip's rows (:data:`ROW_LABELS`, :data:`ROW_LABELS_WITH_SCORES` or
    :data:`ROW_LABELS_WITH_PROBS`).
    """
    from PIL import Image, ImageDraw

    rows = len(row_labels) * num_clips
    if rows < 1 or image.shape[0] % rows:
        raise ValueError(f"an image of height {image.shape[0]} does not split into {rows} rows "
                         f"({num_clips} clips x {len(row_labels)} labels)")
    row_height = image.shape[0] // rows
    scale = upscale if upscale is not None else max(1, 128 // row_height)
    big = image.repeat(scale, 0).repeat(scale, 1) if scale > 1 else image
    legend = legend_for(row_labels) if legend is None else legend
    line = 12  # the default bitmap font's line height
    bar = 2 * line + 4 if "P(masked)" in row_labels else 0
    margin = 8 + 7 * max(len(f"{label} {num_clips}") for label in row_labels)
    canvas = Image.new("RGB", (margin + big.shape[1], big.shape[0] + 6 + line * len(legend) + bar), "white")
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
    if bar:
        _draw_color_bar(draw, 4, big.shape[0] + 6 + line * len(legend), min(256, canvas.width - 8), line)
    return np.asarray(canvas)


def _draw_color_bar(draw: "ImageDraw.ImageDraw", left: int, top: int, width: int, height: int) -> None:
    """A horizontal 0..1 bar in the heat-map colours, ticks at 0, 0.5 and 1 labelled under it."""
    low, high = np.asarray(COLOR_LOW), np.asarray(COLOR_HIGH)
    for x in range(width):
        colour = low + (high - low) * x / max(width - 1, 1)
        draw.line([(left + x, top), (left + x, top + height - 2)], fill=tuple(int(round(255 * c)) for c in colour))
    for value in (0.0, 0.5, 1.0):
        x = left + round(value * (width - 1))
        draw.line([(x, top + height - 2), (x, top + height + 1)], fill="black")
        text = f"{value:g}"
        draw.text((min(max(left, x - 3 * len(text)), left + width - 6 * len(text)), top + height + 1), text, fill="black")


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 image as PNG (parent folders created)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, image)
    return path
