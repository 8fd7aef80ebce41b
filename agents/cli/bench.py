"""``tats-bench``: benchmark RL algorithms and fixed maskers on the masking env at the same pre-training budget.

    tats-bench --quick --out runs/bench_quick          # CI smoke run, < 1 min
    tats-bench --out runs/bench --jobs 2               # the full tiny matrix
    tats-bench --methods ppo_tats random --ratios 0.9 --seeds 0 1 2
    tats-bench --config my_bench.yaml --total-clips 4096

Writes cells/<method>_r<ratio>_s<seed>.json per finished cell (re-runs skip them), then
results.csv, results.md, learning_curves.png and accuracy.png into --out. Hyperparameters of
the RL methods: experiments/configs/algos/<method>.yaml. Every option: --help.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from tats_env.checks import ConfigError
from tats_env.commandline import exit_with_error, parse


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> Any:
    """Parse the command line, run the unfinished cells, write the report; exit 1 if a cell failed."""
    from agents.bench.config import BenchmarkConfig  # torch-free: --help imports nothing heavier
    from tats_env.data import DataSourceError, check_data_source

    cfg = parse(BenchmarkConfig, argv, prog=prog)
    try:  # the data sources first: one error line before any cell starts
        for split in dict.fromkeys((cfg.env.split, "val")):
            check_data_source(cfg.env.data, split)
    except DataSourceError as exc:
        exit_with_error(exc, prog)
    from agents.bench.matrix import run_benchmark

    try:
        result = run_benchmark(cfg)
    except ConfigError as exc:  # the up-front checks (agents.bench.checks), before any cell starts
        exit_with_error(exc, prog)
    for name, path in result.outputs.items():
        print(f"{name}: {path}")
    if result.failed:
        print(f"{len(result.failed)} cell(s) failed: {', '.join(result.failed)} "
              "(see cells/<cell>.error.txt; re-run to retry them)", file=sys.stderr)
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
