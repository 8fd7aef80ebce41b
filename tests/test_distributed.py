"""torchrun on the CPU (gloo, 2 ranks): the real entry point trains bit-identical replicas and counts global clips.

Each test launches ``experiments/train_ppo.py`` under ``python -m torch.distributed.run --standalone``
with a tiny budget. The replicas are compared through ``summary.json``'s ``replica_sha256`` (every
rank's SHA-256 of its MAE and sampler weights, gathered at the end of the run), which is also
recomputed here from rank 0's checkpoint, so the digests are those of the weights really trained.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from agents.job.checkpoint import load_checkpoint
from agents.job.distributed import ddp_method, distribute_sampler, replica_digest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "train_ppo.py"


def _torchrun(data: Path, out: Path, total: int, *extra: str) -> dict:
    args = ["--data", str(data), "--out", str(out), "--num-envs", "4", "--total-steps", str(total),
            "--warmup-steps", "8", "--tats.dim", "32", "--no-progress-bar", "--seed", "0", "--device", "cpu",
            "--checkpoint-every", "16", "--image-every", "32", "--export-formats", "native", *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads((out / "summary.json").read_text())


def _checkpoint_digest(path: Path) -> str:
    state = load_checkpoint(path)
    sampler = state["sampler"]
    policy = sampler["params"]["policy"] if "params" in sampler else sampler["agent"]["policy"]
    return replica_digest({"mae": state["mae_state"], "sampler": policy})


def test_torchrun_ppo_replicas_stay_bit_identical_and_counters_are_global(synthetic_root, tmp_path):
    out = tmp_path / "ddp"
    summary = _torchrun(synthetic_root, out, 64)
    assert summary["world_size"] == 2 and summary["global_batch"] == 8
    first, second = summary["replica_sha256"]
    assert summary["replicas_identical"] and first == second
    assert first == _checkpoint_digest(out / "checkpoint.pt")
    # 8 warm-up + 64 PPO clips over both ranks: 9 MAE updates of 2 x 4 clips each.
    assert summary["clips"] == 72 and summary["mae_updates"] == 9
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["num_timesteps"] == 64 and state["warmup_done"] == 8
    rows = [r for r in csv.DictReader((out / "tb" / "progress.csv").open()) if r["time/total_timesteps"]]
    assert [int(float(r["time/total_timesteps"])) for r in rows] == [32, 64]  # one rollout = 2 x 4 envs x 4 steps
    assert [int(float(r["time/clips"])) for r in rows] == [40, 72]  # the run's clip axis counts the warm-up too
    # Rank 0 alone writes: one event file, images at global intervals, one export.
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1
    # (on the run's clip axis, warm-up included, and one at the end of the phase)
    assert sorted(p.name for p in (out / "images").glob("*.png")) == [
        "masks_00000032.png", "masks_00000064.png", "masks_00000072.png"]
    assert (out / "encoder-native" / "model.safetensors").is_file()


def test_torchrun_reinforce_resumes_with_identical_replicas(synthetic_root, tmp_path):
    out = tmp_path / "ddp"
    first = _torchrun(synthetic_root, out, 16, "--method", "reinforce")
    assert first["replicas_identical"] and first["clips"] == 24 and first["mae_updates"] == 3
    resumed = _torchrun(synthetic_root, out, 32, "--method", "reinforce", "--resume")
    assert resumed["resumed_from"] == 24 and resumed["clips"] == 40 and resumed["mae_updates"] == 5
    assert resumed["replicas_identical"]
    assert resumed["replica_sha256"][0] == _checkpoint_digest(out / "checkpoint.pt") != first["replica_sha256"][0]


def _average_gradient_worker(rank: int, init_file: str, results: "mp.Queue") -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # different initial weights: ddp_method must broadcast rank 0's
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        ddp_method(net, "forward", torch.device("cpu"))
        x = torch.full((2, 3), float(rank + 1))
        net(x).sum().backward()
        # numpy, not tensors: torch's queues share tensors by file descriptor, gone once this process exits.
        results.put((rank, [p.detach().numpy().copy() for p in net.parameters()],
                     [p.grad.numpy().copy() for p in net.parameters()], list(net.state_dict())))
    finally:
        dist.destroy_process_group()


def test_ddp_method_broadcasts_weights_and_averages_gradients(tmp_path):
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_average_gradient_worker, args=(r, str(tmp_path / "init"), results)) for r in (0, 1)]
    for p in procs:
        p.start()
    got = dict((r, rest) for r, *rest in (results.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(60)
    (w0, g0, names), (w1, g1, _) = got[0], got[1]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]  # the wrapper is no submodule
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))
    # The averaged gradient equals the gradient of the mean loss over both ranks' inputs, on each rank.
    reference = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with torch.no_grad():
        for p, w in zip(reference.parameters(), w0):
            p.copy_(torch.from_numpy(w))
    (reference(torch.full((2, 3), 1.0)).sum() + reference(torch.full((2, 3), 2.0)).sum()).div(2).backward()
    for a, b, ref in zip(g0, g1, reference.parameters()):
        assert np.array_equal(a, b)
        torch.testing.assert_close(torch.from_numpy(a), ref.grad)


def _token_ppo_worker(rank: int, init_file: str, results: "mp.Queue") -> None:
    from agents.policies.tats_network import TATSConfig
    from agents.algorithms.token_ppo import TokenPPOConfig
    from token_bandit import bandit_vec_env

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        # Each rank: its own clips and its own initial weights; distribute_sampler must broadcast and average.
        config = TokenPPOConfig(n_steps=2, batch_size=8, n_epochs=2,
                                net=TATSConfig(dim=16, num_heads=2))
        model = config.build(bandit_vec_env(4, seed=rank), seed=rank, grid=(2, 4, 4), device="cpu", direction="mask_hard")
        distribute_sampler(model, torch.device("cpu"))
        before = [p.detach().numpy().copy() for p in model.policy.parameters()]
        model.learn(16)
        results.put((rank, before, [p.detach().numpy().copy() for p in model.policy.parameters()]))
    finally:
        dist.destroy_process_group()


def test_token_ppo_replicas_average_their_token_gradients(tmp_path):
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_token_ppo_worker, args=(r, str(tmp_path / "init"), results)) for r in (0, 1)]
    for p in procs:
        p.start()
    got = dict((r, rest) for r, *rest in (results.get(timeout=180) for _ in procs))
    for p in procs:
        p.join(60)
    (start0, end0), (start1, end1) = got[0], got[1]
    assert all(np.array_equal(a, b) for a, b in zip(start0, start1))  # rank 0's weights broadcast
    assert any(not np.array_equal(a, b) for a, b in zip(start0, end0))  # they trained
    assert all(np.array_equal(a, b) for a, b in zip(end0, end1))  # on averaged gradients: still identical
