"""Encoder export in three formats, and loading an export back as a token-feature encoder.

* ``native``: ``config.json`` (format version + :meth:`MAEConfig.to_dict`) and ``model.safetensors``
  with our names (``encoder.*``; the pre-training head only with ``include_decoder=True``).
* ``videomae``: ``checkpoint.pth`` = ``{"model": state_dict}`` with the original VideoMAE
  pre-training names (what VideoMAE / AdaMAE ``run_class_finetuning.py`` loads after stripping
  ``encoder.``) and ``config.json`` with the matching VideoMAE arguments.
* ``hf``: a ``transformers`` VideoMAE directory (``config.json``, ``model.safetensors``,
  ``preprocessor_config.json`` with the training mean/std, ``id2label``/``label2id`` from the
  training data's class names when they are known, and a model card ``README.md``).

Every export also holds ``SHA256SUMS`` (the ``sha256sum`` format: ``sha256sum -c SHA256SUMS``
checks it by hand). :func:`load_encoder` verifies it before reading any weights and names the
file whose bytes changed; an export written before checksums existed loads with a warning.
What is known about the training run (its config, its summary, the data's class names: a
:class:`Provenance`) travels with native and videomae exports in ``config.json`` and ends up in
the model card of an ``hf`` export made from them.

The features. Our pre-training encoder ends in a LayerNorm (``encoder.norm``) that feeds the
decoder. The VideoMAE fine-tuning recipe drops it (mean pooling, then a fresh ``fc_norm``) and so
does ``transformers`` with ``use_mean_pooling=True`` (``VideoMAEModel`` has no final LayerNorm,
the classifier owns ``fc_norm``). Therefore :func:`load_encoder` returns, by default, the output
of the last transformer block *before* ``encoder.norm``: exactly HF's ``last_hidden_state`` /
``hidden_states[-1]``. ``final_norm=True`` gives the pre-training encoder output instead. The
encoder-only ``hf`` export leaves ``encoder.norm`` out; with ``include_decoder=True`` it writes a
``VideoMAEForPreTraining`` directory with ``use_mean_pooling=False`` and ``encoder.norm`` as
``videomae.layernorm`` (the layout of the released ``MCG-NJU/videomae-*`` pre-trained weights).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import uuid
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from tats_env.config import MAEConfig
from tats_env.mae.model import FeatureEncoder, VideoEncoder, VideoMAE
from tats_env.export_formats import (
    KeyRow, check_state_dict, hf_config, hf_labels, hf_preprocessor, key_table, rename_keys, strip_wrappers,
    unrename_keys, videomae_args,
)
from tats_env.export_info import FORMATS, TRAINING_CONFIG_FILE, ExportFormat, Provenance, data_class_names, model_card
from tats_env.utils import nonfinite_tensors, replace_dir

__all__ = [
    "FORMATS", "FORMAT_VERSION", "FeatureEncoder", "KeyRow", "Provenance", "check_finite", "check_state_dict",
    "export_encoder", "key_table", "load_encoder", "verify_export",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VIDEOMAE_FILE = "checkpoint.pth"
PREPROCESSOR_FILE = "preprocessor_config.json"
CHECKSUM_FILE = "SHA256SUMS"
CARD_FILE = "README.md"
FILE_MODE = 0o644  # what tats_env.utils.atomic_write gives every other file it writes

def _unpickler_reason(err: Exception) -> str:
    """The line of torch's weights-only error that names the refused object (its message is long)."""
    lines = [line.strip() for line in str(err).splitlines() if "WeightsUnpickler error" in line]
    return f"({lines[0]})" if lines else ""


