"""Export a trained encoder: native safetensors, original VideoMAE checkpoint, or Hugging Face.

    python experiments/export_encoder.py --checkpoint runs/tats/checkpoint.pt --out exports/native
    python experiments/export_encoder.py --checkpoint runs/tats/checkpoint.pt --out exports/hf --format hf
    python experiments/export_encoder.py --checkpoint exports/native --out exports/videomae --format videomae

The same command as the installed ``tats-export`` (:mod:`tats_env.cli.export`; ``--help`` lists every option).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tats_env.cli import export as _cli
from tats_env.cli.export import ExportArgs  # noqa: F401 - importable from here as before


def main(argv: Sequence[str] | None = None) -> Path:
    """``tats-export`` under this script's name."""
    return _cli.main(argv, prog="export_encoder.py")


if __name__ == "__main__":
    main()
