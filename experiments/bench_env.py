"""Overhead of the masking env over a bare engine update at the same batch.

    python experiments/bench_env.py                          # tiny preset, synthetic data, CPU
    python experiments/bench_env.py --num-workers 1 --steps 30

Times, side by side in one process: (1) ``CoTrainingEngine.update`` on a fixed batch with
pre-drawn exact-K masks (the floor: the MAE step alone), and (2) ``VecEnv.step`` with the
same masks, which also decodes the next clips, embeds them, checks the actions, computes
rewards and statistics and copies observations to numpy. Prints steps/s of both and the
env's overhead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from tats_env.device import resolve_device
from tats_env.timing import markdown_table, synchronize
from tats_env.commandline import parse
from tats_env.env import make_vec_env
from tats_env.mae.masking import random_mask


@dataclass
class Args:
    """Benchmark the env step against the bare engine update."""

    data: str = "synthetic"
    """Videos: synthetic, a list file or a folder."""
    preset: str = "tiny"
    """MAE size preset."""
    num_envs: int = 8
    """Batch: clips per step."""
    mask_ratio: float = 0.9
    """Share of tokens masked."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps."""
    num_workers: int = 0
    """DataLoader workers for the env."""
    steps: int = 20
    """Timed steps per candidate (per round)."""
    warmup: int = 3
    """Untimed steps first."""
    rounds: int = 3
    """Alternating rounds (engine, env, engine, env, ...); the best round of each counts."""


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the benchmark, print a table and the overhead."""
    args = parse(Args, argv)
    device = resolve_device(args.device)
    vec = make_vec_env(data=args.data, preset=args.preset, mask_ratio=args.mask_ratio, num_envs=args.num_envs,
                       device=device, num_workers=args.num_workers)
    engine, core = vec.engine, vec.core
    vec.reset()
    videos = vec.current_videos.clone()
    g = torch.Generator(device=device).manual_seed(0)
    masks = [random_mask(videos, core.spec, args.mask_ratio, generator=g) for _ in range(args.steps)]
    actions = [m.cpu().numpy().astype(np.int8) for m in masks]

    def time_engine() -> float:
        synchronize(device)
        start = time.perf_counter()
        for mask in masks:
            engine.update(videos, mask)
        synchronize(device)
        return (time.perf_counter() - start) / args.steps

    def time_env() -> float:
        synchronize(device)
        start = time.perf_counter()
        for action in actions:
            vec.step(action)
        synchronize(device)
        return (time.perf_counter() - start) / args.steps

    for _ in range(args.warmup):
        engine.update(videos, masks[0])
        vec.step(actions[0])
    engine_times, env_times = [], []
    for _ in range(args.rounds):
        engine_times.append(time_engine())
        env_times.append(time_env())
    engine_s, env_s = min(engine_times), min(env_times)
    rows = [
        {"name": "bare engine update", "steps_per_s": 1 / engine_s, "clips_per_s": args.num_envs / engine_s, "step_ms": engine_s * 1e3},
        {"name": "VecEnv.step", "steps_per_s": 1 / env_s, "clips_per_s": args.num_envs / env_s, "step_ms": env_s * 1e3},
    ]
    print(f"preset={args.preset} batch={args.num_envs} mask_ratio={args.mask_ratio} device={device} "
          f"workers={args.num_workers} threads={torch.get_num_threads()}")
    print(markdown_table(rows, ["name", "steps_per_s", "clips_per_s", "step_ms"]))
    overhead = env_s / engine_s - 1
    print(f"env steps/s = {engine_s / env_s:.2f}x the bare engine; overhead {100 * overhead:.1f}% per step")
    vec.close()
    return {"engine_step_s": engine_s, "env_step_s": env_s, "overhead": overhead}


if __name__ == "__main__":
    main()
