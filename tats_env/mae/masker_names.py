"""The names of the fixed token maskers, without torch: what ``--warmup-masker`` and ``--methods`` accept.

:data:`tats_env.mae.masking.MASKERS` and :data:`tats_env.mae.composition.COMPOSITION_MASKERS` hold the
maskers themselves under these names (each checks it on import), so the samplers' registry and the
command lines' ``--help`` list them without importing torch.
"""

from __future__ import annotations

__all__ = ["PLAIN_MASKERS", "COMPOSITION_MASKER_NAMES", "MASKER_NAMES", "check_names"]

PLAIN_MASKERS: tuple[str, ...] = ("random", "tube", "running_cell", "motion_energy")
"""The maskers that need no foreground masks (:mod:`tats_env.mae.masking`)."""

COMPOSITION_MASKER_NAMES: tuple[str, ...] = (
    "show_moving_0", "show_moving_2", "show_moving_4", "show_moving_8", "show_moving_all",
    "hide_moving_80", "hide_moving_90", "temporal_split_4",
)
"""The diagnostic oracles of controlled composition (:mod:`tats_env.mae.composition`; they read foreground masks)."""

MASKER_NAMES: tuple[str, ...] = PLAIN_MASKERS + COMPOSITION_MASKER_NAMES
"""Every fixed masker, in table order."""


def check_names(table: dict[str, object], names: tuple[str, ...]) -> None:
    """``RuntimeError`` unless ``table`` holds exactly ``names``, in order (a masker added in one place only)."""
    if tuple(table) != names:
        raise RuntimeError(f"masker table {tuple(table)} does not match tats_env.mae.masker_names {names}")
