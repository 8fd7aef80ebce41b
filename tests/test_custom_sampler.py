"""A new learned sampler is one class and one registry line: it then trains through the main job and the benchmark.

The sampler is the README's worked example, run from the README itself (section "Adding a sampler"):
a position-only learner (one score per token position, no network over the clip) trained with the
exact token-level rule on the env's per-token errors. Running the block registers ``position_scores``.
"""

from __future__ import annotations

import torch

from agents.registry import SAMPLERS
from readme_snippets import run_snippet, snippet_defining

README_EXAMPLE = run_snippet(snippet_defining("class PositionScores(StepwiseSampler)"))
PositionScores = README_EXAMPLE["PositionScores"]


def _register() -> None:
    assert SAMPLERS["position_scores"].description == "one score per token position"  # the README's own line


def test_a_registered_sampler_trains_through_the_main_job(synthetic_root, tmp_path):
    from agents.job.config import TrainConfig
    from agents.job.trainer import train
    from agents.job.checkpoint import load_checkpoint

    _register()
    cfg = TrainConfig(method="position_scores", total_steps=16, warmup_steps=8, num_envs=4, out=tmp_path / "run",
                      progress_bar=False, export_formats=("native",))
    cfg.env = type(cfg.env)(**{**cfg.env.__dict__, "data": str(synthetic_root)})
    summary = train(cfg)
    assert summary["method"] == "position_scores" and summary["clips"] == 24
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    scores = state["sampler"]["agent"]["scores"]
    assert state["num_timesteps"] == 16 and torch.isfinite(scores).all() and scores.abs().sum() > 0  # it learned


def test_a_registered_sampler_runs_in_the_benchmark(tmp_path):
    from agents.bench.matrix import BenchmarkConfig, run_benchmark

    _register()
    result = run_benchmark(BenchmarkConfig(quick=True, methods=("position_scores", "random"), isolate=False,
                                           downstream=False, jobs=1, out=tmp_path / "bench"))
    assert not result.failed, result.failed
    assert sorted(result.ran) == ["position_scores_r0.9_s0", "random_r0.9_s0"]
    assert "position_scores" in (tmp_path / "bench" / "results.md").read_text()
