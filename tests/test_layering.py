"""Dependencies flow one way: experiments -> agents.bench -> agents -> tats_env."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _loaded_modules(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_environment_library_never_imports_the_rl_side():
    every_module = "\n".join(
        f"import {'.'.join(path.relative_to(ROOT).with_suffix('').parts)}"
        for path in sorted((ROOT / "tats_env").rglob("*.py")) if path.name != "__init__.py"
    )
    loaded = _loaded_modules(every_module)
    assert "tats_env.env.core" in loaded
    assert not {m for m in loaded if m == "agents" or m.startswith("agents.")}


def test_the_training_path_never_imports_the_benchmark_layer():
    loaded = _loaded_modules("import agents.training, agents.registry, agents.callbacks, agents.checkpoint")
    assert "agents.training" in loaded and "agents.registry" in loaded
    assert not {m for m in loaded if m.startswith("agents.bench")}
