"""Sampler benchmark: the matrix, hyperparameters from the registry, exact budgets per method, --quick end to end."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.bench.matrix import QUICK, BenchmarkConfig, Cell, apply_quick, default_env, list_cells, mae_config, run_cell
from agents.bench.evaluation import CellStatsCallback, HeldOutClips
from agents.policies.extractors import TokenProjection
from agents.registry import SAMPLERS, SamplerConfig, build_sampler, sampler_env_config, sampler_hyperparams
from agents.bench.report import CSV_COLUMNS
from agents.policies.tats_policy import TATSPolicy
from tats_env import EnvConfig, RewardConfig, VideoMaskingVecEnv, make_vec_env

ROOT = Path(__file__).parents[1]


def refused(script, argv, capsys) -> list[str]:
    """The error lines of a benchmark_algos.py run that must exit 2 before any cell (and write nothing)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("benchmark_algos.py: error: ") for line in err) and "Traceback" not in str(err)
    return [line.removeprefix("benchmark_algos.py: error: ") for line in err]


def test_every_bad_benchmark_option_is_one_error_line_before_any_cell(tmp_path, capsys):
    out = tmp_path / "bench"
    lines = refused(load_script(), ["--quick", "--out", str(out), "--total-clips", "10", "--eval-mask-ratio", "1.5",
                                    "--mae-overrides", "depth", "--seed", "3", "--direction", "show_hard",
                                    "--jobs", "0", "--ratios", "0.9", "1.2"], capsys)
    assert lines == [
        "--total-clips 10: must be a positive multiple of --num-envs 4",
        "--jobs 0: must be >= 1",
        "--eval-mask-ratio 1.5: must be in (0, 1)",
        "--ratios 1.2: every ratio must be in (0, 1)",
        "--seed / --split: every cell trains on the train split with its seed from --seeds; set --seeds",
        "--direction show_hard: the benchmark runs every direction listed in --directions (one row each); set that "
        "instead",
        "--mae-overrides takes key=value items, got 'depth'",
    ]
    assert not out.exists()  # nothing written


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_algos", ROOT / "experiments" / "benchmark_algos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_matrix_sweeps_three_methods_over_ratios():
    cells = list_cells(BenchmarkConfig())
    # 2 seeds x (token_ppo x 2 directions + tube + random at 3 ratios; reinforce_token x 2 directions and
    # 8 undirected methods at 0.9)
    assert len(cells) == 2 * (4 * 3 + 2 + 8)
    assert {(c.mask_ratio, c.direction) for c in cells if c.method == "token_ppo"} == {
        (r, d) for r in (0.75, 0.9, 0.95) for d in ("show_hard", "mask_hard")}
    assert {c.direction for c in cells if c.method == "reinforce_adamae"} == {"show_hard"}  # AdaMAE's own direction
    assert {(c.mask_ratio, c.direction) for c in cells if c.method == "sac_topk"} == {(0.9, "")}
    assert [c.seed for c in cells[:22]] == [0] * 22  # seed by seed: a partial run has every method
    one = list_cells(BenchmarkConfig(methods=("token_ppo",), directions=("mask_hard",), ratios=(0.9,), seeds=(0,)))
    assert [(c.name, c.label) for c in one] == [("token_ppo-mask_hard_r0.9_s0", "token_ppo@mask_hard")]
    assert one[0].sampler_config(SamplerConfig()).direction == "mask_hard"
    assert len({c.name for c in cells}) == len(cells)
    picked = list_cells(BenchmarkConfig(methods=("reinforce", "tube"), ratios=(0.75,), seeds=(3,)))
    assert [c.name for c in picked] == ["reinforce_r0.9_s3", "tube_r0.75_s3"]
    with pytest.raises(ValueError, match="unknown methods"):
        list_cells(BenchmarkConfig(methods=("dqn",)))


def test_quick_keeps_explicit_choices():
    quick = apply_quick(BenchmarkConfig(quick=True, seeds=(5,)))
    assert quick.seeds == (5,) and quick.methods == ("ppo_tats", "reinforce", "random")
    assert quick.total_clips == 16 and mae_config(quick).embed_dim == 32
    assert apply_quick(BenchmarkConfig()) == BenchmarkConfig()


