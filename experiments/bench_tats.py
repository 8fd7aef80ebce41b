"""Cost of learning the masks: PPO+TATS and token-level PPO+TATS co-training vs the plain MAE step (tube masks).

    python experiments/bench_tats.py                                   # tiny, CPU
    python experiments/bench_tats.py --preset base --num-envs 32 --device cuda

Both candidates run the same env (same data, batch, MAE, device), built exactly as
``train_ppo.py`` builds it: (1) plain: every step the env's MAE trains on VideoMAE tube masks;
(2) PPO+TATS: ``PPO(TATSPolicy)`` collects rollouts (sampler forward + the same MAE step) and
updates the sampler; (3) token-level PPO + TATS: :class:`agents.algorithms.token_ppo.TokenPPO` with the same
PPO hyperparameters and sampler network (per-token errors from the env, exact inclusion
probabilities at collection and, with the graph, in every minibatch); (4) token-level PPO with its
own defaults (``--token-ppo.*``, what ``train_ppo.py`` runs). Prints clips/s and peak
memory of all three and the ratios (targets: PPO+TATS >= 0.7x clips/s of plain at <= 1.2x memory;
token-level <= 1.1x the time per clip of scalar PPO). On the CPU each candidate runs in its own process.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np
import torch

from agents.registry import build_sampler
from agents.job.config import TrainConfig
from agents.job.trainer import build_env, resolve_device
from tats_env.config import preset_with_overrides
from tats_env.timing import StepStats, markdown_table, measure, run_isolated, synchronize, throughput_ratio
from agents.algorithms.token_ppo import TokenPPOConfig
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
    mae_overrides: tuple[str, ...] = ()
    """``key=value`` overrides of the preset's MAE (e.g. num_frames=16 image_size=112: ``small`` at 112 px)."""
    profile: bool = False
    """Also break one token-PPO sampler-phase rollout (the main job's defaults) into its parts: the MAE step
    inside the env, the sampler's forward (scores, exact K-subset inclusion probabilities, the draw), the PPO
    update and everything else (SB3 bookkeeping, host copies)."""


def env_for(args: Args, device: torch.device, **changes: Any) -> Any:
    """The main job's env for ``args`` with ``changes`` to its config (e.g. ``method``), at the overridden MAE size."""
    cfg = dataclasses.replace(args, **changes)
    return build_env(cfg, device, preset_with_overrides(cfg.env.preset, args.mae_overrides) if args.mae_overrides else None)


def plain_builder(args: Args, device: torch.device) -> Callable[[], Callable[[], None]]:
    """The env stepped with tube masks (no reward baseline forward: nothing here reads the reward)."""
    def build() -> Callable[[], None]:
        no_baseline = dataclasses.replace(args.env.reward, baseline="none")
        env = env_for(args, device, env=dataclasses.replace(args.env, reward=no_baseline))
        env.reset()
        g = torch.Generator(device=device).manual_seed(args.env.seed)

        def step() -> None:
            env.step(env.fixed_masks(tube_mask, g).cpu().numpy().astype(np.int8))
        return step
    return build


def ppo_builder(args: Args, device: torch.device) -> Callable[[], Callable[[], None]]:
    """PPO + TATSPolicy on the same env; one call = one rollout + one policy update."""
    def build() -> Callable[[], None]:
        model = build_sampler("ppo_tats", env_for(args, device, method="ppo_tats"), args.sampler,
                              args.env.seed, device)
        rollout = args.sampler.ppo.n_steps * args.num_envs

        def step() -> None:
            model.learn(rollout, reset_num_timesteps=False)
        return step
    return build


