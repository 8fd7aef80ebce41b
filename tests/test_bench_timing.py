"""Benchmark helpers: isolated runs report results and crashes; tables render."""

import math
import os

import pytest

from tats_env.timing import markdown_table, run_isolated


def test_run_isolated_returns_the_child_result():
    assert run_isolated(math.factorial, 5) == 120


def test_run_isolated_reports_a_dead_child_instead_of_hanging():
    with pytest.raises(RuntimeError, match="exit code 3"):
        run_isolated(os._exit, 3)


def test_run_isolated_reports_child_exceptions():
    with pytest.raises(RuntimeError, match="ValueError"):
        run_isolated(int, "not a number")


def test_markdown_table_formats_floats():
    table = markdown_table([{"a": 1.234, "b": "x"}], ["a", "b"])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1.23 | x |"]


def test_run_isolated_kills_a_child_past_its_timeout_and_logs_its_output(tmp_path):
    import time

    log = tmp_path / "child.log"
    start = time.monotonic()
    # 30 s: a spawned child imports torch before it runs anything, which takes over 15 s on a loaded 2-core machine.
    with pytest.raises(TimeoutError, match="within 30 s"):
        run_isolated(os.system, "echo started; sleep 300", timeout_s=30, log_path=str(log))
    assert time.monotonic() - start < 75  # the sleeping grandchild was killed with its group, not awaited
    assert "started" in log.read_text()


def test_measure_reports_cpu_throughput_that_waiting_does_not_stretch():
    """A step that mostly waits (as a candidate does when other jobs hold the cores) has a long wall time but
    little CPU time: the CPU figure is what ratios on a shared machine compare."""
    import time

    import torch

    from tats_env.timing import measure, throughput_ratio

    def build():
        def step():
            time.sleep(0.02)
            sum(i * i for i in range(20000))
        return step

    waiting = measure("waits", build, torch.device("cpu"), batch_size=4, steps=3, warmup=1)
    assert waiting.cpu_clips_per_s is not None and waiting.cpu_clips_per_s > 1.5 * waiting.clips_per_s
    assert waiting.step_ms >= 20
    same = throughput_ratio(waiting, waiting)
    assert same.startswith("clips/s 1.00x") and "per CPU second 1.00x" in same


def test_bench_tats_builds_its_env_at_the_overridden_mae_size(synthetic_root):
    """``bench_tats.py --mae-overrides`` runs the main job's env at another clip size (e.g. ``small`` at 112 px)."""
    import importlib.util
    import sys
    from pathlib import Path

    import torch

    path = Path(__file__).parents[1] / "experiments" / "bench_tats.py"
    spec = importlib.util.spec_from_file_location("bench_tats", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(bench)
    args = bench.parse(bench.Args, ["--data", str(synthetic_root), "--num-envs", "2",
                                    "--mae-overrides", "num_frames=4", "image_size=32", "depth=1"])
    env = bench.env_for(args, torch.device("cpu"), method="token_ppo")
    assert (env.core.spec.num_frames, env.core.spec.image_size) == (4, 32)
    assert env.core.engine.mae_config.depth == 1 and env.core.token_info  # the token learner's env
    default = bench.env_for(bench.parse(bench.Args, ["--data", str(synthetic_root), "--num-envs", "2"]),
                            torch.device("cpu"))
    assert default.core.spec.num_frames == 16  # the preset's own size without overrides
