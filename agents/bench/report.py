"""Tables and plots of a sampler benchmark, from the per-cell JSON records in ``<out>/cells``.

``results.csv`` has one row per cell (method, mask ratio, seed); ``results.md`` aggregates the
seeds (mean ± sample standard deviation) per method and ratio, names the best encoder, and
gives the probe and fine-tune gains over random masking paired by seed (same data, same MAE
initialisation); ``learning_curves.png`` and ``accuracy.png`` plot the runs.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["CSV_COLUMNS", "load_records", "write_csv", "aggregate", "render_markdown", "plot_learning_curves",
           "plot_accuracy", "write_report"]

CSV_COLUMNS: list[str] = [
    "method", "mask_ratio", "seed", "clips", "mae_updates", "warmup_clips", "val_recon_loss", "final_train_loss",
    "probe_top1", "finetune_top1", "motion_lift_show_hard", "motion_lift_mask_hard", "moving_visible",
    "moving_hidden", "motion_precision", "foreground_share", "motion_recall", "mean_reward",
    "pretrain_s", "probe_s", "finetune_s", "wall_s", "clips_per_s", "peak_rss_mb", "sampler_params",
]
_AGGREGATED = ["finetune_top1", "probe_top1", "val_recon_loss", "motion_lift_show_hard", "motion_lift_mask_hard",
               "moving_visible", "moving_hidden", "motion_precision", "foreground_share",
               "clips_per_s", "peak_rss_mb", "wall_s"]


def load_records(out: str | Path) -> list[dict[str, Any]]:
    """Every finished cell record under ``out/cells``, sorted by method, ratio and seed.

    A token-level learner's ``method`` becomes its row label ``method@direction`` (one row per direction).
    """
    records = [json.loads(p.read_text()) for p in sorted((Path(out) / "cells").glob("*.json"))]
    for record in records:
        if record["cell"].get("direction"):
            record["cell"]["method"] = f"{record['cell']['method']}@{record['cell']['direction']}"
    return sorted(records, key=lambda r: (r["cell"]["method"], r["cell"]["mask_ratio"], r["cell"]["seed"]))


def write_csv(records: list[dict[str, Any]], path: str | Path) -> Path:
    """One row per cell with :data:`CSV_COLUMNS` (accuracies as fractions, losses as they are)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            metrics = record["metrics"]
            writer.writerow({k: "" if metrics.get(k) is None else metrics[k] for k in CSV_COLUMNS})
    return Path(path)


