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


@torch.no_grad()
def mask_reconstruction_grid(
    model: VideoMAE,
    videos: Tensor,
    mask: Tensor,
    num_clips: int = 4,
    num_frames: int = 4,
    foreground: Tensor | None = None,
) -> np.ndarray:
    """An RGB ``uint8`` image ``(H, W, 3)``: per clip, a row each of input, masked input, reconstruction.

    Columns are ``num_frames`` evenly spaced frames. Masked patches are drawn grey; where
    ``foreground`` ``(B, T, H, W)`` is given, the input row outlines moving pixels in red.
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
    if foreground is not None:
        fg = foreground[:num_clips].to(pixels.device).bool().unsqueeze(1)
        edge = fg & ~torch.nn.functional.max_pool3d(
            (~fg).float(), (1, 3, 3), 1, (0, 1, 1)
        ).eq(0)
        red = torch.tensor([1.0, 0.0, 0.0], device=pixels.device).view(1, 3, 1, 1, 1)
        pixels = torch.where(edge, red.expand_as(pixels), pixels)
    frames = torch.linspace(0, spec.num_frames - 1, num_frames).round().long()
    rows = []
    for clip in range(videos.shape[0]):
        for row in (pixels, masked, recon):
            rows.append(torch.cat(list(row[clip][:, frames].permute(1, 0, 2, 3)), dim=2))  # C, H, F*W
    image = torch.cat(rows, dim=1)  # C, rows*H, F*W
    return (image.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 image as PNG (parent folders created)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, image)
    return path
