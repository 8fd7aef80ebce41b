"""Small, honest timing helpers shared by the ``experiments/bench_*.py`` scripts.

Figures are measured side by side in one run: every candidate gets the same warm-up and the
same number of timed steps. Besides wall-clock throughput, :class:`StepStats` holds the clips per
second of this process's CPU time (``cpu_clips_per_s``): on a shared CPU machine other jobs stretch
the wall clock of whichever candidate they overlap, while a one-thread candidate's CPU time is far less
affected (not immune: caches and memory bandwidth are shared), so ratios of CPU throughput are the
ones to compare there; on a quiet machine or a GPU, wall time is the figure. On CUDA, peak memory is ``torch.cuda.max_memory_allocated`` after
a reset; on the CPU (no allocator statistics) each candidate runs in a fresh spawned process
and the peak is that process's resident-set high-water mark minus its size before the model
was built.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Any, Callable, TypeVar

import torch

from tats_env.utils import peak_rss_mb

T = TypeVar("T")


@dataclass
class StepStats:
    """Throughput and memory of one benchmarked step function."""

    name: str
    clips_per_s: float
    step_ms: float
    peak_mem_mb: float
    device: str
    batch_size: int
    cpu_clips_per_s: float | None = None
    """Clips per second of this process's CPU time (all its threads): the contention-proof CPU figure."""

    def as_row(self) -> dict[str, Any]:
        """Plain dictionary for CSV/Markdown output."""
        return asdict(self)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    name: str,
    build: Callable[[], Callable[[], Any]],
    device: torch.device,
    batch_size: int,
    steps: int = 10,
    warmup: int = 3,
) -> StepStats:
    """Build a step function with ``build()``, warm it up, then time ``steps`` calls.

    ``build`` runs inside the measurement so model and optimizer memory count towards the peak.
    """
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = peak_rss_mb()
    step = build()
    for _ in range(warmup):
        step()
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    synchronize(device)
    elapsed = (time.perf_counter() - start) / steps
    cpu = (time.process_time() - cpu_start) / steps
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 1024**2
    else:
        peak = peak_rss_mb() - base
    return StepStats(name, batch_size / elapsed, elapsed * 1000, peak, str(device), batch_size,
                     batch_size / cpu if cpu > 0 else None)


def _child(queue: "mp.Queue[Any]", fn: Callable[..., Any], args: tuple[Any, ...], log_path: str | None = None,
           own_group: bool = False) -> None:
    if own_group:
        os.setsid()  # its own process group, so that a timeout also ends its workers
    if log_path is not None:
        log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            os.dup2(log.fileno(), stream.fileno())
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        queue.put(("ok", fn(*args)))
    except BaseException as exc:  # noqa: BLE001 - report any failure to the parent
        traceback.print_exc()
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def _kill_group(proc: Any) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()  # not yet its own group leader
    proc.join(10)


def run_isolated(fn: Callable[..., T], *args: Any, timeout_s: float | None = None, log_path: str | None = None) -> T:
    """Run ``fn(*args)`` in a fresh spawned process and return its result.

    Used on the CPU so that each candidate's resident-memory peak is its own. ``fn`` must be
    importable (a module-level function). A child that dies without answering (killed for
    memory, crashed) raises ``RuntimeError`` with its exit code instead of hanging. With
    ``timeout_s`` the child runs in its own process group, which is killed (workers included)
    when it has not answered in time: ``TimeoutError``. ``log_path``: the child's stdout and
    stderr (and the traceback of a failure) are appended to that file.
    """
    ctx = mp.get_context("spawn")
    queue: "mp.Queue[Any]" = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args, log_path, timeout_s is not None))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    proc.start()
    while True:
        try:
            status, payload = queue.get(timeout=1.0)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"benchmark {fn.__name__} died without a result (exit code {proc.exitcode})") from None
            if deadline is not None and time.monotonic() > deadline:
                _kill_group(proc)
                raise TimeoutError(f"{fn.__name__} did not finish within {timeout_s:g} s (killed)") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"benchmark {fn.__name__} failed in its subprocess: {payload}")
    return payload


def throughput_ratio(ours: StepStats, theirs: StepStats) -> str:
    """``"clips/s 1.23x"`` of ``ours`` over ``theirs``, plus the CPU-time ratio on the CPU (the one that other jobs
    on the machine do not skew)."""
    text = f"clips/s {ours.clips_per_s / theirs.clips_per_s:.2f}x"
    if ours.device == "cpu" and ours.cpu_clips_per_s and theirs.cpu_clips_per_s:
        text += f" (per CPU second {ours.cpu_clips_per_s / theirs.cpu_clips_per_s:.2f}x)"
    return text


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Render ``rows`` as a GitHub Markdown table with the given column order."""
    def fmt(value: Any) -> str:
        if value is None:
            return ""
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
