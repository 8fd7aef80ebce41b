"""``tats-export``: export a trained encoder: native safetensors, original VideoMAE checkpoint, or Hugging Face.

    tats-export --checkpoint runs/tats/checkpoint.pt --out exports/native
    tats-export --checkpoint runs/tats/checkpoint.pt --out exports/hf --format hf
    tats-export --checkpoint exports/native --out exports/videomae --format videomae

``--checkpoint`` is a training checkpoint file (``mae_config`` + ``mae_state``, read with
``weights_only=True``) or a native / videomae export directory. See :mod:`tats_env.export` for
what each format holds (every export has ``SHA256SUMS``, verified when an export is read back). A
missing, truncated or corrupted file, a file that is not a checkpoint, or non-finite weights end
with one ``error:`` line naming the file (exit status 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tats_env.commandline import exit_with_error, parse
from tats_env.export_info import ExportFormat


@dataclass
class ExportArgs:
    """Export a trained encoder (native / videomae / hf)."""

    checkpoint: Path
    """Training checkpoint file, or a native/videomae export directory."""
    out: Path
    """Output directory (written atomically)."""
    format: ExportFormat = "native"
    """Export format."""
    include_decoder: bool = False
    """Also export encoder_to_decoder, mask_token and the decoder (pre-training weights)."""
    overwrite: bool = False
    """Replace a non-empty --out directory."""
    trust_pickle: bool = False
    """Read a checkpoint that needs full unpickling (only for files you trust)."""


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> Path:
    """Parse ``argv``, export, print and return the output directory."""
    args = parse(ExportArgs, argv, prog=prog)
    from tats_env.export import export_encoder

    try:
        out = export_encoder(args.checkpoint, args.out, format=args.format, include_decoder=args.include_decoder,
                             overwrite=args.overwrite, trust_pickle=args.trust_pickle)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:  # the messages name the file and the fix
        exit_with_error(exc, prog)
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"wrote {args.format} export of {args.checkpoint} to {out} ({files})")
    return out


if __name__ == "__main__":
    main()
