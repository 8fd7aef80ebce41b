"""Cost of learning the masks: PPO+TATS co-training vs the plain MAE step with tube masking.

    python experiments/bench_tats.py                                   # tiny, CPU
    python experiments/bench_tats.py --preset base --num-envs 32 --device cuda

Both candidates run the same env (same data, batch, MAE, device), built exactly as
``train_ppo.py`` builds it: (1) plain: every step the env's MAE trains on VideoMAE tube masks;
(2) PPO+TATS: ``PPO(TATSPolicy)`` collects rollouts (sampler forward + the same MAE step) and
updates the sampler. Prints clips/s and peak memory of both and the ratios (target: >= 0.7x
clips/s at <= 1.2x memory). On the CPU each candidate runs in its own process.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import torch

from agents.registry import build_sampler
from agents.training import TrainConfig, build_env, resolve_device
from agents.bench.timing import StepStats, markdown_table, measure, run_isolated
from tats_env.commandline import parse
from tats_env.mae.masking import tube_mask


@dataclasses.dataclass
class Args(TrainConfig):
    """Benchmark PPO+TATS co-training against the plain tube-masked MAE step (train_ppo options apply)."""

    rollouts: int = 5
    """Timed PPO rollouts (each n_steps env steps); the plain candidate times the same number of env steps."""
    warmup_rollouts: int = 1
    """Untimed rollouts first."""
    isolate: bool = True
    """On the CPU, time each candidate in its own process (its own peak RSS); --no-isolate runs them here."""


def plain_builder(args: Args, device: torch.device) -> Callable[[], Callable[[], None]]:
    """The env stepped with tube masks (no reward baseline forward: nothing here reads the reward)."""
    def build() -> Callable[[], None]:
        no_baseline = dataclasses.replace(args.env.reward, baseline="none")
        env = build_env(dataclasses.replace(args, env=dataclasses.replace(args.env, reward=no_baseline)), device)
        env.reset()
        g = torch.Generator(device=device).manual_seed(args.env.seed)

        def step() -> None:
            assert env.core.batch is not None
            mask = tube_mask(env.core.batch["video"], env.core.spec, args.env.mask_ratio, generator=g)
            env.step(mask.cpu().numpy().astype(np.int8))
        return step
    return build


def ppo_builder(args: Args, device: torch.device) -> Callable[[], Callable[[], None]]:
    """PPO + TATSPolicy on the same env; one call = one rollout + one policy update."""
    def build() -> Callable[[], None]:
        model = build_sampler("ppo_tats", build_env(args, device), args.sampler, args.env.seed, device)
        rollout = args.sampler.ppo.n_steps * args.num_envs

        def step() -> None:
            model.learn(rollout, reset_num_timesteps=False)
        return step
    return build


def run_candidate(name: str, args: Args) -> StepStats:
    """Measure one candidate (module level so it can run in a spawned process)."""
    device = resolve_device(args.device)
    torch.manual_seed(args.env.seed)
    n_steps = args.sampler.ppo.n_steps
    if name == "plain MAE step (tube)":
        steps = args.rollouts * n_steps
        return measure(name, plain_builder(args, device), device, args.num_envs, steps, args.warmup_rollouts * n_steps)
    rollout = n_steps * args.num_envs
    return measure(name, ppo_builder(args, device), device, rollout, args.rollouts, args.warmup_rollouts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both candidates, print the table and ratios; returns the ratios and both candidates' rows."""
    args = parse(Args, argv)
    device = resolve_device(args.device)
    tats, ppo = args.sampler.tats, args.sampler.ppo
    print(f"preset={args.env.preset} batch={args.num_envs} mask_ratio={args.env.mask_ratio} device={device} "
          f"sampler dim={tats.dim} depth={tats.depth} PPO n_steps={ppo.n_steps} "
          f"batch_size={ppo.batch_size} n_epochs={ppo.n_epochs}")
    results = []
    for name in ("plain MAE step (tube)", "PPO + TATS co-training"):
        isolated = device.type == "cpu" and args.isolate
        results.append(run_isolated(run_candidate, name, args) if isolated else run_candidate(name, args))
    print(markdown_table([r.as_row() for r in results], ["name", "clips_per_s", "step_ms", "peak_mem_mb", "device", "batch_size"]))
    plain, tats = results
    speed = tats.clips_per_s / plain.clips_per_s
    memory = tats.peak_mem_mb / max(plain.peak_mem_mb, 1e-9)
    print(f"PPO+TATS / plain: clips/s {speed:.2f}x (target >= 0.7x), peak memory {memory:.2f}x (target <= 1.2x)")
    return {"speed_ratio": speed, "memory_ratio": memory, "candidates": [r.as_row() for r in results]}


if __name__ == "__main__":
    main()
