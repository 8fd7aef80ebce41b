"""``tats-eval``: evaluate and rank pre-trained encoders on CPU (frozen probe, short fine-tune, from-scratch ViT,
3D-CNN control).

    tats-eval --encoders tube=runs/videomae/encoder-native
    tats-eval --encoders tube=runs/s0/encoder-native,runs/s1/encoder-native tats=runs/t0/encoder-native \\
        --out runs/eval.json
    tats-eval --data my_videos/train.txt --val-data my_videos/val.txt --preset tiny32
    tats-eval --help

The main metric is the frozen probe with ``quadrants`` pooling (``--protocol.probe.pooling``).
Every top-1 is printed with its binomial noise and seed spread; the encoders are ranked only when
the positive control and the from-scratch ViT beat chance clearly (otherwise the reasons are
printed and the report says ``"rankable": false``). The whole report goes to ``--out`` as JSON.
A bad option, encoder path or data source ends with one ``error:`` line per problem (exit status 2)
before any data is loaded or model built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tats_env.checks import ConfigError, config_problems, flag_problems
from tats_env.commandline import exit_with_error, parse
from tats_env.config import PRESETS
from tats_env.downstream.protocol_config import ProtocolConfig
from tats_env.outdir import out_problem


@dataclass
class EvaluateConfig:
    """Evaluate pre-trained encoders with the CPU protocol and rank them if the data allows."""

    encoders: tuple[str, ...] = ()
    """Encoders as NAME=EXPORT[,EXPORT...] (one native/videomae export or training checkpoint per
    pre-training seed). None: only the random-init probe, the from-scratch ViT and the control run."""
    data: str = "synthetic"
    """Training clips: 'synthetic', a folder holding train.txt/val.txt, a 'path label' list file, or a video folder."""
    val_data: str | None = None
    """Validation clips (same forms); default: the 'val' split of --data."""
    root: str | None = None
    """Base folder of relative paths in list files."""
    preset: str = "tiny32"
    """Architecture of the random-init encoders and the from-scratch ViT when no encoder is given
    (otherwise the first encoder's); ``tiny32`` is the CPU benchmark architecture."""
    temporal_views: int = 1
    """Clips cut from each video (centred windows); each is one training or validation example."""
    max_train_videos: int | None = None
    """Use only the first videos of the training list (quick runs)."""
    max_val_videos: int | None = None
    """Use only the first videos of the validation list (quick runs)."""
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    """Seeds, probe, recipes and what to run."""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)."""
    out: Path | None = None
    """Write the JSON report here (rewritten after every measurement; ``"complete": true`` at the end), and a bar
    chart of it beside it (same name, ``.png``)."""
    progress: bool = False
    """Show progress bars."""


def parse_encoders(items: Sequence[str]) -> dict[str, list[str]]:
    """``NAME=PATH[,PATH...]`` items -> ``{name: [paths]}``; a malformed item raises ``ValueError``."""
    encoders: dict[str, list[str]] = {}
    for item in items:
        name, sep, paths = item.partition("=")
        parts = [p for p in paths.split(",") if p]
        if not sep or not name or not parts:
            raise ValueError(f"--encoders takes NAME=EXPORT[,EXPORT...] items, got {item!r}")
        if name in encoders:
            raise ValueError(f"encoder name {name!r} given twice")
        encoders[name] = parts
    return encoders


def evaluate_problems(cfg: EvaluateConfig) -> list[str]:
    """One line per bad option of ``cfg``: ranges, encoders, preset, data sources and ``--out``."""
    from tats_env.data.source import DataSourceError, check_data_source

    problems = list(flag_problems(cfg, config_problems(cfg)))
    for name in ("temporal_views", "max_train_videos", "max_val_videos", "threads"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            problems.append(f"--{name.replace('_', '-')} {value}: must be >= 1")
    try:
        encoders = parse_encoders(cfg.encoders)
    except ValueError as exc:
        problems.append(str(exc))
        encoders = {}
    for name, paths in encoders.items():
        problems += [f"--encoders {name}={path}: no such export directory or checkpoint file"
                     for path in paths if not Path(path).exists()]
    if not encoders and cfg.preset not in PRESETS:
        problems.append(f"--preset {cfg.preset}: unknown preset; choose one of {', '.join(PRESETS)}")
    if cfg.out is not None:
        out = out_problem(cfg.out) if Path(cfg.out).is_dir() else out_problem(Path(cfg.out).parent)
        if Path(cfg.out).suffix.lower() == ".png":
            out = "the JSON report would be overwritten by its chart; name it .json"
        elif Path(cfg.out).is_dir():
            out = "is a folder; name the JSON report file (e.g. runs/eval.json)"
        if out:
            problems.append(f"--out {cfg.out}: {out}")
    try:
        check_data_source(cfg.data, "train", cfg.root, split_flag=None)
        check_data_source(cfg.val_data or cfg.data, "val", cfg.root, flag="--val-data" if cfg.val_data else "--data",
                          split_flag=None)
    except DataSourceError as exc:
        problems.append(str(exc))
    return problems


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> dict[str, Any]:
    """Parse the command line, check it, run the protocol, print the numbers and verdict; returns the report."""
    cfg = parse(EvaluateConfig, argv, prog=prog)
    problems = evaluate_problems(cfg)
    if problems:
        exit_with_error(ConfigError("\n".join(problems)), prog)
    import torch

    from tats_env.config import get_preset
    from tats_env.downstream.clipset import load_clipset
    from tats_env.downstream.plots import plot_report
    from tats_env.downstream.protocol import run_protocol
    from tats_env.export import load_encoder
    from tats_env.utils import atomic_write_json

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    encoders = parse_encoders(cfg.encoders)
    arch = load_encoder(next(iter(encoders.values()))[0]).cfg if encoders else get_preset(cfg.preset)
    train = load_clipset(cfg.data, arch.video, "train", root=cfg.root, temporal_views=cfg.temporal_views,
                         max_videos=cfg.max_train_videos, progress=cfg.progress)
    val = load_clipset(cfg.val_data or cfg.data, arch.video, "val", root=cfg.root, temporal_views=cfg.temporal_views,
                       max_videos=cfg.max_val_videos, progress=cfg.progress)
    print(f"{len(train)} train / {len(val)} val clips, {max(train.num_classes, val.num_classes)} classes", flush=True)
    out = cfg.out
    report = run_protocol(encoders, train, val, cfg.protocol, arch=arch, log=lambda s: print(s, flush=True),
                          progress=cfg.progress,
                          on_update=None if out is None else (lambda partial: atomic_write_json(partial, out)))
    data = report["data"]
    print(f"chance {100 * data['chance']:.1f}% (binomial sd {100 * data['chance_binomial_sd']:.1f}); "
          f"controls must exceed {100 * data['control_bar']:.1f}%")
    if report["rankable"]:
        for i, row in enumerate(report["ranking"], 1):
            gap = {True: "  > next (beyond noise)", False: "  ~ next (within noise)", None: ""}[row["separated_from_next"]]
            print(f"{i}. {row['name']}: probe {100 * row['probe_top1']:.1f}%{gap}")
    else:
        print("NOT RANKED:\n  " + "\n  ".join(report["refusals"]))
    if cfg.out is not None:
        atomic_write_json(report, cfg.out)
        figure = plot_report(report, Path(cfg.out).with_suffix(".png"))
        print(f"wrote {cfg.out} and {figure}")
    return report


if __name__ == "__main__":
    main()
