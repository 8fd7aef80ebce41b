"""Fine-tuning: layer-decay groups, schedule, video CutMix/Mixup, multi-view eval, end-to-end runs."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from tats_env.downstream.classify import (
    VideoClassifier, VideoMixup, build_criterion, build_optimizer, build_scheduler, confusion_matrix, topk_accuracy,
)
from tats_env.config import get_preset
from tats_env.data.synthetic import SyntheticConfig, ensure_synthetic_dataset
from tats_env.export import export_encoder, load_encoder
from tats_env.downstream.finetune import FinetuneConfig, evaluate, finetune
from tats_env.mae import VideoMAE


@pytest.fixture(scope="module")
def arch():
    return get_preset("tiny", num_frames=8, image_size=32, patch_size=8, sampling_rate=2, embed_dim=32, depth=3,
                      num_heads=2, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


@pytest.fixture(scope="module")
def export_dir(arch, tmp_path_factory):
    torch.manual_seed(0)
    return export_encoder(VideoMAE(arch), tmp_path_factory.mktemp("export") / "native")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    config = SyntheticConfig(num_classes=3, train_per_class=2, val_per_class=1, num_frames=16, size=32)
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("data") / "synthetic", config, progress=False,
                                    num_workers=1)


def test_layer_decay_gives_each_block_its_own_lr(arch, export_dir):
    model = VideoClassifier(load_encoder(export_dir), num_classes=4)
    decay, lr = 0.5, 1e-3
    optimizer = build_optimizer(model, lr=lr, weight_decay=0.05, layer_decay=decay)
    scheduler = build_scheduler(optimizer, total_steps=100, warmup_steps=10, min_lr=1e-6)
    scheduler.step_update(num_updates=10)  # end of warm-up: the peak lr
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    depth = arch.depth
    expected_layer = {"encoder.patch_embed.proj.weight": 0, "encoder.blocks.0.attn.qkv.weight": 1,
                      "encoder.blocks.2.mlp.fc2.weight": 3, "fc_norm.weight": depth + 1, "head.weight": depth + 1}
    params = dict(model.named_parameters())
    for name, layer in expected_layer.items():
        assert group_of[id(params[name])]["lr"] == pytest.approx(lr * decay ** (depth + 1 - layer)), name
    lrs = {round(g["lr"], 12) for g in optimizer.param_groups}
    assert len(lrs) == depth + 2  # stem, every block, head: all different
    assert group_of[id(params["encoder.blocks.1.attn.q_bias"])]["weight_decay"] == 0.0
    assert group_of[id(params["encoder.blocks.1.attn.qkv.weight"])]["weight_decay"] == 0.05
    assert "encoder.norm.weight" not in params  # replaced by fc_norm, so DDP sees no unused parameter
    head = group_of[id(params["head.weight"])]
    scheduler.step_update(num_updates=0)
    assert head["lr"] == pytest.approx(1e-6)  # warm-up start
    scheduler.step_update(num_updates=55)
    assert 1e-6 < head["lr"] < lr  # cosine in between
    scheduler.step_update(num_updates=100)
    assert head["lr"] == pytest.approx(1e-6, rel=1e-3)


def test_pooled_heads_keep_where_and_when(arch, export_dir):
    t, h, w = arch.video.grid
    d = arch.embed_dim
    widths = {"mean": d, "time": t * d, "quadrants": t * 4 * d}
    clips = torch.randn(2, 3, arch.video.num_frames, arch.video.image_size, arch.video.image_size)
    for pooling, width in widths.items():
        model = VideoClassifier(load_encoder(export_dir), num_classes=5, pooling=pooling)
        assert model.head.in_features == width and model.forward_features(clips).shape == (2, width)
        model(clips).sum().backward()
        assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0  # the encoder learns through the pooling
    # quadrants: each region normalised on its own, so one quarter's features do not leak into another's
    model = VideoClassifier(load_encoder(export_dir), num_classes=5, pooling="quadrants")
    tokens = model.encoder(clips)
    regions = tokens.reshape(2, t, 2, h // 2, 2, w // 2, d).mean(dim=(3, 5)).reshape(2, t * 4, d)
    torch.testing.assert_close(model.forward_features(clips), model.fc_norm(regions).flatten(1))
    with pytest.raises(ValueError, match="pooling must be one of"):
        VideoClassifier(load_encoder(export_dir), num_classes=5, pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="head_norm must be"):
        VideoClassifier(load_encoder(export_dir), num_classes=5, head_norm="group")  # type: ignore[arg-type]


def test_batch_norm_head_standardises_every_pooled_feature(export_dir):
    """A feature with a large constant offset and a tiny useful variation reaches the head at unit scale."""
    model = VideoClassifier(load_encoder(export_dir), num_classes=3, pooling="quadrants", head_norm="batch")
    width = model.head.in_features
    assert isinstance(model.fc_norm, nn.BatchNorm1d) and model.fc_norm.num_features == width
    assert not any(p.requires_grad for p in model.fc_norm.parameters())  # no affine: nothing to learn there
    pooled = 10.0 + 0.1 * torch.randn(64, width)  # offset 100x the spread
    model.train()
    out = model.fc_norm(pooled)
    torch.testing.assert_close(out.mean(0), torch.zeros(width), atol=1e-2, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(width), atol=2e-2, rtol=0)
    layer = VideoClassifier(load_encoder(export_dir), num_classes=3, pooling="quadrants")
    assert isinstance(layer.fc_norm, nn.LayerNorm)  # VideoMAE's fc_norm stays the default
    odd = export_encoder(VideoMAE(get_preset("tiny", num_frames=8, image_size=24, patch_size=8, embed_dim=32, depth=1,
                                             num_heads=2, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)),
                         export_dir.parent / "odd")
    with pytest.raises(ValueError, match="even token grid"):
        VideoClassifier(load_encoder(odd), num_classes=5, pooling="quadrants")


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_cutmix_cuts_the_same_box_in_every_frame(mode):
    np.random.seed(3)
    clips = torch.randn(4, 3, 6, 16, 16)
    labels = torch.tensor([0, 1, 2, 1])
    mixup = VideoMixup(mixup_alpha=0.0, cutmix_alpha=1.0, prob=1.0, mode=mode, label_smoothing=0.0, num_classes=3)
    mixed, target = mixup(clips.clone(), labels)
    assert mixed.shape == clips.shape and target.shape == (4, 3)
    source = clips.flip(0)  # timm pairs clip i with clip B-1-i
    cut_any = False
    for i in range(4):
        changed = (mixed[i] != clips[i]).any(dim=0)  # (T, H, W)
        for t in range(1, 6):
            assert torch.equal(changed[t], changed[0]), f"clip {i}: frame {t} has a different box"
        rows, cols = changed[0].any(1).nonzero(), changed[0].any(0).nonzero()
        if len(rows):
            cut_any = True
            box = (slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1))
            assert torch.equal(mixed[i][:, :, box[0], box[1]], source[i][:, :, box[0], box[1]])
            area = (box[0].stop - box[0].start) * (box[1].stop - box[1].start) / 256
            assert target[i, labels[i]] == pytest.approx(1 - area, abs=1e-6)  # label weight = uncut area
    assert cut_any


def test_mixup_mixes_whole_clips_with_one_weight():
    np.random.seed(0)
    clips, labels = torch.randn(2, 3, 4, 8, 8), torch.tensor([0, 1])
    mixed, target = VideoMixup(mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=2)(
        clips.clone(), labels)
    lam = float(target[0, 0])
    assert 0 < lam < 1
    torch.testing.assert_close(mixed, lam * clips + (1 - lam) * clips.flip(0))
    with pytest.raises(ValueError, match="even"):
        VideoMixup(num_classes=2)(torch.randn(3, 3, 4, 8, 8), torch.tensor([0, 1, 0]))
    assert isinstance(build_criterion(None, 0.1), nn.Module)


class _ViewLogits(nn.Module):
    """Stub classifier: the logits of a clip are written in its first pixels."""

    def forward(self, videos):
        return videos[:, 0, 0, 0, :3]


def test_multi_view_evaluation_averages_softmax():
    logits = torch.tensor([[[4.0, 0, 0], [0, 0, 0.5]],   # video 0: views disagree, averaged -> class 0
                           [[0, 1.0, 0], [0, 3.0, 0]]])  # video 1: class 1
    videos = torch.zeros(4, 3, 2, 4, 4)
    videos[:, 0, 0, 0, :3] = logits.reshape(4, 3)
    batch = {"video": videos, "label": torch.tensor([0, 0, 2, 2])}
    result = evaluate(_ViewLogits(), [batch], num_views=2)
    expected = logits.softmax(-1).mean(1)
    torch.testing.assert_close(result.probs, expected)
    assert result.labels.tolist() == [0, 2]
    assert result.top1 == 0.5 and result.top5 == 1.0
    assert result.confusion.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert topk_accuracy(torch.tensor([[0.1, 0.5, 0.4]]), torch.tensor([2]), (1, 2)) == {1: 0.0, 2: 1.0}
    assert confusion_matrix(torch.tensor([1, 1]), torch.tensor([0, 1]), 2).tolist() == [[0, 1], [0, 1]]


def test_finetune_end_to_end(export_dir, dataset_dir, tmp_path):
    cfg = FinetuneConfig(encoder=str(export_dir), data=str(dataset_dir), out=tmp_path / "run", epochs=2,
                         batch_size=2, lr=1e-3, warmup_epochs=1, temporal_views=2, spatial_views=2,
                         num_repeats=2, device="cpu", progress=False)
    metrics = finetune(cfg)
    out = tmp_path / "run"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["top1"] == metrics["top1"] and 0.0 <= saved["top1"] <= saved["top5"] <= 1.0
    assert saved["num_val_videos"] == 3 and saved["views"] == [2, 2] and len(saved["history"]) == 2
    assert saved["class_names"] == ["translate_right", "translate_left", "translate_up"]
    assert saved["top5"] == 1.0  # 3 classes: the label is always in the top 5
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert {"train/loss", "train/lr", "val/top1", "val/top5"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("val/top1")) == 2
    lrs = [e.value for e in events.Scalars("train/lr")]
    assert lrs[0] < max(lrs)  # warm-up
    ckpt = torch.load(out / "classifier.pt", weights_only=True)
    assert ckpt["num_classes"] == 3 and ckpt["model"]["head.weight"].shape == (3, 32)
    exported = load_file(export_dir / "model.safetensors")
    moved = ckpt["model"]["encoder.blocks.0.attn.qkv.weight"] - exported["encoder.blocks.0.attn.qkv.weight"]
    assert moved.abs().max() > 0  # the encoder was fine-tuned


def test_linear_probe_freezes_encoder_and_cli_random_baseline(export_dir, dataset_dir, tmp_path):
    probe = FinetuneConfig(encoder=str(export_dir), data=str(dataset_dir), out=tmp_path / "probe", epochs=1,
                           batch_size=2, linear_probe=True, mixup=0.0, cutmix=0.0, temporal_views=1,
                           spatial_views=1, device="cpu", progress=False, warmup_epochs=0)
    finetune(probe)
    state = torch.load(tmp_path / "probe" / "classifier.pt", weights_only=True)["model"]
    exported = load_file(export_dir / "model.safetensors")
    for key, value in exported.items():
        if not key.startswith("encoder.norm."):
            assert torch.equal(state[key], value), key

    spec = importlib.util.spec_from_file_location("finetune_cli", Path(__file__).parents[1] / "experiments/finetune.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    yaml_file = tmp_path / "ft.yaml"
    yaml_file.write_text(f"encoder: {export_dir}\ndata: {dataset_dir}\nepochs: 3\nbatch_size: 2\n"
                         "temporal_views: 1\nspatial_views: 1\ndevice: cpu\nprogress: false\n")
    with pytest.warns(UserWarning, match="warm-up of 15 steps covers the whole run of 3"):
        metrics = cli.main(["--config", str(yaml_file), "--epochs", "1", "--init", "random",
                            "--out", str(tmp_path / "scratch"), "--no-save-classifier"])
    assert metrics["config"]["init"] == "random" and metrics["config"]["epochs"] == 1
    assert not (tmp_path / "scratch" / "classifier.pt").exists()
    with pytest.raises(ValueError, match="needs --encoder"):
        finetune(FinetuneConfig(encoder=None, data=str(dataset_dir), out=tmp_path / "x", device="cpu"))


def test_random_init_keeps_the_architecture_but_not_the_weights(arch, export_dir):
    from tats_env.downstream.finetune import _build_encoder

    pretrained = _build_encoder(FinetuneConfig(encoder=str(export_dir), drop_path=0.2))
    scratch = _build_encoder(FinetuneConfig(encoder=str(export_dir), init="random", drop_path=0.2))
    assert scratch.cfg == pretrained.cfg and scratch.cfg.drop_path_rate == 0.2
    exported = load_file(export_dir / "model.safetensors")["encoder.blocks.0.attn.qkv.weight"]
    assert torch.equal(pretrained.state_dict()["blocks.0.attn.qkv.weight"], exported)
    assert not torch.equal(scratch.state_dict()["blocks.0.attn.qkv.weight"], exported)
    assert scratch.get_submodule("blocks.1.attn").q_bias.abs().sum() == 0  # VideoMAE init
    assert _build_encoder(FinetuneConfig(init="random", preset="tiny")).cfg.embed_dim == 192


def _finetune_cli():
    spec = importlib.util.spec_from_file_location("finetune_cli_out", Path(__file__).parents[1] / "experiments/finetune.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def _quick_args(export_dir, dataset_dir, out):
    return ["--encoder", str(export_dir), "--data", str(dataset_dir), "--out", str(out), "--epochs", "1",
            "--batch-size", "2", "--mixup", "0", "--cutmix", "0", "--temporal-views", "1", "--spatial-views", "1",
            "--warmup-epochs", "0", "--max-steps-per-epoch", "1", "--device", "cpu", "--no-progress"]


def test_cli_refuses_a_non_empty_out_unless_overwrite_and_caps_the_videos(export_dir, dataset_dir, tmp_path, capsys,
                                                                           monkeypatch):
    """Issue 21 item 15: a non-empty --out is one error line (exit 2) and nothing is written; --overwrite replaces
    the earlier outputs (other files kept); --max-val-videos / --max-train-videos cap the lists."""
    cli = _finetune_cli()
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}\n")
    (out / "notes.txt").write_text("mine\n")
    before = sorted(p.name for p in out.iterdir())
    monkeypatch.setattr("tats_env.downstream.finetune.finetune", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(SystemExit) as info:
        cli.main(_quick_args(export_dir, dataset_dir, out))
    assert info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"finetune.py: error: --out {out}: already holds files"), lines
    assert "--overwrite" in lines[0] and "Traceback" not in lines[0]
    assert sorted(p.name for p in out.iterdir()) == before and (out / "metrics.json").read_text() == "{}\n"
    monkeypatch.undo()

    metrics = cli.main(_quick_args(export_dir, dataset_dir, out) + ["--overwrite", "--max-val-videos", "1",
                                                                    "--max-train-videos", "4"])
    assert metrics["num_val_videos"] == 1  # the synthetic val list holds 3
    assert json.loads((out / "metrics.json").read_text())["num_val_videos"] == 1
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "classifier.pt").is_file()


BAD_FINETUNE = [
    (["--epochs", "0"], "--epochs 0: must be >= 1"),
    (["--lr", "-1"], "--lr -1.0: must be > 0"),
    (["--max-val-videos", "0"], "--max-val-videos 0: must be >= 1"),
    (["--device", "cuda:99"], "--device cuda:99"),
    (["--device", "foo"], "--device foo: unknown device"),
    (["--encoder", "{tmp}/missing"], "missing: no such export directory or checkpoint file"),
    (["--class-names", "{tmp}/nope.txt"], "--class-names {tmp}/nope.txt: file not found"),
    (["--out", "{tmp}/a_file"], "a_file: is a file, not a folder"),
    (["--batch-size", "3"], "--batch-size 3: Mixup/CutMix needs an even number of clips"),
    (["--config", "{tmp}/missing.yaml"], "--config {tmp}/missing.yaml: file not found"),
]


@pytest.mark.parametrize(("options", "expected"), BAD_FINETUNE, ids=[" ".join(o) for o, _ in BAD_FINETUNE])
def test_cli_bad_option_is_one_error_line_before_any_work(options, expected, dataset_dir, tmp_path, capsys,
                                                          monkeypatch):
    cli = _finetune_cli()
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setattr("tats_env.downstream.finetune.finetune", lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setattr("tats_env.export.load_encoder", lambda *a, **k: pytest.fail("model built"))
    argv = ["--init", "random", "--data", str(dataset_dir)] + [o.format(tmp=tmp_path) for o in options]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("finetune.py: error: "), lines
    assert expected.format(tmp=tmp_path) in lines[0]
    assert not (tmp_path / "run").exists()