def test_hyperparameters_come_from_the_one_sampler_config(synthetic_root):
    ppo = sampler_hyperparams("ppo_tats")
    assert ppo["tats"]["dim"] == 32 and ppo["ppo"]["learning_rate"] == 1e-3
    assert sampler_hyperparams("a2c_tats")["a2c"]["n_steps"] == 4
    assert sampler_hyperparams("reinforce")["reinforce"]["baseline"] == "ema"
    assert sampler_hyperparams("tube") == {} and sampler_hyperparams("scratch") == {}
    with pytest.raises(KeyError, match="unknown sampler"):
        sampler_hyperparams("dqn")
    # A changed value reaches the agent the registry builds.
    vec = make_vec_env(data=str(synthetic_root), mae_config=mae_config(BenchmarkConfig(mae_overrides=QUICK["mae_overrides"])),
                       num_envs=2)
    cfg = dataclasses.replace(SamplerConfig(), ppo=dataclasses.replace(SamplerConfig().ppo, learning_rate=5e-4, n_epochs=3))
    agent = build_sampler("ppo_tats", vec, cfg, seed=0)
    assert isinstance(agent.policy, TATSPolicy) and agent.learning_rate == 5e-4 and agent.n_epochs == 3
    assert agent.policy.tats_config.dim == 32 and agent.policy.grid == vec.core.spec.grid
    assert agent.gamma == 0.0 and agent.gae_lambda == 1.0  # one-step episodes
    sac = build_sampler("sac_topk", vec, SamplerConfig(), seed=0)
    assert isinstance(sac.policy.actor.features_extractor, TokenProjection)
    with pytest.raises(ValueError, match="no sampler"):
        build_sampler("scratch", vec)


@pytest.mark.parametrize("method", ["ppo_tats", "a2c_tats", "sac_topk", "tube", "running_cell", "motion_energy"])
def test_every_method_stops_exactly_at_the_budget(method, synthetic_root):
    """6 clips of 2 per step: PPO/A2C rollouts (8 clips) would overshoot; the callback must stop at 3 updates."""
    cfg = BenchmarkConfig(mae_overrides=QUICK["mae_overrides"])
    torch.manual_seed(0)
    vec = make_vec_env(data=str(synthetic_root), mae_config=mae_config(cfg), num_envs=2, obs_dtype="float16")
    hyperparams = SamplerConfig()
    if method == "sac_topk":  # make SAC take gradient steps within the tiny budget
        hyperparams = dataclasses.replace(hyperparams, sac=dataclasses.replace(
            hyperparams.sac, learning_starts=2, batch_size=4, buffer_size=16))
    agent = build_sampler(method, vec, hyperparams, seed=0, device="cpu")
    heldout = HeldOutClips(str(synthetic_root), vec.core.spec, num_clips=4, mask_ratio=0.9, seed=1)
    stats = CellStatsCallback(vec.engine, heldout, total_clips=6, measure_from=2, curve_points=3, curve_clips=2)
    agent.learn(100, callback=stats)
    assert vec.engine.num_updates == 3 and stats.clips == 6
    assert [c for c, _ in stats.heldout_curve] == [0, 2, 4, 6]
    summary = stats.summary()
    assert 0.0 <= summary["motion_precision"] <= 1.0 and 0.0 < summary["foreground_share"] < 1.0
    if method == "sac_topk":
        assert agent.replay_buffer.observations.dtype == np.float16
        assert isinstance(agent.actor.features_extractor, TokenProjection)
        assert agent._n_updates > 0


def test_scratch_cell_skips_pre_training(synthetic_root, tmp_path):
    cfg = apply_quick(BenchmarkConfig(quick=True, env=dataclasses.replace(default_env(), data=str(synthetic_root)),
                                      out=tmp_path, run_finetune=False))
    threads = torch.get_num_threads()
    try:
        record = run_cell(Cell("scratch", 0.9, 0), cfg)
    finally:
        torch.set_num_threads(threads)
    m = record["metrics"]
    assert m["clips"] == 0 and m["mae_updates"] == 0 and m["clips_per_s"] is None and m["sampler_params"] == 0
    assert m["motion_precision"] is None and 0.0 <= m["probe_top1"] <= 1.0 and m["num_classes"] == 12
    assert m["finetune_top1"] is None and m["finetune_s"] is None  # --no-run-finetune: probe only
    assert m["num_val_clips"] == 12  # one centre clip per val video (12 in the fixture, under the quick cap of 16)
    probe = record["settings"]["probe"]
    assert probe["pooling"] == "quadrants" and probe["max_iter"] == QUICK["probe"].max_iter  # the protocol's probe
    assert record["curves"]["train"] == [] and [c for c, _ in record["curves"]["heldout"]] == [0]
    assert (tmp_path / "cells" / "scratch_r0.9_s0" / "encoder" / "config.json").is_file()


