"""Fine-tune (or linearly probe) an exported encoder for action recognition; report top-1/top-5.

    python experiments/finetune.py --encoder exports/native --epochs 30
    python experiments/finetune.py --encoder exports/native --linear-probe --out runs/probe
    python experiments/finetune.py --encoder exports/native --init random --out runs/scratch   # baseline
    python experiments/finetune.py --config experiments/configs/finetune_tiny.yaml --lr 5e-4

Every option of :class:`tats_env.downstream.FinetuneConfig` is a flag (``--help`` lists them);
``--config FILE.yaml`` sets defaults that flags override. Writes metrics.json, confusion.png,
TensorBoard events (tb/) and classifier.pt into ``--out``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from tats_env.commandline import parse
from tats_env.data import DataSourceError, check_data_source
from tats_env.downstream import FinetuneConfig, finetune


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` into a :class:`FinetuneConfig`, run it, print and return the metrics."""
    cfg = parse(FinetuneConfig, argv)
    try:  # the data sources first: one error line before any model is built
        check_data_source(cfg.data, "train", cfg.root, split_flag=None)
        check_data_source(cfg.val_data or cfg.data, "val", cfg.root, flag="--val-data" if cfg.val_data else "--data",
                          split_flag=None)
    except DataSourceError as exc:
        print(f"finetune.py: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    metrics = finetune(cfg)
    best = metrics["best"]
    print(f"{metrics['num_val_videos']} val videos x {metrics['views'][0]}x{metrics['views'][1]} views: "
          f"top-1 {100 * metrics['top1']:.2f}%  top-5 {100 * metrics['top5']:.2f}%  "
          f"(best top-1 {100 * best['top1']:.2f}% at epoch {best['epoch']})")
    written = ["metrics.json", "confusion.png", "tb/"] + (["classifier.pt"] if cfg.save_classifier else [])
    print(f"wrote {', '.join(written)} in {cfg.out}")
    return metrics


if __name__ == "__main__":
    main()
