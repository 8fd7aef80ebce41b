"""Bad data sources are refused up front with one `error:` line naming the file (and line), exit status 2."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from tats_env.config import get_preset
from tats_env.data import DataSourceError, build_dataset, check_data_source, data_source
from tats_env.data.listfile import MAX_LABEL

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "data"
SPEC = get_preset("tiny").video


def _bad_labels(folder: Path) -> tuple[str, str, list[str]]:
    listing = folder / "labels.txt"
    listing.write_text(f"{REAL / 'pens.mp4'} abc\n# fine\n{REAL / 'pens.mp4'}\n")
    return str(listing), "--data", [str(listing), "line 1: non-integer label 'abc'", "line 3: missing label"]


def _empty_list(folder: Path) -> tuple[str, str, list[str]]:
    listing = folder / "empty.txt"
    listing.write_text("# only a comment\n\n")
    return str(listing), "--data", [str(listing), "lists no videos"]


def _latin1_list(folder: Path) -> tuple[str, str, list[str]]:
    listing = folder / "latin1.txt"
    listing.write_bytes(b"ok.mp4 0\ncaf\xe9.mp4 1\n")
    return str(listing), "--data", [str(listing), "not UTF-8 text (line 2: byte 0xe9)"]


def _one_video(folder: Path) -> tuple[str, str, list[str]]:
    video = folder / "pens.mp4"
    shutil.copy(REAL / "pens.mp4", video)
    return str(video), "--data", [str(video), "is a video, not a list file", "give the folder"]


def _huge_label(folder: Path) -> tuple[str, str, list[str]]:
    listing = folder / "huge.txt"
    listing.write_text(f"{REAL / 'pens.mp4'} 0\n{REAL / 'pens.mp4'} {10**23}\n")
    return str(listing), "--data", [str(listing), f"line 2: label {10**23} above {MAX_LABEL}"]


def _empty_folder(folder: Path) -> tuple[str, str, list[str]]:
    empty = folder / "nothing"
    empty.mkdir()
    return str(empty), "--data", [str(empty), "no videos"]


def _unknown_split(folder: Path) -> tuple[str, str, list[str]]:
    return "synthetic", "--split", ["--split foo", "has no split 'foo'", "train, val"]


BAD_SOURCES: dict[str, Callable[[Path], tuple[str, str, list[str]]]] = {
    "bad labels": _bad_labels, "empty list": _empty_list, "non-UTF-8 list": _latin1_list, "one .mp4": _one_video,
    "label 10**23": _huge_label, "empty folder": _empty_folder, "--split foo": _unknown_split,
}


def _split(case: str) -> str:
    return "foo" if case == "--split foo" else "train"


@pytest.mark.parametrize("case", BAD_SOURCES)
def test_check_data_source_gives_one_line_naming_the_file_and_line(case: str, tmp_path: Path) -> None:
    data, flag, expected = BAD_SOURCES[case](tmp_path)
    with pytest.raises(DataSourceError) as info:
        check_data_source(data, _split(case))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{flag} ")
    assert all(part in message for part in expected), message
    with pytest.raises(DataSourceError):  # the library entry point refuses the same source
        build_dataset(data, SPEC, split=_split(case))


def test_a_folder_of_split_lists_without_the_split_is_refused(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(f"{REAL / 'pens.mp4'} 0\n")
    assert data_source(tmp_path, "train") == tmp_path / "train.txt"
    expected = r"^--split val: .* holds no val.txt for split 'val' \(it has train.txt\)"
    with pytest.raises(DataSourceError, match=expected):
        check_data_source(tmp_path, "val")
    with pytest.raises(DataSourceError, match=r"^--data .*: .* holds no val.txt"):
        check_data_source(tmp_path, "val", split_flag=None)


def test_good_sources_pass_and_count_their_videos(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"{REAL / 'pens.mp4'} 0\n{REAL / 'realshort.mp4'}\t{MAX_LABEL}\n")
    assert check_data_source(listing) == 2
    assert check_data_source(REAL) == 3  # a folder of videos
    assert check_data_source("synthetic", "val") is None  # checked without generating it
    with pytest.raises(DataSourceError, match=r"^--data .*absent: no such file or folder"):
        check_data_source(tmp_path / "absent")


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_cli_under_test", ROOT / "experiments" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _never(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("built a model or loaded data after a bad data source")


SCRIPT_CASES = [(script, case) for script in ("train_ppo", "benchmark_algos", "finetune") for case in BAD_SOURCES
                if not (script == "finetune" and case == "--split foo")]  # finetune.py has no --split option


@pytest.mark.parametrize(("script", "case"), SCRIPT_CASES)
def test_every_script_exits_2_with_the_error_line_before_building_anything(
    script: str, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, _, expected = BAD_SOURCES[case](tmp_path)
    cli = _script(script)
    import agents.job.trainer as trainer

    monkeypatch.setattr(trainer, "build_env", _never)
    for name in ("run_benchmark", "finetune"):
        if hasattr(cli, name):
            monkeypatch.setattr(cli, name, _never)
    args = ["--data", data, "--out", str(tmp_path / "out")] + (["--split", "foo"] if case == "--split foo" else [])
    if script == "finetune":
        args += ["--init", "random"]
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [text for text in err.splitlines() if any(part in text for part in expected)]
    assert all(part in line for part in expected), err
    assert f"{script}.py: error:" in err
