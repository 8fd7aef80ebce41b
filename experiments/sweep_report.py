"""One table and chart over several benchmark runs and their frozen-probe reports (a sweep of sampler settings).

    python experiments/sweep_report.py \\
        --arms random_0.95=runs/sweep:random_r0.95 sh_share50=runs/arms/sh_share50 \\
        --probes runs/probe_a.json runs/probe_b.json --reference random_0.95 --out docs/results/sweep

An arm is ``NAME=BENCHMARK_OUT[:CELL_PREFIX]``: the finished cells of one ``benchmark_algos.py --out`` folder
(all of them, or those named ``CELL_PREFIX_s<seed>``, e.g. ``tube_r0.9``), one per seed. ``--probes``
are ``evaluate_encoder.py --out`` reports whose encoder names are arm names (the random-init encoder is taken from
the first report that has it). Writes ``OUT.md`` (table), ``OUT.json`` and ``OUT.png`` (probe per arm with its
seed spread, random init and the reference marked).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tats_env.commandline import parse
from tats_env.downstream.protocol import RANDOM_INIT
from tats_env.utils import atomic_write_json

METRICS = ("motion_lift_show_hard", "motion_lift_mask_hard", "moving_visible", "moving_hidden", "val_recon_loss",
           "pretrain_s")


@dataclass
class Args:
    """Join benchmark cells and probe reports into one sweep table."""

    arms: tuple[str, ...]
    """Arms as NAME=BENCHMARK_OUT[:CELL_PREFIX], in table order."""
    probes: tuple[Path, ...] = ()
    """evaluate_encoder.py reports; their encoder names are arm names."""
    reference: str | None = None
    """Arm every probe is compared with (difference in points and in combined seed sd)."""
    out: Path = Path("runs/sweep_report")
    """Output stem: OUT.md, OUT.json, OUT.png."""


def _stats(values: Sequence[float]) -> dict[str, Any]:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "sd": sd, "n": len(values), "values": values}


def read_arm(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME=DIR[:PREFIX]`` -> (name, {metric: stats, "cells": [...], "hyperparams": ...})."""
    name, sep, where = spec.partition("=")
    if not sep or not name or not where:
        raise ValueError(f"--arms takes NAME=BENCHMARK_OUT[:CELL_PREFIX], got {spec!r}")
    folder, _, prefix = where.partition(":")
    files = sorted(p for p in (Path(folder) / "cells").glob("*.json") if not prefix or p.stem.rsplit("_s", 1)[0] == prefix)
    if not files:
        raise ValueError(f"arm {name}: no finished cells in {folder}/cells matching {prefix!r}")
    cells = [json.loads(p.read_text()) for p in files]
    arm: dict[str, Any] = {key: _stats([c["metrics"].get(key) for c in cells]) for key in METRICS}
    arm["cells"] = [p.stem for p in files]
    arm["hyperparams"] = cells[0]["settings"].get("hyperparams")
    arm["mask_ratio"] = cells[0]["cell"]["mask_ratio"]
    return name, arm


def read_probes(paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Probe summaries by encoder name (later reports do not replace an earlier one's encoder)."""
    probes: dict[str, dict[str, Any]] = {}
    for path in paths:
        report = json.loads(Path(path).read_text())
        for name, entry in report["encoders"].items():
            probes.setdefault(name, entry["probe"])
    return probes


def _pct(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "—"
    return (f"{100 * entry['mean']:.1f}% ({100 * entry['binomial_sd']:.1f}, {100 * entry['seed_sd']:.1f}) "
            f"[{', '.join(f'{100 * v:.1f}' for v in entry['values'])}]")


def _pm(stats: dict[str, Any], fmt: str) -> str:
    return "—" if stats["mean"] is None else f"{stats['mean']:{fmt}} ± {stats['sd']:{fmt.lstrip('+')}}"


def build(cfg: Args) -> dict[str, Any]:
    """The joined rows (arms in order, random init first) with the differences to the reference."""
    arms = dict(read_arm(spec) for spec in cfg.arms)
    probes = read_probes(cfg.probes)
    reference = probes.get(cfg.reference) if cfg.reference else None
    rows = []
    for name in [RANDOM_INIT, *arms]:
        probe = probes.get(name)
        row: dict[str, Any] = {"name": name, "probe": probe, **arms.get(name, {})}
        if probe and reference and name != cfg.reference:
            diff = probe["mean"] - reference["mean"]
            combined = math.sqrt(probe["seed_sd"] ** 2 + reference["seed_sd"] ** 2)
            row["vs_reference_pp"] = 100 * diff
            # A seed spread needs at least two seeds on both sides; a one-seed arm gets the difference only.
            spread_known = len(probe["values"]) > 1 and len(reference["values"]) > 1 and combined > 0
            row["vs_reference_combined_sd"] = diff / combined if spread_known else None
        rows.append(row)
    return {"reference": cfg.reference, "rows": rows, "probe_reports": [str(p) for p in cfg.probes]}


def markdown(table: dict[str, Any]) -> str:
    """The table: lifts, moving tokens, held-out loss, wall, probe (binomial sd, seed sd) [seeds], vs reference."""
    lines = ["| arm | show-hard lift | mask-hard lift | moving visible / hidden | held-out loss | pre-training s | "
             f"frozen probe (binomial sd, seed sd) [seeds] | vs {table['reference']} |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table["rows"]:
        has_cells = "cells" in row
        moving = (f"{row['moving_visible']['mean']:.1f} / {row['moving_hidden']['mean']:.1f}"
                  if has_cells and row["moving_visible"]["mean"] is not None else "—")
        versus = "—"
        if row.get("vs_reference_pp") is not None:
            sd = row.get("vs_reference_combined_sd")
            versus = f"{row['vs_reference_pp']:+.1f} pp" + (f" ({sd:+.1f} sd)" if sd is not None else " (1 seed)")
        cells = [_pm(row[k], "+.3f") if has_cells else "—" for k in ("motion_lift_show_hard", "motion_lift_mask_hard")]
        lines.append(f"| {row['name']} | {cells[0]} | {cells[1]} | {moving} | "
                     f"{_pm(row['val_recon_loss'], '.4f') if has_cells else '—'} | "
                     f"{_pm(row['pretrain_s'], '.0f') if has_cells else '—'} | {_pct(row['probe'])} | {versus} |")
    return "\n".join(lines) + "\n"


def plot(table: dict[str, Any], path: Path) -> None:
    """Horizontal bars: probe mean per arm with its seed sd; random init and the reference as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table["rows"] if r["probe"]]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
    ys = range(len(rows))
    ax.barh(list(ys), [100 * r["probe"]["mean"] for r in rows], xerr=[100 * r["probe"]["seed_sd"] for r in rows],
            color=["#999999" if r["name"] == RANDOM_INIT else "#4477aa" for r in rows])
    for r in rows:
        if r["name"] in (RANDOM_INIT, table["reference"]):
            ax.axvline(100 * r["probe"]["mean"], ls="--", lw=1, color="k" if r["name"] == RANDOM_INIT else "r",
                       label=r["name"])
    ax.set_yticks(list(ys), [r["name"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("frozen probe top-1 (%), mean of seeds ± seed sd")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse, join, write OUT.md / OUT.json / OUT.png; returns the table."""
    cfg = parse(Args, argv)
    table = build(cfg)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(table, cfg.out.with_suffix(".json"))
    cfg.out.with_suffix(".md").write_text(markdown(table))
    plot(table, cfg.out.with_suffix(".png"))
    print(markdown(table))
    return table


if __name__ == "__main__":
    main()
