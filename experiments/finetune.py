"""Fine-tune (or linearly probe) an exported encoder for action recognition; report top-1/top-5.

    python experiments/finetune.py --encoder exports/native --epochs 30
    python experiments/finetune.py --encoder exports/native --linear-probe --out runs/probe
    python experiments/finetune.py --encoder exports/native --init random --out runs/scratch   # baseline
    python experiments/finetune.py --config experiments/configs/finetune_tiny.yaml --lr 5e-4

The same command as the installed ``tats-finetune`` (:mod:`tats_env.cli.finetune`; ``--help`` lists every option).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tats_env.cli import finetune as _cli


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``tats-finetune`` under this script's name."""
    return _cli.main(argv, prog="finetune.py")


if __name__ == "__main__":
    main()
