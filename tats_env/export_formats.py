"""The three export formats' layouts: every tensor's name and shape per format, and their config files.

:func:`key_table` lists each tensor of our state dict with its name in ``native`` (ours), ``videomae`` (the
original VideoMAE pre-training names) or ``hf`` (``transformers`` VideoMAE, the fused qkv split in three);
:func:`check_state_dict` names every missing, unexpected or wrongly shaped key. :func:`hf_config`,
:func:`hf_preprocessor`, :func:`hf_labels` and :func:`videomae_args` are the config files written beside the
weights. :mod:`tats_env.export` writes and reads the exports with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tats_env.config import MAEConfig
from tats_env.export_info import FORMATS, ExportFormat

__all__ = ["KeyRow", "key_table", "check_state_dict", "rename_keys", "unrename_keys", "strip_wrappers",
           "videomae_args", "hf_config", "hf_preprocessor", "hf_labels"]

_QKV = ("attention.attention.query.weight", "attention.attention.key.weight", "attention.attention.value.weight")
# One transformer block: (our suffix, original VideoMAE suffix, HF suffixes, shape from (width, mlp width)).
# Three HF names = our fused qkv weight split into equal row thirds (q, k, v). HF keeps the
# legacy ``q_bias``/``v_bias`` names of the released checkpoints: transformers 4.x has those
# parameters, 5.x renames them to ``query.bias``/``value.bias`` while loading.
_BLOCK_ROWS: tuple[tuple[str, str, tuple[str, ...], Callable[[int, int], tuple[int, ...]]], ...] = (
    ("norm1.weight", "norm1.weight", ("layernorm_before.weight",), lambda d, h: (d,)),
    ("norm1.bias", "norm1.bias", ("layernorm_before.bias",), lambda d, h: (d,)),
    ("attn.qkv.weight", "attn.qkv.weight", _QKV, lambda d, h: (3 * d, d)),
    ("attn.q_bias", "attn.q_bias", ("attention.attention.q_bias",), lambda d, h: (d,)),
    ("attn.v_bias", "attn.v_bias", ("attention.attention.v_bias",), lambda d, h: (d,)),
    ("attn.proj.weight", "attn.proj.weight", ("attention.output.dense.weight",), lambda d, h: (d, d)),
    ("attn.proj.bias", "attn.proj.bias", ("attention.output.dense.bias",), lambda d, h: (d,)),
    ("norm2.weight", "norm2.weight", ("layernorm_after.weight",), lambda d, h: (d,)),
    ("norm2.bias", "norm2.bias", ("layernorm_after.bias",), lambda d, h: (d,)),
    ("mlp.fc1.weight", "mlp.fc1.weight", ("intermediate.dense.weight",), lambda d, h: (h, d)),
    ("mlp.fc1.bias", "mlp.fc1.bias", ("intermediate.dense.bias",), lambda d, h: (h,)),
    ("mlp.fc2.weight", "mlp.fc2.weight", ("output.dense.weight",), lambda d, h: (d, h)),
    ("mlp.fc2.bias", "mlp.fc2.bias", ("output.dense.bias",), lambda d, h: (d,)),
)


@dataclass(frozen=True)
class KeyRow:
    """One tensor of our state dict: its name, shape, and the name(s) it gets in a format."""

    ours: str
    """Our parameter name (``VideoMAE.state_dict()``)."""
    theirs: tuple[str, ...]
    """Name in the target format; three names split dim 0 in thirds; none = not exported."""
    shape: tuple[int, ...]
    """Shape the config implies for our tensor."""


def key_table(cfg: MAEConfig, fmt: ExportFormat, include_decoder: bool = False) -> list[KeyRow]:
    """Every tensor an export of ``cfg`` holds, with its name in ``fmt`` and its expected shape."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    v, d, dd = cfg.video, cfg.embed_dim, cfg.decoder_embed_dim
    hf = fmt == "hf"
    rows: list[KeyRow] = []

    def add(ours: str, original: str, hf_names: tuple[str, ...], shape: tuple[int, ...]) -> None:
        names = hf_names if hf else (original,) if fmt == "videomae" else (ours,)
        rows.append(KeyRow(ours, names, shape))

    def add_blocks(ours_prefix: str, hf_prefix: str, depth: int, width: int) -> None:
        for i in range(depth):
            for ours, original, hf_names, shape in _BLOCK_ROWS:
                if not cfg.qkv_bias and ours in ("attn.q_bias", "attn.v_bias"):
                    continue
                add(f"{ours_prefix}.{i}.{ours}", f"{ours_prefix}.{i}.{original}",
                    tuple(f"{hf_prefix}.{i}.{n}" for n in hf_names), shape(width, int(width * cfg.mlp_ratio)))

    kernel = (v.in_chans, v.tubelet_size, v.patch_size, v.patch_size)
    add("encoder.patch_embed.proj.weight", "encoder.patch_embed.proj.weight",
        ("videomae.embeddings.patch_embeddings.projection.weight",), (d, *kernel))
    add("encoder.patch_embed.proj.bias", "encoder.patch_embed.proj.bias",
        ("videomae.embeddings.patch_embeddings.projection.bias",), (d,))
    add_blocks("encoder.blocks", "videomae.encoder.layer", cfg.depth, d)
    # HF with mean pooling has no final encoder LayerNorm (see the module docstring).
    final_norm = ("videomae.layernorm.{}",) if include_decoder else ()
    for p in ("weight", "bias"):
        add(f"encoder.norm.{p}", f"encoder.norm.{p}", tuple(n.format(p) for n in final_norm), (d,))
    if include_decoder:
        add("encoder_to_decoder.weight", "encoder_to_decoder.weight", ("encoder_to_decoder.weight",), (dd, d))
        add("mask_token", "mask_token", ("mask_token",), (1, 1, dd))
        add_blocks("decoder.blocks", "decoder.decoder_layers", cfg.decoder_depth, dd)
        for p in ("weight", "bias"):
            add(f"decoder.norm.{p}", f"decoder.norm.{p}", (f"decoder.norm.{p}",), (dd,))
        add("decoder.head.weight", "decoder.head.weight", ("decoder.head.weight",), (v.patch_dim, dd))
        add("decoder.head.bias", "decoder.head.bias", ("decoder.head.bias",), (v.patch_dim,))
    return rows


