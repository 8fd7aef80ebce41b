"""Speed of one VideoMAE pre-training step (forward, backward, AdamW): ours with and without dual masking vs transformers.

    python experiments/bench_mae.py --preset tiny --batch-size 8
    python experiments/bench_mae.py --preset small --batch-size 2 --num-frames 16 --image-size 112
    python experiments/bench_mae.py --preset base --batch-size 64 --device cuda   # GPU figure

Prints clips/s and peak memory, side by side in one run, for our ``VideoMAE`` with VideoMAE V2 dual masking
(``--decoder-mask-ratio``, running-cell choice of the decoded tokens), without it, and, when ``transformers`` is
importable, ``VideoMAEForPreTraining`` at the same config, same tube mask and same batch, plus the ratios to
transformers. bf16 autocast on CUDA.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch

from tats_env.device import resolve_device
from tats_env.timing import StepStats, markdown_table, measure, run_isolated
from tats_env.utils import autocast_context
from tats_env.commandline import parse
from tats_env.config import MAEConfig, get_preset
from tats_env.mae import VideoMAE, tube_mask
from tats_env.mae.masking import decoder_subset
from tats_env.env.engine import FUSED_ADAMW_DEVICES

OURS, DUAL, HF = "tats_env VideoMAE", "tats_env VideoMAE, dual masking", "transformers VideoMAEForPreTraining"


@dataclass
class Args:
    """Benchmark one MAE pre-training step for a preset, batch and mask ratio."""

    preset: str = "tiny"
    """Model preset: tiny, small, base or large."""
    batch_size: int = 8
    """Clips per step."""
    mask_ratio: float = 0.9
    """Share of tokens masked (tube masking, exact count)."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps."""
    steps: int = 10
    """Timed steps per candidate."""
    warmup: int = 3
    """Untimed steps first (kernel selection, allocator warm-up)."""
    num_frames: int | None = None
    """Override the preset's frames per clip."""
    image_size: int | None = None
    """Override the preset's clip side."""
    use_checkpoint: bool = False
    """Activation checkpointing in our model."""
    transformers_baseline: bool = True
    """Also time transformers.VideoMAEForPreTraining when it is installed."""
    isolate: bool = True
    """On the CPU, time each candidate in its own process (its own peak RSS); --no-isolate runs them here."""
    decoder_mask_ratio: float = 0.5
    """Dual masking of the extra row of ours (VideoMAE V2's decoder masking ratio); 0 skips that row."""


def build_config(args: Args) -> MAEConfig:
    """The MAE config the benchmark runs: the preset with the overrides from ``args``."""
    over: dict[str, Any] = {"use_checkpoint": args.use_checkpoint}
    if args.num_frames:
        over["num_frames"] = args.num_frames
    if args.image_size:
        over["image_size"] = args.image_size
    return get_preset(args.preset, **over)


def _inputs(cfg: MAEConfig, batch: int, ratio: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    spec = cfg.video
    g = torch.Generator(device=device).manual_seed(0)
    videos = torch.randn(batch, 3, spec.num_frames, spec.image_size, spec.image_size, device=device, generator=g)
    return videos, tube_mask(videos, spec, ratio, generator=g)


def ours_step(cfg: MAEConfig, batch: int, ratio: float, device: torch.device,
              decoder_mask_ratio: float = 0.0) -> Callable[[], Callable[[], None]]:
    """A builder for our model's training step (with dual masking when ``decoder_mask_ratio > 0``)."""
    def build() -> Callable[[], None]:
        model = VideoMAE(cfg).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=device.type in FUSED_ADAMW_DEVICES)
        videos, mask = _inputs(cfg, batch, ratio, device)
        decoded = decoder_subset(mask, videos, cfg.video, decoder_mask_ratio) if decoder_mask_ratio > 0 else None

        def step() -> None:
            with autocast_context(device):
                loss = model(videos, mask, decoded).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step
    return build


