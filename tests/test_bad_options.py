"""Bad options of the main job: one ``train_ppo.py: error:`` line naming the option or file, exit 2, before any data
is loaded or model built, never a traceback (issue 21 item 9)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import train_ppo  # noqa: E402

# (options, text the error line must contain); {tmp} is the test's folder
CASES = [
    (["--seed", "-1"], "--seed -1: must be in [0, 2**32 - 1]"),
    (["--seed", "99999999999999"], "--seed 99999999999999"),
    (["--token-ppo.net.dim", "33"], "--token-ppo.net.dim 33: must be a multiple of num_heads"),
    (["--reinforce.net.dim", "33"], "--reinforce.net.dim 33"),
    (["--sac.ent-coef", "foo"], "--sac.ent-coef foo"),
    (["--token-ppo.net.depth", "0"], "--token-ppo.net.depth 0: must be >= 1"),
    (["--token-ppo.target-kl", "-1"], "--token-ppo.target-kl -1.0: must be > 0"),
    (["--a2c.vf-coef", "-1"], "--a2c.vf-coef -1.0: must be >= 0"),
    (["--sac.gradient-steps", "0"], "--sac.gradient-steps 0: must be >= 1"),
    (["--sac.net-arch"], "--sac.net-arch : needs at least one hidden layer"),
    (["--mae.min-lr", "1", "--mae.lr", "0.1"], "--mae.min-lr 1.0: must not exceed the learning rate"),
    (["--mask-ratio", "0.999"], "--mask-ratio 0.999: rounds to K = 511 of N = 512 tokens"),
    (["--mask-ratio", "0.001"], "--mask-ratio 0.001: rounds to K = 1 of N = 512 tokens"),
    (["--config", "{tmp}/missing.yaml"], "--config {tmp}/missing.yaml: file not found"),
    (["--config", "{tmp}/list.yaml"], "expected a mapping of option names to values, got list"),
    (["--config", "{tmp}/broken.yaml"], "not valid YAML"),
    (["--config", "{tmp}/unknown.yaml"], "mask_ration"),
    (["--out", "{tmp}/a_file"], "a_file: is a file, not a folder"),
]


@pytest.fixture
def config_files(tmp_path: Path) -> Path:
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.yaml").write_text("mask_ratio: [0.9\n")
    (tmp_path / "unknown.yaml").write_text("mask_ration: 0.5\n")
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path


@pytest.mark.parametrize(("options", "expected"), CASES, ids=[" ".join(o) for o, _ in CASES])
def test_bad_option_is_one_error_line_before_any_work(options, expected, config_files, monkeypatch, capsys):
    monkeypatch.setattr("tats_env.env.core.build_dataset", lambda *a, **k: pytest.fail("data loaded"))
    monkeypatch.setattr(sys, "argv", ["train_ppo.py"])
    argv = [o.format(tmp=config_files) for o in options]
    if "--out" not in argv:
        argv += ["--out", str(config_files / "run")]
    with pytest.raises(SystemExit) as info:
        train_ppo.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    if "mask_ration" not in expected:  # tyro prints its own usage box for an unknown option
        assert len(lines) == 1 and lines[0].startswith("train_ppo.py: error: "), lines
    assert expected.format(tmp=config_files) in err
    assert not (config_files / "run").exists()  # nothing was written


def test_an_unwritable_out_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("tats_env.outdir.os.access", lambda path, mode: False)  # as for a non-root user
    with pytest.raises(SystemExit) as info:
        train_ppo.main(["--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"--out {tmp_path / 'run'}: cannot be written ({tmp_path} is not writable" in err
