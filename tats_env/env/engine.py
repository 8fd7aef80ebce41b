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

from dataclasses import asdict, dataclass
from typing import Any

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import Tensor, nn

from tats_env.env.config import EngineConfig  # re-exported: its old home
from tats_env.utils import autocast_context
from tats_env.config import MAEConfig
from tats_env.mae import VideoMAE
from tats_env.mae.masking import decoder_subset


FUSED_ADAMW_DEVICES = ("cpu", "cuda")
"""Device types on which :class:`EngineConfig` ``fused_adamw`` uses ``torch.optim.AdamW(fused=True)``."""


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