def hf_step(cfg: MAEConfig, batch: int, ratio: float, device: torch.device) -> Callable[[], Callable[[], None]]:
    """A builder for ``transformers.VideoMAEForPreTraining`` at the same config (SDPA attention)."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    spec = cfg.video
    hf_cfg = VideoMAEConfig(
        image_size=spec.image_size, patch_size=spec.patch_size, num_channels=spec.in_chans,
        num_frames=spec.num_frames, tubelet_size=spec.tubelet_size, hidden_size=cfg.embed_dim,
        num_hidden_layers=cfg.depth, num_attention_heads=cfg.num_heads,
        intermediate_size=int(cfg.embed_dim * cfg.mlp_ratio), qkv_bias=cfg.qkv_bias,
        decoder_hidden_size=cfg.decoder_embed_dim, decoder_num_hidden_layers=cfg.decoder_depth,
        decoder_num_attention_heads=cfg.decoder_num_heads,
        decoder_intermediate_size=int(cfg.decoder_embed_dim * cfg.mlp_ratio),
        norm_pix_loss=cfg.norm_pix_loss, layer_norm_eps=cfg.layer_norm_eps, use_mean_pooling=False,
    )

    def build() -> Callable[[], None]:
        model = VideoMAEForPreTraining._from_config(hf_cfg, attn_implementation="sdpa").to(device).train()
        if cfg.use_checkpoint:
            model.gradient_checkpointing_enable()
        opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=device.type in FUSED_ADAMW_DEVICES)
        videos, mask = _inputs(cfg, batch, ratio, device)
        pixel_values = videos.transpose(1, 2).contiguous()  # transformers wants (B, T, C, H, W)

        def step() -> None:
            with autocast_context(device):
                loss = model(pixel_values, bool_masked_pos=mask).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step
    return build


def run_candidate(name: str, cfg_dict: dict[str, Any], args: Args) -> StepStats:
    """Measure one candidate (module level so it can run in a spawned process)."""
    cfg = MAEConfig.from_dict(cfg_dict)
    device = resolve_device(args.device)
    if name == HF:
        builder = hf_step(cfg, args.batch_size, args.mask_ratio, device)
    else:
        builder = ours_step(cfg, args.batch_size, args.mask_ratio, device, args.decoder_mask_ratio if name == DUAL else 0.0)
    return measure(name, builder, device, args.batch_size, args.steps, args.warmup)


def transformers_available() -> bool:
    """True when ``transformers`` imports."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> list[StepStats]:
    """Run the benchmark and print a Markdown table and the ratio ours/theirs."""
    args = parse(Args, argv)
    cfg = build_config(args)
    names = [OURS] + ([DUAL] if args.decoder_mask_ratio > 0 else [])
    if args.transformers_baseline and transformers_available():
        names.append(HF)
    device = resolve_device(args.device)
    spec = cfg.video
    print(f"preset={args.preset} clip={spec.num_frames}x{spec.image_size}x{spec.image_size} tokens={spec.num_tokens} "
          f"batch={args.batch_size} tube mask {args.mask_ratio} device={device} threads={torch.get_num_threads()}")
    results = []
    for name in names:
        if device.type == "cpu" and args.isolate:
            stats = run_isolated(run_candidate, name, cfg.to_dict(), dataclasses.replace(args))
        else:
            stats = run_candidate(name, cfg.to_dict(), args)
        results.append(stats)
    print(markdown_table([r.as_row() for r in results], ["name", "clips_per_s", "step_ms", "peak_mem_mb", "device", "batch_size"]))
    by_name = {r.name: r for r in results}
    if HF in by_name:
        theirs = by_name[HF]
        for name in (OURS, DUAL):
            if name in by_name:
                ours = by_name[name]
                print(f"ratio {name}/transformers: clips/s {ours.clips_per_s / theirs.clips_per_s:.2f}x, "
                      f"peak memory {ours.peak_mem_mb / max(theirs.peak_mem_mb, 1e-9):.2f}x")
    return results


if __name__ == "__main__":
    main()
