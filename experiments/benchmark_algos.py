"""Benchmark RL algorithms and fixed maskers on the masking env at the same pre-training budget.

    python experiments/benchmark_algos.py --quick --out runs/bench_quick          # CI smoke run, < 1 min
    python experiments/benchmark_algos.py --out runs/bench --jobs 2               # the full tiny matrix
    python experiments/benchmark_algos.py --methods ppo_tats random --ratios 0.9 --seeds 0 1 2
    python experiments/benchmark_algos.py --config my_bench.yaml --total-clips 4096

The same command as the installed ``tats-bench`` (:mod:`agents.cli.bench`). Writes
cells/<method>_r<ratio>_s<seed>.json per finished cell (re-runs skip them), then results.csv,
results.md, learning_curves.png and accuracy.png into --out. Hyperparameters of the RL methods:
experiments/configs/algos/<method>.yaml. Every option: --help.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.cli import bench as _cli


def main(argv: Sequence[str] | None = None) -> Any:
    """``tats-bench`` under this script's name."""
    return _cli.main(argv, prog="benchmark_algos.py")


if __name__ == "__main__":
    main()
