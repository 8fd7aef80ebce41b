"""The main job's run folder: resume keeps the saved config, runs never overwrite each other, bad options fail first."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from agents.job.config import parse_train_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import train_ppo  # noqa: E402


@pytest.fixture(scope="module")
def listing(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthetic training videos (absolute paths) plus a missing and a corrupt one."""
    folder = tmp_path_factory.mktemp("listing")
    lines = [f"{synthetic_root / rel} {label}" for rel, label in
             (line.split() for line in (synthetic_root / "train.txt").read_text().splitlines()[:6])]
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(b"\0" * 5000)
    lines += [f"{folder / 'missing.mp4'} 0", f"{corrupt} 1"]
    path = folder / "train.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def finished_run(listing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run with a non-default mask ratio, MAE warm-up and budget (one image per phase)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train_ppo.main(["--data", str(listing), "--out", str(out), "--mask-ratio", "0.75", "--mae.warmup-updates", "3",
                    "--num-envs", "4", "--total-steps", "16", "--warmup-steps", "8", "--tats.dim", "32",
                    "--no-progress-bar", "--checkpoint-every", "8", "--image-every", "1000", "--seed", "3"])
    return out


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run, to continue or overwrite."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.fixture
def no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the env starts loading data."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("data was loaded before the options were checked")

    monkeypatch.setattr("tats_env.env.core.build_dataset", refuse)


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        train_ppo.main(argv)
    return int(info.value.code)


def test_summary_lists_bad_videos_and_the_end_of_phase_images(finished_run: Path, listing: Path):
    summary = json.loads((finished_run / "summary.json").read_text())
    # --image-every 1000 is longer than either phase: each phase still ends with one image
    assert summary["images"] == str(finished_run / "images")
    assert len(list((finished_run / "images").glob("masks_*.png"))) == 1
    assert len(list((finished_run / "images" / "warmup").glob("masks_*.png"))) == 1
    bad = {str(listing.parent / "missing.mp4"), str(listing.parent / "corrupt.mp4")}
    assert set(summary["bad_videos"]) == bad and summary["skipped_videos"] == 2


