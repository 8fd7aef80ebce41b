"""Encoder export: HF parity, native / videomae round trips, shape errors, atomic writes, CLI."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers  # a dev dependency (pyproject [dev]); the parity test must run
from safetensors.torch import load_file, save_file

from tats_env.config import get_preset
from tats_env.export import FeatureEncoder, _write_checksums, export_encoder, key_table, load_encoder, verify_export
from tats_env.mae import VideoMAE, tube_mask

MEAN, STD = (0.45, 0.40, 0.35), (0.22, 0.25, 0.28)
HF_MAX_ABS_DIFF = 1e-4


@pytest.fixture(scope="module")
def cfg():
    return get_preset("tiny", num_frames=8, image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2,
                      decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, mean=MEAN, std=STD)


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    mae = VideoMAE(cfg).eval()
    with torch.no_grad():  # VideoMAE initialises q/v biases to zero: make them count
        for name, param in mae.named_parameters():
            if name.endswith(("q_bias", "v_bias")) or name.endswith("norm.bias"):
                param.normal_()
    return mae


@pytest.fixture(scope="module")
def videos(cfg):
    v = cfg.video
    return torch.randn(2, 3, v.num_frames, v.image_size, v.image_size, generator=torch.Generator().manual_seed(1))


def pre_norm_features(mae: VideoMAE, videos: torch.Tensor) -> torch.Tensor:
    """Reference: our encoder's last block output, before ``encoder.norm``, computed by hand."""
    enc = mae.encoder
    x = enc.patch_embed(videos) + enc.pos_embed
    for block in enc.blocks:
        x = block(x)
    return x


