"""Export a trained encoder: native safetensors, original VideoMAE checkpoint, or Hugging Face.

    python experiments/export_encoder.py --checkpoint runs/tats/checkpoint.pt --out exports/native
    python experiments/export_encoder.py --checkpoint runs/tats/checkpoint.pt --out exports/hf --format hf
    python experiments/export_encoder.py --checkpoint exports/native --out exports/videomae --format videomae

``--checkpoint`` is a training checkpoint file (``mae_config`` + ``mae_state``) or a native /
videomae export directory. See :mod:`tats_env.export` for what each format holds.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from tats_env.export import FORMATS, export_encoder


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="training checkpoint file, or a native/videomae export directory")
    parser.add_argument("--out", type=Path, required=True, help="output directory (written atomically)")
    parser.add_argument("--format", choices=FORMATS, default="native", help="export format")
    parser.add_argument("--include-decoder", action="store_true",
                        help="also export encoder_to_decoder, mask_token and the decoder (pre-training weights)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out directory")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="read a checkpoint that needs full unpickling (only for files you trust)")
    return parser


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse ``argv``, export, print and return the output directory."""
    args = build_parser().parse_args(argv)
    out = export_encoder(args.checkpoint, args.out, format=args.format, include_decoder=args.include_decoder,
                         overwrite=args.overwrite, trust_pickle=args.trust_pickle)
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"wrote {args.format} export of {args.checkpoint} to {out} ({files})")
    return out


if __name__ == "__main__":
    main()
