"""The GPU suite: every figure this project wants from a GPU, in one call, into one JSON + Markdown report.

    bash experiments/gpu_suite.sh --out "$OUT"                 # on a GPU machine (installs the wheels it lacks)
    python experiments/gpu_suite.py --out runs/gpu_suite        # where everything is installed
    python experiments/gpu_suite.py --dry-run --out /tmp/suite  # tiny CPU version of every part (tested in CI)

Parts, each in its own spawned process with its own time budget (a part that fails or runs out
of time is recorded with the tail of its log, and the next part runs; ``--dry-run`` runs the bench
candidates inside their part's process to save start-ups):

* ``data``: generate the embedded synthetic dataset (only with ``--data synthetic``);
* ``mae``: ``experiments/bench_mae.py`` at ``base`` 16x224x224, batch 64, tube 0.9, beside
  ``transformers.VideoMAEForPreTraining`` (clips/s, peak memory, ratio);
* ``tats``: ``experiments/bench_tats.py`` at ``base``: PPO+TATS and token-level PPO+TATS co-training vs
  the plain MAE step;
* ``main``: the main job (``train_ppo.py``'s :class:`agents.job.trainer.CoTrainer`) at ``small``,
  stopped after ``--main-train-s`` seconds of sampler training, then checkpointed and exported;
* ``decode``: decord decoding of the 3 real clips (``tests/data/*.mp4``), one thread per reader,
  and the training data path (decode + crop + resize at ``base``) with one DataLoader worker per CPU.

Writes ``gpu_suite.json`` and ``gpu_suite.md`` (rewritten after every part) and ``<part>.log`` into
``--out``; the main job's run folder goes to ``--work``.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from stable_baselines3.common.callbacks import BaseCallback

EXPERIMENTS = Path(__file__).resolve().parent
if str(EXPERIMENTS) not in sys.path:  # bench_mae / bench_tats are sibling scripts
    sys.path.insert(0, str(EXPERIMENTS))

from tats_env.device import resolve_device
from tats_env.timing import markdown_table, run_isolated  # noqa: E402
from agents.job.config import TrainConfig  # noqa: E402
from agents.job.trainer import CoTrainer  # noqa: E402
from tats_env.commandline import config_to_dict, parse  # noqa: E402

Part = Literal["data", "mae", "tats", "main", "decode"]
REAL_CLIPS = EXPERIMENTS.parent / "tests" / "data"


@dataclass
class SuiteConfig:
    """Run the GPU suite (MAE step vs transformers, PPO+TATS cost, a timed main job, decoding) into one report."""

    out: Path = Path("runs/gpu_suite")
    """Report folder: gpu_suite.json, gpu_suite.md and one log per part."""
    work: Path = Path("/tmp/tats_gpu_suite")
    """Scratch folder: the main job's run folder and the decode part's list file."""
    dry_run: bool = False
    """Tiny CPU version of every part (tiny preset, a step or two): checks the suite, measures nothing."""
    parts: tuple[Part, ...] = ("data", "mae", "tats", "main", "decode")  # type: ignore[assignment]
    """Parts to run, in this order."""
    data: str = "synthetic"
    """Training data of the tats and main parts (as train_ppo.py --data)."""
    num_workers: int = 8
    """DataLoader workers of the tats and main parts."""
    data_budget_s: float = 45.0
    """Time budget of the data part."""
    mae_budget_s: float = 75.0
    """Time budget of the mae part."""
    tats_budget_s: float = 120.0
    """Time budget of the tats part."""
    main_budget_s: float = 180.0
    """Time budget of the main part (start-up, warm-up, training, checkpoint, export)."""
    main_train_s: float = 120.0
    """Seconds of sampler training in the main part before it stops, checkpoints and exports."""
    decode_budget_s: float = 40.0
    """Time budget of the decode part."""
    total_budget_s: float = 480.0
    """Time budget of the whole suite: a part gets at most what is left of it (none under 5 s left)."""


class StopAfter(BaseCallback):
    """Stops training (SB3 semantics: ``on_step`` returns False) ``seconds`` after it started."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self._deadline = 0.0

    def _on_training_start(self) -> None:
        self._deadline = time.monotonic() + self.seconds

    def _on_step(self) -> bool:
        return time.monotonic() < self._deadline


