"""The co-training engine: the environment's video MAE, its optimizer and its schedule.

The engine is the reward model of the masking environment. ``observe`` turns clips into the
observation (the MAE's tubelet embedding, detached); ``update`` reconstructs the masked tokens,
takes one optimizer step and returns per-clip and per-token errors. A step whose loss or gradient
is not finite is skipped (weights, optimizer and schedule unchanged) and counted in
``skipped_updates`` / ``consecutive_skipped``, so one bad batch never poisons the MAE; the caller
decides when too many skips end a run. It holds no global state: a caller may wrap
:attr:`CoTrainingEngine.train_module` in ``DistributedDataParallel``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import Tensor, nn

from tats_env.checks import FieldChecks
from tats_env.utils import autocast_context
from tats_env.config import MAEConfig
from tats_env.mae import VideoMAE
from tats_env.mae.masking import decoder_subset


FUSED_ADAMW_DEVICES = ("cpu", "cuda")
"""Device types on which :class:`EngineConfig` ``fused_adamw`` uses ``torch.optim.AdamW(fused=True)``."""


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


@dataclass
class UpdateResult:
    """What one engine update returns (tensors stay on the engine's device)."""

    loss: float
    """Mean error over all masked tokens of the batch (NaN/inf when the step was skipped for it)."""
    per_clip_loss: Tensor
    """``(B,)`` mean error of each clip's masked tokens."""
    per_token_loss: Tensor
    """``(B, N)`` error of every decoded token, 0 elsewhere."""
    decoded: Tensor
    """``(B, N)`` bool: the tokens whose error was measured (the mask, or its decoded subset under dual masking)."""
    grad_norm: float | None
    """Total gradient norm before clipping (None in evaluation, ``update=False``)."""
    lr: float
    """Learning rate used for this step."""
    skipped: bool = False
    """True when the optimizer step was skipped because the loss or the gradient was not finite."""


class CoTrainingEngine:
    """Owns a :class:`VideoMAE`, its AdamW and its warm-up + per-step cosine schedule."""

    def __init__(
        self,
        mae_config: MAEConfig,
        config: EngineConfig | None = None,
        batch_size: int = 1,
        device: str | torch.device = "cpu",
        model: VideoMAE | None = None,
    ) -> None:
        self.mae_config = mae_config
        self.config = config or EngineConfig()
        self.device = torch.device(device)
        self.model = (model or VideoMAE(mae_config)).to(self.device)
        self.train_module: nn.Module = self.model
        """The module ``update`` calls: the model itself, or a DDP wrapper of it set by the caller."""
        lr, min_lr = self.config.learning_rates(batch_size)
        fused = {"fused": True} if self.config.fused_adamw and self.device.type in FUSED_ADAMW_DEVICES else {}
        self.optimizer = create_optimizer_v2(
            self.model, opt="adamw", lr=lr, weight_decay=self.config.weight_decay, betas=self.config.betas, **fused
        )
        self.scheduler = CosineLRScheduler(
            self.optimizer,
            t_initial=self.config.total_updates or 10**12,
            lr_min=min_lr,
            warmup_t=self.config.warmup_updates,
            warmup_lr_init=min(1e-6, lr),
            t_in_epochs=False,
        )
        self.num_updates = 0
        self.skipped_updates = 0
        """Optimizer steps skipped so far because the loss or the gradient was not finite."""
        self.consecutive_skipped = 0
        """Skipped steps since the last good one (0 after every good step)."""
        self.scheduler.step_update(0)

    @property
    def spec(self):  # noqa: ANN201 - VideoSpec, re-exported for convenience
        """The clip shape of the engine's MAE."""
        return self.mae_config.video

    @torch.no_grad()
    def observe(self, clips: Tensor) -> Tensor:
        """Token embeddings ``(B, N, D)`` float32 of ``clips`` ``(B, C, T, H, W)``, detached."""
        with autocast_context(self.device, self.config.amp):
            tokens = self.model.embed_tokens(clips.to(self.device, non_blocking=True))
        return tokens.float()

    def update(self, clips: Tensor, mask: Tensor, update: bool = True) -> UpdateResult:
        """Reconstruct the masked tokens; with ``update=True`` also take one optimizer step.

        ``update=False`` evaluates in ``eval`` mode under ``no_grad`` and changes nothing.
        """
        clips = clips.to(self.device, non_blocking=True)
        mask = mask.to(self.device, non_blocking=True)
        lr = float(self.optimizer.param_groups[0]["lr"])
        if not update:
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad(), autocast_context(self.device, self.config.amp):
                out = self.model(clips, mask)
            self.model.train(was_training)
            return UpdateResult(out.loss.item(), out.per_clip_loss.detach(), out.per_token_loss.detach(), out.decoded,
                                None, lr)

        self.train_module.train()
        decoded = None
        if self.config.decoder_mask_ratio > 0:
            decoded = decoder_subset(mask, clips, self.spec, self.config.decoder_mask_ratio, self.config.decoder_masking)
        with autocast_context(self.device, self.config.amp):
            out = self.train_module(clips, mask, decoded)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        max_norm = self.config.grad_clip if self.config.grad_clip is not None else float("inf")
        norm = nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        skipped = not self._finite_step(out.loss.detach(), norm)
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.optimizer.step()
            self.num_updates += 1
            self.scheduler.step_update(self.num_updates)
        return UpdateResult(out.loss.item(), out.per_clip_loss.detach(), out.per_token_loss.detach(), out.decoded,
                            float(norm), lr, skipped)

    def _finite_step(self, loss: Tensor, grad_norm: Tensor) -> bool:
        """Whether loss and gradient norm are finite (one host sync); counts a skip when not.

        Under ``torch.distributed`` the ranks agree (a non-finite step on any rank is skipped on all),
        so the replicas take the same steps.
        """
        flag = (torch.isfinite(loss) & torch.isfinite(grad_norm)).to(torch.float32)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        finite = bool(flag)
        if finite:
            self.consecutive_skipped = 0
        else:
            self.skipped_updates += 1
            self.consecutive_skipped += 1
        return finite

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: model, optimizer, schedule, update counter, configs."""
        return {
            "mae_config": self.mae_config.to_dict(),
            "engine_config": asdict(self.config),
            "mae_state": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "num_updates": self.num_updates,
            "skipped_updates": self.skipped_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a different MAE config raises ``ValueError`` naming both."""
        saved = MAEConfig.from_dict(state["mae_config"])
        if saved != self.mae_config:
            raise ValueError(f"checkpoint MAE config {saved} does not match this engine's {self.mae_config}")
        self.model.load_state_dict(state["mae_state"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.num_updates = int(state["num_updates"])
        self.skipped_updates = int(state.get("skipped_updates", 0))
        self.scheduler.step_update(self.num_updates)
