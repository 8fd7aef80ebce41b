"""Typed configuration: the video spec and the MAE sizes, with named presets.

One source of truth for sizes. Every other module takes a :class:`VideoSpec` or an
:class:`MAEConfig` instead of loose integers, and command-line tools build them with
:func:`get_preset` plus explicit overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

IMAGENET_DEFAULT_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VideoSpec:
    """Shape of one clip as the model sees it, and how it is cut into tokens."""

    num_frames: int = 16
    """Frames per clip, T."""
    image_size: int = 224
    """Height and width of the (square) clip after the transforms."""
    patch_size: int = 16
    """Spatial patch side p of one token."""
    tubelet_size: int = 2
    """Frames per token (VideoMAE's tubelet)."""
    sampling_rate: int = 4
    """Frame stride for K400-style window sampling (frames between two sampled frames)."""
    in_chans: int = 3
    """Colour channels."""
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    """Per-channel normalisation mean (0-1 pixel scale)."""
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD
    """Per-channel normalisation standard deviation (0-1 pixel scale)."""

    def __post_init__(self) -> None:
        if self.num_frames % self.tubelet_size:
            raise ValueError(
                f"num_frames={self.num_frames} must be a multiple of tubelet_size={self.tubelet_size}"
            )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}"
            )
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"mean/std need {self.in_chans} values, got {self.mean} / {self.std}")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid ``(T', H', W')`` = ``(T / tubelet, H / p, W / p)``."""
        side = self.image_size // self.patch_size
        return self.num_frames // self.tubelet_size, side, side

    @property
    def num_tokens(self) -> int:
        """Number of space-time tokens N of one clip."""
        t, h, w = self.grid
        return t * h * w

    @property
    def tokens_per_frame(self) -> int:
        """Spatial tokens per temporal slot, ``H' * W'``."""
        _, h, w = self.grid
        return h * w

    @property
    def patch_dim(self) -> int:
        """Values in one token's pixel patch, ``tubelet * p * p * C``."""
        return self.tubelet_size * self.patch_size**2 * self.in_chans

    @property
    def clip_span(self) -> int:
        """Source frames one K400-style clip covers, ``T * sampling_rate``."""
        return self.num_frames * self.sampling_rate

    def num_masked(self, mask_ratio: float) -> int:
        """Exact number of masked tokens K = round(mask_ratio * N), kept in [1, N - 1]."""
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        return min(max(int(round(mask_ratio * self.num_tokens)), 1), self.num_tokens - 1)


@dataclass(frozen=True)
class MAEConfig:
    """A VideoMAE encoder-decoder: sizes, regularisation and loss options."""

    video: VideoSpec = field(default_factory=VideoSpec)
    """Clip shape and tokenisation."""
    embed_dim: int = 768
    """Encoder width."""
    depth: int = 12
    """Encoder blocks."""
    num_heads: int = 12
    """Encoder attention heads."""
    decoder_embed_dim: int = 384
    """Decoder width."""
    decoder_depth: int = 4
    """Decoder blocks."""
    decoder_num_heads: int = 6
    """Decoder attention heads."""
    mlp_ratio: float = 4.0
    """MLP hidden width as a multiple of the block width."""
    qkv_bias: bool = True
    """Learn VideoMAE's separate ``q_bias`` and ``v_bias`` (the key has no bias)."""
    drop_path_rate: float = 0.0
    """Stochastic depth rate of the last encoder block (linear from 0)."""
    norm_pix_loss: bool = True
    """Regress per-patch normalised pixels (VideoMAE's default target)."""
    layer_norm_eps: float = 1e-6
    """LayerNorm epsilon (VideoMAE uses 1e-6)."""
    use_checkpoint: bool = False
    """Activation checkpointing of every block (saves memory, costs ~30% time)."""
    pos_embed: Literal["1d", "3d"] = "1d"
    """Fixed sin-cos positions: "1d" is VideoMAE's table over the flat token index (what the
    "videomae" and "hf" exports reproduce); "3d" gives time, height and width their own channel
    bands (native export only)."""

    def __post_init__(self) -> None:
        for width, heads, name in (
            (self.embed_dim, self.num_heads, "embed_dim"),
            (self.decoder_embed_dim, self.decoder_num_heads, "decoder_embed_dim"),
        ):
            if width % heads:
                raise ValueError(f"{name}={width} must be divisible by its number of heads {heads}")
        if self.pos_embed not in ("1d", "3d"):
            raise ValueError(f"pos_embed must be '1d' or '3d', got {self.pos_embed!r}")
        if self.pos_embed == "3d" and (self.embed_dim % 2 or self.decoder_embed_dim % 2):
            raise ValueError("pos_embed='3d' needs even embed_dim and decoder_embed_dim")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MAEConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError`` naming them."""
        data = dict(data)
        video = dict(data.pop("video", {}))
        for key in ("mean", "std"):
            if key in video:
                video[key] = tuple(video[key])
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown MAEConfig keys: {sorted(unknown)}")
        return cls(video=VideoSpec(**video), **data)


PRESETS: dict[str, MAEConfig] = {
    # CPU preset: 16x64x64 clips, 8x8 patches -> 8*8*8 = 512 tokens; trains in minutes on 2 cores.
    # Raw-pixel target: with 8x8 patches on the flat regions of small clips, per-patch
    # normalisation turns codec noise into the target (the loss stays at ~0.98 for every token);
    # raw pixels give the learnable signal where moving tokens are ~9x harder than static ones.
    "tiny": MAEConfig(
        video=VideoSpec(num_frames=16, image_size=64, patch_size=8, sampling_rate=2),
        embed_dim=192, depth=4, num_heads=3,
        decoder_embed_dim=96, decoder_depth=2, decoder_num_heads=3,
        norm_pix_loss=False,
    ),
    # CPU benchmark preset (issue 11): 8 frames at stride 2 of the 16-frame clips, 32x32 pixels,
    # 4x4 patches, tubelet 2 -> 4*8*8 = 256 tokens, a 128-wide 4-block encoder (2 heads). The
    # smallest configuration we measured where a ViT learns the synthetic motion classes from scratch
    # on CPU and where plain VideoMAE pre-training moves the frozen (quadrants) probe; decoder and
    # loss as in ``tiny``. ``tiny`` itself stays the env's default (the RL runs depend on it).
    "tiny32": MAEConfig(
        video=VideoSpec(num_frames=8, image_size=32, patch_size=4, tubelet_size=2, sampling_rate=2),
        embed_dim=128, depth=4, num_heads=2,
        decoder_embed_dim=96, decoder_depth=2, decoder_num_heads=3,
        norm_pix_loss=False,
    ),
    # VideoMAE ViT-S/16 (decoder 192 wide, 4 blocks).
    "small": MAEConfig(
        embed_dim=384, depth=12, num_heads=6,
        decoder_embed_dim=192, decoder_depth=4, decoder_num_heads=3,
    ),
    # VideoMAE ViT-B/16.
    "base": MAEConfig(
        embed_dim=768, depth=12, num_heads=12,
        decoder_embed_dim=384, decoder_depth=4, decoder_num_heads=6,
    ),
    # VideoMAE ViT-L/16.
    "large": MAEConfig(
        embed_dim=1024, depth=24, num_heads=16,
        decoder_embed_dim=512, decoder_depth=4, decoder_num_heads=8,
    ),
}


def get_preset(name: str, **overrides: Any) -> MAEConfig:
    """The named preset with field overrides; video fields may be overridden by name too.

    ``get_preset("base", num_frames=8, drop_path_rate=0.1)`` changes the clip length and the
    stochastic depth of ViT-B. Unknown names raise ``KeyError``/``TypeError`` naming them.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]
    video_fields = {f.name for f in dataclasses.fields(VideoSpec)}
    video_over = {k: v for k, v in overrides.items() if k in video_fields}
    model_over = {k: v for k, v in overrides.items() if k not in video_fields}
    model_fields = {f.name for f in dataclasses.fields(MAEConfig)}
    unknown = set(model_over) - model_fields
    if unknown:
        raise TypeError(f"unknown config fields {sorted(unknown)} for preset {name!r}")
    if video_over:
        model_over["video"] = dataclasses.replace(cfg.video, **video_over)
    return dataclasses.replace(cfg, **model_over)


def preset_with_overrides(name: str, items: tuple[str, ...] | list[str] = ()) -> MAEConfig:
    """:func:`get_preset` with command-line ``key=value`` overrides (values parsed as YAML scalars), e.g.
    ``("num_frames=16", "image_size=112")``; ``ValueError`` names an item without ``=``."""
    import yaml  # only the command lines that take overrides need it

    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--mae-overrides takes key=value items, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return get_preset(name, **overrides)
