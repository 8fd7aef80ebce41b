"""The tree shows the architecture: dependencies flow one way, folders stay small, every module says its job.

experiments -> agents.bench -> agents.job -> agents.registry -> agents.algorithms -> agents.policies
-> agents.kofn -> tats_env.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "tats_env")


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _loaded_modules(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def _imports_of(folder: str) -> set[str]:
    """Every module imported by the package ``folder`` and whatever those import (in a fresh interpreter)."""
    statements = "\n".join(f"import {_dotted(p)}" for p in _modules(folder) if p.name != "__init__.py")
    return _loaded_modules(statements)


def test_the_environment_library_never_imports_the_rl_side():
    loaded = _imports_of("tats_env")
    assert "tats_env.env.core" in loaded
    assert not {m for m in loaded if m == "agents" or m.startswith("agents.")}


@pytest.mark.parametrize("lower", ["agents/kofn", "agents/policies", "agents/algorithms"])
def test_policies_and_algorithms_never_import_the_job_or_the_benchmark(lower):
    loaded = _imports_of(lower)
    assert not {m for m in loaded if m.startswith(("agents.job", "agents.bench"))}


def test_the_training_path_never_imports_the_benchmark_layer():
    loaded = _imports_of("agents/job")
    assert "agents.job.trainer" in loaded and "agents.registry" in loaded
    assert not {m for m in loaded if m.startswith("agents.bench")}


def test_no_folder_holds_more_than_twelve_modules_and_every_module_says_its_job():
    for package in PACKAGES:
        for folder in {p.parent for p in _modules(package)}:
            modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
            assert len(modules) <= 12, f"{folder.relative_to(ROOT)} holds {len(modules)} modules"
        for path in _modules(package):
            docstring = ast.get_docstring(ast.parse(path.read_text()))
            assert docstring and docstring.strip(), f"{path.relative_to(ROOT)} has no module docstring"


def test_the_job_never_branches_on_sampler_classes_and_nothing_reads_the_env_batch():
    sampler_classes = r"\b(TokenPPO|TATSPPO|TATSA2C|TopKSAC|Reinforce|FixedMasker|StepwiseSampler|BaseAlgorithm|" \
                      r"OnPolicyAlgorithm|PPO|A2C|SAC)\b"
    for path in _modules("agents/job"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                source = ast.unparse(node)
                assert not re.search(sampler_classes, source), f"{path.name}: {source}"
    for folder in ("agents", "experiments"):
        for path in _modules(folder):
            assert "core.batch" not in path.read_text(), f"{path.relative_to(ROOT)} reads the env's private batch"
