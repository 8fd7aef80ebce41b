"""Action-recognition fine-tuning parts: the classifier, optimizer, schedule, video Mixup, metrics.

The recipe is VideoMAE's ``run_class_finetuning.py`` on timm: mean pooling of the token
features, ``fc_norm``, dropout, a linear head (initialised small) (the CPU protocol's short
fine-tune instead pools by quadrants and standardises with a BatchNorm, see
:func:`tats_env.downstream.protocol.short_finetune`); AdamW with layer-wise lr
decay; per-step cosine schedule after a linear warm-up; Mixup/CutMix with soft-target
cross-entropy, else label smoothing; stochastic depth in the encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import Tensor, nn

from tats_env.config import MAEConfig
from tats_env.downstream.pooling import Pooling, check_pooling, num_regions, pool_regions
from tats_env.mae import FeatureEncoder
from tats_env.mae.layers import init_vit_weights

HeadNorm = Literal["layer", "batch"]

__all__ = [
    "HeadNorm", "VideoClassifier", "VideoMixup", "build_criterion", "build_optimizer", "build_scheduler",
    "confusion_matrix", "random_encoder", "topk_accuracy",
]


def random_encoder(cfg: MAEConfig) -> FeatureEncoder:
    """A freshly initialised encoder of architecture ``cfg`` (VideoMAE init, zero q/v biases)."""
    encoder = FeatureEncoder(cfg)
    encoder.apply(init_vit_weights)
    return encoder


class VideoClassifier(nn.Module):
    """Encoder + pooling + ``fc_norm`` + dropout + linear head: ``(B, C, T, H, W)`` -> logits.

    The encoder's pre-training ``norm`` is replaced by the fresh ``fc_norm`` after pooling, as in
    VideoMAE fine-tuning (and HF ``VideoMAEForVideoClassification``); it is removed from the
    module so that no parameter goes without a gradient (DDP would complain).

    Args:
        encoder: token features ``(B, N, D)``, from :func:`tats_env.export.load_encoder` or
            :meth:`from_scratch`; must not apply its final norm.
        num_classes: outputs of the head.
        head_drop: dropout before the head (VideoMAE's ``fc_drop_rate``).
        init_scale: the head's truncated-normal(0.02) weights are multiplied by this (VideoMAE 0.001).
        pooling: how token features become the head's input (:mod:`tats_env.downstream.pooling`):
            ``"mean"`` (VideoMAE's head, the default) or ``"time"``/``"quadrants"``, whose regions
            are concatenated (the head then takes ``regions * D`` inputs).
        head_norm: ``"layer"`` (VideoMAE's ``fc_norm``: a LayerNorm over each region's ``D``
            features) or ``"batch"`` (a BatchNorm without affine over every pooled feature, as in
            MAE's linear probe: it standardises each feature over the clips, as the frozen probe
            does, so the probe's weights can become the head's, see
            :func:`~tats_env.downstream.probe.init_head_from_probe`; with a zero-initialised head
            it was not faster than ``"layer"`` in our short runs).
    """

    def __init__(self, encoder: FeatureEncoder, num_classes: int, head_drop: float = 0.0,
                 init_scale: float = 0.001, pooling: Pooling = "mean", head_norm: HeadNorm = "layer") -> None:
        super().__init__()
        if encoder.final_norm:
            raise ValueError("VideoClassifier pools pre-norm features; load the encoder with final_norm=False")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        check_pooling(encoder.cfg.video.grid, pooling)
        encoder.norm = nn.Identity()  # type: ignore[assignment]
        self.encoder = encoder
        self.num_classes = num_classes
        self.pooling: Pooling = pooling
        if head_norm not in ("layer", "batch"):
            raise ValueError(f"head_norm must be 'layer' or 'batch', got {head_norm!r}")
        self.head_norm: HeadNorm = head_norm
        dim = encoder.cfg.embed_dim
        width = num_regions(encoder.cfg.video.grid, pooling) * dim
        self.fc_norm = (nn.LayerNorm(dim, eps=encoder.cfg.layer_norm_eps) if head_norm == "layer"
                        else nn.BatchNorm1d(width, affine=False))
        self.head_drop = nn.Dropout(head_drop)
        self.head = nn.Linear(width, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        with torch.no_grad():
            self.head.weight.mul_(init_scale)
            self.head.bias.zero_()

    @classmethod
    def from_scratch(cls, cfg: MAEConfig, num_classes: int, **kwargs: Any) -> "VideoClassifier":
        """The same architecture with VideoMAE's random initialisation (the no-pre-training baseline)."""
        return cls(random_encoder(cfg), num_classes, **kwargs)

    @property
    def cfg(self) -> MAEConfig:
        """The encoder's configuration (clip shape and sizes)."""
        return self.encoder.cfg

    def freeze_encoder(self) -> None:
        """Linear probing: the encoder stops learning and stays in eval mode (no drop path)."""
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> "VideoClassifier":
        """Like ``nn.Module.train``, but a frozen encoder stays in eval mode."""
        super().train(mode)
        if not any(p.requires_grad for p in self.encoder.parameters()):
            self.encoder.eval()
        return self

    def forward_features(self, videos: Tensor) -> Tensor:
        """Pooled, normalised clip features ``(B, regions * D)`` (``(B, D)`` under mean pooling)."""
        regions = pool_regions(self.encoder(videos), self.encoder.cfg.video.grid, self.pooling)
        if self.head_norm == "batch":
            return self.fc_norm(regions.flatten(1))
        return self.fc_norm(regions).flatten(1)

    def forward(self, videos: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)``."""
        return self.head(self.head_drop(self.forward_features(videos)))

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's layer grouping for layer-wise lr decay.

        Group 0 is the tubelet embedding, group ``i + 1`` block ``i``, the last group ``fc_norm``
        and the head, so the lr scale is ``decay ** (depth + 1 - group)``, as in VideoMAE.
        """
        # Not timm ViT's ``(99999,)`` suffix: that would merge the head into the last block's group.
        return {
            "stem": r"^encoder\.patch_embed",
            "blocks": r"^encoder\.blocks\.(\d+)",
            "head": r"^fc_norm|^head",
        }

    def no_weight_decay(self) -> set[str]:
        """Names excluded from weight decay beyond 1-D tensors (none: positions are a fixed buffer)."""
        return set()


def build_optimizer(model: VideoClassifier, lr: float, weight_decay: float = 0.05, layer_decay: float = 0.75,
                    opt: str = "adamw", betas: Sequence[float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    """timm optimizer with layer-wise lr decay (``layer_decay >= 1`` turns it off).

    Every group carries ``lr_scale``; the lr is only scaled once a timm scheduler
    (:func:`build_scheduler`) sets ``lr = scheduled lr * lr_scale``, so always use one.
    1-D parameters (biases, norms, ``q_bias``/``v_bias``) get no weight decay; frozen ones are left out.
    """
    decay = layer_decay if 0.0 < layer_decay < 1.0 else None
    extra: dict[str, Any] = {"betas": tuple(betas)} if "adam" in opt.lower() else {}
    optimizer = create_optimizer_v2(model, opt=opt, lr=lr, weight_decay=weight_decay, layer_decay=decay, **extra)
    for group in optimizer.param_groups:
        group.setdefault("lr_scale", 1.0)  # "lr" stays unscaled: the scheduler reads it as the base lr
    return optimizer


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                    min_lr: float = 1e-6, warmup_lr: float = 1e-6) -> CosineLRScheduler:
    """Per-step cosine decay to ``min_lr`` after ``warmup_steps`` of linear warm-up.

    Call ``scheduler.step_update(num_updates=step)`` before optimizer step ``step`` (0-based).
    """
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}")
    return CosineLRScheduler(optimizer, t_initial=total_steps - warmup_steps, lr_min=min_lr,
                             warmup_t=warmup_steps, warmup_lr_init=warmup_lr, warmup_prefix=True,
                             t_in_epochs=False)


class VideoMixup(Mixup):
    """timm ``Mixup``/``CutMix`` for clips ``(B, C, T, H, W)``: whole clips mixed, one box for all frames.

    The batch is viewed as ``(B, C * T, H, W)`` images, so timm's CutMix box (on the last two
    axes) cuts the same spatial region out of every frame and channel, and Mixup mixes whole
    clips; the label weight is the box's true area. Arguments are timm's (``mixup_alpha``,
    ``cutmix_alpha``, ``prob``, ``switch_prob``, ``mode``, ``label_smoothing``, ``num_classes``).
    The batch size must be even; the mix happens in place and draws from numpy's global RNG.
    """

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Mix ``x`` in place; returns ``(x, soft targets (B, num_classes))``."""
        if x.ndim != 5:
            raise ValueError(f"VideoMixup expects clips (B, C, T, H, W), got shape {tuple(x.shape)}")
        if len(x) % 2:
            raise ValueError(f"Mixup/CutMix pairs clips, so the batch size must be even, got {len(x)}")
        b, c, t, h, w = x.shape
        images = x.reshape(b, c * t, h, w)
        images, target = super().__call__(images, target)
        return images.reshape(b, c, t, h, w), target


def build_criterion(mixup: VideoMixup | None, smoothing: float) -> nn.Module:
    """Soft-target cross-entropy with Mixup (it smooths the labels), else label smoothing or plain CE."""
    if mixup is not None:
        return SoftTargetCrossEntropy()
    if smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=smoothing)
    return nn.CrossEntropyLoss()


def topk_accuracy(scores: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the ``k`` highest scores, for each ``k`` (capped at the class count)."""
    ranked = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hits = ranked == labels.view(-1, 1)
    return {k: hits[:, :k].any(dim=1).float().mean().item() for k in ks}


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(num_classes, num_classes)`` counts; row = true class, column = predicted class."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