def test_hf_parity_with_transformers(tmp_path, cfg, model, videos):
    out = export_encoder(model, tmp_path / "hf", format="hf")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "SHA256SUMS", "config.json", "model.safetensors", "preprocessor_config.json"]
    hf, info = transformers.VideoMAEForVideoClassification.from_pretrained(
        out, num_labels=5, output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias", "fc_norm.weight", "fc_norm.bias"}
    assert set(info["unexpected_keys"]) == set()
    assert set(info["mismatched_keys"]) == set()
    assert hf.config.layer_norm_eps == 1e-6 and hf.config.use_mean_pooling

    # the q/v biases arrive (renamed by transformers 5 to query.bias / value.bias), non-zero
    for i, layer in enumerate(hf.videomae.encoder.layer):
        ours = model.encoder.blocks[i].attn
        theirs = layer.attention.attention
        assert theirs.query.bias.abs().sum() > 0 and theirs.value.bias.abs().sum() > 0
        torch.testing.assert_close(theirs.query.bias, ours.q_bias, rtol=0, atol=0)
        torch.testing.assert_close(theirs.value.bias, ours.v_bias, rtol=0, atol=0)
        assert theirs.key.bias is None
        d = cfg.embed_dim
        torch.testing.assert_close(theirs.key.weight, ours.qkv.weight[d:2 * d], rtol=0, atol=0)

    encoder = load_encoder(export_encoder(model, tmp_path / "native"))
    eager = transformers.VideoMAEForVideoClassification.from_pretrained(out, num_labels=5, attn_implementation="eager")
    with torch.no_grad():
        ours = encoder(videos)
        reference = pre_norm_features(model, videos)
        assert ours.shape == (2, cfg.video.num_tokens, cfg.embed_dim)
        for name, hf_model in (("sdpa", hf), ("eager", eager)):
            result = hf_model.eval()(videos.permute(0, 2, 1, 3, 4), output_hidden_states=True)  # (B, T, C, H, W)
            diff = (result.hidden_states[-1] - ours).abs().max().item()
            print(f"HF ({name}) hidden_states[-1] vs load_encoder features: max abs diff {diff:.3e}")
            assert diff < HF_MAX_ABS_DIFF
    assert (ours - reference).abs().max().item() < 1e-5
    # the pre-training norm really is excluded: with it the features differ
    assert (load_encoder(tmp_path / "native", final_norm=True)(videos) - ours).abs().max() > 0.1

    processor = transformers.VideoMAEImageProcessor.from_pretrained(out)
    assert tuple(processor.image_mean) == pytest.approx(MEAN) and tuple(processor.image_std) == pytest.approx(STD)
    frames = list(np.random.default_rng(0).integers(0, 256, (cfg.video.num_frames, 32, 32, 3), dtype=np.uint8))
    pixels = processor(frames, return_tensors="pt")["pixel_values"]  # (1, T, C, H, W)
    expected = (torch.from_numpy(np.stack(frames)).float() / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(pixels[0], expected.permute(0, 3, 1, 2), atol=1e-5, rtol=0)


def test_hf_pretraining_export_matches_our_decoder(tmp_path, cfg, model, videos):
    out = export_encoder(model, tmp_path / "hf_pre", format="hf", include_decoder=True)
    hf, info = transformers.VideoMAEForPreTraining.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    mask = tube_mask(videos, cfg.video, 0.75, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(videos, mask).pred
        theirs = hf.eval()(videos.permute(0, 2, 1, 3, 4), bool_masked_pos=mask).logits
    # HF's decoder.norm uses LayerNorm's default eps 1e-5 (ours 1e-6): a ~1e-5 difference
    assert (ours - theirs).abs().max().item() < 1e-4


def test_native_round_trip(tmp_path, cfg, model, videos):
    out = export_encoder(model, tmp_path / "native")
    meta = json.loads((out / "config.json").read_text())
    assert meta["format"] == "native" and meta["format_version"] == 1 and meta["mae_config"] == json.loads(
        json.dumps(cfg.to_dict()))
    keys = set(load_file(out / "model.safetensors"))
    assert all(k.startswith("encoder.") for k in keys) and "encoder.norm.weight" in keys
    encoder = load_encoder(out)
    assert isinstance(encoder, FeatureEncoder) and not encoder.training
    with torch.no_grad():
        torch.testing.assert_close(encoder(videos), pre_norm_features(model, videos))
        torch.testing.assert_close(load_encoder(out, final_norm=True)(videos), model.encoder(videos))
    # an export is itself a source; a FeatureEncoder too; the decoder only when asked
    again = export_encoder(out, tmp_path / "again")
    assert load_file(again / "model.safetensors").keys() == keys
    assert set(load_file(export_encoder(encoder, tmp_path / "from_module") / "model.safetensors")) == keys
    full = set(load_file(export_encoder(model, tmp_path / "full", include_decoder=True) / "model.safetensors"))
    assert full == set(model.state_dict())
    with pytest.raises(ValueError, match="no decoder"):
        export_encoder(encoder, tmp_path / "nodec", include_decoder=True)


def test_videomae_format_keys_and_round_trip(tmp_path, cfg, model, videos):
    out = export_encoder(model, tmp_path / "vm", format="videomae")
    ckpt = torch.load(out / "checkpoint.pth", weights_only=True)
    state = ckpt["model"]
    names = [row.theirs[0] for row in key_table(cfg, "videomae")]
    assert list(state) == names
    for key in ("encoder.patch_embed.proj.weight", "encoder.blocks.1.attn.qkv.weight", "encoder.blocks.1.attn.q_bias",
                "encoder.blocks.1.attn.v_bias", "encoder.blocks.1.mlp.fc2.bias", "encoder.norm.weight"):
        torch.testing.assert_close(state[key], model.state_dict()[key], rtol=0, atol=0)
    assert not any("k_bias" in k or k.startswith("decoder.") for k in state)
    # what VideoMAE's fine-tuning script does: strip "encoder." and load into the ViT
    vit = FeatureEncoder(cfg)
    vit.load_state_dict({k[len("encoder."):]: v for k, v in state.items()})
    meta = json.loads((out / "config.json").read_text())
    assert meta["format"] == "videomae" and meta["videomae_args"]["num_frames"] == 8
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(out)(videos), pre_norm_features(model, videos))
    with_dec = torch.load(export_encoder(model, tmp_path / "vm_dec", "videomae", True) / "checkpoint.pth")["model"]
    assert set(with_dec) == set(model.state_dict())


def test_shape_mismatch_names_key_expected_and_actual(tmp_path, model):
    out = export_encoder(model, tmp_path / "native")
    tensors = load_file(out / "model.safetensors")
    tensors["encoder.blocks.1.mlp.fc1.weight"] = torch.zeros(100, 64)
    save_file(tensors, str(out / "model.safetensors"))
    _write_checksums(out)  # a consistent but wrong export: the shape check must still catch it
    expected = r"encoder\.blocks\.1\.mlp\.fc1\.weight.*expected shape \(256, 64\), got \(100, 64\)"
    with pytest.raises(ValueError, match=expected):
        load_encoder(out)

    vm = export_encoder(model, tmp_path / "vm", format="videomae")
    ckpt = torch.load(vm / "checkpoint.pth", weights_only=True)
    ckpt["model"]["encoder.blocks.0.attn.q_bias"] = torch.zeros(65)
    torch.save(ckpt, vm / "checkpoint.pth")
    _write_checksums(vm)
    with pytest.raises(ValueError, match=r"encoder\.blocks\.0\.attn\.q_bias.*expected shape \(64,\), got \(65,\)"):
        load_encoder(vm)

    meta_path = export_encoder(model, tmp_path / "deeper") / "config.json"
    meta = json.loads(meta_path.read_text())
    meta["mae_config"]["depth"] = 3
    meta_path.write_text(json.dumps(meta))
    _write_checksums(meta_path.parent)
    with pytest.raises(ValueError, match=r"missing key 'encoder\.blocks\.2\.norm1\.weight'"):
        load_encoder(meta_path.parent)


def test_overwrite_refusal_and_atomic_write(tmp_path, model, monkeypatch):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_encoder(model, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    import tats_env.export as export_module

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export_encoder(model, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # old content intact
    monkeypatch.undo()

    export_encoder(model, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", "config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temp or backup left behind
    empty = tmp_path / "empty"
    empty.mkdir()
    export_encoder(model, empty)  # an empty directory is fine without overwrite


def test_training_checkpoint_source(tmp_path, cfg, model, videos):
    path = tmp_path / "ckpt.pt"
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # saved from a DDP wrapper
    torch.save({"mae_config": cfg.to_dict(), "mae_state": state, "step": 7}, path)
    out = export_encoder(path, tmp_path / "from_ckpt", format="videomae")
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(out)(videos), pre_norm_features(model, videos))
        torch.testing.assert_close(load_encoder(path)(videos), pre_norm_features(model, videos))

    unsafe = tmp_path / "unsafe.pt"
    torch.save({"mae_config": cfg.to_dict(), "mae_state": model.state_dict(), "args": argparse.Namespace(lr=1)},
               unsafe)
    with pytest.raises(ValueError, match="trust_pickle"):
        export_encoder(unsafe, tmp_path / "x")
    export_encoder(unsafe, tmp_path / "x", trust_pickle=True)

    torch.save({"model": model.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="mae_config"):
        export_encoder(tmp_path / "other.pt", tmp_path / "y")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(ValueError, match="not a tats_env native or videomae export"):
        load_encoder(tmp_path / "foreign")
    with pytest.raises(ValueError, match="Hugging Face"):
        load_encoder(export_encoder(model, tmp_path / "hf", format="hf"))
    with pytest.raises(ValueError, match="unknown export format"):
        export_encoder(model, tmp_path / "z", format="onnx")  # type: ignore[arg-type]


def test_cli(tmp_path, cfg, model, capsys, monkeypatch):
    import importlib.util

    script = Path(__file__).parents[1] / "experiments" / "export_encoder.py"
    spec = importlib.util.spec_from_file_location("export_cli", script)
    cli = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, cli)  # tyro resolves the Args annotations through sys.modules
    spec.loader.exec_module(cli)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"mae_config": cfg.to_dict(), "mae_state": model.state_dict()}, ckpt)
    out = cli.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "hf"), "--format", "hf", "--include-decoder"])
    assert f"to {out}" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["architectures"] == ["VideoMAEForPreTraining"]


