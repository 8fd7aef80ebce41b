"""The fine-tuning recipe's options (:class:`FinetuneConfig`) and their up-front checks.

Kept apart from :mod:`tats_env.downstream.finetune` (the training loop) so that the command line
(``tats-finetune --help``) is built without importing torch. :func:`finetune_problems` lists every bad
option, each naming its flag or file; :func:`validate_finetune_config` raises them as one
:class:`~tats_env.checks.ConfigError` before any data is loaded or model built.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tats_env.checks import ConfigError, FieldChecks, config_problems, flag_problems
from tats_env.config import PRESETS
from tats_env.device import AUTO, check_device
from tats_env.outdir import non_empty_problem, out_problem

__all__ = ["OUTPUTS", "FinetuneConfig", "finetune_problems", "validate_finetune_config"]

OUTPUTS = ("metrics.json", "confusion.png", "tb/", "classifier.pt")
"""What a fine-tuning run writes into ``--out`` (and ``--overwrite`` replaces)."""


@dataclass
class FinetuneConfig(FieldChecks):
    """Fine-tune an exported TATS/VideoMAE encoder for action recognition (VideoMAE recipe)."""

    encoder: str | None = None
    """Native or videomae export directory (or training checkpoint) to start from."""
    init: Literal["pretrained", "random"] = "pretrained"
    """'pretrained' loads the encoder weights; 'random' trains the same architecture from scratch (baseline)."""
    preset: str = "tiny"
    """Architecture for --init random when no --encoder is given."""
    data: str = "synthetic"
    """Training data: 'synthetic', a folder holding train.txt/val.txt, a 'path label' list file, or a video folder."""
    val_data: str | None = None
    """Validation data (same forms); default: the 'val' split of --data."""
    root: str | None = None
    """Base folder of relative paths in list files."""
    class_names: str | None = None
    """File with one class name per line (confusion-matrix labels); found automatically for synthetic data."""
    num_classes: int | None = None
    """Classes of the head; default: largest label in the data + 1."""
    out: Path = Path("runs/finetune")
    """Output folder (metrics.json, confusion.png, tb/, classifier.pt); a folder that holds anything is refused
    unless --overwrite is given."""
    overwrite: bool = False
    """Write into a non-empty --out, replacing the outputs of an earlier run there (other files are kept)."""
    max_train_videos: int | None = None
    """Use only the first videos of the training list (quick runs)."""
    max_val_videos: int | None = None
    """Use only the first videos of the validation list (quick runs)."""
    linear_probe: bool = False
    """Freeze the encoder and train only fc_norm and the head."""
    epochs: int = 30
    """Passes over the training set."""
    batch_size: int = 8
    """Videos per step (times num_repeats clips); must give an even clip count with Mixup."""
    lr: float = 1e-3
    """Peak learning rate (VideoMAE: 1e-3 * total batch / 256 for ViT-B)."""
    min_lr: float = 1e-6
    """Learning rate at the end of the cosine."""
    warmup_epochs: float = 5.0
    """Linear warm-up length in epochs (converted to steps)."""
    weight_decay: float = 0.05
    """AdamW weight decay (not applied to 1-D parameters)."""
    layer_decay: float = 0.75
    """Layer-wise lr decay: block i gets lr * decay**(depth - i); 1 turns it off."""
    opt: str = "adamw"
    """timm optimizer name."""
    opt_betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""
    clip_grad: float | None = None
    """Clip the gradient norm to this value (off when unset)."""
    drop_path: float = 0.1
    """Stochastic depth rate of the last encoder block."""
    head_drop: float = 0.0
    """Dropout before the linear head."""
    smoothing: float = 0.1
    """Label smoothing."""
    mixup: float = 0.8
    """Mixup alpha (0 = off)."""
    cutmix: float = 1.0
    """CutMix alpha (0 = off); one box for all frames of a clip."""
    mixup_prob: float = 1.0
    """Chance of mixing a batch."""
    mixup_switch_prob: float = 0.5
    """Chance of CutMix instead of Mixup when both are on."""
    mixup_mode: Literal["batch", "pair", "elem"] = "batch"
    """Draw mixing parameters per batch, per pair or per clip."""
    sampling: Literal["k400", "ssv2"] = "k400"
    """Clip sampling: strided windows (Kinetics) or segments (Something-Something)."""
    num_repeats: int = 1
    """Clips drawn per decoded training video (VideoMAE's repeated augmentation uses 2)."""
    temporal_views: int = 2
    """Evaluation clips per video along time."""
    spatial_views: int = 3
    """Evaluation crops per clip (1 = centre, 3 = VideoMAE's three crops)."""
    short_side: int | None = None
    """Evaluation short-side resize (default: the clip size)."""
    num_workers: int = 0
    """DataLoader worker processes."""
    device: str = AUTO
    """Torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps."""
    amp: bool = True
    """bf16 autocast on CUDA (ignored on CPU)."""
    seed: int = 0
    """Seed of torch, numpy (Mixup) and the data order."""
    eval_every: int = 1
    """Evaluate every this many epochs (and always after the last)."""
    max_steps_per_epoch: int | None = None
    """Cut every epoch short (smoke tests)."""
    progress: bool = True
    """Show tqdm progress bars."""
    save_classifier: bool = True
    """Write classifier.pt at the end."""

    @property
    def mixing(self) -> bool:
        """Whether Mixup or CutMix is on."""
        return (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (:class:`tats_env.checks.FieldChecks`)."""
        for name in ("epochs", "batch_size", "eval_every", "num_repeats", "temporal_views", "spatial_views"):
            if getattr(self, name) < 1:
                yield name, "must be >= 1"
        for name in ("num_classes", "max_train_videos", "max_val_videos", "max_steps_per_epoch", "short_side"):
            value = getattr(self, name)
            if value is not None and value < (2 if name == "num_classes" else 1):
                yield name, f"must be >= {2 if name == 'num_classes' else 1}"
        if self.num_workers < 0:
            yield "num_workers", "must be >= 0"
        if not self.lr > 0:
            yield "lr", "must be > 0"
        if self.min_lr < 0:
            yield "min_lr", "must be >= 0"
        elif self.min_lr > self.lr > 0:
            yield "min_lr", f"must not exceed the learning rate (--lr {self.lr})"
        for name in ("warmup_epochs", "weight_decay", "mixup", "cutmix"):
            if getattr(self, name) < 0:
                yield name, "must be >= 0"
        if not 0 < self.layer_decay <= 1:
            yield "layer_decay", "must be in (0, 1]"
        for name in ("drop_path", "head_drop", "smoothing"):
            if not 0 <= getattr(self, name) < 1:
                yield name, "must be in [0, 1)"
        for name in ("mixup_prob", "mixup_switch_prob"):
            if not 0 <= getattr(self, name) <= 1:
                yield name, "must be in [0, 1]"
        if self.clip_grad is not None and not self.clip_grad > 0:
            yield "clip_grad", "must be > 0"
        if not 0 <= self.seed < 2**32:
            yield "seed", "must be in [0, 2**32 - 1]"
        if self.mixing and (self.batch_size * self.num_repeats) % 2:
            yield "batch_size", (f"Mixup/CutMix needs an even number of clips per step (--batch-size x --num-repeats = "
                                 f"{self.batch_size * self.num_repeats}); change either or pass --mixup 0 --cutmix 0")


def finetune_problems(cfg: FinetuneConfig) -> list[str]:
    """One line per bad option of ``cfg``: ranges, preset, device, files, data sources and ``--out``."""
    from tats_env.data.source import DataSourceError, check_data_source

    problems = list(flag_problems(cfg, config_problems(cfg)))
    if cfg.init == "pretrained" and cfg.encoder is None:
        problems.append("--init pretrained needs --encoder (an export directory or training checkpoint), "
                        "or pass --init random")
    if cfg.encoder is not None and not Path(cfg.encoder).exists():
        problems.append(f"--encoder {cfg.encoder}: no such export directory or checkpoint file")
    if cfg.encoder is None and cfg.preset not in PRESETS:
        problems.append(f"--preset {cfg.preset}: unknown preset; choose one of {', '.join(PRESETS)}")
    if cfg.class_names is not None and not Path(cfg.class_names).is_file():
        problems.append(f"--class-names {cfg.class_names}: file not found")
    device = check_device(cfg.device)
    if device:
        problems.append(f"--device {cfg.device}: {device}")
    out = out_problem(cfg.out) or non_empty_problem(cfg.out, cfg.overwrite, OUTPUTS)
    if out:
        problems.append(f"--out {cfg.out}: {out}")
    try:  # the data sources last: they read the list files
        check_data_source(cfg.data, "train", cfg.root, split_flag=None)
        check_data_source(cfg.val_data or cfg.data, "val", cfg.root, flag="--val-data" if cfg.val_data else "--data",
                          split_flag=None)
    except DataSourceError as exc:
        problems.append(str(exc))
    return problems


def validate_finetune_config(cfg: FinetuneConfig) -> None:
    """Raise :class:`~tats_env.checks.ConfigError` listing every bad option of ``cfg`` (one per line)."""
    problems = finetune_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))