def _stats(values: list[float]) -> tuple[float, float | None]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, ratio): seeds, ``(mean, std)`` of every aggregated metric, and the paired gain over random.

    ``finetune_vs_random`` / ``probe_vs_random`` are ``(mean, std)`` over seeds of the difference
    to the random-mask cell with the same ratio and seed (None without such pairs).
    """
    by_cell = {(r["cell"]["method"], r["cell"]["mask_ratio"], r["cell"]["seed"]): r["metrics"] for r in records}
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for (method, ratio, _), metrics in sorted(by_cell.items()):
        groups[(method, ratio)].append(metrics)
    rows = []
    for (method, ratio), runs in groups.items():
        row: dict[str, Any] = {"method": method, "mask_ratio": ratio, "seeds": [m["seed"] for m in runs]}
        for key in _AGGREGATED:
            values = [m[key] for m in runs if m.get(key) is not None]
            row[key] = _stats(values) if values else None
        for key in ("finetune_top1", "probe_top1"):
            pairs = [m[key] - by_cell[("random", ratio, m["seed"])][key] for m in runs
                     if ("random", ratio, m["seed"]) in by_cell and method != "random"
                     and m.get(key) is not None and by_cell[("random", ratio, m["seed"])].get(key) is not None]
            row[key.split("_")[0] + "_vs_random"] = _stats(pairs) if pairs else None
        rows.append(row)
    # Best probe (the protocol's main CPU metric) first; without downstream numbers (--no-downstream), lowest
    # held-out loss first.
    return sorted(rows, key=lambda r: -r["probe_top1"][0] if r["probe_top1"] else r["val_recon_loss"][0])


def _fmt(stat: tuple[float, float | None] | None, scale: float = 1.0, digits: int = 1, sign: bool = False) -> str:
    if stat is None:
        return "—"
    mean, std = stat
    text = f"{mean * scale:+.{digits}f}" if sign else f"{mean * scale:.{digits}f}"
    return text if std is None else f"{text} ± {std * scale:.{digits}f}"


def _best_line(rows: list[dict[str, Any]], key: str, label: str, higher: bool, scale: float, unit: str,
               digits: int) -> str:
    ranked = sorted((r for r in rows if r[key] is not None), key=lambda r: r[key][0], reverse=higher)
    if not ranked:
        return ""
    best = ranked[0]
    line = (f"- {label}: **`{best['method']}` at mask ratio {best['mask_ratio']:g}**, "
            f"{_fmt(best[key], scale, digits)}{unit} ({len(best['seeds'])} seed(s))")
    if len(ranked) > 1:
        second = ranked[1]
        gap = abs(best[key][0] - second[key][0])
        if best[key][1] is None or second[key][1] is None:
            verdict = "one seed: no spread to judge the gap by"
        elif gap <= max(best[key][1], second[key][1]):
            verdict = "within one standard deviation: not a clear win at this budget"
        else:
            verdict = "ahead by more than one standard deviation"
        line += (f"; runner-up `{second['method']}` at {second['mask_ratio']:g}: "
                 f"{_fmt(second[key], scale, digits)}{unit} ({verdict})")
    return line + "."


def _downstream_line(settings: dict[str, Any]) -> str:
    """What the downstream columns measured (or that they were skipped)."""
    if not settings.get("downstream", True):
        return "Downstream: skipped (--no-downstream)."
    probe, recipe = settings.get("probe"), settings.get("finetune")
    if not isinstance(probe, dict) or not isinstance(recipe, dict):  # cells of the old (SGD probe) benchmark
        return "Downstream: the pre-protocol recipe of these cells (see their settings)."
    line = (f"Downstream (the CPU protocol of tats_env.downstream.protocol): frozen probe on {probe['pooling']}-pooled "
            f"features (L-BFGS, weight decay {probe['weight_decay']:g})")
    if settings.get("run_finetune", True):
        line += (f"; short fine-tune {recipe['epochs']} epoch(s) at lr {recipe['lr']:g}, batch {recipe['batch_size']}, "
                 f"head pooled the same way")
    return line + "; one centre clip per val video."


def _resolution_line(metrics: dict[str, Any]) -> str:
    """How fine the accuracies are: chance level, and what one val video and binomial noise amount to."""
    classes, videos = metrics.get("num_classes"), metrics.get("num_val_clips", metrics.get("num_val_videos"))
    if not classes or not videos:
        return ""
    chance = 1.0 / classes
    noise = (chance * (1 - chance) / videos) ** 0.5
    return (f"Accuracy resolution: chance is {100 * chance:.1f} % ({classes} classes); {videos} val clips, so one "
            f"clip is {100 / videos:.1f} pp and the binomial standard deviation near chance is {100 * noise:.1f} pp. "
            "Top-1 differences smaller than that (or rows not above `scratch`) say nothing about the sampler; "
            "compare held-out loss and motion precision instead, and raise the budget.")


def render_markdown(records: list[dict[str, Any]]) -> str:
    """The aggregated table with a budget header and the best-encoder summary."""
    rows = aggregate(records)
    s = records[0]["settings"]
    env = s.get("env", s)  # cells written before the nested configs kept data and preset at the top level
    m0 = records[0]["metrics"]
    overrides = ", overrides " + " ".join(s["mae_overrides"]) if s["mae_overrides"] else ""
    lines = [
        "# Sampler benchmark", "",
        f"Budget per cell: {s['total_clips']} pre-training clips = {s['total_clips'] // s['num_envs']} MAE updates of "
        f"{s['num_envs']} clips (preset `{env['preset']}`{overrides}, "
        f"data `{env['data']}`). Learned samplers spend the first {s['warmup_clips']} clips with random masks. "
        f"Held-out loss: {s['eval_clips'] or 'all'} val clips under one common random mask at ratio "
        f"{s['eval_mask_ratio']:g} (seed {s['eval_seed']}), MAE in eval mode. {_downstream_line(s)} "
        "Values are mean ± standard deviation over seeds.", "",
        *(line for line in (
            _resolution_line(m0),
            _best_line(rows, "probe_top1", "Best encoder (frozen-probe top-1, the main CPU metric)", True, 100, " %", 1),
            _best_line(rows, "finetune_top1", "Best short fine-tune top-1", True, 100, " %", 1),
            _best_line(rows, "val_recon_loss", "Lowest held-out reconstruction loss", False, 1, "", 4),
            _best_line(rows, "motion_lift_mask_hard", "Largest mask-hard motion lift", True, 1, "", 3),
            _best_line(rows, "motion_lift_show_hard", "Largest show-hard motion lift", True, 1, "", 3),
        ) if line), "",
        "| method | mask ratio | seeds | fine-tune top-1 % | Δ vs random (pp) | linear-probe top-1 % | "
        "Δ probe vs random (pp) | held-out loss | lift show-hard | lift mask-hard | movers visible / hidden | "
        "motion precision | foreground share | clips/s | peak RSS MB | wall s |",
        "|" + "---|" * 16,
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['mask_ratio']:g} | {len(r['seeds'])} | {_fmt(r['finetune_top1'], 100)} | "
            f"{_fmt(r['finetune_vs_random'], 100, sign=True)} | {_fmt(r['probe_top1'], 100)} | "
            f"{_fmt(r['probe_vs_random'], 100, sign=True)} | {_fmt(r['val_recon_loss'], 1, 4)} | "
            f"{_fmt(r['motion_lift_show_hard'], 1, 3, sign=True)} | {_fmt(r['motion_lift_mask_hard'], 1, 3, sign=True)} | "
            f"{_fmt(r['moving_visible'], 1, 1)} / {_fmt(r['moving_hidden'], 1, 1)} | "
            f"{_fmt(r['motion_precision'], 1, 3)} | {_fmt(r['foreground_share'], 1, 3)} | "
            f"{_fmt(r['clips_per_s'], 1, 1)} | {_fmt(r['peak_rss_mb'], 1, 0)} | {_fmt(r['wall_s'], 1, 0)} |")
    lines += ["", "Δ columns: difference to `random` at the same mask ratio and seed (same clips, same MAE "
              "initialisation), averaged over seeds. Motion precision: share of masked tokens on moving "
              "foreground; random masks score the foreground share. Lift: 0 = random masks, 1 = the best K-of-N mask in "
              "that direction (show-hard: visible budget spent on moving tokens; mask-hard: moving tokens "
              "masked), averaged over the sampler's clips after the warm-up. Movers visible / hidden: moving tokens per clip "
              "left visible and masked (a random mask leaves m V / N visible).", ""]
    return "\n".join(lines)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def _mean_curve(curves: list[list[list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    length = min(len(c) for c in curves)
    arr = np.asarray([c[:length] for c in curves], dtype=float)  # (seeds, points, 2)
    return arr[0, :, 0], arr[:, :, 1].mean(0)


def plot_learning_curves(records: list[dict[str, Any]], path: str | Path) -> Path:
    """MAE training loss (smoothed) and held-out loss under the common mask vs clips, per ratio and method."""
    ratios = sorted({r["cell"]["mask_ratio"] for r in records})
    methods = sorted({r["cell"]["method"] for r in records})
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    warmup = records[0]["settings"]["warmup_clips"]  # dashed line: learned samplers take over
    fig = Figure(figsize=(4.5 * len(ratios), 7.0))
    axes = fig.subplots(2, len(ratios), squeeze=False)
    for col, ratio in enumerate(ratios):
        for method in methods:
            runs = [r for r in records if r["cell"]["method"] == method and r["cell"]["mask_ratio"] == ratio
                    and r["curves"]["train"]]  # scratch cells do not pre-train
            if not runs:
                continue
            x, y = _mean_curve([r["curves"]["train"] for r in runs])
            window = max(1, len(y) // 20)
            axes[0, col].plot(x[window - 1:], _smooth(y, window), color=colors[method], label=method)
            x, y = _mean_curve([r["curves"]["heldout"] for r in runs])
            axes[1, col].plot(x, y, marker="o", ms=3, color=colors[method], label=method)
        axes[0, col].set_title(f"mask ratio {ratio:g}: MAE training loss (own masks)")
        axes[1, col].set_title("held-out loss, common random mask")
        for ax in axes[:, col]:
            ax.set_xlabel("pre-training clips")
            ax.set_yscale("log")  # late differences between samplers are small next to the first drop
            if warmup:
                ax.axvline(warmup, color="gray", ls="--", lw=0.8)
            ax.grid(alpha=0.3, which="both")
        axes[0, col].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_accuracy(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Linear-probe and fine-tune top-1 per method and ratio: bars = seed mean, error bars = std, dots = seeds."""
    rows = [r for r in sorted(aggregate(records), key=lambda r: (r["mask_ratio"], r["method"]))
            if r["probe_top1"] is not None]
    fig = Figure(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.5))
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    bars = ((-0.2, "probe_top1", "linear probe", "C0"), (0.2, "finetune_top1", "fine-tune", "C1"))
    for offset, key, label, color in bars:
        means = [100 * r[key][0] if r[key] else 0.0 for r in rows]  # no bar where a part was not run
        stds = [100 * (r[key][1] or 0.0) if r[key] else 0.0 for r in rows]
        ax.bar(x + offset, means, width=0.4, yerr=stds, capsize=3, color=color, alpha=0.75, label=label)
        for i, r in enumerate(rows):
            seeds = [100 * rec["metrics"][key] for rec in records
                     if rec["cell"]["method"] == r["method"] and rec["cell"]["mask_ratio"] == r["mask_ratio"]
                     and rec["metrics"].get(key) is not None]
            ax.scatter(np.full(len(seeds), x[i] + offset), seeds, s=10, color="black", zorder=3)
    classes = {rec["metrics"].get("num_classes") for rec in records} - {None}
    if len(classes) == 1:  # without a chance line, bars at chance read like results
        ax.axhline(100.0 / classes.pop(), color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(x, [f"{r['method']} @{r['mask_ratio']:g}" for r in rows], fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("downstream accuracy (bars: mean over seeds, dots: seeds)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def write_report(out: str | Path) -> dict[str, Path]:
    """Write ``results.csv``, ``results.md``, ``learning_curves.png`` and ``accuracy.png`` into ``out``."""
    out = Path(out)
    records = load_records(out)
    if not records:
        return {}
    (out / "results.md").write_text(render_markdown(records))
    outputs = {
        "csv": write_csv(records, out / "results.csv"),
        "markdown": out / "results.md",
        "learning_curves": plot_learning_curves(records, out / "learning_curves.png"),
    }
    if any(r["metrics"].get("probe_top1") is not None for r in records):  # not with --no-downstream
        outputs["accuracy"] = plot_accuracy(records, out / "accuracy.png")
    return outputs