def token_ppo_builder(args: Args, device: torch.device) -> Callable[[], Callable[[], None]]:
    """Token-level PPO with the same PPO hyperparameters and network; one call = one rollout + update."""
    def build() -> Callable[[], None]:
        ppo = args.sampler.ppo
        config = TokenPPOConfig(learning_rate=ppo.learning_rate, n_steps=ppo.n_steps,
                                batch_size=ppo.minibatch(args.num_envs), n_epochs=ppo.n_epochs,
                                clip_range=ppo.clip_range, ent_coef=ppo.ent_coef, max_grad_norm=ppo.max_grad_norm,
                                net=args.sampler.tats)
        model = config.build(env_for(args, device, method="token_ppo"), seed=args.env.seed,
                             device=device, direction=args.sampler.direction)
        rollout = ppo.n_steps * args.num_envs

        def step() -> None:
            model.learn(rollout, reset_num_timesteps=False)
        return step
    return build


def token_ppo_defaults_builder(args: Args, device: torch.device) -> Callable[[], Callable[[], None]]:
    """Token-level PPO with its own defaults (``--token-ppo.*``: 1 epoch of minibatches of 2), as train_ppo runs it."""
    def build() -> Callable[[], None]:
        model = build_sampler("token_ppo", env_for(args, device, method="token_ppo"),
                              args.sampler, args.env.seed, device)
        rollout = args.sampler.token_ppo.n_steps * args.num_envs

        def step() -> None:
            model.learn(rollout, reset_num_timesteps=False)
        return step
    return build


