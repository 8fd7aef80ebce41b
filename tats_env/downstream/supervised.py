"""Short supervised training on in-memory clips: one loop for the short fine-tune, the from-scratch
ViT and the 3D-CNN positive control, so that all three get the same split, budget and schedule.

:class:`ShortRecipe` is the short-budget recipe (a few epochs on a few thousand clips). It differs
from VideoMAE's 100-epoch recipe (:class:`~tats_env.downstream.FinetuneConfig`) where a short
run needs it to: the warm-up is a fraction of one epoch instead of 5 epochs; no layer-wise lr
decay (0.75 leaves the tubelet embedding at a quarter of the lr, and a short run cannot afford
a slow first layer); no Mixup/CutMix (a CutMix box can cut a small moving object out of the
clip while keeping part of its label); no label smoothing and no stochastic depth (they
regularise, and a short run underfits rather than overfits).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from tats_env.downstream.classify import build_optimizer, build_scheduler
from tats_env.downstream.clipset import ClipSet
from tats_env.downstream.protocol_config import ShortRecipe  # re-exported: its old home

__all__ = ["ShortRecipe", "SupervisedResult", "predict", "train_classifier"]


@dataclass
class SupervisedResult:
    """What a short supervised run reached on the validation clips."""

    top1: float
    """Validation top-1 (fraction of clips)."""
    train_top1: float
    """Top-1 on the training clips at the end (eval mode): tells underfitting from overfitting."""
    per_class_top1: list[float]
    """Validation top-1 of every class (NaN where a class has no validation clip)."""
    num_val: int
    """Validation clips scored."""
    train_loss: float
    """Mean training loss over the last epoch."""
    wall_s: float
    """Training time in seconds (excluding the final evaluations)."""
    clips_per_s: float
    """Training throughput."""
    history: list[float] = field(default_factory=list)
    """Mean training loss of every epoch."""


@torch.no_grad()
def predict(model: nn.Module, clips: ClipSet, batch_size: int = 64) -> Tensor:
    """Predicted class of every clip (eval mode; the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    preds = [model(x).argmax(1) for x, _ in clips.batches(batch_size)]
    model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def per_class_accuracy(pred: Tensor, labels: Tensor, num_classes: int) -> list[float]:
    """Top-1 of each class (NaN for classes without examples)."""
    out = []
    for c in range(num_classes):
        hit = pred[labels == c] == c
        out.append(float(hit.float().mean()) if hit.numel() else math.nan)
    return out


def train_classifier(model: nn.Module, train: ClipSet, val: ClipSet, recipe: ShortRecipe, *, seed: int = 0,
                     num_classes: int | None = None, progress: bool = False) -> SupervisedResult:
    """Train ``model`` (clips -> logits) on ``train`` with ``recipe``; score it on ``val``.

    The data order is drawn from ``seed`` (the model's initialisation is the caller's). Uses timm's
    optimizer factory (layer-wise lr decay when ``recipe.layer_decay < 1`` and the model defines a
    ``group_matcher``) and timm's cosine schedule, stepped per update.
    """
    steps_per_epoch = len(train) // recipe.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{len(train)} training clips give no full batch of {recipe.batch_size}; lower batch_size")
    num_classes = num_classes or max(train.num_classes, val.num_classes)
    total = recipe.epochs * steps_per_epoch
    warmup = min(round(recipe.warmup_epochs * steps_per_epoch), total - 1)
    optimizer = build_optimizer(model, recipe.lr, recipe.weight_decay, recipe.layer_decay)  # type: ignore[arg-type]
    scheduler = build_scheduler(optimizer, total, warmup, min_lr=recipe.min_lr, warmup_lr=recipe.lr * 1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    step, history = 0, []
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        losses = []
        batches = train.batches(recipe.batch_size, generator, drop_last=True)
        for videos, labels in tqdm(batches, total=steps_per_epoch, disable=not progress, leave=False,
                                   desc=f"epoch {epoch + 1}/{recipe.epochs}"):
            scheduler.step_update(num_updates=step)
            loss = F.cross_entropy(model(videos), labels)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training loss is {loss.item()} at step {step}; lower the lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_grad)
            optimizer.step()
            losses.append(loss.item())
            step += 1
        history.append(sum(losses) / len(losses))
    wall = time.perf_counter() - start
    val_pred = predict(model, val)
    train_pred = predict(model, train)
    return SupervisedResult(
        top1=float((val_pred == val.labels).float().mean()),
        train_top1=float((train_pred == train.labels).float().mean()),
        per_class_top1=per_class_accuracy(val_pred, val.labels, num_classes),
        num_val=len(val), train_loss=history[-1], wall_s=wall, clips_per_s=step * recipe.batch_size / wall,
        history=history,
    )
