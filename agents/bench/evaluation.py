"""What the benchmark measures while a sampler trains: held-out reconstruction and env statistics.

:class:`HeldOutClips` holds validation clips and ONE fixed random mask (seeded): every cell
evaluates its MAE on the same clips with the same masked tokens, in eval mode, without an
update, so the losses are comparable across samplers and mask ratios. :class:`CellStatsCallback`
is an SB3 callback that counts clips, stops training exactly at the budget, records the MAE's
training loss, the env's motion precision (and its random-mask baseline, the foreground share),
motion recall, the motion lift in both directions and a held-out learning curve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch.utils.data import Subset

from tats_env.config import VideoSpec
from tats_env.data import build_dataset, make_dataloader
from tats_env.env import CoTrainingEngine
from tats_env.mae.masking import random_mask

__all__ = ["HeldOutClips", "CellStatsCallback"]


class HeldOutClips:
    """The first ``num_clips`` clips of the ``val`` split (centre crops) and a common random mask.

    Args:
        data: the benchmark's data argument (``"synthetic"``, a folder or list file with a val split).
        spec: clip shape of the MAE.
        num_clips: clips to keep (0 or more than the split holds: all of them).
        mask_ratio: share of tokens the common mask hides.
        seed: seed of the common mask: the same seed gives the same mask in every process.
        batch_size: clips per forward pass.
    """

    def __init__(self, data: str, spec: VideoSpec, num_clips: int, mask_ratio: float, seed: int,
                 batch_size: int = 16) -> None:
        dataset = build_dataset(data, spec, "val", train=False)
        n = len(dataset) if num_clips <= 0 else min(num_clips, len(dataset))
        loader = make_dataloader(Subset(dataset, range(n)), batch_size, shuffle=False)
        self.batches: list[torch.Tensor] = [batch["video"] for batch in loader]
        self.num_clips = n
        self.mask_ratio = mask_ratio
        # random_mask only reads the batch size and device of its first argument.
        self.mask = random_mask(torch.empty(n, 0), spec, mask_ratio, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def loss(self, engine: CoTrainingEngine, max_clips: int | None = None) -> float:
        """Mean error over the masked tokens of the first ``max_clips`` clips (eval mode, no update)."""
        total, count, start = 0.0, 0, 0
        limit = self.num_clips if max_clips is None else min(max_clips, self.num_clips)
        for videos in self.batches:
            if start >= limit:
                break
            videos = videos[: limit - start]
            mask = self.mask[start: start + len(videos)]
            result = engine.update(videos, mask, update=False)
            total += float(result.per_clip_loss.float().sum())
            count += len(videos)
            start += len(videos)
        return total / count


LIFT_KEYS = ("motion_lift_show_hard", "motion_lift_mask_hard")
"""Motion lift in both directions (:func:`tats_env.env.core.motion_lift`): 0 = random masks, 1 = the best mask."""
COMPOSITION_KEYS = ("moving_visible", "moving_hidden")
"""Moving tokens left visible and masked per clip (:func:`tats_env.env.core.motion_statistics`)."""


class CellStatsCallback(BaseCallback):
    """Counts clips over one or more ``learn`` calls, stops at ``total_clips``, records statistics.

    Args:
        engine: the env's co-training engine (for the held-out curve).
        heldout: the common held-out clips and mask.
        total_clips: pre-training budget; ``on_step`` returns False once it is reached.
        measure_from: clips after which the sampler statistics (motion precision, reward) count,
            i.e. the end of the random-mask warm-up of the learned samplers.
        curve_points: held-out evaluations spread over the budget (the last one at the end).
        curve_clips: held-out clips used by each curve point.
    """

    def __init__(self, engine: CoTrainingEngine, heldout: HeldOutClips, total_clips: int, measure_from: int,
                 curve_points: int = 8, curve_clips: int = 32) -> None:
        super().__init__()
        self.engine = engine
        self.heldout = heldout
        self.total_clips = total_clips
        self.measure_from = measure_from
        self.curve_clips = curve_clips
        points = max(1, curve_points)
        self._curve_at = sorted({max(1, round(total_clips * (i + 1) / points)) for i in range(points)})
        self.clips = 0
        self.train_curve: list[tuple[int, float]] = []
        """``(clips so far, batch training loss)`` after every env step."""
        self.heldout_curve: list[tuple[int, float]] = [(0, heldout.loss(engine, curve_clips))]
        """``(clips so far, held-out loss under the common mask)``."""
        self._precision: list[float] = []
        self._share: list[float] = []
        self._recall: list[float] = []
        self._lift: dict[str, list[float]] = {key: [] for key in LIFT_KEYS + COMPOSITION_KEYS}
        self._rewards: list[float] = []

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals["infos"]
        self.clips += len(infos)
        self.train_curve.append((self.clips, float(infos[0]["batch_recon_loss"])))
        if self.clips > self.measure_from:
            self._precision += [info["motion_precision"] for info in infos if "motion_precision" in info]
            self._share += [info["foreground_share"] for info in infos if "foreground_share" in info]
            # NaN when a clip has no foreground token.
            self._recall += [info["motion_recall"] for info in infos if np.isfinite(info.get("motion_recall", np.nan))]
            for key, values in self._lift.items():
                values += [info[key] for info in infos if np.isfinite(info.get(key, np.nan))]
            self._rewards += [float(r) for r in np.asarray(self.locals["rewards"]).reshape(-1)]
        while self._curve_at and self.clips >= self._curve_at[0]:
            self._curve_at.pop(0)
            self.heldout_curve.append((self.clips, self.heldout.loss(self.engine, self.curve_clips)))
        return self.clips < self.total_clips

    def summary(self) -> dict[str, float | None]:
        """Means over the measured window (None where the env reported nothing, e.g. no foreground masks)."""
        def mean(values: list[float]) -> float | None:
            return float(np.mean(values)) if values else None

        tail = [loss for _, loss in self.train_curve[-max(1, len(self.train_curve) // 10):]]
        return {
            "motion_precision": mean(self._precision),
            "foreground_share": mean(self._share),
            "motion_recall": mean(self._recall),
            **{key: mean(values) for key, values in self._lift.items()},
            "mean_reward": mean(self._rewards),
            "final_train_loss": mean(tail),
        }