class TimedCoTrainer(CoTrainer):
    """The main job's trainer with a wall-clock limit on the sampler phase."""

    def __init__(self, cfg: TrainConfig, train_s: float) -> None:
        super().__init__(cfg)
        self.train_s = train_s

    def sampler_callbacks(self) -> list[BaseCallback]:
        return [*super().sampler_callbacks(), StopAfter(self.train_s)]


# --- the parts (module level: each runs in a spawned process) ----------------------------------------------

def part_data() -> dict[str, Any]:
    """Generate (or find) the embedded synthetic dataset."""
    from tats_env.data.synthetic import ensure_synthetic_dataset

    start = time.perf_counter()
    root = ensure_synthetic_dataset(progress=False)
    return {"root": str(root), "seconds": round(time.perf_counter() - start, 1)}


def part_mae(argv: list[str]) -> dict[str, Any]:
    """``bench_mae.py`` with ``argv``: every candidate's row and the ratios ours/transformers (with and without
    dual masking)."""
    import bench_mae

    results = {r.name: r for r in bench_mae.main(argv)}
    out: dict[str, Any] = {"argv": argv, "candidates": [r.as_row() for r in results.values()]}
    theirs = results.get(bench_mae.HF)
    for name, key in ((bench_mae.OURS, ""), (bench_mae.DUAL, "dual_")):
        if theirs is not None and name in results:
            out[f"{key}clips_per_s_ratio"] = results[name].clips_per_s / theirs.clips_per_s
            out[f"{key}peak_memory_ratio"] = results[name].peak_mem_mb / max(theirs.peak_mem_mb, 1e-9)
    return out


def part_tats(argv: list[str]) -> dict[str, Any]:
    """``bench_tats.py`` with ``argv``: the candidates' rows, PPO+TATS / plain and token-level / scalar PPO ratios."""
    import bench_tats

    return {"argv": argv, **bench_tats.main(argv)}


