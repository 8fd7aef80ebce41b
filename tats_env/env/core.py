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

from typing import Any, Callable

import numpy as np
import torch
from gymnasium import spaces

from tats_env.config import MAEConfig, get_preset
from tats_env.data import VideoClipDataset, build_dataset
from tats_env.env.clips import ClipStream, process_shard, shard_seed
from tats_env.env.config import EnvConfig, env_config_from_options  # re-exported: their old home
from tats_env.env.engine import CoTrainingEngine
from tats_env.env.rewards import RewardFunction
from tats_env.env.spaces import KOfNMask, action_to_mask
from tats_env.mae.masking import random_mask, token_foreground
from tats_env.utils import seeded_torch


def motion_statistics(foreground: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-clip motion statistics of masks ``(B, N)`` against foreground tokens ``(B, N)`` (both bool).

    ``moving_visible`` / ``moving_hidden``: moving tokens left visible / masked (random masking leaves
    ``m V / N`` visible in expectation); ``motion_precision``: share of masked tokens on the foreground; ``foreground_share``: share of
    all tokens on it (what random masking scores as precision); ``motion_recall``: share of
    foreground tokens masked (NaN for a clip without foreground; random masking scores the ratio);
    ``motion_lift_show_hard`` and ``motion_lift_mask_hard``: see :func:`motion_lift`.
    """
    hits = (foreground & mask).sum(1).float()
    fg_count = foreground.sum(1).float()
    return {
        "moving_visible": fg_count - hits,
        "moving_hidden": hits,
        "motion_precision": hits / mask.sum(1).float(),
        "foreground_share": foreground.float().mean(1),
        "motion_recall": torch.where(fg_count > 0, hits / fg_count.clamp_min(1), torch.full_like(hits, float("nan"))),
        **motion_lift(foreground, mask),
    }


def visible_overlap(mask: torch.Tensor) -> torch.Tensor:
    """Content-blindness of masks ``(B, N)`` (True = masked), per clip ``(B,)``, without foreground masks.

    For clip ``a``, the mean over the other clips ``b`` of the batch of ``|V_a & V_b| / V`` (the share of its
    visible tokens that the other clip also shows), normalised so that independent uniform masks score 0 in
    expectation (their overlap is ``V / N``) and one mask for every clip (a position-only policy) scores 1.
    A single clip scores NaN.
    """
    visible = (~mask.bool()).float()
    b, n = visible.shape
    v = visible.sum(1)
    if b < 2:
        return torch.full((b,), float("nan"), device=mask.device)
    shared = visible @ visible.T
    overlap = (shared.sum(1) - v) / ((b - 1) * v.clamp_min(1))
    chance = v / n
    return (overlap - chance) / (1 - chance).clamp_min(1e-9)


def motion_lift(foreground: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Normalised motion-centricity of masks ``(B, N)`` for both directions, per clip ``(B,)``.

    Per clip: N tokens, K masked (``mask``), V = N - K visible, m moving tokens (``foreground``),
    and h = number of moving tokens left VISIBLE. A uniformly random K-of-N mask leaves
    h ~ Hypergeometric with mean m V / N. The lift is 0 at that expectation and 1 at the best any
    K-of-N mask can do in the direction:

    ``motion_lift_show_hard`` (moving tokens should be visible; the metric is the share of the
    visible budget spent on moving tokens, h / V; random: m / N; best: min(1, m / V))::

        lift_show = (h / V - m / N) / (min(1, m / V) - m / N) = (h - m V / N) / (min(m, V) - m V / N)

    ``motion_lift_mask_hard`` (moving tokens should be masked; the metric is the share of moving
    tokens masked, (m - h) / m, i.e. motion recall; random: K / N; best: min(1, K / m))::

        lift_mask = ((m - h) / m - K / N) / (min(1, K / m) - K / N) = (m V / N - h) / (min(m, K) - m K / N)

    Both are linear in h with opposite signs, so a mask scoring +x in one direction scores
    negative in the other. Negative values mean worse than random (the minimum is the worst
    K-of-N mask, e.g. ``lift_show = (max(0, m - K) - m V / N) / (min(m, V) - m V / N)``). NaN when
    undefined: no moving token (m = 0) or every token moving (m = N). Average per-clip lifts over
    clips for a run-level figure.
    """
    fg, msk = foreground.bool(), mask.bool()
    n = torch.full_like(fg[:, 0], fg.shape[1], dtype=torch.float32)
    k = msk.sum(1).float()
    v = n - k
    m = fg.sum(1).float()
    h = (fg & ~msk).sum(1).float()
    expected_visible = m * v / n
    defined = (m > 0) & (m < n)
    nan = torch.full_like(m, float("nan"))
    show = (h - expected_visible) / (torch.minimum(m, v) - expected_visible)
    masked = (expected_visible - h) / (torch.minimum(m, k) - m * k / n)
    return {
        "motion_lift_show_hard": torch.where(defined, show, nan),
        "motion_lift_mask_hard": torch.where(defined, masked, nan),
    }


def token_error_statistics(per_token_loss: torch.Tensor, foreground: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Does the MAE learn the hard tokens? Per clip ``(B,)`` from errors, foreground and masks ``(B, N)``.

    ``moving_error`` / ``static_error``: mean error of the masked moving / masked static tokens;
    ``moving_static_error_ratio``: their ratio (NaN when a clip has no masked moving or no masked
    static token). A ratio falling towards 1 means the MAE is catching up on the moving tokens.
    """
    err = per_token_loss.float()
    fg, msk = foreground.bool(), mask.bool()
    moving, static = (fg & msk).float(), (~fg & msk).float()
    n_moving, n_static = moving.sum(1), static.sum(1)
    nan = torch.full_like(n_moving, float("nan"))
    moving_error = torch.where(n_moving > 0, (err * moving).sum(1) / n_moving.clamp_min(1), nan)
    static_error = torch.where(n_static > 0, (err * static).sum(1) / n_static.clamp_min(1), nan)
    return {"moving_error": moving_error, "static_error": static_error,
            "moving_static_error_ratio": moving_error / static_error}


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
        if engine is None:
            with seeded_torch(self.config.seed):  # the MAE's initial weights depend on the env's seed alone
                engine = CoTrainingEngine(self.mae_config, self.config.engine_config, num_envs * world_size,
                                          self.device)
        self.engine = engine
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
        self.last_token_error: torch.Tensor | None = None
        """The last step's per-token error ``(B, N)`` on the engine's device (0 at visible tokens)."""
        self.keep_step_clips = False
        """Keep the last step's clips for :meth:`render_image` after the next :meth:`reset` (set by envs created
        with ``render_mode="rgb_array"``; it holds one more batch of clips on the device)."""
        self._step_batch: dict[str, Any] | None = None
        self.episodes = 0
        self._foreground_tokens: torch.Tensor | None = None
        self._mask_generator = torch.Generator(device=self.device).manual_seed(self.rank_seed(self.config.seed))

    @property
    def token_info(self) -> bool:
        """Whether ``info`` carries per-token errors, masks and foreground (:attr:`EnvConfig.token_info`)."""
        return self.config.token_info

    @property
    def token_grid(self) -> tuple[int, int, int]:
        """The token grid ``(T', H', W')`` of the observations and masks (time-major token order)."""
        return self.spec.grid

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
        if not self.keep_step_clips:
            self._step_batch = None  # let the stepped clips go before the next ones are loaded
        batch = self.clips.next()
        batch["video"] = batch["video"].to(self.device, non_blocking=True)
        if "foreground" in batch:
            batch["foreground"] = batch["foreground"].to(self.device, non_blocking=True)
        self.batch = batch
        self._foreground_tokens = None
        tokens = self.engine.observe(batch["video"])
        return tokens.to(torch.float16 if self.obs_dtype == np.float16 else torch.float32).cpu().numpy()

    @property
    def current_videos(self) -> torch.Tensor:
        """The current clips ``(B, C, T, H, W)`` on the device, normalised as the MAE sees them."""
        if self.batch is None:
            raise RuntimeError("reset the env first: it has no clips yet")
        return self.batch["video"]

    @property
    def has_foreground(self) -> bool:
        """True when the current clips carry moving-foreground masks (the synthetic dataset; foreground files)."""
        return self.batch is not None and "foreground" in self.batch

    def foreground_tokens(self) -> torch.Tensor | None:
        """The current clips' moving tokens, bool ``(B, N)`` on the device (None without foreground masks).

        A token is moving when at least ``foreground_threshold`` of its pixels are foreground.
        """
        if not self.has_foreground:
            return None
        if self._foreground_tokens is None:
            assert self.batch is not None
            self._foreground_tokens = token_foreground(self.batch["foreground"], self.spec,
                                                       self.config.foreground_threshold)
        return self._foreground_tokens

    def fixed_masks(self, masker: Callable[..., torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """A fixed masker's masks ``(B, N)`` bool (True = masked) for the current clips, on the device.

        ``masker`` is called as ``masker(videos, spec, mask_ratio, generator=...)`` (see
        :mod:`tats_env.mae.masking`); maskers with ``needs_foreground`` (the composition maskers of
        :mod:`tats_env.mae.composition`) also get ``foreground=`` the clips' moving tokens.
        """
        if self.batch is None:
            raise RuntimeError("reset the env before asking for masks")
        kwargs: dict[str, Any] = {}
        if getattr(masker, "needs_foreground", False):
            foreground = self.foreground_tokens()
            if foreground is None:
                raise ValueError(f"the masker {masker!r} needs moving-foreground masks and the clips of "
                                 f"--data {self.config.data} have none")
            kwargs["foreground"] = foreground
        return masker(self.batch["video"], self.spec, self.config.mask_ratio, generator=generator, **kwargs)

    def mask_image(self, mask: torch.Tensor | np.ndarray, scores: torch.Tensor | None = None,
                   num_clips: int = 4, probabilities: bool = False) -> np.ndarray:
        """A labelled HWC uint8 image of the current clips: frames, optional per-token scores as a heat map,
        ``mask`` (B, N) (True = masked) and the MAE's reconstruction (:mod:`tats_env.visualize`).

        ``probabilities``: ``scores`` are each token's probability of being masked, drawn on one fixed 0..1
        scale with a colour bar (images comparable over a run); otherwise per clip min..max."""
        from tats_env.visualize import ROW_LABELS, ROW_LABELS_WITH_PROBS, ROW_LABELS_WITH_SCORES

        if self.batch is None:
            raise RuntimeError("reset the env before drawing its masks")
        labels = ROW_LABELS if scores is None else ROW_LABELS_WITH_PROBS if probabilities else ROW_LABELS_WITH_SCORES
        return self._draw(self.batch, mask, scores, num_clips, labels)

    def render_image(self, num_clips: int = 4) -> np.ndarray:
        """What the envs' ``render()`` returns: an HWC uint8 :meth:`mask_image` of the first ``num_clips`` clips of
        the latest step with that step's masks (needs :attr:`keep_step_clips`, or no reset since the step).

        Before the first step it shows the current clips under a uniformly random K-of-N mask (from a generator
        of its own seeded with the env's seed, so no random stream of the env moves), in a row labelled
        ``random mask``.
        """
        from tats_env.visualize import ROW_LABELS

        if self.last_mask is not None and self._step_batch is not None:
            return self._draw(self._step_batch, self.last_mask, None, num_clips, ROW_LABELS)
        if self.batch is None:
            raise RuntimeError("reset the env before rendering it")
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed)
        preview = random_mask(self.batch["video"], self.spec, self.config.mask_ratio, generator=generator)
        return self._draw(self.batch, preview, None, num_clips, ("clip", "random mask", "reconstruction"))

    def _draw(self, batch: dict[str, Any], mask: torch.Tensor | np.ndarray, scores: torch.Tensor | None,
              num_clips: int, labels: tuple[str, ...]) -> np.ndarray:
        """``batch``'s clips with ``mask``, labelled (:func:`tats_env.visualize.mask_reconstruction_grid`)."""
        from tats_env.visualize import label_grid, mask_reconstruction_grid

        mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask, device=self.device).bool()
        image = mask_reconstruction_grid(self.engine.model, batch["video"], mask, num_clips,
                                         foreground=batch.get("foreground"), scores=scores,
                                         fixed_scale="P(masked)" in labels)
        return label_grid(image, labels, min(num_clips, len(mask)))

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
        rewards = self.reward_fn(result.per_token_loss, result.decoded, baseline)
        self.last_mask = mask
        self.last_token_error = result.per_token_loss
        self._step_batch = self.batch
        self.episodes += self.num_envs

        per_clip = {"recon_loss": result.per_clip_loss, "visible_overlap": visible_overlap(mask)}
        if baseline is not None:
            per_clip["baseline_recon_loss"] = baseline
        foreground = self.foreground_tokens()
        if foreground is not None:
            per_clip.update(motion_statistics(foreground, mask))
            per_clip.update(token_error_statistics(result.per_token_loss, foreground, result.decoded))
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
        if self.token_info:
            signal = result.per_token_loss
            if self.config.token_signal == "progress":
                after = self.engine.update(self.batch["video"], mask, update=False).per_token_loss
                signal = result.per_token_loss.float() - after.float()
            self._add_token_info(infos, signal, mask, result.decoded, foreground)
        return rewards, infos

    @staticmethod
    def _add_token_info(infos: list[dict[str, Any]], per_token_loss: torch.Tensor, mask: torch.Tensor,
                        decoded: torch.Tensor, foreground: torch.Tensor | None) -> None:
        """Per-token arrays into ``infos``: one ``(B, N)`` host copy each, rows as read-only views; errors are NaN
        wherever none was measured (visible tokens, and masked ones the decoder skipped under dual masking)."""
        errors = torch.where(decoded, per_token_loss.float(), torch.full_like(per_token_loss, float("nan"), dtype=torch.float32))
        arrays = {"token_error": errors.cpu().numpy(), "token_mask": mask.cpu().numpy()}
        if foreground is not None:
            arrays["token_foreground"] = foreground.cpu().numpy()
        for array in arrays.values():
            array.flags.writeable = False
        for i, info in enumerate(infos):
            for name, array in arrays.items():
                info[name] = array[i]

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
