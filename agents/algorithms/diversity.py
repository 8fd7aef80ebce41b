"""Mask diversity: how much of each mask the learned sampler decides, and how far it may concentrate.

Published adaptive maskers never let the prior decide the whole mask (AdaMAE samples stochastically, HPM masks a ramped share of predicted-hard patches and the rest at random,
MGMAE/EVEREST randomise inside a motion set). :class:`DiversityConfig` gives every token-level learner
the same three options, in one place (``--diversity.*``, a field of :class:`agents.registry.SamplerConfig`):

* ``policy_share``: the sampler picks this share of the masked set (``mask_hard``) or of the visible set
  (``show_hard``); the rest is uniform (:class:`agents.kofn.share.PolicyShareDistribution`), constant or
  ramped linearly from 0 over the sampler phase (``share_schedule``, HPM's easy-to-hard);
* ``entropy_floor``: keep the policy part's exact entropy above this share of its uniform maximum, with a
  coefficient tuned automatically (:class:`EntropyFloor`, as SAC tunes its temperature);
* ``signal``: what the per-token credit ascends, the MAE's ``error`` or its ``progress`` (error before
  minus after the MAE update on the same clip; the env's ``token_signal``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from agents.algorithms.configs import DiversityConfig, ShareSchedule

__all__ = ["DiversityConfig", "ShareSchedule", "EntropyFloor"]

class EntropyFloor:
    """Lagrangian entropy floor: ``coef * (-H / H_max)`` in the loss, ``log coef`` ascends ``floor - H / H_max``.

    The coefficient grows while the entropy share is under the floor and decays towards 0 above it (SAC's
    temperature rule with a target share instead of a target entropy).
    """

    def __init__(self, floor: float, lr: float, device: torch.device | str = "cpu", init: float = 0.1) -> None:
        self.floor = floor
        self.log_coef = torch.tensor(math.log(init), device=device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.log_coef], lr=lr)

    @property
    def coef(self) -> float:
        """The current coefficient."""
        return float(self.log_coef.detach().exp())

    def penalty(self, entropy_share: Tensor) -> Tensor:
        """``-coef * mean(H / H_max)`` with the coefficient held fixed (add to the policy loss)."""
        return -self.log_coef.detach().exp() * entropy_share.mean()

    def update(self, entropy_share: Tensor) -> None:
        """One step of the coefficient on the minibatch's mean entropy share (averaged across ranks under DDP)."""
        share = entropy_share.detach().mean()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(share)
            share = share / torch.distributed.get_world_size()
        loss = self.log_coef * (share - self.floor)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
