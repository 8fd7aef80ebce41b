"""The masking environment's configuration (:class:`EnvConfig`, :class:`EngineConfig`, :class:`RewardConfig`), without torch.

Kept apart from the environment (:mod:`tats_env.env.core`, :mod:`~tats_env.env.engine`,
:mod:`~tats_env.env.rewards`, which re-export them) so that the command lines' ``--help`` is built
from these dataclasses without importing torch, timm, stable-baselines3 or gymnasium.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import tyro

from tats_env.checks import FieldChecks

__all__ = ["InvalidActionMode", "RewardMode", "RewardConfig", "EngineConfig", "EnvConfig", "env_config_from_options"]

InvalidActionMode = Literal["raise", "repair"]
"""What a mask with the wrong number of ones does: ``raise`` or ``repair`` (flagged in info)."""


RewardMode = Literal["adversarial", "cooperative"]


@dataclass(frozen=True)
class RewardConfig(FieldChecks):
    """How the per-token error of the masked tokens becomes one reward per clip."""

    mode: RewardMode | None = None
    """``adversarial``: +error, the sampler hunts tokens the MAE finds hard (AdaMAE/TATS);
    ``cooperative``: -error, the sampler hides tokens that are easy to reconstruct. None:
    adversarial, unless the sampler's ``--direction`` decides (the main job and the benchmark
    derive it from there: mask_hard -> adversarial, show_hard -> cooperative)."""
    baseline: Literal["none", "random"] = "none"
    """``random``: subtract, per clip, the error the same MAE makes under a fresh uniformly random
    mask with the same K (one extra forward, no backward). This paired control variate removes
    the clip-to-clip difficulty that otherwise swamps the effect of the mask choice; the reward
    becomes "how much harder than random masking" (adversarial) or its negative."""
    normalize: bool = False
    """Standardise rewards with running mean and variance (the MAE's loss drifts as it learns)."""
    clip: float = 10.0
    """Clip normalised rewards to ``[-clip, clip]``."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        if not self.clip > 0:
            yield "clip", "must be > 0"


@dataclass(frozen=True)
class EngineConfig(FieldChecks):
    """Optimisation of the environment's MAE (VideoMAE's recipe by default)."""

    blr: float = 1.5e-4
    """Base learning rate per 256 clips; the actual lr is ``blr * batch / 256`` unless ``lr`` is set."""
    lr: float | None = None
    """Absolute learning rate (overrides ``blr`` scaling)."""
    min_lr: float = 1e-5
    """Floor of the cosine schedule (scaled like ``blr`` when ``lr`` is None)."""
    warmup_updates: int = 40
    """Linear warm-up length in optimizer steps."""
    total_updates: int | None = None
    """Cosine schedule length in optimizer steps; None keeps the lr constant after warm-up."""
    weight_decay: float = 0.05
    """AdamW weight decay (not applied to biases, norms and the mask token)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    grad_clip: float | None = None
    """Clip the gradient norm to this value; None disables clipping."""
    amp: bool = True
    """bf16 autocast on CUDA (ignored on the CPU)."""
    fused_adamw: bool = True
    """torch's fused AdamW kernel on the CPU and CUDA (one pass per tensor instead of one per operation: about 3x
    faster optimizer steps on the CPU, the same update up to float rounding); off = the per-tensor loop."""
    decoder_mask_ratio: float = 0.0
    """VideoMAE V2 dual masking in the training updates: the decoder reconstructs only ``1 - ratio`` of the
    masked tokens (their loss alone trains the MAE and is what per-token learners see); 0 = off, every masked
    token decoded. Evaluation forwards (``update=False``: reward baselines, held-out losses) decode every token."""
    decoder_masking: Literal["running_cell", "random"] = "running_cell"
    """Which masked tokens are decoded under dual masking: V2's running cell, or uniformly at random."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        if not self.blr > 0:
            yield "blr", "must be > 0"
        if self.lr is not None and not self.lr > 0:
            yield "lr", "must be > 0 (or None: scale --mae.blr)"
        if not self.min_lr >= 0:
            yield "min_lr", "must be >= 0"
        elif self.lr is not None and self.lr > 0 and self.min_lr > self.lr:
            yield "min_lr", f"must not exceed the learning rate (--mae.lr {self.lr:g}): the cosine would rise"
        if self.warmup_updates < 0:
            yield "warmup_updates", "must be >= 0"
        if self.total_updates is not None and self.total_updates < 1:
            yield "total_updates", "must be >= 1 (or None)"
        if not self.weight_decay >= 0:
            yield "weight_decay", "must be >= 0"
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            yield "betas", "needs two values in [0, 1)"
        if self.grad_clip is not None and not self.grad_clip > 0:
            yield "grad_clip", "must be > 0 (or None: no clipping)"
        if not 0.0 <= self.decoder_mask_ratio < 1.0:
            yield "decoder_mask_ratio", "must be in [0, 1) (0 = dual masking off)"
        if self.decoder_masking not in ("running_cell", "random"):
            yield "decoder_masking", "must be running_cell or random"

    def learning_rates(self, batch_size: int) -> tuple[float, float]:
        """``(peak lr, min lr)`` for a global batch of ``batch_size`` clips."""
        if self.lr is not None:
            return self.lr, min(self.min_lr, self.lr)
        scale = batch_size / 256
        return self.blr * scale, self.min_lr * scale


@dataclass(frozen=True)
class EnvConfig(FieldChecks):
    """Everything that defines a masking environment (the data, the model size, the task)."""

    data: str = "synthetic"
    """``"synthetic"`` (the embedded motion dataset), a ``path label`` list file, or a folder of videos."""
    preset: str = "tiny"
    """MAE size preset (tiny, tiny32, small, base, large); see :data:`tats_env.config.PRESETS`."""
    mask_ratio: float = 0.9
    """Share of tokens to mask; the action masks exactly ``K = round(mask_ratio * N)`` tokens."""
    split: str = "train"
    """Which list of the dataset the env draws clips from."""
    sampling: Literal["k400", "ssv2"] = "k400"
    """Frame sampling: K400-style strided window or SSv2-style segments."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward mode, baseline and normalisation."""
    engine_config: Annotated[EngineConfig, tyro.conf.arg(name="mae")] = field(default_factory=EngineConfig)
    """Optimisation of the environment's MAE (flags --mae.*)."""
    update_mae: bool = True
    """Take one MAE optimizer step per env step; False evaluates a frozen MAE."""
    invalid_action: InvalidActionMode = "raise"
    """What a mask with the wrong number of ones does: ``raise`` or ``repair`` (flagged in info)."""
    obs_dtype: Literal["float32", "float16"] = "float32"
    """Observation dtype; float16 halves the host copy and the rollout buffer."""
    num_workers: int = 0
    """DataLoader worker processes decoding videos."""
    foreground_threshold: float = 0.25
    """Share of a token's pixels that must be foreground for it to count as a motion token."""
    seed: int = 0
    """Seed of the MAE's initial weights (drawn from it alone when the env builds its MAE), of the clip stream
    (shuffle and augmentation) and of the env's own random masks; the training scripts seed the sampler from it
    too. ``reset(seed=...)`` restarts the clip stream and masks, not the (learned) weights."""
    token_info: bool = False
    """Put the step's per-token signal into ``info`` for token-level learners: ``token_error``
    (float32 ``(N,)``, the MAE's error of each masked token, NaN at visible tokens and, under dual masking
    (``--mae.decoder-mask-ratio``), at the masked tokens the decoder skipped), ``token_mask``
    (bool ``(N,)``, True = masked) and, when the dataset has foreground masks, ``token_foreground``
    (bool ``(N,)``). The rows are read-only views of one ``(B, N)`` host array per step (no
    per-clip copies); the scalar reward is unchanged. Set when the env is built (the samplers' registry
    does it for the learners that need it); it does not change afterwards."""
    token_signal: Literal["error", "progress"] = "error"
    """What ``info["token_error"]`` holds: ``error``, the masked token's reconstruction error before the MAE
    update, or ``progress``, that error minus the token's error after the update on the same clip and mask
    (its learning progress: one extra no-grad forward per step). Only read with ``token_info``."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`); the preset and data path are checked where they are read."""
        if not 0.0 < self.mask_ratio < 1.0:
            yield "mask_ratio", "must be in (0, 1), exclusive"
        if self.num_workers < 0:
            yield "num_workers", "must be >= 0"
        if not 0.0 <= self.foreground_threshold <= 1.0:
            yield "foreground_threshold", "must be in [0, 1]"
        if not 0 <= self.seed < 2**32:
            yield "seed", "must be in [0, 2**32 - 1]"
        if self.token_signal not in ("error", "progress"):
            yield "token_signal", "must be error or progress"


def env_config_from_options(options: dict[str, Any], **given: Any) -> EnvConfig:
    """An :class:`EnvConfig` from keyword options (``given`` first), ``TypeError`` naming unknown ones."""
    fields = {f.name for f in dataclasses.fields(EnvConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise TypeError(f"unknown env options {unknown}; known: {sorted(fields)}")
    return EnvConfig(**given, **options)