def test_quick_run_end_to_end_then_rerun_skips(synthetic_root, tmp_path, capsys):
    script = load_script()
    out = tmp_path / "bench"
    argv = ["--quick", "--data", str(synthetic_root), "--out", str(out)]
    result = script.main(argv)
    assert sorted(result.ran) == ["ppo_tats_r0.9_s0", "random_r0.9_s0", "reinforce_r0.9_s0"]
    assert not result.failed and not result.skipped

    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == 3
    by_method = {row["method"]: row for row in rows}
    for method, row in by_method.items():
        assert int(row["clips"]) == 16 and int(row["mae_updates"]) == 4 and row["seed"] == "0"
        assert int(row["warmup_clips"]) == (8 if SAMPLERS[method].learned else 0)
        assert 0.0 <= float(row["probe_top1"]) <= 1.0 and 0.0 <= float(row["finetune_top1"]) <= 1.0
        assert 0.0 <= float(row["motion_precision"]) <= 1.0
        assert float(row["val_recon_loss"]) > 0 and float(row["clips_per_s"]) > 0 and float(row["peak_rss_mb"]) > 100
    assert int(by_method["ppo_tats"]["sampler_params"]) > 0 and int(by_method["random"]["sampler_params"]) == 0

    records = {p.stem: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    curves = [r["curves"] for r in records.values()]
    # Same seed: same MAE initialisation, same clips, same warm-up masks -> identical until the samplers take over.
    assert len({c["heldout"][0][1] for c in curves}) == 1
    assert len({tuple(map(tuple, c["train"][:2])) for c in curves}) == 1
    assert len({c["train"][-1][1] for c in curves}) == 3

    table = (out / "results.md").read_text()
    assert "| method | mask ratio | seeds | fine-tune top-1 % |" in table and "Best encoder" in table
    assert "frozen probe on quadrants-pooled features" in table and "short fine-tune 1 epoch(s)" in table
    for method in ("ppo_tats", "reinforce", "random"):
        assert f"| {method} | 0.9 | 1 |" in table
    for name in ("learning_curves.png", "accuracy.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    again = script.main(argv)
    assert again.ran == [] and sorted(again.skipped) == sorted(result.ran)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # --report-only on a wider selection runs nothing and reports only the finished cells.
    (out / "results.csv").unlink()
    report = script.main(argv + ["--report-only", "--methods", "ppo_tats", "tube", "random"])
    assert report.ran == [] and sorted(report.skipped) == ["ppo_tats_r0.9_s0", "random_r0.9_s0"]
    assert not (out / "cells" / "tube_r0.9_s0.json").exists()
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 3  # the report covers every finished cell in --out
    # A finished cell computed with other settings is refused up front (the budget is part of its settings).
    lines = refused(script, argv + ["--total-clips", "32", "--report-only"], capsys)
    assert len(lines) == 3 and all("was computed with different settings (total_clips)" in line for line in lines)
    assert refused(script, argv + ["--total-clips", "22"], capsys) == [
        "--total-clips 22: must be a positive multiple of --num-envs 4"]
    assert "val.txt" in refused(script, ["--quick", "--data", str(synthetic_root / "train.txt"), "--out", str(out)],
                                capsys)[0]


def test_a_failing_cell_is_reported_and_does_not_stop_the_run(real_list_file, tmp_path, capsys):
    out = tmp_path / "bench"
    data = tmp_path / "real"  # the three real clips as train and val: no foreground masks
    data.mkdir()
    for split in ("train", "val"):
        (data / f"{split}.txt").write_text(real_list_file.read_text())
    # The composition oracle needs foreground masks, which these videos lack: its cell fails in its own process.
    argv = ["--quick", "--data", str(data), "--out", str(out), "--methods", "show_moving_2", "random", "--no-downstream"]
    with pytest.raises(SystemExit) as exit_info:
        load_script().main(argv)
    assert exit_info.value.code == 1
    error = (out / "cells" / "show_moving_2_r0.9_s0.error.txt").read_text()
    assert "foreground" in error and "Traceback" in error  # the child's own traceback
    assert not (out / "cells" / "show_moving_2_r0.9_s0.json").exists()
    assert (out / "cells" / "random_r0.9_s0.json").is_file()  # the other cell still ran
    assert "show_moving_2_r0.9_s0" in capsys.readouterr().err
    lines = refused(load_script(), ["--quick", "--data", str(data), "--out", str(out), "--reinforce.baseline-decay",
                                    "1.5"], capsys)  # a bad value is refused before any cell
    assert len(lines) == 1 and lines[0].startswith("--reinforce.baseline-decay 1.5: must be in")


def test_registry_builds_token_level_learners_in_the_configured_direction(synthetic_root):
    from agents.algorithms.token_ppo import TokenPPO

    mae = mae_config(BenchmarkConfig(mae_overrides=QUICK["mae_overrides"]))
    cfg = SamplerConfig(direction="mask_hard")
    plain = make_vec_env(data=str(synthetic_root), mae_config=mae, num_envs=2)
    with pytest.raises(ValueError, match="token_info=True"):  # the env must be built for a token-level learner
        build_sampler("token_ppo", plain, cfg, seed=0)
    env_config = sampler_env_config("token_ppo", EnvConfig(data=str(synthetic_root)), cfg)
    assert env_config.token_info and env_config.reward.mode == "adversarial"  # the registry sets what it needs
    vec = VideoMaskingVecEnv(2, env_config, mae_config=mae)
    agent = build_sampler("token_ppo", vec, cfg, seed=0)
    assert isinstance(agent, TokenPPO) and agent.direction == "mask_hard"
    assert agent.n_epochs == cfg.token_ppo.n_epochs and agent.policy.grid == vec.core.spec.grid
    assert vec.core.token_info
    token_rule = build_sampler("reinforce_token", vec, cfg, seed=0)
    assert (token_rule.rule, token_rule.direction) == ("token", "mask_hard")
    assert build_sampler("reinforce_adamae", vec, SamplerConfig(direction="show_hard"), seed=0).rule == "adamae"
    assert build_sampler("reinforce", vec, cfg, seed=0).rule == "clip"
    assert sampler_hyperparams("token_ppo", cfg)["direction"] == "mask_hard"
    assert sampler_hyperparams("ppo_tats", cfg)["direction"] == "mask_hard"  # scalar learners: it sets the reward mode
    assert sampler_env_config("ppo_tats", EnvConfig(), SamplerConfig(direction="show_hard")).reward.mode == "cooperative"
    with pytest.raises(ValueError, match="contradicts --direction"):
        sampler_env_config("ppo_tats", EnvConfig(reward=RewardConfig(mode="cooperative")), cfg)


def test_no_downstream_run_reports_lift_rows_per_direction(synthetic_root, tmp_path):
    script = load_script()
    out = tmp_path / "bench"
    result = script.main(["--quick", "--data", str(synthetic_root), "--out", str(out), "--methods", "token_ppo",
                          "reinforce_adamae", "random", "--directions", "show_hard", "mask_hard", "--no-downstream"])
    assert not result.failed
    assert sorted(result.ran) == ["random_r0.9_s0", "reinforce_adamae-show_hard_r0.9_s0",
                                  "token_ppo-mask_hard_r0.9_s0", "token_ppo-show_hard_r0.9_s0"]
    with open(out / "results.csv") as f:
        rows = {row["method"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"random", "reinforce_adamae@show_hard", "token_ppo@mask_hard", "token_ppo@show_hard"}
    for row in rows.values():
        assert row["probe_top1"] == "" and row["finetune_top1"] == ""  # skipped, not zero
        assert -1.0 <= float(row["motion_lift_show_hard"]) <= 1.0 and -1.0 <= float(row["motion_lift_mask_hard"]) <= 1.0
    table = (out / "results.md").read_text()
    assert "| token_ppo@mask_hard | 0.9 |" in table and "lift show-hard | lift mask-hard" in table
    assert "accuracy" not in result.outputs and not (out / "accuracy.png").exists()