def _torch_load(path: Path, trust_pickle: bool) -> object:
    """``torch.load`` with errors that say what is wrong: not a torch file, or not weights-only readable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as err:  # noqa: BLE001 - torch.load raises anything (KeyError, RuntimeError, ...) on junk
        if not zipfile.is_zipfile(path):  # torch.save writes zip archives (since torch 1.6)
            raise ValueError(f"{path}: not a checkpoint (not a file written by torch.save)") from err
        if not isinstance(err, pickle.UnpicklingError):
            raise ValueError(f"{path}: not a readable checkpoint (truncated or corrupted? {err})") from err
        raise ValueError(
            f"{path} holds objects beyond tensors and plain containers, so it cannot be read with "
            f"weights_only=True (tats-env checkpoints written before numpy RNG states were stored as "
            f"lists are like that; resuming the run once rewrites it). If you trust the file, pass "
            f"trust_pickle=True (--trust-pickle). {_unpickler_reason(err)}"
        ) from err


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not an export directory")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_finite(state: dict[str, Tensor], source: str) -> None:
    """Raise ``ValueError`` naming the tensors of ``state`` that hold NaN or inf (a diverged run)."""
    bad = nonfinite_tensors(state)
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise ValueError(f"{source}: tensor {bad[0]!r}{more} holds NaN/inf values; refusing non-finite "
                         "weights (the run diverged: export an earlier checkpoint, or retrain with a lower lr)")


def _run_summary(ckpt_path: Path, ckpt: Mapping) -> dict | None:
    """The ``summary.json`` beside a training checkpoint when it reports exactly the checkpoint's clips."""
    path = ckpt_path.parent / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    clips = int(ckpt.get("warmup_done", 0)) + int(ckpt.get("num_timesteps", 0))
    if not isinstance(summary, dict) or summary.get("clips") != clips:
        return None  # written by another (earlier or later) state of the run
    return summary