def test_missing_and_foreign_files_say_what_is_wrong(tmp_path, cfg, model, capsys, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"nope.pt: file not found"):
        export_encoder(tmp_path / "nope.pt", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match=r"nope: file not found"):
        load_encoder(tmp_path / "nope")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all" * 10)
    with pytest.raises(ValueError, match=r"garbage.pt: not a checkpoint") as info:
        load_encoder(garbage)
    assert "trust" not in str(info.value)  # unpickling would not help: do not suggest it

    import importlib.util

    script = Path(__file__).parents[1] / "experiments" / "export_encoder.py"
    spec = importlib.util.spec_from_file_location("export_cli_errors", script)
    cli = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, cli)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--checkpoint", str(tmp_path / "runs" / "checkpoint.pt"), "--out", str(tmp_path / "native")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt: file not found" in err and "config.json" not in err


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, cfg, model):
    broken = VideoMAE(cfg)
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        broken.encoder.blocks[1].mlp.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"'encoder.blocks.1.mlp.fc1.weight'.*NaN/inf"):
        export_encoder(broken, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()

    good = export_encoder(model, tmp_path / "native")  # the same files with an inf written into them
    weights = load_file(good / "model.safetensors")
    weights["encoder.patch_embed.proj.bias"][3] = float("inf")
    save_file(weights, str(good / "model.safetensors"))
    (good / "SHA256SUMS").unlink()  # as if written before checksums (else the checksum refuses it first)
    with pytest.warns(UserWarning, match="no SHA256SUMS"), pytest.raises(ValueError, match=r"'encoder.patch_embed.proj.bias'"):
        load_encoder(good)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"mae_config": cfg.to_dict(), "mae_state": broken.state_dict()}, ckpt)
    with pytest.raises(ValueError, match=r"encoder.blocks.1.mlp.fc1.weight"):
        export_encoder(ckpt, tmp_path / "from_ckpt")


