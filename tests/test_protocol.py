"""The CPU evaluation protocol: probe, positive control, noise, the refusal to rank, real videos, CLI."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from tats_env.config import get_preset
from tats_env.downstream import (
    ClipSet, ControlConfig, ProbeConfig, ProtocolConfig, RankingRefused, ShortRecipe, binomial_sd, fit_probe,
    linear_probe, load_clipset, rank_encoders, ranking_check, run_protocol, summarize, train_control,
)
from tats_env.downstream.classify import random_encoder
from tats_env.export import export_encoder

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _moving_squares(n: int, seed: int, frames: int = 8, side: int = 16) -> ClipSet:
    """Noise clips with a bright 4x4 square moving right (label 0) or left (label 1), 1 px per frame."""
    g = torch.Generator().manual_seed(seed)
    videos = torch.randint(0, 120, (n, 3, frames, side, side), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    for i in range(n):
        row = int(torch.randint(0, side - 4, (1,), generator=g))
        start = int(torch.randint(0, side - 4 - frames, (1,), generator=g))
        for t in range(frames):
            col = start + t if labels[i] == 0 else start + frames - 1 - t
            videos[i, :, t, row:row + 4, col:col + 4] = 255
    return ClipSet(videos, labels, MEAN, STD)


def _arch():
    return get_preset("tiny", num_frames=8, image_size=16, patch_size=4, tubelet_size=2, embed_dim=24, depth=1,
                      num_heads=2, decoder_embed_dim=12, decoder_depth=1, decoder_num_heads=2)


def test_binomial_noise_and_summary():
    assert binomial_sd(0.5, 100) == pytest.approx(0.05)
    assert binomial_sd(0.0, 10) == 0.0
    with pytest.raises(ValueError, match="n >= 1"):
        binomial_sd(0.5, 0)
    s = summarize([0.4, 0.5, 0.6], 600)
    assert s["mean"] == pytest.approx(0.5) and s["seed_sd"] == pytest.approx(0.1)
    assert s["binomial_sd"] == pytest.approx(math.sqrt(0.25 / 600))
    assert "binomial sd 2.0" in s["text"] and "seed sd 10.0" in s["text"]
    assert summarize([0.3], 10)["seed_sd"] == 0.0


def test_probe_recovers_a_planted_linear_signal():
    g = torch.Generator().manual_seed(0)
    means = 3.0 * torch.eye(3, 5)  # the class signal lives in 5 unit-noise features

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 3, (n,), generator=g)
        # 35 pure-noise features on scales up to 1000x larger: standardisation and the L2 penalty
        # must keep them from drowning the signal.
        x = torch.randn(n, 40, generator=g) * torch.cat([torch.ones(5), torch.logspace(0, 3, 35)])
        x[:, :5] += means[y]
        return x, y

    x, y = sample(600)
    head = fit_probe(x, y, 3, weight_decay=1e-3)
    xv, yv = sample(600)
    acc = float((head(xv.double()).argmax(1) == yv).float().mean())
    assert acc > 0.8
    shuffled = fit_probe(x, y[torch.randperm(600, generator=g)], 3)  # no signal: near chance
    assert float((shuffled(xv.double()).argmax(1) == yv).float().mean()) < 0.5
    with pytest.raises(ValueError, match="two classes"):
        fit_probe(x, torch.zeros(600, dtype=torch.long), 1)


def test_linear_probe_runs_on_an_encoder_and_reports_shapes():
    train, val = _moving_squares(32, 0), _moving_squares(16, 1)
    torch.manual_seed(0)
    encoder = random_encoder(_arch())
    result = linear_probe(encoder, train, val, ProbeConfig(pooling="time", max_iter=50))
    assert result.num_features == 4 * 24 and result.num_val == 16
    assert 0.0 <= result.top1 <= 1.0 and len(result.per_class_top1) == 2
    assert encoder.training  # its mode is restored (it started in train mode)
    assert linear_probe(encoder, train, val, ProbeConfig(pooling="mean", max_iter=50)).num_features == 24
    assert linear_probe(encoder, train, val, ProbeConfig(max_iter=50)).num_features == 4 * 4 * 24  # quadrants


def test_quadrant_pooling_keeps_where_and_when():
    from tats_env.downstream.pooling import pool_tokens as _pool

    t, h, w, d = 2, 4, 4, 3
    tokens = torch.zeros(1, t * h * w, d)
    grid = tokens.view(1, t, h, w, d)
    grid[0, 1, 2:, :2, 0] = 1.0  # second temporal slot, bottom-left quarter, channel 0
    pooled = _pool(tokens, (t, h, w), "quadrants")
    assert pooled.shape == (1, t * 4 * d)
    layout = pooled.view(t, 2, 2, d)
    assert layout[1, 1, 0, 0] == 1.0 and layout.sum() == 1.0  # exactly that slot, quarter and channel
    assert _pool(tokens, (t, h, w), "time").view(t, d)[1, 0] == pytest.approx(0.25)
    assert _pool(tokens, (t, h, w), "mean")[0, 0] == pytest.approx(4 / 32)
    with pytest.raises(ValueError, match="even token grid"):
        _pool(torch.zeros(1, 2 * 9, d), (2, 3, 3), "quadrants")
    with pytest.raises(ValueError, match="pooling must be one of"):
        ProbeConfig(pooling="max")  # type: ignore[arg-type]
    assert ProbeConfig().pooling == "quadrants"  # the main CPU metric


def test_lp_ft_head_starts_where_the_frozen_probe_ends():
    from tats_env.downstream import VideoClassifier, init_head_from_probe, predict

    train, val = _moving_squares(48, 0), _moving_squares(32, 1)
    torch.manual_seed(0)
    encoder = random_encoder(_arch())
    probe_cfg = ProbeConfig(max_iter=200)
    probe = linear_probe(encoder, train, val, probe_cfg)
    model = VideoClassifier(encoder, 2, pooling="quadrants", head_norm="batch")
    assert predict(model, val).unique().numel() == 1  # near-zero VideoMAE head: one class for every clip
    init_head_from_probe(model, train, probe_cfg.weight_decay, probe_cfg.max_iter)
    assert model.training  # its mode is restored
    # same features, same standardisation (up to BatchNorm's eps), same penalty: the same classifier
    assert float((predict(model, train) == train.labels).float().mean()) == pytest.approx(probe.train_top1, abs=1 / 48)
    assert float((predict(model, val) == val.labels).float().mean()) == pytest.approx(probe.top1, abs=1 / 32)
    with pytest.raises(ValueError, match="head_norm='batch'"):
        init_head_from_probe(VideoClassifier(random_encoder(_arch()), 2, pooling="quadrants"), train)


def test_control_learns_a_trivially_learnable_set():
    train, val = _moving_squares(96, 0), _moving_squares(48, 1)
    cfg = ControlConfig(width=8, input_size=None, recipe=ShortRecipe(epochs=8, batch_size=16, lr=3e-3))
    result = train_control(train, val, cfg, seed=0)
    assert result.top1 >= 0.9, result
    assert result.clips_per_s > 0 and len(result.history) == 8


def _report(control: float, scratch: float | None, n_val: int = 600, chance: float = 1 / 12) -> dict:
    report = {"data": {"chance": chance, "num_val": n_val}, "config": {"z": 3.0},
              "control": summarize([control], n_val),
              "encoders": {"a": {"probe": summarize([0.5, 0.52], n_val)}, "b": {"probe": summarize([0.2, 0.21], n_val)},
                           "c": {"probe": summarize([0.51, 0.5], n_val)}}}
    if scratch is not None:
        report["scratch_vit"] = summarize([scratch], n_val)
    return report


def test_refuses_to_rank_when_a_control_fails():
    bar = 1 / 12 + 3 * binomial_sd(1 / 12, 600)  # 11.7%
    assert ranking_check(_report(0.9, 0.5)) == []
    failing = _report(bar - 0.001, 0.5)
    reasons = ranking_check(failing)
    assert len(reasons) == 1 and "positive control" in reasons[0] and "11.7%" in reasons[0]
    with pytest.raises(RankingRefused, match="positive control"):
        rank_encoders(failing)
    reasons = ranking_check(_report(0.9, 0.09))
    assert len(reasons) == 1 and "from-scratch ViT" in reasons[0] and "scratch.epochs" in reasons[0]
    assert "not run" in ranking_check(_report(0.9, None))[0]
    ranking = rank_encoders(_report(0.9, 0.5))
    assert [r["name"] for r in ranking] == ["a", "c", "b"]
    assert [r["separated_from_next"] for r in ranking] == [False, True, None]


def test_protocol_end_to_end_on_an_exported_encoder(tmp_path):
    from tats_env.mae import VideoMAE

    train, val = _moving_squares(48, 0), _moving_squares(24, 1)
    torch.manual_seed(0)
    export = export_encoder(VideoMAE(_arch()), tmp_path / "enc", format="native")
    quick = ShortRecipe(epochs=2, batch_size=16, lr=1e-3)
    cfg = ProtocolConfig(seeds=(0, 1), probe=ProbeConfig(max_iter=30), finetune=quick, scratch=quick,
                         control=ControlConfig(width=4, input_size=None, recipe=ShortRecipe(epochs=6, batch_size=16, lr=3e-3)))
    lines: list[str] = []
    partial: list[tuple[bool, list[str]]] = []
    report = run_protocol({"mine": [export]}, train, val, cfg, log=lines.append,
                          on_update=lambda r: partial.append((r["complete"], sorted(k for k in r if k in (
                              "control", "scratch_vit")))))
    # one update per measurement (2 probes, control, scratch, 1 fine-tune) plus the final one
    assert [c for c, _ in partial] == [False] * 5 + [True]
    assert partial[1][1] == [] and partial[2][1] == ["control"] and partial[3][1] == ["control", "scratch_vit"]
    assert set(report["encoders"]) == {"random_init", "mine"}
    assert len(report["encoders"]["random_init"]["probe"]["values"]) == 2  # one random encoder per seed
    assert len(report["encoders"]["mine"]["finetune"]["values"]) == 1
    for entry in (report["control"], report["scratch_vit"], report["encoders"]["mine"]["probe"]):
        assert 0.0 <= entry["mean"] <= 1.0 and entry["n_val"] == 24
    assert report["rankable"] == (not report["refusals"])
    assert any("positive control" in line for line in lines)
    json.dumps(report)  # JSON-ready
    with pytest.raises(ValueError, match="token grid|shape"):
        small = ClipSet(torch.zeros(4, 3, 8, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), MEAN, STD)
        run_protocol({}, small, val, cfg, arch=_arch())


def test_protocol_runs_on_real_videos_and_refuses_to_rank_three_clips(real_list_file):
    arch = get_preset("tiny", num_frames=8, image_size=32, patch_size=8, tubelet_size=2, sampling_rate=2, embed_dim=24,
                      depth=1, num_heads=2, decoder_embed_dim=12, decoder_depth=1, decoder_num_heads=2)
    clips = load_clipset(real_list_file, arch.video, temporal_views=2)
    assert len(clips) == 6 and clips.num_videos == 3 and clips.videos.dtype == torch.uint8
    assert clips.videos.float().std() > 10  # real pixels, not blank
    quick = ShortRecipe(epochs=2, batch_size=2)
    cfg = ProtocolConfig(seeds=(0,), probe=ProbeConfig(max_iter=20), finetune=quick, scratch=quick,
                         control=ControlConfig(width=4, recipe=quick))
    report = run_protocol({}, clips, clips, cfg, arch=arch)
    assert report["data"]["num_classes"] == 3 and report["data"]["chance"] == pytest.approx(1 / 3)
    assert 0.0 <= report["control"]["mean"] <= 1.0 and 0.0 <= report["encoders"]["random_init"]["probe"]["mean"] <= 1.0
    assert not report["rankable"]  # 6 clips cannot show anything beyond chance + 3 sd
    assert report["ranking"] is None


def test_cli_parses_encoders_and_writes_a_report(real_list_file, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import evaluate_encoder

    assert evaluate_encoder.parse_encoders(["a=x,y", "b=z"]) == {"a": ["x", "y"], "b": ["z"]}
    for bad in (["a"], ["=x"], ["a="], ["a=x", "a=y"]):
        with pytest.raises(ValueError):
            evaluate_encoder.parse_encoders(bad)
    out = tmp_path / "report.json"
    args = ["--data", str(real_list_file), "--protocol.seeds", "0", "--protocol.no-run-finetune",  # default tiny32
            "--protocol.scratch.epochs", "1", "--protocol.scratch.batch-size", "3",
            "--protocol.control.recipe.epochs", "1", "--protocol.control.recipe.batch-size", "3",
            "--protocol.probe.max-iter", "10", "--out", str(out)]
    report = evaluate_encoder.main(args)
    printed = capsys.readouterr().out
    assert "NOT RANKED" in printed and "positive control" in printed
    assert json.loads(out.read_text())["data"]["num_val"] == report["data"]["num_val"] == 3
    assert report["arch"]["embed_dim"] == 128 and report["config"]["probe"]["pooling"] == "quadrants"
    from PIL import Image

    assert Image.open(tmp_path / "report.png").size[0] > 300  # the bar chart beside the JSON
    with pytest.raises(SystemExit) as info:
        evaluate_encoder.main([*args[:-1], str(tmp_path / "report.png")])
    assert info.value.code == 2
    assert "evaluate_encoder.py: error: --out" in capsys.readouterr().err


def test_report_plot_shows_every_measured_number(tmp_path):
    from tats_env.downstream.plots import _bars, plot_report

    def entry(p: float) -> dict:
        return summarize([p, p + 0.02], 100)

    report = {"data": {"chance": 0.1, "control_bar": 0.19, "num_train": 10, "num_val": 100, "num_classes": 10},
              "encoders": {"random_init": {"probe": entry(0.3)}, "tube": {"probe": entry(0.4), "finetune": entry(0.45)}},
              "scratch_vit": entry(0.33), "control": entry(0.8), "complete": True, "rankable": True}
    assert [(g, p) for g, p, _ in _bars(report)] == [
        ("random_init", "frozen probe"), ("tube", "frozen probe"), ("tube", "fine-tune"),
        ("from-scratch ViT", "fine-tune"), ("3D CNN control", "supervised")]
    assert plot_report(report, tmp_path / "r.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="no measured top-1"):
        plot_report({"data": report["data"], "encoders": {}}, tmp_path / "empty.png")


def test_clipset_from_a_folder_of_real_videos_labels_by_subfolder(real_list_file, tmp_path):
    import shutil

    folder = tmp_path / "videos"
    for line in real_list_file.read_text().splitlines():
        path, label = line.split()
        (folder / f"class{label}").mkdir(parents=True)
        shutil.copy(path, folder / f"class{label}" / Path(path).name)
    clips = load_clipset(folder, get_preset("tiny32").video)
    assert len(clips) == 3 and sorted(clips.labels.tolist()) == [0, 1, 2]
    assert tuple(clips.videos.shape[1:]) == (3, 8, 32, 32) and clips.videos.float().std() > 10
