"""The positive control of the downstream evaluation: a small 3D CNN trained from scratch.

If this network, trained on the same split with the same short budget, does not clearly beat
chance, the data (or its labels) cannot rank encoders, whatever the encoders score. A CNN with
batch norm learns small-data motion tasks in a few epochs where a ViT from scratch does not,
which is what makes it a *control* for the data rather than a competitor of the encoders.

Architecture: the clip is resized to ``input_size`` (area-style antialiased bilinear), then
three blocks of ``Conv3d(3x3x3) -> BatchNorm3d -> ReLU -> MaxPool3d`` with widths ``w, 2w, 4w``
(pooling ``(1,2,2)``, ``(2,2,2)``, ``(2,2,2)``), global average pooling and a linear head.
Max pooling matters: the same network with strided convolutions instead stayed at chance on
the synthetic motion classes in our measurements.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tats_env.downstream.clipset import ClipSet
from tats_env.downstream.protocol_config import ControlConfig  # re-exported: its old home
from tats_env.downstream.supervised import SupervisedResult, train_classifier

__all__ = ["ControlConfig", "Conv3dControl", "train_control"]


class Conv3dControl(nn.Module):
    """Three conv-BN-ReLU-maxpool 3D blocks, global average pooling, linear head.

    Args:
        num_classes: outputs.
        width: channels of the first block (then 2x and 4x).
        input_size: clips are resized to this square side first (None keeps their size).
        in_chans: colour channels.
    """

    def __init__(self, num_classes: int, width: int = 16, input_size: int | None = 32, in_chans: int = 3) -> None:
        super().__init__()
        if num_classes < 1 or width < 1:
            raise ValueError(f"num_classes and width must be >= 1, got {num_classes} and {width}")
        self.input_size = input_size
        widths = (in_chans, width, 2 * width, 4 * width)
        pools = ((1, 2, 2), (2, 2, 2), (2, 2, 2))
        self.features = nn.Sequential(*[
            nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout),
                          nn.ReLU(inplace=True), nn.MaxPool3d(pool, ceil_mode=True))
            for cin, cout, pool in zip(widths[:-1], widths[1:], pools, strict=True)
        ])
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, videos: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` of clips ``(B, C, T, H, W)``."""
        if videos.ndim != 5:
            raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(videos.shape)}")
        if self.input_size is not None and videos.shape[-2:] != (self.input_size, self.input_size):
            b, c, t, h, w = videos.shape
            frames = videos.reshape(b, c * t, h, w)
            frames = F.interpolate(frames, size=(self.input_size, self.input_size), mode="bilinear",
                                   antialias=True, align_corners=False)
            videos = frames.reshape(b, c, t, self.input_size, self.input_size)
        return self.head(self.features(videos).mean(dim=(2, 3, 4)))


def train_control(train: ClipSet, val: ClipSet, cfg: ControlConfig | None = None, *, seed: int = 0,
                  num_classes: int | None = None, progress: bool = False) -> SupervisedResult:
    """Train a fresh :class:`Conv3dControl` (initialised from ``seed``) on ``train``; score it on ``val``."""
    cfg = cfg or ControlConfig()
    num_classes = num_classes or max(train.num_classes, val.num_classes)
    torch.manual_seed(seed)
    model = Conv3dControl(num_classes, cfg.width, cfg.input_size, in_chans=train.videos.shape[1])
    return train_classifier(model, train, val, cfg.recipe, seed=seed, num_classes=num_classes, progress=progress)
