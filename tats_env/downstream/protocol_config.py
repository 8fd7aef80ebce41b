"""The CPU evaluation protocol's options (:class:`ProtocolConfig` and the configs it nests), without torch.

:class:`ProbeConfig` (the frozen-feature probe), :class:`ShortRecipe` (a short supervised run),
:class:`ControlConfig` (the 3D-CNN positive control) and :data:`Pooling`. Kept apart from the code
that runs them (:mod:`tats_env.downstream.protocol`, :mod:`~tats_env.downstream.probe`,
:mod:`~tats_env.downstream.supervised`, :mod:`~tats_env.downstream.control`,
:mod:`~tats_env.downstream.pooling`, which re-export them) so that ``tats-eval --help`` and
``tats-bench --help`` are built without importing torch or timm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Pooling", "POOLINGS", "ShortRecipe", "ProbeConfig", "ControlConfig", "ProtocolConfig"]

Pooling = Literal["mean", "time", "quadrants"]
POOLINGS: tuple[str, ...] = ("mean", "time", "quadrants")


@dataclass(frozen=True)
class ShortRecipe:
    """Optimiser and schedule of a short supervised run (AdamW, linear warm-up, per-step cosine)."""

    epochs: int = 10
    """Passes over the training clips."""
    batch_size: int = 32
    """Clips per step (the last incomplete batch of an epoch is dropped)."""
    lr: float = 1e-3
    """Peak learning rate."""
    warmup_epochs: float = 0.5
    """Linear warm-up, in epochs."""
    min_lr: float = 1e-5
    """Learning rate at the end of the cosine."""
    weight_decay: float = 0.05
    """AdamW weight decay (not on biases and norms)."""
    layer_decay: float = 1.0
    """Layer-wise lr decay of a ViT (1 = off, the short-budget default)."""
    clip_grad: float | None = 1.0
    """Gradient-norm clipping (None = off)."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.lr <= 0 or self.warmup_epochs < 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0; warmup_epochs and weight_decay >= 0")


@dataclass(frozen=True)
class ProbeConfig:
    """Pooling and regularisation of the frozen-feature probe."""

    pooling: Pooling = "quadrants"
    """'quadrants' (main metric): mean over each quarter of the frame per temporal slot, concatenated;
    'time': mean over space per temporal slot, concatenated; 'mean': mean over all tokens."""
    weight_decay: float = 1e-3
    """L2 penalty on the weights (not the bias), relative to the mean cross-entropy."""
    max_iter: int = 500
    """L-BFGS iterations."""
    batch_size: int = 64
    """Clips per forward pass when extracting features."""

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.weight_decay < 0 or self.max_iter < 1:
            raise ValueError("weight_decay must be >= 0 and max_iter >= 1")


@dataclass(frozen=True)
class ControlConfig:
    """Size and recipe of the positive control."""

    width: int = 16
    """Channels of the first block (then 2x, 4x)."""
    input_size: int | None = 32
    """Clips are resized to this side before the first convolution (None: keep the clip size)."""
    recipe: ShortRecipe = field(default_factory=lambda: ShortRecipe(epochs=10, lr=3e-3))
    """Optimiser and schedule (the same short schedule as the ViTs; a higher lr suits batch norm)."""


@dataclass(frozen=True)
class ProtocolConfig:
    """What the protocol runs and with which budgets."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the random-init encoders, fine-tunes, from-scratch ViTs and controls."""
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    """The frozen-feature probe (main metric)."""
    finetune: ShortRecipe = field(default_factory=lambda: ShortRecipe(epochs=3, lr=1e-4))
    """Short fine-tune of every pre-trained encoder (``run_finetune=False`` skips it). lr 1e-4: with the
    probe-initialised head, higher rates first undo the probe's fit (docs/results/issue11_probe.md)."""
    scratch: ShortRecipe = field(default_factory=lambda: ShortRecipe(epochs=3, lr=1e-4))
    """From-scratch supervised ViT of the same architecture (by default the fine-tune's recipe, so that the two
    differ only in the encoder's initialisation)."""
    control: ControlConfig = field(default_factory=ControlConfig)
    """The 3D-CNN positive control."""
    head_from_probe: bool = True
    """Linear probe, then fine-tune (LP-FT): the fine-tune's and the from-scratch ViT's head (pooled like the probe,
    BatchNorm-standardised) starts as the probe fitted on their own features; False: a zero-initialised head."""
    run_finetune: bool = True
    """Fine-tune every encoder (the slowest part; the probe is the main metric)."""
    run_scratch: bool = True
    """Train the from-scratch ViT (needed for a ranking)."""
    run_control: bool = True
    """Train the positive control (needed for a ranking)."""
    z: float = 3.0
    """Controls must beat chance by this many binomial standard deviations."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if self.z < 0:
            raise ValueError(f"z must be >= 0, got {self.z}")
