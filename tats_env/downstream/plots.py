"""A picture of an evaluation report: every encoder's probe and fine-tune beside the floor and the controls."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_report"]


def _bars(report: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(group, part, summary) for every measured top-1, in the report's order."""
    bars = []
    for name, entry in report["encoders"].items():
        bars.append((name, "frozen probe", entry["probe"]))
        if "finetune" in entry:
            bars.append((name, "fine-tune", entry["finetune"]))
    if "scratch_vit" in report:
        bars.append(("from-scratch ViT", "fine-tune", report["scratch_vit"]))
    if "control" in report:
        bars.append(("3D CNN control", "supervised", report["control"]))
    return bars


def plot_report(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Bar chart of a :func:`~tats_env.downstream.protocol.run_protocol` report, written to ``path`` (PNG).

    Bars: mean top-1 over seeds; error bars: the binomial sd of the mean; dots: the seeds. The
    dashed lines are chance and the bar the controls must clear; the title says whether the
    encoders were ranked.
    """
    bars = _bars(report)
    if not bars:
        raise ValueError("the report holds no measured top-1 to plot")
    colors = {"frozen probe": "C0", "fine-tune": "C1", "supervised": "C2"}
    fig = Figure(figsize=(max(6.0, 0.7 * len(bars) + 2.5), 4.5))
    ax = fig.add_subplot()
    x = np.arange(len(bars))
    for i, (_, part, summary) in enumerate(bars):
        ax.bar(x[i], 100 * summary["mean"], yerr=100 * summary["binomial_sd"], capsize=3, color=colors[part],
               alpha=0.75, label=part if part not in [b[1] for b in bars[:i]] else None)
        ax.scatter(np.full(len(summary["values"]), x[i]), [100 * v for v in summary["values"]], s=10, color="black",
                   zorder=3)
    data = report["data"]
    ax.axhline(100 * data["chance"], color="grey", linestyle="--", linewidth=1, label="chance")
    ax.axhline(100 * data["control_bar"], color="red", linestyle=":", linewidth=1, label="controls' bar")
    ax.set_xticks(x, [f"{group}\n{part}" for group, part, _ in bars], fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("val top-1 (%)")
    verdict = "ranked" if report.get("rankable") else "NOT RANKED" if report.get("complete") else "incomplete"
    ax.set_title(f"{data['num_train']} train / {data['num_val']} val clips, {data['num_classes']} classes: {verdict}",
                 fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
