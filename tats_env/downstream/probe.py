"""Frozen-feature probe: pool an encoder's token features, fit a multinomial logistic regression.

The main CPU metric of the evaluation protocol. The probe is convex and fitted full-batch, so
for a given encoder and split it is deterministic: its only noise is the binomial noise of the
validation set, and differences between encoders are differences between their features, not
between optimisation runs.

* Features: the last block's output before the pre-training LayerNorm (what VideoMAE
  fine-tuning pools), for every token of the centre clip, pooled
  (:mod:`tats_env.downstream.pooling`) by

  - ``"quadrants"`` (the default and the protocol's main CPU metric): mean over each quarter of
    the frame (top-left, top-right, bottom-left, bottom-right token blocks) at each temporal
    slot, concatenated (``T' * 4 * D`` features). Keeps *where* and *when* coarsely, which the
    motion classes need: on the synthetic set (``tiny32``) it is the only pooling of the three
    under which plain VideoMAE pre-training lifted the probe above a random-init encoder; with
    mean or time pooling both sat near chance (docs/results/issue11_probe.md).
  - ``"time"``: mean over space for each temporal slot, concatenated (``T' * D`` features).
  - ``"mean"``: mean over all tokens (``D`` features; discards the order of events).

  Quadrants need an even token grid side (``image_size / patch_size``).
* Probe: features standardised with the training mean/std, then softmax regression with an L2
  penalty ``weight_decay / 2 * ||W||^2`` added to the mean cross-entropy, minimised by L-BFGS
  (strong Wolfe line search) in float64.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tats_env.downstream.classify import VideoClassifier
from tats_env.downstream.clipset import ClipSet
from tats_env.downstream.pooling import Pooling, pool_tokens
from tats_env.downstream.protocol_config import ProbeConfig  # re-exported: its old home
from tats_env.downstream.supervised import per_class_accuracy

__all__ = [
    "Pooling", "ProbeConfig", "ProbeResult", "extract_features", "fit_probe", "init_head_from_probe", "linear_probe",
]

@dataclass
class ProbeResult:
    """Accuracy of a fitted probe."""

    top1: float
    """Validation top-1 (fraction of clips)."""
    train_top1: float
    """Top-1 on the training clips."""
    per_class_top1: list[float]
    """Validation top-1 per class."""
    num_val: int
    """Validation clips."""
    num_features: int
    """Probe input width."""
    wall_s: float
    """Feature extraction plus fitting time, seconds."""


@torch.no_grad()
def extract_features(encoder: nn.Module, clips: ClipSet, pooling: Pooling = "mean", batch_size: int = 64) -> Tensor:
    """Pooled features ``(N, F)`` of every clip under ``encoder`` (a :class:`~tats_env.mae.FeatureEncoder`).

    The encoder runs in eval mode; its mode is restored afterwards.
    """
    grid = encoder.cfg.video.grid  # type: ignore[union-attr]
    was_training = encoder.training
    encoder.eval()
    feats = [pool_tokens(encoder(videos).float(), grid, pooling) for videos, _ in clips.batches(batch_size)]
    encoder.train(was_training)
    return torch.cat(feats)


def fit_probe(features: Tensor, labels: Tensor, num_classes: int, weight_decay: float = 1e-3,
              max_iter: int = 500) -> nn.Linear:
    """Fit the standardised softmax regression; returns a float64 ``nn.Linear`` on *raw* features.

    The standardisation (training mean and standard deviation, the latter floored at 1e-6) is
    folded into the returned layer's weights and bias.
    """
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"need features (N, F) and labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}")
    if len(features) == 0 or num_classes < 2:
        raise ValueError(f"need at least one example and two classes, got {len(features)} and {num_classes}")
    x = features.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    weight = torch.zeros(num_classes, z.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")
    y = labels.long()

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    layer = nn.Linear(z.shape[1], num_classes, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(weight / std)
        layer.bias.copy_(bias - (weight * (mean / std)).sum(1))
    return layer.requires_grad_(False)


def linear_probe(encoder: nn.Module, train: ClipSet, val: ClipSet, cfg: ProbeConfig | None = None,
                 num_classes: int | None = None) -> ProbeResult:
    """Extract features of ``train`` and ``val``, fit the probe on ``train``, score both."""
    cfg = cfg or ProbeConfig()
    start = time.perf_counter()
    num_classes = num_classes or max(train.num_classes, val.num_classes)
    train_x = extract_features(encoder, train, cfg.pooling, cfg.batch_size)
    val_x = extract_features(encoder, val, cfg.pooling, cfg.batch_size)
    head = fit_probe(train_x, train.labels, num_classes, cfg.weight_decay, cfg.max_iter)
    with torch.no_grad():
        val_pred = head(val_x.double()).argmax(1)
        train_pred = head(train_x.double()).argmax(1)
    return ProbeResult(
        top1=float((val_pred == val.labels).float().mean()),
        train_top1=float((train_pred == train.labels).float().mean()),
        per_class_top1=per_class_accuracy(val_pred, val.labels, num_classes),
        num_val=len(val), num_features=int(train_x.shape[1]), wall_s=time.perf_counter() - start,
    )


def init_head_from_probe(model: VideoClassifier, clips: ClipSet, weight_decay: float = 1e-3, max_iter: int = 500,
                         batch_size: int = 64) -> None:
    """Linear-probe-then-fine-tune (LP-FT): fit the probe on the classifier's own pooled features, make it the head.

    ``model`` must have ``head_norm="batch"``: its BatchNorm's running statistics are set to the
    mean and (biased) variance of the pooled features of ``clips`` under the current encoder, the
    probe is fitted on the features that BatchNorm then produces, and the head takes its weights,
    so the classifier starts exactly where the frozen probe ends. Fine-tuning from there keeps
    the pre-trained features instead of wrecking them while a zero-initialised head is still
    learning (Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features").
    """
    norm = model.fc_norm
    if not isinstance(norm, nn.BatchNorm1d):
        raise ValueError("init_head_from_probe needs a classifier built with head_norm='batch'")
    pooled = extract_features(model.encoder, clips, model.pooling, batch_size)
    with torch.no_grad():
        norm.running_mean.copy_(pooled.mean(0))
        norm.running_var.copy_(pooled.var(0, unbiased=False))
        norm.num_batches_tracked.zero_()
        standardised = F.batch_norm(pooled, norm.running_mean, norm.running_var, eps=norm.eps)  # eval-mode BatchNorm
    head = fit_probe(standardised, clips.labels, model.num_classes, weight_decay, max_iter)
    with torch.no_grad():
        model.head.weight.copy_(head.weight.float())
        model.head.bias.copy_(head.bias.float())
