"""Benchmark RL algorithms and fixed maskers on the masking env at the same pre-training budget.

    python experiments/benchmark_algos.py --quick --out runs/bench_quick          # CI smoke run, < 1 min
    python experiments/benchmark_algos.py --out runs/bench --jobs 2               # the full tiny matrix
    python experiments/benchmark_algos.py --methods ppo_tats random --ratios 0.9 --seeds 0 1 2
    python experiments/benchmark_algos.py --config my_bench.yaml --total-clips 4096

Writes cells/<method>_r<ratio>_s<seed>.json per finished cell (re-runs skip them), then
results.csv, results.md, learning_curves.png and accuracy.png into --out. Hyperparameters of
the RL methods: experiments/configs/algos/<method>.yaml. Every option: --help.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from agents.job.validation import ConfigError
from agents.bench.matrix import BenchmarkConfig, BenchmarkResult, run_benchmark
from tats_env.commandline import parse
from tats_env.data import DataSourceError, check_data_source


def main(argv: Sequence[str] | None = None) -> BenchmarkResult:
    """Parse the command line, run the unfinished cells, write the report; exit 1 if a cell failed."""
    cfg = parse(BenchmarkConfig, argv)
    try:  # the data sources first: one error line before any cell starts
        for split in dict.fromkeys((cfg.env.split, "val")):
            check_data_source(cfg.env.data, split)
    except DataSourceError as exc:
        print(f"benchmark_algos.py: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        result = run_benchmark(cfg)
    except ConfigError as exc:  # raised by the up-front checks, before any cell starts
        print("\n".join(f"benchmark_algos.py: error: {line}" for line in str(exc).splitlines()), file=sys.stderr)
        raise SystemExit(2) from None
    for name, path in result.outputs.items():
        print(f"{name}: {path}")
    if result.failed:
        print(f"{len(result.failed)} cell(s) failed: {', '.join(result.failed)} "
              "(see cells/<cell>.error.txt; re-run to retry them)", file=sys.stderr)
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
