"""The batched masking problem shared by the single ``gymnasium.Env`` and the SB3 ``VecEnv``.

:class:`MaskingCore` owns the clip stream, the co-training engine and the reward function.
``reset()`` draws B clips and returns their token embeddings; ``step(actions)`` runs ONE
batched MAE forward/backward for all B clips and returns a reward and an info dict per clip.

Under ``torch.distributed`` each process holds one core over its own shard of the videos
(:class:`~tats_env.env.clips.ClipStream`); the MAE's global batch is ``num_envs x world size``
(what its ``blr`` learning rate is scaled by), and the core's own random masks (the random
reward baseline, ``action_space.sample()``) come from a per-rank seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import torch
import tyro
from gymnasium import spaces

from tats_env.config import MAEConfig, get_preset
from tats_env.data import VideoClipDataset, build_dataset
from tats_env.env.clips import ClipStream, process_shard, shard_seed
from tats_env.env.engine import CoTrainingEngine, EngineConfig
from tats_env.env.rewards import RewardConfig, RewardFunction
from tats_env.env.spaces import InvalidActionMode, KOfNMask, action_to_mask
from tats_env.mae.masking import random_mask, token_foreground


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines a masking environment (the data, the model size, the task)."""

    data: str = "synthetic"
    """``"synthetic"`` (the embedded motion dataset), a ``path label`` list file, or a folder of videos."""
    preset: str = "tiny"
    """MAE size preset (tiny, small, base, large); see :data:`tats_env.config.PRESETS`."""
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
    """Seed of the clip stream (shuffle and augmentation); the training scripts seed networks and masks from it too."""