def _checkpoint_provenance(path: Path, ckpt: Mapping) -> Provenance:
    """What a training checkpoint says about its run."""
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
    data = (config or {}).get("env", {}).get("data") if config else None
    return Provenance(config, _run_summary(path, ckpt), data_class_names(data), str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_checksums(folder: Path) -> None:
    """``SHA256SUMS`` of every file in ``folder`` (``sha256sum -c`` reads it)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != CHECKSUM_FILE)
    (folder / CHECKSUM_FILE).write_text("".join(f"{_sha256(p)}  {p.name}\n" for p in files))


def verify_export(folder: str | os.PathLike) -> bool:
    """Check every file listed in ``folder/SHA256SUMS``; ``False`` when the export has no checksums.

    Raises ``ValueError`` naming the first file that is missing or whose SHA-256 differs (a
    truncated, corrupted or edited file), and for a malformed ``SHA256SUMS``.
    """
    folder = Path(folder)
    sums = folder / CHECKSUM_FILE
    if not sums.is_file():
        return False
    for number, line in enumerate(sums.read_text().splitlines(), 1):
        expected, sep, name = line.partition("  ")
        if not sep or len(expected) != 64 or not name or "/" in name:
            raise ValueError(f"{sums}: line {number} is not '<sha256>  <file name>': {line!r}")
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{path}: missing (listed in {sums}); the export is incomplete, re-export it")
        if _sha256(path) != expected:
            raise ValueError(f"{path}: SHA-256 differs from {sums} (the file is truncated, corrupted or was "
                             "changed after export); re-export it")
    return True


def _warn_unchecked(folder: Path) -> None:
    """Say that an export without ``SHA256SUMS`` could not be checked for corruption."""
    warnings.warn(f"{folder} has no {CHECKSUM_FILE} (exported before checksums existed), so corrupted weights "
                  "cannot be detected; export it again to add them", UserWarning, stacklevel=4)


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    """``safetensors.torch.load_file`` with an error that names the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (the export is incomplete)")
    try:
        return load_file(path)
    except SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file (truncated or corrupted? {err})") from None


def _read_source(source: VideoMAE | VideoEncoder | str | os.PathLike, trust_pickle: bool = False,
                 ) -> tuple[MAEConfig, dict[str, Tensor], str, Provenance]:
    """``(config, state dict with our names, description, provenance)`` of a model, checkpoint or export.

    An export folder's ``SHA256SUMS`` is verified before anything in it is read.
    """
    if isinstance(source, VideoMAE):
        return source.cfg, dict(source.state_dict()), "VideoMAE model", Provenance()
    if isinstance(source, VideoEncoder):
        state = {f"encoder.{k}": v for k, v in source.state_dict().items()}
        return source.cfg, state, "VideoEncoder model", Provenance()
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    if path.is_file() and path.name not in (CONFIG_FILE, WEIGHTS_FILE, VIDEOMAE_FILE):
        ckpt = _torch_load(path, trust_pickle)
        if not isinstance(ckpt, dict) or "mae_config" not in ckpt or "mae_state" not in ckpt:
            keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
            raise ValueError(f"{path}: not a checkpoint of this project (a training checkpoint needs 'mae_config' "
                             f"and 'mae_state', found {keys})")
        state = strip_wrappers(dict(ckpt["mae_state"]))
        return MAEConfig.from_dict(ckpt["mae_config"]), state, str(path), _checkpoint_provenance(path, ckpt)
    folder = path.parent if path.is_file() else path
    if not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{folder / CONFIG_FILE} not found: not an export directory")
    checked = verify_export(folder)  # before anything in it is read
    meta = _read_json(folder / CONFIG_FILE)
    if meta.get("model_type") == "videomae":
        raise ValueError(f"{folder} is a Hugging Face export; load it with transformers.VideoMAEModel.from_pretrained")
    fmt = meta.get("format")
    if fmt not in ("native", "videomae") or "mae_config" not in meta:
        raise ValueError(f"{folder / CONFIG_FILE} is not a tats_env native or videomae export (format={fmt!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{folder}: format_version {meta['format_version']} is newer than this library's "
                         f"{FORMAT_VERSION}; upgrade tats_env")
    if not checked:
        _warn_unchecked(folder)
    cfg = MAEConfig.from_dict(meta["mae_config"])
    rows = key_table(cfg, fmt, bool(meta.get("include_decoder")))
    if fmt == "native":
        state = _load_safetensors(folder / WEIGHTS_FILE)
    elif fmt == "videomae":
        ckpt = _torch_load(folder / VIDEOMAE_FILE, trust_pickle)
        state = strip_wrappers(dict(ckpt["model"]))  # type: ignore[index]
        check_state_dict(state, rows, str(folder / VIDEOMAE_FILE), use_theirs=True)
        state = unrename_keys(state, rows)
    return cfg, state, str(folder), Provenance.from_dict(meta.get("provenance"))


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _merge_provenance(read: Provenance, given: Provenance | None) -> Provenance:
    """``given`` fields override what the source said; class names follow the training data when not given."""
    merged = read if given is None else Provenance(
        *(g if g is not None else r for g, r in zip(dataclasses.astuple(given), dataclasses.astuple(read))))
    if merged.class_names is None and merged.train_config is not None:
        names = data_class_names(merged.train_config.get("env", {}).get("data"))
        merged = dataclasses.replace(merged, class_names=names)
    return merged


def _write_files(tmp: Path, fmt: ExportFormat, tensors: dict[str, Tensor], cfg: MAEConfig, include_decoder: bool,
                 provenance: Provenance) -> None:
    """Every file of a ``fmt`` export into ``tmp``, then their checksums; readable by all (mode 0644)."""
    meta = {"format": fmt, "format_version": FORMAT_VERSION, "include_decoder": include_decoder,
            "mae_config": cfg.to_dict(), "provenance": provenance.to_dict()}
    if fmt == "native":
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        _write_json(tmp / CONFIG_FILE, meta)
    elif fmt == "videomae":
        torch.save({"model": tensors}, tmp / VIDEOMAE_FILE)
        _write_json(tmp / CONFIG_FILE, {**meta, "videomae_args": videomae_args(cfg)})
    else:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        _write_json(tmp / CONFIG_FILE, {**hf_config(cfg, include_decoder), **hf_labels(provenance.class_names)})
        _write_json(tmp / PREPROCESSOR_FILE, hf_preprocessor(cfg))
        if provenance.train_config is not None:
            _write_json(tmp / TRAINING_CONFIG_FILE, provenance.train_config)
        (tmp / CARD_FILE).write_text(model_card(cfg, provenance, include_decoder))
    _write_checksums(tmp)
    for path in tmp.iterdir():  # safetensors creates its file 0600
        path.chmod(FILE_MODE)


def export_encoder(
    source: VideoMAE | VideoEncoder | str | os.PathLike,
    out_dir: str | os.PathLike,
    format: ExportFormat = "native",
    include_decoder: bool = False,
    *,
    overwrite: bool = False,
    trust_pickle: bool = False,
    provenance: Provenance | None = None,
) -> Path:
    """Write the encoder of ``source`` to ``out_dir`` in ``format``; returns ``out_dir``.

    ``source``: a :class:`VideoMAE`, a :class:`VideoEncoder` (incl. :class:`FeatureEncoder`), a
    training checkpoint file (``{"mae_config", "mae_state", ...}``, read with
    ``weights_only=True`` unless ``trust_pickle``), or a native / videomae export directory.
    ``include_decoder`` adds ``encoder_to_decoder``, ``mask_token`` and ``decoder.*`` (the source
    must have them). Non-finite weights are refused (``ValueError`` naming the tensor). The
    directory is written beside ``out_dir`` and renamed into place; an existing non-empty
    ``out_dir`` is an error unless ``overwrite``. ``provenance`` fields that are set override what
    the source says about its training run (a checkpoint holds its config; a model object nothing);
    it feeds the model card and ``id2label`` of an ``hf`` export. Every export gets ``SHA256SUMS``.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {FORMATS}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    cfg, state, where, read = _read_source(source, trust_pickle)
    check_finite(state, where)
    if format != "native" and cfg.pos_embed != "1d":
        # Both formats rebuild VideoMAE's 1-D table from the sizes alone, so the features would
        # silently differ from ours.
        raise ValueError(
            f"{where} uses pos_embed={cfg.pos_embed!r} (separable 3-D positions), but the {format!r} format "
            "recomputes VideoMAE's 1-D sin-cos table on loading, so its features would not match; "
            "export it with format='native' (load_encoder reads it back)"
        )
    has_decoder = any(not k.startswith("encoder.") for k in state)
    if include_decoder and not has_decoder:
        raise ValueError(f"{where} has no decoder weights; export with include_decoder=False")
    check_state_dict(state, key_table(cfg, "native", has_decoder), where)
    tensors = rename_keys(state, key_table(cfg, format, include_decoder))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        _write_files(tmp, format, tensors, cfg, include_decoder, _merge_provenance(read, provenance))
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def load_encoder(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    final_norm: bool = False,
    drop_path_rate: float | None = None,
    trust_pickle: bool = False,
) -> FeatureEncoder:
    """Load a native or videomae export (or a training checkpoint) as a :class:`FeatureEncoder`.

    The format is read from the directory's ``config.json``; its ``SHA256SUMS`` must match (a
    ``ValueError`` names the file that changed; an export without checksums loads with a
    warning); a truncated or corrupted file raises ``ValueError`` naming it; every tensor is checked against
    the config, naming the key, expected and actual shape, and must be finite (a NaN/inf tensor
    raises ``ValueError`` naming it). The module is returned in eval mode
    on ``device``; ``drop_path_rate`` overrides the stochastic depth for fine-tuning.
    """
    cfg, state, where, _ = _read_source(path, trust_pickle)
    has_decoder = any(not k.startswith("encoder.") for k in state)
    check_state_dict(state, key_table(cfg, "native", has_decoder), where)
    check_finite(state, where)
    if drop_path_rate is not None:
        cfg = dataclasses.replace(cfg, drop_path_rate=drop_path_rate)
    model = FeatureEncoder(cfg, final_norm=final_norm)
    model.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    return model.to(device).eval()
