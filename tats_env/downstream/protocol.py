"""The CPU evaluation protocol: rank encoders only when the data shows it can tell them apart.

For one or several encoders (each given as one export per pre-training seed) on one labelled
train/val split, :func:`run_protocol` measures

* the **frozen-feature probe** (:mod:`tats_env.downstream.probe`, ``"quadrants"`` pooling by
  default), the main metric, for every
  encoder and for randomly initialised encoders of the same architecture (one per seed);
* a **short fine-tune** of every encoder (:class:`~tats_env.downstream.supervised.ShortRecipe`),
  its classifier head pooling the tokens as the probe does (``probe.pooling``; VideoMAE's mean
  pooling discards where and when the motion happens, and short runs never learn it back);
* the **from-scratch ViT**: the same architecture and head trained supervised from random init
  with the same short recipe and budget;
* the **positive control**: a small 3D CNN trained from scratch on the same split and budget
  (:mod:`tats_env.downstream.control`);

and returns one JSON-ready dict where every top-1 carries its binomial noise
``sqrt(p * (1 - p) / n_val)`` and its spread over seeds (sample standard deviation).

:func:`ranking_check` refuses to rank when the positive control or the from-scratch ViT is not
clearly above chance (mean top-1 <= chance + ``z`` binomial standard deviations *at chance*,
``sqrt(c * (1 - c) / n_val)``): then the split is too hard, too small or mislabelled for this
budget and no encoder ordering measured on it means anything. :func:`rank_encoders` applies it and
orders the encoders by probe top-1.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from tats_env.config import MAEConfig
from tats_env.downstream.classify import VideoClassifier, random_encoder
from tats_env.downstream.clipset import ClipSet
from tats_env.downstream.control import train_control
from tats_env.downstream.probe import init_head_from_probe, linear_probe
from tats_env.downstream.protocol_config import ProbeConfig, ProtocolConfig, ShortRecipe  # re-exported
from tats_env.downstream.supervised import SupervisedResult, train_classifier
from tats_env.export import load_encoder
from tats_env.mae import FeatureEncoder

__all__ = [
    "RANDOM_INIT", "ProtocolConfig", "RankingRefused", "binomial_sd", "rank_encoders", "ranking_check",
    "run_protocol", "short_finetune", "summarize",
]

RANDOM_INIT = "random_init"
"""Name of the randomly initialised encoders in a report (the probe's floor)."""

EncoderSource = str | os.PathLike[str] | FeatureEncoder


class RankingRefused(RuntimeError):
    """The controls failed on this data, so encoders measured on it are not ranked; the message says why."""


def binomial_sd(p: float, n: int) -> float:
    """Standard deviation of a top-1 ``p`` measured on ``n`` independent validation clips."""
    if n < 1:
        raise ValueError(f"need n >= 1 validation clips, got {n}")
    p = min(max(p, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def summarize(values: Sequence[float], n_val: int) -> dict[str, Any]:
    """Mean top-1 of several seeds with its binomial noise and seed spread, plus a printable text."""
    if not values:
        raise ValueError("summarize needs at least one value")
    mean = sum(values) / len(values)
    spread = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0)
    binom = binomial_sd(mean, n_val)
    text = (f"{100 * mean:.1f}% (binomial sd {100 * binom:.1f}, seed sd {100 * spread:.1f}, "
            f"{len(values)} seed{'s' if len(values) > 1 else ''}, n={n_val})")
    return {"mean": mean, "binomial_sd": binom, "seed_sd": spread, "values": list(values), "n_val": n_val,
            "text": text}


def _threshold(chance: float, n_val: int, z: float) -> float:
    return chance + z * binomial_sd(chance, n_val)


def ranking_check(report: Mapping[str, Any]) -> list[str]:
    """Reasons not to rank the encoders of a :func:`run_protocol` report (empty list: rankable)."""
    data = report["data"]
    chance, n_val, z = data["chance"], data["num_val"], report["config"]["z"]
    bar = _threshold(chance, n_val, z)
    reasons = []
    checks = (
        ("control", "positive control (3D CNN from scratch)",
         "the classes are not learnable from this split with this budget"),
        ("scratch_vit", "from-scratch ViT",
         "this architecture does not learn the classes from scratch with this recipe and budget, so nothing "
         "shows what its features can carry (raise --protocol.scratch.epochs)"),
    )
    for key, what, meaning in checks:
        entry = report.get(key)
        if entry is None:
            reasons.append(f"the {what} was not run, so nothing shows this data can separate encoders")
        elif entry["mean"] <= bar:
            reasons.append(
                f"the {what} reached {100 * entry['mean']:.1f}%, not above chance {100 * chance:.1f}% + {z:g} "
                f"binomial sd = {100 * bar:.1f}% (n={n_val}): {meaning}")
    return reasons


def rank_encoders(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Encoders ordered by probe top-1, best first, each with ``separated``: whether it beats the next one
    by more than twice the combined noise of both means.

    Raises:
        RankingRefused: :func:`ranking_check` found a reason (all of them are in the message).
    """
    reasons = ranking_check(report)
    if reasons:
        raise RankingRefused("refusing to rank encoders: " + "; ".join(reasons))

    def noise(entry: Mapping[str, Any]) -> float:
        k = len(entry["values"])
        return math.sqrt((entry["binomial_sd"] ** 2 + entry["seed_sd"] ** 2) / k)

    rows = sorted(((name, enc["probe"]) for name, enc in report["encoders"].items()),
                  key=lambda item: item[1]["mean"], reverse=True)
    ranking = []
    for i, (name, probe) in enumerate(rows):
        nxt = rows[i + 1][1] if i + 1 < len(rows) else None
        separated = None if nxt is None else bool(
            probe["mean"] - nxt["mean"] > 2 * math.sqrt(noise(probe) ** 2 + noise(nxt) ** 2))
        ranking.append({"name": name, "probe_top1": probe["mean"], "separated_from_next": separated})
    return ranking


def _as_encoder(source: EncoderSource) -> FeatureEncoder:
    if isinstance(source, FeatureEncoder):
        return source
    return load_encoder(source)


def _describe(source: EncoderSource) -> str:
    return "<in-memory encoder>" if isinstance(source, FeatureEncoder) else str(source)


def run_protocol(
    encoders: Mapping[str, Sequence[EncoderSource]],
    train: ClipSet,
    val: ClipSet,
    cfg: ProtocolConfig | None = None,
    *,
    arch: MAEConfig | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the whole protocol; returns a JSON-ready report (see the module docstring).

    Args:
        encoders: name -> exports (one per pre-training seed; native/videomae directories,
            training checkpoints, or :class:`~tats_env.mae.FeatureEncoder` objects). May be empty:
            then only the random-init encoders, the from-scratch ViT and the control run.
        train, val: the clips; labels index the same classes.
        cfg: what to run.
        arch: architecture of the random-init encoders and the from-scratch ViT; default: the
            first encoder's. Required when ``encoders`` is empty.
        log: called with one line per finished measurement (e.g. ``print``).
        on_update: called with the report so far (``"complete": False``) after every finished
            measurement and with the final report (``"complete": True``): write it out so that a
            long run stopped early keeps what it measured. Order: probes (random init first), the
            positive control, the from-scratch ViT, then the fine-tunes.
    """
    cfg = cfg or ProtocolConfig()
    say = log or (lambda _line: None)
    start = time.perf_counter()
    loaded = {name: [_as_encoder(s) for s in sources] for name, sources in encoders.items()}
    for name, models in loaded.items():
        if not models:
            raise ValueError(f"encoder {name!r} has no export")
        if name == RANDOM_INIT:
            raise ValueError(f"{RANDOM_INIT!r} is reserved for the random-init baseline; rename that encoder")
    if arch is None:
        if not loaded:
            raise ValueError("pass arch (an MAEConfig) when no encoder is given")
        arch = next(iter(loaded.values()))[0].cfg
    spec = arch.video
    shape = (spec.in_chans, spec.num_frames, spec.image_size, spec.image_size)
    for split, clips in (("train", train), ("val", val)):
        if tuple(clips.videos.shape[1:]) != shape:
            raise ValueError(f"{split} clips have shape {tuple(clips.videos.shape[1:])}, the encoder takes {shape}")
    for name, models in loaded.items():
        for model in models:
            if model.cfg.video.grid != spec.grid:
                raise ValueError(f"encoder {name!r} has token grid {model.cfg.video.grid}, expected {spec.grid}")
    num_classes = max(train.num_classes, val.num_classes)
    if num_classes < 2:
        raise ValueError(f"need at least two classes, got labels up to {num_classes - 1}")
    chance = float(torch.bincount(val.labels, minlength=num_classes).max()) / len(val)
    n_val = len(val)

    def seeded_random(seed: int) -> FeatureEncoder:
        torch.manual_seed(seed)
        return random_encoder(arch)

    report: dict[str, Any] = {
        "data": {"num_train": len(train), "num_val": n_val, "num_train_videos": train.num_videos,
                 "num_val_videos": val.num_videos, "num_classes": num_classes, "chance": chance,
                 "chance_binomial_sd": binomial_sd(chance, n_val),
                 "control_bar": _threshold(chance, n_val, cfg.z)},
        "config": dataclasses.asdict(cfg),
        "arch": arch.to_dict(),
        "encoders": {},
    }
    candidates: dict[str, list[FeatureEncoder]] = {RANDOM_INIT: [seeded_random(s) for s in cfg.seeds], **loaded}
    sources = {RANDOM_INIT: [f"random init, seed {s}" for s in cfg.seeds],
               **{name: [_describe(s) for s in encoders[name]] for name in loaded}}
    report["complete"] = False

    def finished(line: str) -> None:
        say(line)
        report["wall_s"] = time.perf_counter() - start
        if on_update is not None:
            on_update(report)

    # Cheapest and most important first (the probes, then the controls that decide whether to rank,
    # then the fine-tunes), each written out as soon as it is measured.
    for name, models in candidates.items():
        probes = [linear_probe(model, train, val, cfg.probe, num_classes) for model in models]
        report["encoders"][name] = {"sources": sources[name],
                                    "probe": summarize([p.top1 for p in probes], n_val),
                                    "probe_train_top1": [p.train_top1 for p in probes],
                                    "probe_per_class": [p.per_class_top1 for p in probes],
                                    "probe_s": sum(p.wall_s for p in probes)}
        finished(f"probe     {name:>16s}: {report['encoders'][name]['probe']['text']}")
    if cfg.run_control:
        runs = [train_control(train, val, cfg.control, seed=seed, num_classes=num_classes, progress=progress)
                for seed in cfg.seeds]
        report["control"] = _supervised_entry(runs, n_val)
        finished(f"positive control (3D CNN): {report['control']['text']}")
    if cfg.run_scratch:
        runs = [short_finetune(seeded_random(seed), train, val, cfg.scratch, cfg.probe, seed=seed,
                               num_classes=num_classes, head_from_probe=cfg.head_from_probe, progress=progress)
                for seed in cfg.seeds]
        report["scratch_vit"] = _supervised_entry(runs, n_val)
        finished(f"from-scratch ViT: {report['scratch_vit']['text']}")
    if cfg.run_finetune:
        for name, models in loaded.items():
            runs = []
            for i, model in enumerate(models):
                seed = cfg.seeds[i % len(cfg.seeds)]
                runs.append(short_finetune(_copy_encoder(model), train, val, cfg.finetune, cfg.probe, seed=seed,
                                           num_classes=num_classes, head_from_probe=cfg.head_from_probe,
                                           progress=progress))
            entry = report["encoders"][name]
            entry["finetune"] = summarize([r.top1 for r in runs], n_val)
            entry["finetune_train_top1"] = [r.train_top1 for r in runs]
            entry["finetune_s"] = sum(r.wall_s for r in runs)
            finished(f"fine-tune {name:>16s}: {entry['finetune']['text']}")

    reasons = ranking_check(report)
    report["rankable"] = not reasons
    report["refusals"] = reasons
    report["ranking"] = rank_encoders(report) if not reasons else None
    report["wall_s"] = time.perf_counter() - start
    report["complete"] = True
    if on_update is not None:
        on_update(report)
    return report


def _supervised_entry(runs: Sequence[SupervisedResult], n_val: int) -> dict[str, Any]:
    """Report entry of one supervised model trained once per seed: the summary plus train top-1, time, per class."""
    return {**summarize([r.top1 for r in runs], n_val), "train_top1": [r.train_top1 for r in runs],
            "wall_s": sum(r.wall_s for r in runs), "per_class": [r.per_class_top1 for r in runs]}


def short_finetune(encoder: FeatureEncoder, train: ClipSet, val: ClipSet, recipe: ShortRecipe, probe: ProbeConfig,
                   *, seed: int, num_classes: int, head_from_probe: bool = True,
                   progress: bool = False) -> SupervisedResult:
    """The protocol's short fine-tune of ``encoder`` (trained in place): the head pools like the probe
    (``probe.pooling``) and standardises every pooled feature (BatchNorm, no affine); with
    ``head_from_probe`` it starts as the probe fitted on those features (LP-FT, see
    :func:`~tats_env.downstream.probe.init_head_from_probe`), else from VideoMAE's near-zero head.

    The from-scratch ViT is this function applied to a random-init encoder.
    """
    torch.manual_seed(seed)
    model = VideoClassifier(encoder, num_classes, pooling=probe.pooling, head_norm="batch")
    if head_from_probe:
        init_head_from_probe(model, train, probe.weight_decay, probe.max_iter, probe.batch_size)
    return train_classifier(model, train, val, recipe, seed=seed, num_classes=num_classes, progress=progress)


def _copy_encoder(model: FeatureEncoder) -> FeatureEncoder:
    """A trainable copy of an in-memory encoder (fine-tuning must not change the caller's model)."""
    copy = FeatureEncoder(dataclasses.replace(model.cfg, drop_path_rate=0.0))  # the short recipe has no drop path
    copy.load_state_dict(model.state_dict())
    return copy
