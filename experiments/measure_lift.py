"""Motion lift of a sampler over one co-training run: first vs last quarter of its RL clips.

    OMP_NUM_THREADS=1 python experiments/measure_lift.py --method token_ppo --direction show_hard --seed 0
    OMP_NUM_THREADS=1 python experiments/measure_lift.py --method ppo --rl-clips 4000 --out runs/lift/ppo0.json

The env is built like ``train_ppo.py``'s (tiny preset, 8 clips per step, MAE lr 2e-3 with
warm-up and cosine), with ``token_info`` on; the MAE first trains ``--warmup-clips`` clips on
random masks, then the sampler co-trains for ``--rl-clips`` clips. Prints (and writes to
``--out``) the first/last-quarter means of the motion lift in both directions, motion recall,
the moving/static error ratio and the MAE loss, plus wall time and clips/s.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import tyro
from stable_baselines3 import PPO

from agents import TATSConfig, TATSPolicy
from agents.fixed_masker import FixedMaskerAgent
from agents.motion_eval import MotionCurveCallback, quarter_summary
from agents.reinforce import Reinforce
from agents.token_credit import Direction
from agents.token_ppo import TokenPPOConfig
from tats_env.env import EngineConfig, RewardConfig, VideoMaskingVecEnv, make_vec_env

Method = Literal["token_ppo", "ppo", "reinforce_token", "reinforce_adamae", "reinforce_clip"]


@dataclass(frozen=True)
class LiftRun:
    """One co-training run whose motion lift is measured."""

    method: Method = "token_ppo"
    """token_ppo (TokenPPO), ppo (scalar PPO + TATSPolicy), reinforce_token (exact token rule),
    reinforce_adamae (AdaMAE's rule), reinforce_clip (REINFORCE on the clip reward, exact log-prob)."""
    direction: Direction = "show_hard"
    """Direction the sampler is trained in; scalar methods get the reward that favours it
    (adversarial for show_hard at ratio >= 0.9, cooperative for mask_hard)."""
    seed: int = 0
    """Seed of data order, MAE and sampler."""
    data: str = "synthetic"
    """Dataset (needs foreground masks for the lift)."""
    preset: str = "tiny"
    """MAE preset."""
    mask_ratio: float = 0.9
    """Share of tokens masked."""
    num_envs: int = 8
    """Clips per env step."""
    warmup_clips: int = 800
    """Clips of MAE warm-up on random masks before the sampler starts."""
    rl_clips: int = 3200
    """Clips of co-training with the sampler (the quarters are taken over these)."""
    mae_lr: float = 2e-3
    """MAE peak learning rate."""
    learning_rate: float | None = None
    """Sampler learning rate (None: the method's default, 1e-3 everywhere)."""
    n_steps: int | None = None
    """PPO: env steps per rollout (None: 4)."""
    batch_size: int | None = None
    """PPO: minibatch size in clips (None: token_ppo's default 8; 32 = the whole rollout for scalar ppo)."""
    n_epochs: int | None = None
    """PPO: passes per rollout (None: token_ppo's default 4; 1 for scalar ppo)."""
    sampler_dim: int = 32
    """Width of the sampler network."""
    reward_baseline: Literal["none", "random"] = "random"
    """Scalar methods: paired random-mask baseline of the reward."""
    share_trunk: bool = False
    """Scalar PPO: critic on the scorer's trunk (True) or its own (False)."""
    threads: int = 1
    """torch intra-op threads."""
    out: Path | None = None
    """Write the summary and the per-step curve here (JSON)."""


def build_env(run: LiftRun) -> VideoMaskingVecEnv:
    """The masking env ``train_ppo.py`` would build, with per-token info."""
    updates = (run.warmup_clips + run.rl_clips) // run.num_envs
    mode = "adversarial" if run.direction == "show_hard" else "cooperative"
    return make_vec_env(
        data=run.data, preset=run.preset, mask_ratio=run.mask_ratio, num_envs=run.num_envs, device="cpu",
        engine_config=EngineConfig(lr=run.mae_lr, warmup_updates=50, total_updates=updates),
        reward=RewardConfig(mode=mode, baseline=run.reward_baseline, normalize=True),
        token_info=run.method != "ppo", seed=run.seed,
    )


def build_sampler(run: LiftRun, env: VideoMaskingVecEnv) -> Any:
    """The sampler under test on ``env``."""
    tats = TATSConfig(dim=run.sampler_dim, depth=1, num_heads=2, share_trunk=run.share_trunk)
    given = {k: v for k, v in (("learning_rate", run.learning_rate), ("n_steps", run.n_steps),
                               ("batch_size", run.batch_size), ("n_epochs", run.n_epochs)) if v is not None}
    if run.method == "token_ppo":
        config = dataclasses.replace(TokenPPOConfig(direction=run.direction, sampler=tats), **given)
        return config.build(env, seed=run.seed, device="cpu")
    if run.method == "ppo":
        ppo = {"learning_rate": 1e-3, "n_steps": 4, "batch_size": 32, "n_epochs": 1, **given}
        return PPO(TATSPolicy, env, gamma=0.0, gae_lambda=1.0, seed=run.seed, device="cpu", **ppo,
                   policy_kwargs={"tats_config": tats, "grid": env.core.spec.grid, "entropy_grad": False})
    rule = run.method.removeprefix("reinforce_")
    return Reinforce(env, learning_rate=given.get("learning_rate", 1e-3), rule=rule,  # type: ignore[arg-type]
                     direction=run.direction, policy_kwargs={"dim": run.sampler_dim, "num_heads": 2}, seed=run.seed)


def main(run: LiftRun) -> dict[str, Any]:
    """Warm up, co-train, summarise; returns the summary."""
    torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    env = build_env(run)
    FixedMaskerAgent(env, "random", seed=run.seed).learn(run.warmup_clips)
    sampler = build_sampler(run, env)
    curve = MotionCurveCallback()
    start = time.perf_counter()
    sampler.learn(run.rl_clips, callback=curve)
    wall = time.perf_counter() - start
    summary = {"run": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(run).items()},
               "quarters": quarter_summary(curve.rows), "wall_s": round(wall, 1),
               "clips_per_s": round(run.rl_clips / wall, 2), "curve": curve.rows}
    q = summary["quarters"]
    print(f"{run.method} {run.direction} seed={run.seed}: "
          + " ".join(f"{k}={q[k]['first']:.3f}->{q[k]['last']:.3f}" for k in q)
          + f" | {wall:.0f}s, {run.rl_clips / wall:.1f} clips/s")
    if run.out is not None:
        run.out.parent.mkdir(parents=True, exist_ok=True)
        run.out.write_text(json.dumps(summary, indent=1) + "\n")
    env.close()
    return summary


if __name__ == "__main__":
    main(tyro.cli(LiftRun))