def check_state_dict(state: dict[str, Tensor], rows: list[KeyRow], source: str, use_theirs: bool = False) -> None:
    """Raise ``ValueError`` listing missing, unexpected and wrongly shaped keys of ``state``.

    ``use_theirs`` checks a state dict written in the format's names (a split qkv row expects
    three tensors of a third of the rows each).
    """
    expected: dict[str, tuple[int, ...]] = {}
    for row in rows:
        if not use_theirs:
            expected[row.ours] = row.shape
        for name in row.theirs if use_theirs else ():
            expected[name] = (row.shape[0] // len(row.theirs), *row.shape[1:])
    problems = [f"missing key {k!r} (expected shape {s})" for k, s in expected.items() if k not in state]
    problems += [f"unexpected key {k!r}" for k in state if k not in expected]
    problems += [
        f"key {k!r}: expected shape {s}, got {tuple(state[k].shape)}"
        for k, s in expected.items() if k in state and tuple(state[k].shape) != s
    ]
    if problems:
        raise ValueError(f"{source} does not match its config:\n  " + "\n  ".join(problems))


def rename_keys(state: dict[str, Tensor], rows: list[KeyRow]) -> dict[str, Tensor]:
    """Our state dict -> the format's names, splitting fused rows; contiguous copies."""
    out: dict[str, Tensor] = {}
    for row in rows:
        tensor = state[row.ours].detach().cpu()
        assert tuple(tensor.shape) == row.shape, (row.ours, row.shape, tuple(tensor.shape))
        for name, part in zip(row.theirs, tensor.chunk(len(row.theirs), dim=0) if row.theirs else (), strict=True):
            out[name] = part.contiguous().clone()
    return out


def unrename_keys(state: dict[str, Tensor], rows: list[KeyRow]) -> dict[str, Tensor]:
    """Inverse of :func:`rename_keys` for rows whose tensors are all present."""
    return {row.ours: torch.cat([state[n] for n in row.theirs], dim=0) if len(row.theirs) > 1
            else state[row.theirs[0]] for row in rows if row.theirs}


def strip_wrappers(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop the ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes when every key has one."""
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def videomae_args(cfg: MAEConfig) -> dict:
    """The arguments VideoMAE's fine-tuning script needs to rebuild this encoder."""
    v = cfg.video
    sizes = {(384, 12, 6): "vit_small", (768, 12, 12): "vit_base", (1024, 24, 16): "vit_large"}
    name = sizes.get((cfg.embed_dim, cfg.depth, cfg.num_heads))
    return {
        "model": f"{name}_patch{v.patch_size}_{v.image_size}" if name else None,
        "input_size": v.image_size, "num_frames": v.num_frames, "tubelet_size": v.tubelet_size,
        "patch_size": v.patch_size, "embed_dim": cfg.embed_dim, "depth": cfg.depth, "num_heads": cfg.num_heads,
        "mlp_ratio": cfg.mlp_ratio, "qkv_bias": cfg.qkv_bias, "layer_norm_eps": cfg.layer_norm_eps,
        "sampling_rate": v.sampling_rate, "mean": list(v.mean), "std": list(v.std),
    }


def hf_config(cfg: MAEConfig, include_decoder: bool) -> dict:
    """A ``transformers.VideoMAEConfig`` dictionary for ``cfg``."""
    v = cfg.video
    return {
        "architectures": ["VideoMAEForPreTraining" if include_decoder else "VideoMAEModel"],
        "model_type": "videomae",
        "image_size": v.image_size, "patch_size": v.patch_size, "num_channels": v.in_chans,
        "num_frames": v.num_frames, "tubelet_size": v.tubelet_size,
        "hidden_size": cfg.embed_dim, "num_hidden_layers": cfg.depth, "num_attention_heads": cfg.num_heads,
        "intermediate_size": int(cfg.embed_dim * cfg.mlp_ratio), "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
        "layer_norm_eps": cfg.layer_norm_eps,
        "qkv_bias": cfg.qkv_bias,  # transformers 4.x name
        "qv_bias": cfg.qkv_bias,  # transformers 5.x name
        "use_mean_pooling": not include_decoder,
        "decoder_hidden_size": cfg.decoder_embed_dim, "decoder_num_hidden_layers": cfg.decoder_depth,
        "decoder_num_attention_heads": cfg.decoder_num_heads,
        "decoder_intermediate_size": int(cfg.decoder_embed_dim * cfg.mlp_ratio),
        "norm_pix_loss": cfg.norm_pix_loss, "torch_dtype": "float32",
    }


def hf_preprocessor(cfg: MAEConfig) -> dict:
    """``VideoMAEImageProcessor`` settings: resize the short side, centre crop, training mean/std."""
    v = cfg.video
    return {
        "image_processor_type": "VideoMAEImageProcessor",
        "do_resize": True, "size": {"shortest_edge": v.image_size}, "resample": 2,  # bilinear
        "do_center_crop": True, "crop_size": {"height": v.image_size, "width": v.image_size},
        "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": list(v.mean), "image_std": list(v.std),
    }


def hf_labels(class_names: Sequence[str] | None) -> dict:
    """``id2label``/``label2id`` of a ``transformers`` config (none when the class names are not known)."""
    if not class_names:
        return {}
    return {"id2label": {str(i): name for i, name in enumerate(class_names)},
            "label2id": {name: i for i, name in enumerate(class_names)}}