def motion_statistics(foreground: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-clip motion statistics of masks ``(B, N)`` against foreground tokens ``(B, N)`` (both bool).

    ``motion_precision``: share of masked tokens on the foreground; ``foreground_share``: share of
    all tokens on it (what random masking scores as precision); ``motion_recall``: share of
    foreground tokens masked (NaN for a clip without foreground; random masking scores the ratio).
    """
    hits = (foreground & mask).sum(1).float()
    fg_count = foreground.sum(1).float()
    return {
        "motion_precision": hits / mask.sum(1).float(),
        "foreground_share": foreground.float().mean(1),
        "motion_recall": torch.where(fg_count > 0, hits / fg_count.clamp_min(1), torch.full_like(hits, float("nan"))),
    }


class MaskingCore:
    """B masking episodes at once, backed by one :class:`CoTrainingEngine`."""

    def __init__(
        self,
        num_envs: int,
        config: EnvConfig | None = None,
        device: str | torch.device = "cpu",
        mae_config: MAEConfig | None = None,
        dataset: VideoClipDataset | None = None,
        engine: CoTrainingEngine | None = None,
    ) -> None:
        self.config = config or EnvConfig()
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.mae_config = mae_config or (engine.mae_config if engine is not None else get_preset(self.config.preset))
        spec = self.mae_config.video
        self.spec = spec
        self.num_tokens = spec.num_tokens
        self.num_masked = spec.num_masked(self.config.mask_ratio)
        _, world_size = process_shard()
        # The engine's batch is the global one (num_envs per process): it scales the blr learning rate.
        self.engine = engine or CoTrainingEngine(self.mae_config, self.config.engine_config, num_envs * world_size,
                                                 self.device)
        if dataset is None:
            dataset = build_dataset(self.config.data, spec, split=self.config.split, train=True,
                                    sampling=self.config.sampling, seed=self.config.seed)
        if dataset.spec != spec:
            raise ValueError(f"dataset clips {dataset.spec} do not match the MAE's video spec {spec}")
        self.clips = ClipStream(dataset, num_envs, self.config.num_workers, self.config.seed)
        self.reward_fn = RewardFunction(self.config.reward)
        self.obs_dtype = np.dtype(self.config.obs_dtype)
        self.observation_space = spaces.Box(
            -np.inf, np.inf, (self.num_tokens, self.mae_config.embed_dim), dtype=self.obs_dtype
        )
        self.action_space = KOfNMask(self.num_tokens, self.num_masked)
        self.batch: dict[str, Any] | None = None
        """The clips of the current episodes (``video`` on the engine's device)."""
        self.last_mask: torch.Tensor | None = None
        """The masks of the last step, kept for visualisation."""
        self.episodes = 0
        self._mask_generator = torch.Generator(device=self.device).manual_seed(self.rank_seed(self.config.seed))

    def rank_seed(self, seed: int) -> int:
        """This process's own seed for random masks: ``seed`` in one process (and on rank 0), distinct per rank."""
        return shard_seed(seed, self.clips.rank)

    def seed(self, seed: int) -> None:
        """Reseed the clip stream (the next :meth:`reset` draws from the new stream; pass the same seed on every rank)."""
        self.clips.seed(seed)
        self.action_space.seed(self.rank_seed(seed))
        self._mask_generator.manual_seed(self.rank_seed(seed))

    def reset(self) -> np.ndarray:
        """Draw B new clips; their token embeddings ``(B, N, D)`` as a fresh numpy array."""
        batch = self.clips.next()
        batch["video"] = batch["video"].to(self.device, non_blocking=True)
        if "foreground" in batch:
            batch["foreground"] = batch["foreground"].to(self.device, non_blocking=True)
        self.batch = batch
        tokens = self.engine.observe(batch["video"])
        return tokens.to(torch.float16 if self.obs_dtype == np.float16 else torch.float32).cpu().numpy()

    def step(self, actions: np.ndarray | torch.Tensor) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Score B masks on the current clips: rewards ``(B,)`` float32 and one info dict per clip."""
        if self.batch is None:
            raise RuntimeError("call reset() before step()")
        mask, repaired = action_to_mask(actions, self.num_envs, self.action_space, self.config.invalid_action)
        mask = mask.to(self.device, non_blocking=True)
        baseline = None
        if self.config.reward.baseline == "random":
            # Scored before the update, with the same weights the policy's mask meets.
            reference = random_mask(self.batch["video"], self.spec, self.config.mask_ratio, generator=self._mask_generator)
            baseline = self.engine.update(self.batch["video"], reference, update=False).per_clip_loss
        result = self.engine.update(self.batch["video"], mask, update=self.config.update_mae)
        rewards = self.reward_fn(result.per_token_loss, mask, baseline)
        self.last_mask = mask
        self.episodes += self.num_envs

        per_clip = {"recon_loss": result.per_clip_loss}
        if baseline is not None:
            per_clip["baseline_recon_loss"] = baseline
        if "foreground" in self.batch:
            per_clip.update(motion_statistics(
                token_foreground(self.batch["foreground"], self.spec, self.config.foreground_threshold), mask))
        # One device->host copy for every per-clip statistic.
        names = list(per_clip)
        table = torch.stack([per_clip[name].float() for name in names], dim=1).cpu().numpy()
        shared = {"batch_recon_loss": result.loss, "mask_ratio": self.num_masked / self.num_tokens, "mae_lr": result.lr}
        labels = self.batch["label"].tolist()
        infos = [
            {**shared, "label": int(labels[i]), "action_repaired": bool(repaired[i]),
             **{name: float(value) for name, value in zip(names, row)}}
            for i, row in enumerate(table)
        ]
        return rewards, infos

    def state_dict(self) -> dict[str, Any]:
        """Engine and reward statistics, for checkpoints."""
        return {"engine": self.engine.state_dict(), "reward": self.reward_fn.state_dict(),
                "episodes": self.episodes, "bad_videos": dict(self.clips.bad_videos)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.engine.load_state_dict(state["engine"])
        self.reward_fn.load_state_dict(state["reward"])
        self.episodes = int(state["episodes"])
        self.clips.bad_videos = dict(state.get("bad_videos", {}))

    def close(self) -> None:
        """Release the clip stream's worker processes."""
        self.clips.close()
