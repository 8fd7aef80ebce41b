"""The directions of token-level credit and the advantage kinds (:data:`Direction`, :data:`AdvantageKind`), without torch.

Kept apart from :mod:`agents.kofn.credit` (which re-exports them) so that the command lines' ``--help``
(``--direction``, ``--token-ppo.advantage``) is built without importing torch.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Direction", "DEFAULT_DIRECTION", "REWARD_MODE", "AdvantageKind", "direction_sign"]

Direction = Literal["show_hard", "mask_hard"]
"""``show_hard``: tokens the MAE finds hard become visible; ``mask_hard``: they get masked."""

DEFAULT_DIRECTION: Direction = "mask_hard"
"""The direction every token-level learner uses unless told otherwise (the main job's, measured: the larger lift)."""

REWARD_MODE: dict[str, str] = {"mask_hard": "adversarial", "show_hard": "cooperative"}
"""The clip reward of a direction for the clip-reward learners: masking hard tokens raises the masked error
(adversarial, +error), showing them lowers it (cooperative, -error). This is the direct effect of the mask choice,
the same term the token-level credit follows; clip-reward learners also see the interaction term (how the visible
tokens change every masked token's error), which at ratios >= 0.9 can push them the other way."""

AdvantageKind = Literal["relative", "centered", "raw"]
"""How errors become per-token advantages (before the direction's sign):
``relative``: e_i / ebar - 1; ``centered``: e_i - ebar; ``raw``: e_i (no baseline)."""


def direction_sign(direction: Direction) -> float:
    """+1 for ``mask_hard`` (credit = error), -1 for ``show_hard``; ``ValueError`` otherwise."""
    if direction == "mask_hard":
        return 1.0
    if direction == "show_hard":
        return -1.0
    raise ValueError(f"unknown direction {direction!r}; choose 'show_hard' or 'mask_hard'")
