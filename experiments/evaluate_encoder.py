"""Evaluate and rank pre-trained encoders on CPU: frozen probe, short fine-tune, from-scratch ViT, 3D-CNN control.

    python experiments/evaluate_encoder.py --encoders tube=runs/videomae/encoder-native
    python experiments/evaluate_encoder.py --encoders tube=runs/s0/encoder-native,runs/s1/encoder-native \\
        tats=runs/t0/encoder-native --out runs/eval.json
    python experiments/evaluate_encoder.py --data my_videos/train.txt --val-data my_videos/val.txt --preset tiny32
    python experiments/evaluate_encoder.py --help

The same command as the installed ``tats-eval`` (:mod:`tats_env.cli.evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tats_env.cli import evaluate as _cli
from tats_env.cli.evaluate import EvaluateConfig, parse_encoders  # noqa: F401 - importable from here as before


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``tats-eval`` under this script's name."""
    return _cli.main(argv, prog="evaluate_encoder.py")


if __name__ == "__main__":
    main()
