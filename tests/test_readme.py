"""Every Python block of the README runs as printed, each in a fresh interpreter, well within a minute; every
command line it shows for the main job and the benchmark parses.

The one change: ``data="synthetic"`` points at the tests' small synthetic set (the default one takes
about a minute to generate on first use). The block of "Adding a sampler" runs in
``tests/test_custom_sampler.py``, which trains what it defines. ``exports/native`` (read by the
export section's block) is written first by a fresh export.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from readme_snippets import snippet_defining, snippets

ROOT = Path(__file__).resolve().parents[1]
CUSTOM_SAMPLER = snippet_defining("class PositionScores(StepwiseSampler)")
RUN_HERE = [s for s in snippets("python") if s != CUSTOM_SAMPLER]
LIMIT_S = 300
"""A hung snippet fails the test instead of the CI job; what a reader waits for is printed, not asserted."""


def test_the_readme_has_python_blocks_and_each_is_covered():
    blocks = snippets("python")
    assert len(blocks) >= 4 and CUSTOM_SAMPLER in blocks
    assert all(block.code.strip() for block in blocks)
    assert {script for script, _, _ in COMMANDS} == set(SCRIPT_CONFIGS) and len(COMMANDS) >= 8


def _write_native_export(folder: Path) -> None:
    from tats_env import export_encoder, get_preset
    from tats_env.mae.model import VideoMAE

    export_encoder(VideoMAE(get_preset("tiny")), folder, format="native")


@pytest.mark.parametrize("snippet", RUN_HERE, ids=[s.where for s in RUN_HERE])
def test_readme_python_block_runs(snippet, synthetic_root, tmp_path):
    code = snippet.code.replace('data="synthetic"', f'data="{synthetic_root}"')
    if "exports/native" in code:
        _write_native_export(tmp_path / "exports" / "native")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=LIMIT_S)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, f"{snippet.where} failed after {seconds:.0f} s:\n{done.stderr[-3000:]}"
    print(f"{snippet.where}: {seconds:.1f} s")


def _readme_commands(script: str) -> list[tuple[str, list[str]]]:
    """``(where, argv)`` of every README bash line that runs ``python experiments/<script>`` (continuations joined)."""
    import shlex

    found = []
    for block in snippets("bash"):
        text = block.code.replace("\\\n", " ")
        for number, line in enumerate(text.splitlines()):
            words = shlex.split(line, comments=True)
            if f"experiments/{script}" in words:
                found.append((f"{block.where}+{number}", words[words.index(f"experiments/{script}") + 1:]))
    return found


SCRIPT_CONFIGS = {"train_ppo.py": "agents.job.config:TrainConfig", "benchmark_algos.py": "agents.bench.matrix:BenchmarkConfig"}
COMMANDS = [(script, where, argv) for script in SCRIPT_CONFIGS for where, argv in _readme_commands(script)]


@pytest.mark.parametrize(("script", "where", "argv"), COMMANDS, ids=[f"{s}@{w}" for s, w, _ in COMMANDS])
def test_readme_command_lines_parse(script, where, argv, tmp_path, monkeypatch):
    """Every option the README shows for the main job and the benchmark exists and takes the value shown."""
    import importlib

    from tats_env.commandline import parse

    module, name = SCRIPT_CONFIGS[script].split(":")
    cls = getattr(importlib.import_module(module), name)
    argv = [a for a in argv if a not in ("--help", "-h")]
    if "--config" in argv:  # the README's YAML example file: an empty mapping stands in for it
        path = tmp_path / argv[argv.index("--config") + 1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
        monkeypatch.chdir(tmp_path)
    parse(cls, argv)
