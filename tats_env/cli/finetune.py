"""``tats-finetune``: fine-tune (or linearly probe) an exported encoder for action recognition; report top-1/top-5.

    tats-finetune --encoder exports/native --epochs 30
    tats-finetune --encoder exports/native --linear-probe --out runs/probe
    tats-finetune --encoder exports/native --init random --out runs/scratch   # baseline
    tats-finetune --config experiments/configs/finetune_tiny.yaml --lr 5e-4

Every option of :class:`tats_env.downstream.finetune_config.FinetuneConfig` is a flag (``--help`` lists
them); ``--config FILE.yaml`` sets defaults that flags override. Writes metrics.json, confusion.png,
TensorBoard events (tb/) and classifier.pt into ``--out`` (a non-empty one only with ``--overwrite``).
A bad option, file or data source ends with one ``error:`` line per problem (exit status 2) before any
data is loaded or model built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tats_env.checks import ConfigError
from tats_env.commandline import exit_with_error, parse
from tats_env.downstream.finetune_config import FinetuneConfig, validate_finetune_config


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> dict[str, Any]:
    """Parse ``argv`` into a :class:`FinetuneConfig`, check it, run it, print and return the metrics."""
    cfg = parse(FinetuneConfig, argv, prog=prog)
    try:
        validate_finetune_config(cfg)
    except ConfigError as exc:
        exit_with_error(exc, prog)
    from tats_env.downstream.finetune import finetune

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