def part_main(argv: list[str], train_s: float) -> dict[str, Any]:
    """The main job with ``argv`` (train_ppo.py options), its sampler phase stopped after ``train_s`` seconds."""
    cfg = parse(TrainConfig, argv)
    trainer = TimedCoTrainer(cfg, train_s)
    try:
        summary = trainer.run()
    finally:
        trainer.close()
    rows = list(csv.DictReader((cfg.out / "tb" / "progress.csv").open()))
    losses = [float(r["env/recon_loss"]) for r in rows if r.get("env/recon_loss")]
    device = trainer.device
    return {
        "argv": argv, "train_s_limit": train_s, "summary": summary, "log_rows": len(rows),
        "clips_per_s": summary["clips"] / max(summary["wall_time_s"], 1e-9),
        "recon_loss_first": losses[0] if losses else None, "recon_loss_last": losses[-1] if losses else None,
        "peak_gpu_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def part_decode(work: str, preset: str, reps: int, clips: int, batch: int, workers: int) -> dict[str, Any]:
    """decord on the real clips: raw decode per file (1 thread), then the training data path with ``workers``."""
    import decord
    from torch.utils.data import RandomSampler

    from tats_env.config import get_preset
    from tats_env.data import build_dataset, make_dataloader

    files = sorted(REAL_CLIPS.glob("*.mp4"))
    rows = []
    for path in files:
        start, frames = time.perf_counter(), 0
        for _ in range(reps):
            reader = decord.VideoReader(str(path), num_threads=1, ctx=decord.cpu(0))
            shape = reader.get_batch(list(range(len(reader)))).shape
            frames += shape[0]
        rows.append({"file": path.name, "frames": int(shape[0]), "size": f"{shape[2]}x{shape[1]}",
                     "decode_fps_1_thread": frames / (time.perf_counter() - start)})
    list_file = Path(work) / "real_clips.txt"
    list_file.parent.mkdir(parents=True, exist_ok=True)
    list_file.write_text("".join(f"{p} {i}\n" for i, p in enumerate(files)))
    spec = get_preset(preset).video
    dataset = build_dataset(list_file, spec, split="train")
    sampler = RandomSampler(dataset, replacement=True, num_samples=clips)
    loader = iter(make_dataloader(dataset, batch, num_workers=workers, sampler=sampler))
    next(loader)  # workers started, first batch in: excluded from the timing
    start, done = time.perf_counter(), 0
    for item in loader:
        done += int(item["video"].shape[0])
    elapsed = time.perf_counter() - start
    return {"files": rows, "cpus": os.cpu_count(), "pipeline": {
        "preset": preset, "clip": f"{spec.num_frames}x{spec.image_size}x{spec.image_size}", "workers": workers,
        "batch": batch, "clips": done, "clips_per_s": done / elapsed if elapsed > 0 else None}}


# --- plan, report ------------------------------------------------------------------------------------------

def plan(cfg: SuiteConfig, device: str) -> list[tuple[Part, str, Callable[..., Any], tuple[Any, ...], float]]:
    """``(part, what it measures, function, arguments, budget)`` for every part, full size or dry-run size."""
    dry = cfg.dry_run
    workers = "0" if dry else str(cfg.num_workers)
    mae = (["--preset", "tiny", "--batch-size", "2", "--steps", "1", "--warmup", "1", "--no-isolate"] if dry
           else ["--preset", "base", "--batch-size", "64", "--steps", "10", "--warmup", "3"])
    tiny_sampler = ["--tats.dim", "16", "--ppo.n-steps", "1", "--ppo.batch-size", "2"]
    tats = (["--preset", "tiny", "--num-envs", "2", "--rollouts", "1", "--warmup-rollouts", "0", "--no-isolate",
             *tiny_sampler] if dry
            else ["--preset", "base", "--num-envs", "32", "--rollouts", "5", "--warmup-rollouts", "1"])
    main = (["--preset", "tiny", "--num-envs", "2", "--warmup-steps", "2", "--image-every", "2",
             "--export-formats", "native", *tiny_sampler] if dry
            else ["--preset", "small", "--num-envs", "32", "--warmup-steps", "1024", "--image-every", "4096"])
    main += ["--total-steps", "100000000", "--checkpoint-every", "1000000000", "--no-progress-bar",
             "--out", str(cfg.work / "main")]
    shared = ["--device", device, "--data", cfg.data, "--num-workers", workers]
    decode = (str(cfg.work), "tiny", 1, 4, 2, 1) if dry else (str(cfg.work), "base", 20, 512, 16, os.cpu_count() or 1)
    return [
        ("data", "the synthetic dataset, generated on first use", part_data, (), cfg.data_budget_s),
        ("mae", "our VideoMAE step vs transformers.VideoMAEForPreTraining (tube 0.9)", part_mae,
         ([*mae, "--mask-ratio", "0.9", "--device", device],), cfg.mae_budget_s),
        ("tats", "PPO+TATS and token-level PPO+TATS co-training vs the plain MAE step (tube masks)", part_tats,
         ([*tats, *shared],),
         cfg.tats_budget_s),
        ("main", f"the main job, sampler phase stopped after {cfg.main_train_s if not dry else 2:g} s", part_main,
         ([*main, *shared], 2.0 if dry else cfg.main_train_s), cfg.main_budget_s),
        ("decode", "decord on the 3 real clips, then the training data path", part_decode, decode,
         cfg.decode_budget_s),
    ]


def environment(device: str) -> dict[str, Any]:
    """Machine and library versions for the report."""
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
                            "cpus": os.cpu_count()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    for name in ("transformers", "decord", "stable_baselines3"):
        try:
            info[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing library is a fact for the report
            info[name] = "missing"
    return info


def _part_markdown(entry: dict[str, Any]) -> list[str]:
    lines = [f"## {entry['part']}: {entry['what']}", "",
             f"**{entry['status']}** in {entry['seconds']:.0f} s (budget {entry['budget_s']:.0f} s)", ""]
    result = entry.get("result") or {}
    columns = ["name", "clips_per_s", "step_ms", "peak_mem_mb", "device", "batch_size"]
    if "candidates" in result:
        lines += [markdown_table(result["candidates"], columns), ""]
    for key in ("clips_per_s_ratio", "peak_memory_ratio", "dual_clips_per_s_ratio", "dual_peak_memory_ratio",
                "speed_ratio", "memory_ratio", "token_time_ratio",
                "token_memory_ratio", "token_defaults_time_ratio"):
        if key in result:
            lines.append(f"- {key}: {result[key]:.2f}x")
    if "summary" in result:
        s = result["summary"]
        memory = result["peak_gpu_mem_mb"]
        lines += [f"- clips {s['clips']}, MAE updates {s['mae_updates']}, {s['wall_time_s']} s of training: "
                  f"{result['clips_per_s']:.1f} clips/s; peak GPU memory "
                  f"{'n/a' if memory is None else f'{memory:.0f} MB'}",
                  f"- MAE loss (env/recon_loss) {result['recon_loss_first']} -> {result['recon_loss_last']} "
                  f"over {result['log_rows']} log rows; exports {sorted(s['exports'])}"]
    if "files" in result:
        lines += [markdown_table(result["files"], ["file", "frames", "size", "decode_fps_1_thread"]), "",
                  f"- training data path: {json.dumps(result['pipeline'])} on {result['cpus']} CPUs"]
    if "root" in result:
        lines.append(f"- {result['root']} in {result['seconds']} s")
    if entry["status"] != "ok":
        lines += [f"- error: `{entry.get('error')}`", "", "```", *entry.get("log_tail", []), "```"]
    return [*lines, ""]


def write_report(report: dict[str, Any], out: Path) -> str:
    """Write ``gpu_suite.json`` and ``gpu_suite.md``; returns the Markdown."""
    env = report["environment"]
    lines = ["# GPU suite report" + (" (dry run: tiny CPU settings, no figures)" if report["dry_run"] else ""), "",
             markdown_table([env], list(env)), ""]
    for entry in report["parts"]:
        lines += _part_markdown(entry)
    text = "\n".join(lines)
    (out / "gpu_suite.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu_suite.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the selected parts one after another, each isolated and time-boxed; returns the report."""
    cfg = parse(SuiteConfig, argv)
    cfg.out.mkdir(parents=True, exist_ok=True)
    cfg.work.mkdir(parents=True, exist_ok=True)
    device = "cpu" if cfg.dry_run else resolve_device().type
    report: dict[str, Any] = {"dry_run": cfg.dry_run, "config": config_to_dict(cfg),
                              "environment": environment(device), "parts": []}
    started = time.monotonic()
    for name, what, fn, args, budget in plan(cfg, device):
        if name not in cfg.parts or (name == "data" and cfg.data != "synthetic"):
            continue
        log = cfg.out / f"{name}.log"
        log.unlink(missing_ok=True)
        left = cfg.total_budget_s - (time.monotonic() - started)
        budget = min(budget, left)
        entry: dict[str, Any] = {"part": name, "what": what, "budget_s": budget}
        start = time.monotonic()
        try:
            if left < 5:
                raise TimeoutError(f"skipped: {left:.0f} s left of --total-budget-s {cfg.total_budget_s:g}")
            entry.update(status="ok", result=run_isolated(fn, *args, timeout_s=budget, log_path=str(log)))
        except TimeoutError as exc:
            entry.update(status="timeout", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a failing part is recorded; the next one runs
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        entry["seconds"] = time.monotonic() - start
        if entry["status"] != "ok" and log.is_file():
            entry["log_tail"] = log.read_text(errors="replace").splitlines()[-40:]
        report["parts"].append(entry)
        report["total_s"] = time.monotonic() - started
        text = write_report(report, cfg.out)
        print(f"[gpu_suite] {name}: {entry['status']} in {entry['seconds']:.0f} s", flush=True)
    print(text if report["parts"] else "no part selected")
    return report


if __name__ == "__main__":
    main()
