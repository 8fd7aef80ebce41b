"""Command lines from nested config dataclasses: flags, YAML files, help with defaults, clear errors."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from agents.bench.matrix import BenchmarkConfig
from agents.job.config import TrainConfig
from tats_env.commandline import config_to_dict, field_flags, flag_names, parse, to_args
from tats_env.downstream import FinetuneConfig


def test_flags_reach_nested_configs():
    cfg = parse(TrainConfig, ["--mask-ratio", "0.95", "--reward.baseline", "random", "--mae.lr", "1e-3",
                              "--ppo.n-epochs", "3", "--tats.no-share-trunk", "--method", "reinforce",
                              "--reinforce.net.dim", "16", "--export-formats", "native"])
    assert cfg.env.mask_ratio == 0.95 and cfg.env.reward.baseline == "random"
    assert cfg.env.engine_config.lr == 1e-3 and cfg.sampler.ppo.n_epochs == 3
    assert cfg.sampler.tats.share_trunk is False and cfg.method == "reinforce"
    assert cfg.sampler.reinforce.net.dim == 16 and cfg.export_formats == ("native",)
    # untouched values keep the main job's defaults (not the library's)
    assert cfg.env.reward.normalize is True and cfg.env.engine_config.warmup_updates == 50


def test_yaml_nested_flat_and_dotted_keys_with_flags_overriding(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("mask_ratio: 0.75\nreward:\n  mode: cooperative\nppo.learning-rate: 3.0e-3\n"
                    "env:\n  data: my_list.txt\ntotal_steps: 64\nprogress_bar: false\n")
    cfg = parse(TrainConfig, ["--config", str(path), "--total-steps", "128"])
    assert cfg.env.mask_ratio == 0.75 and cfg.env.reward.mode == "cooperative" and cfg.env.data == "my_list.txt"
    assert cfg.sampler.ppo.learning_rate == 3e-3 and cfg.progress_bar is False
    assert cfg.total_steps == 128  # the flag after --config wins


def test_saved_config_round_trips_through_the_parser():
    cfg = parse(TrainConfig, ["--mask-ratio", "0.95", "--out", "runs/x", "--tats.dim", "16"])
    again = parse(TrainConfig, to_args(TrainConfig, config_to_dict(cfg)))
    assert again == cfg


def test_bad_yaml_names_the_key_and_the_file(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("mask_ratoi: 0.9\n")
    with pytest.raises(SystemExit) as info:  # one error: line, exit 2
        parse(TrainConfig, ["--config", str(path)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and re.search(r"error: --config \S*bad.yaml: unknown option 'mask_ratoi'.*mask-ratio", err)
    path.write_text("mask_ratio: ninety\n")
    with pytest.raises(SystemExit):
        parse(TrainConfig, ["--config", str(path)])
    err = capsys.readouterr().err
    assert "--mask-ratio" in err and "ninety" in err and "bad.yaml" in err
    for text, expected in ((None, "missing.yaml: file not found"), ("reward: cooperative\n", "holds options")):
        target = tmp_path / "missing.yaml" if text is None else path
        if text is not None:
            path.write_text(text)
        with pytest.raises(SystemExit) as info:
            parse(TrainConfig, ["--config", str(target)])
        assert info.value.code == 2 and expected in capsys.readouterr().err


@pytest.mark.parametrize("cls", [TrainConfig, BenchmarkConfig, FinetuneConfig])
def test_help_lists_every_option_with_its_default(cls):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parse(cls, ["--help"])
    text = re.sub(r"[│╭╮╰╯─]", " ", out.getvalue())
    flags = flag_names(cls)
    for flag in flags:
        assert flag in text, flag
    assert len(re.findall(r"\(default:", text)) >= len(flags) - sum(1 for f in flags if "no-" in f)


def test_finetune_yaml_of_the_repository_still_parses():
    path = Path(__file__).parents[1] / "experiments" / "configs" / "finetune_tiny.yaml"
    cfg = parse(FinetuneConfig, ["--config", str(path), "--encoder", "exports/native"])
    assert cfg.epochs == 30 and cfg.num_repeats == 2 and cfg.encoder == "exports/native"


def test_literal_options_refuse_unknown_values_naming_the_flag(capsys):
    with pytest.raises(SystemExit):
        parse(TrainConfig, ["--export-formats", "native", "onnx"])
    err = capsys.readouterr().err
    assert "--export-formats" in err and "onnx" in err and "videomae" in err  # the allowed values are listed
    with pytest.raises(SystemExit):
        parse(TrainConfig, ["--num-envs", "eight"])
    assert "--num-envs" in capsys.readouterr().err


def test_field_flags_map_field_paths_to_flags():
    flags = field_flags(TrainConfig)
    assert flags["env.mask_ratio"] == "--mask-ratio" and flags["env.engine_config.lr"] == "--mae.lr"
    assert flags["sampler.ppo.learning_rate"] == "--ppo.learning-rate" and flags["total_steps"] == "--total-steps"
    assert list(flags.values()) == flag_names(TrainConfig)