def test_resume_restores_the_saved_config(run_copy: Path, listing: Path):
    argv = ["--out", str(run_copy), "--resume", "--total-steps", "32"]
    cfg = parse_train_config(argv)
    assert cfg.env.mask_ratio == 0.75 and cfg.env.engine_config.warmup_updates == 3 and cfg.env.seed == 3
    assert cfg.env.data == str(listing) and cfg.num_envs == 4 and cfg.sampler.tats.dim == 32
    assert cfg.warmup_steps == 8 and cfg.progress_bar is False and cfg.image_every == 1000
    assert cfg.total_steps == 32 and cfg.resume and cfg.out == run_copy  # the safe change is taken
    assert parse_train_config(argv + ["--mask-ratio", "0.75"]) == cfg  # repeating a saved value is fine

    (run_copy / ".encoder-native.tmp-0123abcd").mkdir()  # an export killed mid-write
    summary = train_ppo.main(argv)
    assert summary["resumed_from"] == 8 + 16 and summary["clips"] == 8 + 32
    state = torch.load(run_copy / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["config"]["env"]["mask_ratio"] == 0.75 and state["config"]["total_steps"] == 32
    assert json.loads((run_copy / "config.json").read_text())["env"]["mask_ratio"] == 0.75
    assert not (run_copy / ".encoder-native.tmp-0123abcd").exists()
    assert len(summary["bad_videos"]) == 2  # remembered across the resume


def test_resume_refuses_options_that_change_the_run(run_copy: Path, capsys: pytest.CaptureFixture[str],
                                                    no_data: None):
    assert _exit_code(["--out", str(run_copy), "--resume", "--mask-ratio", "0.9", "--ppo.n-epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "--mask-ratio: the run has 0.75, given 0.9" in err and "--ppo.n-epochs: the run has 1, given 2" in err
    assert "--total-steps" in err  # the message says what may change

    yaml_file = run_copy.parent / "more.yaml"
    yaml_file.write_text("reward:\n  baseline: random\n")
    assert _exit_code(["--out", str(run_copy), "--resume", "--config", str(yaml_file)]) == 2
    assert "--reward.baseline: the run has 'none', given 'random'" in capsys.readouterr().err


def test_warmup_cannot_grow_after_the_sampler_started(run_copy: Path, capsys: pytest.CaptureFixture[str]):
    assert _exit_code(["--out", str(run_copy), "--resume", "--warmup-steps", "64"]) == 2
    assert "--warmup-steps 64: this run's sampler started after 8 warm-up clips" in capsys.readouterr().err


def test_new_run_into_an_existing_run_is_refused_unless_overwrite(run_copy: Path, listing: Path,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch):
    before = (run_copy / "checkpoint.pt").read_bytes()
    argv = ["--data", str(listing), "--out", str(run_copy), "--num-envs", "4", "--total-steps", "0",
            "--warmup-steps", "4", "--no-progress-bar", "--export-formats", "native"]
    with monkeypatch.context() as patch:
        patch.setattr("tats_env.env.core.build_dataset", lambda *a, **k: pytest.fail("data loaded"))
        assert _exit_code(argv) == 1
    err = capsys.readouterr().err
    assert ("already holds a run (checkpoint.pt, checkpoint.pt.sha256, config.json, summary.json, tb/, images/, "
            "encoder-hf/, encoder-native/)") in err
    assert "--resume" in err and "--overwrite" in err
    assert (run_copy / "checkpoint.pt").read_bytes() == before

    (run_copy / "notes.txt").write_text("mine")  # not a run file: --overwrite leaves it alone
    summary = train_ppo.main(argv + ["--overwrite"])
    assert summary["clips"] == 4 and summary["resumed_from"] is None
    assert sorted(p.name for p in run_copy.iterdir()) == [".lock", "checkpoint.pt", "checkpoint.pt.sha256", "config.json",
                                                          "encoder-native", "images", "notes.txt", "summary.json", "tb"]
    rows = (run_copy / "tb" / "progress.csv").read_text().splitlines()
    assert len(rows) == 2  # header + the new run's one row: the old rows went with the old run
    resumed = parse_train_config(["--out", str(run_copy), "--resume"])  # the saved --overwrite is not carried over
    assert resumed.resume and not resumed.overwrite and resumed.warmup_steps == 4


def test_resume_without_a_checkpoint_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_data: None):
    assert _exit_code(["--out", str(tmp_path / "empty"), "--resume"]) == 1
    assert "--resume: no checkpoint.pt in" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--num-envs", "0"], "--num-envs 0: must be >= 1"),
    (["--total-steps", "-5"], "--total-steps -5: must be >= 0"),
    (["--warmup-steps", "-1"], "--warmup-steps -1: must be >= 0"),
    (["--mask-ratio", "1.0"], "--mask-ratio 1.0: must be in (0, 1)"),
    (["--mask-ratio", "0"], "--mask-ratio 0.0: must be in (0, 1)"),
    (["--preset", "huge"], "--preset huge: unknown preset; choose one of tiny, tiny32, small, base, large"),
    (["--device", "tpu"], "--device tpu: unknown device"),
    (["--checkpoint-every", "0"], "--checkpoint-every 0: must be >= 1"),
    (["--image-every", "0"], "--image-every 0: must be >= 1"),
    (["--method", "ppo_tats", "--ppo.batch-size", "64"],
     "--ppo.batch-size 64: larger than a rollout of --ppo.n-steps 4 x --num-envs 8 = 32"),
    (["--token-ppo.batch-size", "64"], "--token-ppo.batch-size 64: larger than a rollout of --token-ppo.n-steps 4"),
    (["--token-ppo.clip-range", "0"], "--token-ppo.clip-range 0.0: must be > 0"),
    (["--method", "reinforce_adamae", "--direction", "mask_hard"],
     "--direction mask_hard: --method reinforce_adamae learns only show_hard"),
    (["--direction", "sideways"], "--direction"),  # tyro's Literal check
    (["--mae.lr", "-1"], "--mae.lr -1.0: must be > 0"),
    (["--data", "no/such/list.txt"], "--data no/such/list.txt: no such file or folder"),
    (["--resume", "--overwrite"], "--resume with --overwrite: choose one"),
    (["--export-formats", "onnx"], "--export-formats"),  # tyro's Literal check
    (["--num-envs", "many"], "--num-envs"),  # tyro's type check
])
def test_bad_options_fail_before_any_data_is_loaded(argv: list[str], message: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str], no_data: None):
    out = tmp_path / "run"
    if "--resume" in argv:  # a run to resume, so that only the option pair is wrong
        out.mkdir()
        (out / "checkpoint.pt").write_bytes(b"")
    assert _exit_code(["--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err


def test_every_problem_is_listed_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_data: None):
    assert _exit_code(["--out", str(tmp_path), "--num-envs", "0", "--mask-ratio", "2", "--image-every", "0"]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()  # one error: line per problem
    for flag in ("--num-envs 0", "--mask-ratio 2.0", "--image-every 0"):
        assert any(line.startswith(f"train_ppo.py: error: {flag}:") for line in lines), (flag, lines)


def test_sac_under_torchrun_is_refused_before_any_data_is_loaded(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  no_data: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("agents.job.distributed.get_world_size", lambda: 2)  # as in a 2-rank torchrun process group
    assert _exit_code(["--out", str(tmp_path / "run"), "--method", "sac_topk"]) == 2
    assert "--method sac_topk: cannot train under torchrun" in capsys.readouterr().err


# --- issue 21: the lock, the checkpoint's checksum, config.json against the checkpoint, empty runs ------------


def test_a_second_run_into_a_locked_folder_is_refused(run_copy: Path, no_data: None,
                                                      capsys: pytest.CaptureFixture[str]):
    import subprocess
    import textwrap

    # Another process holds the run folder (as a running train_ppo.py does from its start to its end).
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from agents.job.run_dir import RunDirLock
        lock = RunDirLock.acquire({str(run_copy)!r})
        print("locked", flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = (run_copy / "checkpoint.pt").read_bytes()
        assert _exit_code(["--out", str(run_copy), "--resume", "--no-progress-bar"]) == 1
        err = capsys.readouterr().err
        assert f"another run is using this folder (pid {holder.pid})" in err and str(run_copy) in err
        assert (run_copy / "checkpoint.pt").read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    # The OS dropped the killed holder's lock: the folder can be locked again.
    from agents.job.run_dir import RunDirLock

    RunDirLock.acquire(run_copy).release()


def test_a_corrupted_checkpoint_is_named_before_it_is_used(run_copy: Path, capsys: pytest.CaptureFixture[str]):
    from agents.job.checkpoint import CheckpointError, file_sha256, load_checkpoint

    path = run_copy / "checkpoint.pt"
    assert (run_copy / "checkpoint.pt.sha256").read_text().split() == [file_sha256(path)]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)
    assert _exit_code(["--out", str(run_copy), "--resume", "--no-progress-bar"]) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and str(path) in err and "Traceback" not in err


def test_resume_refuses_a_config_json_that_disagrees_with_the_checkpoint(run_copy: Path,
                                                                          capsys: pytest.CaptureFixture[str]):
    path = run_copy / "config.json"
    config = json.loads(path.read_text())
    config["env"]["mask_ratio"] = 0.5  # edited by hand: the checkpoint was trained at 0.75
    path.write_text(json.dumps(config))
    assert _exit_code(["--out", str(run_copy), "--resume", "--no-progress-bar"]) == 1
    err = capsys.readouterr().err
    assert "disagrees with" in err and "env.mask_ratio: checkpoint 0.75, config.json 0.5" in err
    path.unlink()  # without config.json the checkpoint's config is used
    assert parse_train_config(["--out", str(run_copy), "--resume"]).env.mask_ratio == 0.75


def test_a_run_of_zero_clips_names_no_checkpoint(listing: Path, tmp_path: Path):
    summary = train_ppo.main(["--data", str(listing), "--out", str(tmp_path / "empty"), "--total-steps", "0",
                              "--warmup-steps", "0", "--no-progress-bar", "--export-formats", "native"])
    assert summary["clips"] == 0 and summary["checkpoint"] is None
    assert not (tmp_path / "empty" / "checkpoint.pt").exists()