class _Timer:
    """Seconds spent inside wrapped callables, by label: this process's CPU time on the CPU (other jobs on a shared
    machine do not inflate it), wall time on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self.clock = time.process_time if device.type == "cpu" else time.perf_counter

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*a: Any, **k: Any) -> Any:
            start = self.clock()
            try:
                return original(*a, **k)
            finally:
                synchronize(self.device)
                self.seconds[label] = self.seconds.get(label, 0.0) + self.clock() - start
        setattr(owner, name, timed)


def profile_token_ppo(args: Args) -> list[dict[str, Any]]:
    """Per-part time of ``args.rollouts`` token-PPO rollouts with the main job's defaults (after warm-up): CPU time
    of this process on the CPU, wall time on a GPU."""
    device = resolve_device(args.device)
    torch.manual_seed(args.env.seed)
    model = build_sampler("token_ppo", env_for(args, device, method="token_ppo"),
                          args.sampler, args.env.seed, device)
    rollout = args.sampler.token_ppo.n_steps * args.num_envs
    model.learn(rollout * args.warmup_rollouts, reset_num_timesteps=False)
    timer = _Timer(device)
    env = model.env
    while hasattr(env, "venv"):
        env = env.venv
    timer.wrap(env.core.engine, "update", "MAE forward/backward + AdamW (engine.update)")
    timer.wrap(env.core.engine, "observe", "token embeddings for the observation (engine.observe)")
    timer.wrap(model.policy, "forward", "sampler forward: scores, inclusion probabilities, draw")
    timer.wrap(model, "train", "PPO update (n_epochs x minibatches, double backward)")
    start = timer.clock()
    model.learn(rollout * args.rollouts, reset_num_timesteps=False)
    synchronize(device)
    total = timer.clock() - start
    rows = [{"part": label, "ms_per_clip": 1e3 * sec / (rollout * args.rollouts), "share": sec / total}
            for label, sec in timer.seconds.items()]
    other = total - sum(timer.seconds.values())
    rows.append({"part": "everything else (SB3 collection, buffer, host copies, data loading)",
                 "ms_per_clip": 1e3 * other / (rollout * args.rollouts), "share": other / total})
    rows.append({"part": "total", "ms_per_clip": 1e3 * total / (rollout * args.rollouts), "share": 1.0})
    return rows


CANDIDATES = ("plain MAE step (tube)", "PPO + TATS co-training", "token-level PPO + TATS",
              "token-level PPO, own defaults")
"""Candidates in table order: the plain step, scalar PPO, token-level PPO with scalar PPO's settings, and
token-level PPO with its own defaults (the main job's)."""


def run_candidate(name: str, args: Args) -> StepStats:
    """Measure one candidate (module level so it can run in a spawned process)."""
    device = resolve_device(args.device)
    torch.manual_seed(args.env.seed)
    n_steps = args.sampler.ppo.n_steps
    if name == "plain MAE step (tube)":
        steps = args.rollouts * n_steps
        return measure(name, plain_builder(args, device), device, args.num_envs, steps, args.warmup_rollouts * n_steps)
    if name == CANDIDATES[3]:
        rollout = args.sampler.token_ppo.n_steps * args.num_envs
        return measure(name, token_ppo_defaults_builder(args, device), device, rollout, args.rollouts,
                       args.warmup_rollouts)
    rollout = n_steps * args.num_envs
    builder = token_ppo_builder if name == CANDIDATES[2] else ppo_builder
    return measure(name, builder(args, device), device, rollout, args.rollouts, args.warmup_rollouts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the three candidates, print the table and ratios; returns the ratios and the candidates' rows."""
    args = parse(Args, argv)
    device = resolve_device(args.device)
    tats, ppo = args.sampler.tats, args.sampler.ppo
    print(f"preset={args.env.preset} {' '.join(args.mae_overrides)} batch={args.num_envs} mask_ratio={args.env.mask_ratio} device={device} "
          f"sampler dim={tats.dim} depth={tats.depth} PPO n_steps={ppo.n_steps} "
          f"batch_size={ppo.minibatch(args.num_envs)} n_epochs={ppo.n_epochs}")
    results = []
    for name in CANDIDATES:
        isolated = device.type == "cpu" and args.isolate
        results.append(run_isolated(run_candidate, name, args) if isolated else run_candidate(name, args))
    print(markdown_table([r.as_row() for r in results], ["name", "clips_per_s", "cpu_clips_per_s", "step_ms", "peak_mem_mb",
                                                          "device", "batch_size"]))
    plain, tats, token, token_defaults = results
    speed = tats.clips_per_s / plain.clips_per_s
    memory = tats.peak_mem_mb / max(plain.peak_mem_mb, 1e-9)
    print(f"PPO+TATS / plain: {throughput_ratio(tats, plain)} (target >= 0.7x), peak memory {memory:.2f}x "
          "(target <= 1.2x)")
    token_time = tats.clips_per_s / token.clips_per_s
    token_memory = token.peak_mem_mb / max(tats.peak_mem_mb, 1e-9)
    print(f"token-level / scalar PPO, same settings: time per clip {token_time:.2f}x (target <= 1.1x), "
          f"peak memory {token_memory:.2f}x")
    defaults_time = tats.clips_per_s / token_defaults.clips_per_s
    print(f"token-level PPO's defaults / scalar PPO's defaults: time per clip {defaults_time:.2f}x")
    out = {"speed_ratio": speed, "memory_ratio": memory, "token_time_ratio": token_time,
           "token_memory_ratio": token_memory, "token_defaults_time_ratio": defaults_time,
           "token_defaults_vs_plain": token_defaults.clips_per_s / plain.clips_per_s,
           "candidates": [r.as_row() for r in results]}
    print(f"token-level PPO's defaults / plain step: {throughput_ratio(token_defaults, plain)} (target >= 0.8x)")
    if token_defaults.cpu_clips_per_s and plain.cpu_clips_per_s and device.type == "cpu":
        out["token_defaults_vs_plain_cpu"] = token_defaults.cpu_clips_per_s / plain.cpu_clips_per_s
    if args.profile:
        rows = profile_token_ppo(args)
        for row in rows:
            row["ms_per_clip"], row["share"] = f"{row['ms_per_clip']:.1f}", f"{100 * row['share']:.0f}%"
        print(markdown_table(rows, ["part", "ms_per_clip", "share"]))
        out["profile"] = rows
    return out


if __name__ == "__main__":
    main()
