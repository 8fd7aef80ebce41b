"""The installed commands (issue 21 item 16): every console script exists in the environment's bin folder and
``--help`` exits 0 without importing torch, timm or stable-baselines3; bad input to ``tats-eval`` is one error line,
exit 2, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMMANDS = ("tats-train", "tats-bench", "tats-export", "tats-finetune", "tats-eval")


@pytest.mark.parametrize("command", COMMANDS)
def test_console_script_is_installed_and_help_exits_0(command, tmp_path):
    path = BIN / command
    assert path.is_file(), f"{path} missing: pip install -e . installs it"
    done = subprocess.run([str(path), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--config FILE.yaml" in done.stdout and "usage: " + command in done.stdout


HEAVY = ("torch", "timm", "torchvision", "stable_baselines3")


@pytest.mark.parametrize("module", ["agents.cli.train", "agents.cli.bench", "tats_env.cli.evaluate"])
def test_help_imports_no_torch_timm_or_sb3(module, tmp_path):
    """Building the command line (every config dataclass, the registry's names) and printing ``--help`` leaves the
    heavy libraries unimported: they come after the parse."""
    code = (f"import sys, contextlib, io\nimport agents.cli.train, agents.cli.bench, tats_env.cli.evaluate, {module} as cli\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n        cli.main(['--help'], prog='x')\n    except SystemExit as stop:\n        code = stop.code\n"
            "assert code == 0 and '--config FILE.yaml' in out.getvalue(), (code, out.getvalue()[-500:])\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [], f"{module} --help imported {done.stdout.strip()}"


def test_config_modules_import_no_torch(tmp_path):
    """The config modules themselves (what other tools build command lines from) import none of the heavy libraries."""
    modules = ("agents.job.config", "agents.registry", "agents.bench.config", "agents.algorithms.configs",
               "agents.policies.configs", "agents.kofn.directions", "tats_env.env.config", "tats_env.mae.masker_names",
               "tats_env.downstream.protocol_config", "tats_env.downstream.finetune_config")
    code = f"import sys\nimport {', '.join(modules)}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [], f"imported {done.stdout.strip()}"


def test_masker_names_match_the_masker_tables():
    from tats_env.mae.composition import COMPOSITION_MASKERS
    from tats_env.mae.masker_names import COMPOSITION_MASKER_NAMES, MASKER_NAMES
    from tats_env.mae.masking import MASKERS

    assert tuple(MASKERS) == MASKER_NAMES and tuple(COMPOSITION_MASKERS) == COMPOSITION_MASKER_NAMES


def test_console_scripts_are_declared_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    for command in COMMANDS:
        assert f"\n{command} = " in text, command


@pytest.mark.parametrize(("options", "expected"), [
    (["--encoders", "a"], "--encoders takes NAME=EXPORT[,EXPORT...] items, got 'a'"),
    (["--encoders", "a={tmp}/missing"], "--encoders a={tmp}/missing: no such export directory"),
    (["--preset", "huge"], "--preset huge: unknown preset"),
    (["--temporal-views", "0"], "--temporal-views 0: must be >= 1"),
    (["--out", "{tmp}/report.png"], "overwritten by its chart"),
    (["--data", "{tmp}/missing.txt"], "--data {tmp}/missing.txt"),
], ids=["encoders-malformed", "encoders-missing", "preset", "temporal-views", "out-png", "data-missing"])
def test_evaluate_bad_option_is_one_error_line_before_any_work(options, expected, tmp_path, capsys, monkeypatch):
    from tats_env.cli import evaluate

    monkeypatch.setattr("tats_env.downstream.clipset.load_clipset", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(SystemExit) as info:
        evaluate.main([o.format(tmp=tmp_path) for o in options], prog="tats-eval")
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tats-eval: error: "), lines
    assert expected.format(tmp=tmp_path) in lines[0] and "Traceback" not in err


def test_lazy_package_attributes_import_on_first_use_and_are_cached():
    import types

    from tats_env.lazy import lazy_attributes, lazy_table

    package = types.ModuleType("fake_package")
    sys.modules["fake_package"] = package
    try:
        table = lazy_table({"json": ("dumps",), "textwrap": ("dedent",)})
        package.__getattr__ = lazy_attributes("fake_package", table)
        assert table == {"dumps": "json", "dedent": "textwrap"}
        import json

        assert package.dumps is json.dumps and "dumps" in vars(package)  # cached: no second lookup
        with pytest.raises(AttributeError, match="module 'fake_package' has no attribute 'loads'"):
            package.loads
    finally:
        del sys.modules["fake_package"]