def test_separable_positions_round_trip_natively_and_refuse_other_formats(tmp_path, cfg, videos):
    import dataclasses

    cfg3 = dataclasses.replace(cfg, pos_embed="3d")
    torch.manual_seed(0)
    mae = VideoMAE(cfg3).eval()
    encoder = load_encoder(export_encoder(mae, tmp_path / "native"))
    assert encoder.cfg.pos_embed == "3d"
    with torch.no_grad():
        torch.testing.assert_close(encoder(videos), pre_norm_features(mae, videos), rtol=0, atol=0)
    for fmt in ("hf", "videomae"):
        with pytest.raises(ValueError, match="3-D.*1-D sin-cos table"):
            export_encoder(mae, tmp_path / fmt, format=fmt)
        assert not (tmp_path / fmt).exists()


def test_corrupted_byte_range_is_refused_naming_the_file(tmp_path, model):
    out = export_encoder(model, tmp_path / "native")
    assert verify_export(out)
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-64:-32] = bytes(32)  # zero a byte range inside the tensor data: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model\.safetensors: SHA-256 differs"):
        load_encoder(out)
    (out / "SHA256SUMS").unlink()
    with pytest.warns(UserWarning, match="no SHA256SUMS"):
        load_encoder(out)  # an old export without checksums still loads, with a warning


def test_truncated_safetensors_error_names_the_file(tmp_path, model):
    out = export_encoder(model, tmp_path / "native")
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (out / "SHA256SUMS").unlink()  # the safetensors reader itself must name the file
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"native/model\.safetensors: not a readable"):
        load_encoder(out)


def test_export_cli_truncated_export_is_one_error_line(tmp_path, model, capsys, monkeypatch):
    import importlib.util

    out = export_encoder(model, tmp_path / "native")
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    script = Path(__file__).parents[1] / "experiments" / "export_encoder.py"
    spec = importlib.util.spec_from_file_location("export_cli_truncated", script)
    cli = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, cli)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--checkpoint", str(out), "--out", str(tmp_path / "hf"), "--format", "hf"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("export_encoder.py: error:") and "model.safetensors" in err[0]


@pytest.mark.parametrize("fmt", ["native", "videomae", "hf"])
def test_export_files_are_readable_by_all(tmp_path, model, fmt):
    out = export_encoder(model, tmp_path / fmt, format=fmt)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert all(mode & 0o044 == 0o044 for mode in modes.values()), modes


def test_hf_export_has_labels_and_card_from_the_checkpoint(tmp_path, cfg, model):
    run_config = {"method": "ppo_tats", "total_steps": 16, "warmup_steps": 16, "num_envs": 2,
                  "warmup_masker": "tube", "sampler": {"direction": "hard"},
                  "env": {"data": "synthetic", "mask_ratio": 0.9, "seed": 3, "preset": "tiny"}}
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    torch.save({"mae_config": cfg.to_dict(), "mae_state": model.state_dict(), "config": run_config,
                "warmup_done": 16, "num_timesteps": 16}, ckpt)
    (ckpt.parent / "summary.json").write_text(json.dumps({"clips": 32, "motion_lift": {
        "first_quarter": 0.1, "last_quarter": 0.25, "direction": "hard"}}))
    out = export_encoder(ckpt, tmp_path / "hf", format="hf")
    hf_cfg = json.loads((out / "config.json").read_text())
    assert hf_cfg["id2label"]["0"] and hf_cfg["label2id"][hf_cfg["id2label"]["0"]] == 0
    card = (out / "README.md").read_text()
    assert "ppo_tats" in card and "last quarter 0.250" in card and "--config tats_training_config.json" in card
    assert json.loads((out / "tats_training_config.json").read_text()) == run_config

    bare = (export_encoder(model, tmp_path / "bare", format="hf") / "README.md").read_text()
    assert "Not known" in bare and "## Command" not in bare
    assert "id2label" not in json.loads((tmp_path / "bare" / "config.json").read_text())
