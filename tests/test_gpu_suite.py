"""The GPU suite's CPU dry run: the same command a GPU session runs, at tiny settings, writes one full report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_of_the_wrapper_writes_one_report_with_every_part(synthetic_root, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(ROOT / "experiments" / "gpu_suite.sh"), "--dry-run", "--out", str(out), "--work", str(work),
           "--data", str(synthetic_root)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "gpu_suite.json").read_text())
    parts = {entry["part"]: entry for entry in report["parts"]}
    assert list(parts) == ["mae", "tats", "main", "decode"]  # no data part: --data names a dataset
    assert {name: entry["status"] for name, entry in parts.items()} == dict.fromkeys(parts, "ok"), \
        {name: entry.get("log_tail") for name, entry in parts.items()}
    mae, tats, main, decode = (parts[name]["result"] for name in ("mae", "tats", "main", "decode"))
    assert [c["name"] for c in mae["candidates"]] == ["tats_env VideoMAE", "tats_env VideoMAE, dual masking",
                                                      "transformers VideoMAEForPreTraining"]
    assert mae["clips_per_s_ratio"] > 0 and mae["dual_clips_per_s_ratio"] > 0 and tats["speed_ratio"] > 0 and tats["token_time_ratio"] > 0
    assert tats["token_defaults_time_ratio"] > 0
    assert [c["name"] for c in tats["candidates"]] == ["plain MAE step (tube)", "PPO + TATS co-training",
                                                       "token-level PPO + TATS", "token-level PPO, own defaults"]
    # The main job stopped on its clock, far from its clip budget, and still checkpointed and exported.
    assert 0 < main["summary"]["clips"] < 100_000 and main["summary"]["world_size"] == 1
    assert (work / "main" / "checkpoint.pt").is_file() and (work / "main" / "encoder-native").is_dir()
    assert sorted(f["file"] for f in decode["files"]) == ["carphone_pristine.mp4", "pens.mp4", "realshort.mp4"]
    assert decode["pipeline"]["clips"] == 2 and decode["pipeline"]["clips_per_s"] > 0
    markdown = (out / "gpu_suite.md").read_text()
    assert markdown.startswith("# GPU suite report (dry run")
    assert all(f"## {name}:" in markdown for name in parts)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["gpu_suite.json", "gpu_suite.md", *(f"{name}.log" for name in parts)])
    assert "[gpu_suite] decode: ok" in proc.stdout


def test_a_part_out_of_time_is_recorded_and_the_next_part_still_runs(synthetic_root, tmp_path):
    sys.path.insert(0, str(ROOT / "experiments"))
    import gpu_suite

    out = tmp_path / "out"
    report = gpu_suite.main(["--dry-run", "--parts", "main", "decode", "--main-budget-s", "2", "--out", str(out),
                             "--work", str(tmp_path / "work"), "--data", str(synthetic_root)])
    main, decode = report["parts"]
    assert main["status"] == "timeout" and "within 2 s" in main["error"]
    assert decode["status"] == "ok"
    assert "**timeout**" in (out / "gpu_suite.md").read_text()


def test_the_full_size_plan_parses_with_every_part_s_own_options(tmp_path):
    """The GPU session cannot afford a typo: every full-size part's options parse, at the issue's sizes."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import bench_mae
    import bench_tats
    import gpu_suite
    from agents.job.config import TrainConfig
    from tats_env.commandline import parse

    cfg = parse(gpu_suite.SuiteConfig, ["--out", str(tmp_path)])
    plan = {name: args for name, _, _, args, _ in gpu_suite.plan(cfg, "cuda")}
    mae = parse(bench_mae.Args, plan["mae"][0])
    assert (mae.preset, mae.batch_size, mae.mask_ratio, mae.device, mae.isolate) == ("base", 64, 0.9, "cuda", True)
    assert bench_mae.build_config(mae).video.num_frames == 16 and bench_mae.build_config(mae).video.image_size == 224
    tats = parse(bench_tats.Args, plan["tats"][0])
    assert (tats.env.preset, tats.device, tats.num_envs, tats.env.num_workers) == ("base", "cuda", 32, 8)
    main, seconds = plan["main"]
    job = parse(TrainConfig, main)
    assert (job.env.preset, job.device, seconds, job.method) == ("small", "cuda", 120.0, "token_ppo")
    assert sum(b for *_, b in gpu_suite.plan(cfg, "cuda")) <= cfg.total_budget_s  # + pip install: < 9 min
