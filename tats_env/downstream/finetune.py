"""Fine-tune (or linearly probe) an exported encoder on labelled videos, and evaluate it multi-view.

:func:`finetune` runs the whole recipe from a :class:`FinetuneConfig` and writes into ``out``:
``metrics.json`` (final and best top-1/top-5 as fractions, per-epoch history, the config),
``confusion.png`` (row-normalised confusion matrix of the last evaluation), TensorBoard events
under ``tb/``, and ``classifier.pt`` (``{"model": state_dict, "mae_config", "num_classes",
"class_names"}``, loadable with ``weights_only=True``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from tats_env.downstream.finetune_config import OUTPUTS, FinetuneConfig, validate_finetune_config
from tats_env.downstream.classify import (
    VideoClassifier, VideoMixup, build_criterion, build_optimizer, build_scheduler, confusion_matrix, random_encoder,
    topk_accuracy,
)
from tats_env.config import get_preset
from tats_env.data import build_dataset, folder_class_names, make_dataloader
from tats_env.export import load_encoder
from tats_env.mae import FeatureEncoder
from tats_env.device import resolve_device
from tats_env.outdir import claim_out_dir
from tats_env.utils import autocast_context

__all__ = ["EvalResult", "FinetuneConfig", "evaluate", "finetune", "plot_confusion"]


@dataclass
class EvalResult:
    """Multi-view evaluation of one dataset."""

    top1: float
    """Fraction of videos whose averaged-softmax argmax is the label."""
    top5: float
    """Fraction of videos whose label is among the 5 most probable classes."""
    confusion: Tensor
    """``(K, K)`` counts, row = true class, column = prediction."""
    probs: Tensor
    """``(videos, K)`` softmax averaged over the views."""
    labels: Tensor
    """``(videos,)`` true classes."""


@torch.no_grad()
def evaluate(model: VideoClassifier, loader: DataLoader, num_views: int, device: str | torch.device = "cpu",
             amp: bool = False, progress: bool = False) -> EvalResult:
    """Average the softmax over the ``num_views`` consecutive clips of every video, then score.

    ``loader`` yields :func:`~tats_env.data.collate_clips` batches of an eval dataset with
    ``temporal_views * spatial_views == num_views``.
    """
    device = torch.device(device)
    model.eval()
    probs, labels = [], []
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress):
        videos = batch["video"].to(device, non_blocking=True)
        if videos.shape[0] % num_views:
            raise ValueError(f"a batch of {videos.shape[0]} clips is not a whole number of {num_views}-view videos")
        with autocast_context(device, amp):
            logits = model(videos)
        probs.append(logits.float().softmax(-1).view(-1, num_views, logits.shape[-1]).mean(1).cpu())
        labels.append(batch["label"].view(-1, num_views)[:, 0])
    p, y = torch.cat(probs), torch.cat(labels)
    acc = topk_accuracy(p, y, (1, 5))
    return EvalResult(acc[1], acc[5], confusion_matrix(p.argmax(1), y, p.shape[1]), p, y)


def plot_confusion(confusion: Tensor, class_names: list[str], path: str | Path, title: str = "") -> Path:
    """Save a row-normalised confusion matrix as PNG (matplotlib, no GUI backend)."""
    counts = confusion.double()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    k = len(class_names)
    side = max(4.0, 0.45 * k + 2.0)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    image = ax.imshow(rates.numpy(), vmin=0.0, vmax=1.0, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 25:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)


def _class_names(cfg: FinetuneConfig, num_classes: int) -> list[str]:
    """Names from --class-names, the dataset's classes.txt or a video folder's class folders, else numbers."""
    candidates: list[Path] = []
    if cfg.class_names:
        candidates.append(Path(cfg.class_names))
    elif cfg.data == "synthetic":
        from tats_env.data.synthetic import ensure_synthetic_dataset

        candidates.append(ensure_synthetic_dataset(progress=False) / "classes.txt")
    else:
        data = Path(cfg.data)
        candidates.append((data if data.is_dir() else data.parent) / "classes.txt")
        if data.is_dir() and not (data / "train.txt").is_file():
            names = folder_class_names(data)
            if len(names) == num_classes:
                return names
    for path in candidates:
        if path.is_file():
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if len(names) != num_classes:
                raise ValueError(f"{path} names {len(names)} classes but the head has {num_classes}")
            return names
    return [str(i) for i in range(num_classes)]


def _build_encoder(cfg: FinetuneConfig) -> FeatureEncoder:
    """The encoder to fine-tune: exported weights, or the same architecture freshly initialised."""
    if cfg.init == "pretrained":
        if cfg.encoder is None:
            raise ValueError("--init pretrained needs --encoder (an export directory or training checkpoint)")
        return load_encoder(cfg.encoder, drop_path_rate=cfg.drop_path)
    if cfg.encoder is not None:
        return random_encoder(dataclasses.replace(load_encoder(cfg.encoder).cfg, drop_path_rate=cfg.drop_path))
    return random_encoder(get_preset(cfg.preset, drop_path_rate=cfg.drop_path))


def _json_ready(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_json_ready(v) for v in value]
    return value


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Train a :class:`VideoClassifier` as ``cfg`` says, evaluate it, write the outputs; returns the metrics."""
    validate_finetune_config(cfg)  # ConfigError (a ValueError) naming every bad option, before anything is built
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    claim_out_dir(out, cfg.overwrite, OUTPUTS)

    encoder = _build_encoder(cfg)
    spec = encoder.cfg.video
    train_set = build_dataset(cfg.data, spec, "train", train=True, root=cfg.root, sampling=cfg.sampling,
                              num_repeats=cfg.num_repeats, seed=cfg.seed)
    val_set = build_dataset(cfg.val_data or cfg.data, spec, "val", train=False, root=cfg.root,
                            sampling=cfg.sampling, temporal_views=cfg.temporal_views,
                            spatial_views=cfg.spatial_views, short_side=cfg.short_side, seed=cfg.seed)
    num_classes = cfg.num_classes or 1 + max(r.label for r in [*train_set.records, *val_set.records])
    for dataset, limit in ((train_set, cfg.max_train_videos), (val_set, cfg.max_val_videos)):
        if limit is not None:  # the first videos of the list (quick runs; the head keeps every class)
            dataset.records = dataset.records[:limit]
    names = _class_names(cfg, num_classes)
    model = VideoClassifier(encoder, num_classes, head_drop=cfg.head_drop)
    if cfg.linear_probe:
        model.freeze_encoder()
    model.to(device)

    mixup = VideoMixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                       switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode, label_smoothing=cfg.smoothing,
                       num_classes=num_classes) if cfg.mixing else None
    criterion = build_criterion(mixup, cfg.smoothing)
    train_loader = make_dataloader(train_set, cfg.batch_size, shuffle=True, num_workers=cfg.num_workers,
                                   seed=cfg.seed, drop_last=True, pin_memory=device.type == "cuda")
    val_loader = make_dataloader(val_set, cfg.batch_size, shuffle=False, num_workers=cfg.num_workers, seed=cfg.seed)
    steps_per_epoch = min(len(train_loader), cfg.max_steps_per_epoch or len(train_loader))
    if steps_per_epoch < 1:
        raise ValueError(f"{len(train_set)} training videos give no full batch of {cfg.batch_size}")
    total_steps = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if warmup >= total_steps:
        warnings.warn(f"warm-up of {warmup} steps covers the whole run of {total_steps}; "
                      f"cutting it to {total_steps - 1} (lower --warmup-epochs)", stacklevel=2)
        warmup = total_steps - 1
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, 1.0 if cfg.linear_probe else cfg.layer_decay,
                                cfg.opt, cfg.opt_betas)
    scheduler = build_scheduler(optimizer, total_steps, warmup, min_lr=cfg.min_lr)
    num_views = cfg.temporal_views * cfg.spatial_views

    writer = SummaryWriter(str(out / "tb"))
    history: list[dict[str, Any]] = []
    step, skipped, best = 0, 0, None
    result: EvalResult | None = None
    try:
        for epoch in range(cfg.epochs):
            model.train()
            losses = []
            bar = tqdm(train_loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not cfg.progress)
            for i, batch in enumerate(bar):
                if i >= steps_per_epoch:
                    break
                scheduler.step_update(num_updates=step)
                videos = batch["video"].to(device, non_blocking=True)
                target = batch["label"].to(device, non_blocking=True)
                if mixup is not None:
                    videos, target = mixup(videos, target)
                with autocast_context(device, cfg.amp):
                    loss = criterion(model(videos).float(), target)
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower --lr or enable --clip-grad")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                optimizer.step()
                step += 1
                skipped += int(batch["skipped"])
                losses.append(loss.item())
                head_lr = max(g["lr"] for g in optimizer.param_groups)
                writer.add_scalar("train/loss", losses[-1], step)
                writer.add_scalar("train/lr", head_lr, step)
                bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{head_lr:.2e}")
            row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses))}
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                result = evaluate(model, val_loader, num_views, device, cfg.amp, cfg.progress)
                row.update(top1=result.top1, top5=result.top5)
                writer.add_scalar("val/top1", result.top1, step)
                writer.add_scalar("val/top5", result.top5, step)
                if best is None or result.top1 > best["top1"]:
                    best = dict(row)
            history.append(row)
    finally:
        writer.close()
    assert result is not None and best is not None

    metrics = {
        "top1": result.top1, "top5": result.top5, "best": best, "num_classes": num_classes,
        "num_val_videos": len(result.labels), "views": [cfg.temporal_views, cfg.spatial_views],
        "skipped_train_videos": skipped, "class_names": names, "history": history,
        "config": {k: _json_ready(v) for k, v in dataclasses.asdict(cfg).items()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    mode = "linear probe" if cfg.linear_probe else f"fine-tune, init {cfg.init}"
    plot_confusion(result.confusion, names, out / "confusion.png",
                   f"{mode}: top-1 {100 * result.top1:.1f}%, top-5 {100 * result.top5:.1f}%")
    if cfg.save_classifier:
        torch.save({"model": model.state_dict(), "mae_config": model.cfg.to_dict(), "num_classes": num_classes,
                    "class_names": names}, out / "classifier.pt")
    return metrics
