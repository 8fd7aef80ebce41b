"""The torch-free half of the export: format names, what an export knows about its training run
(:class:`Provenance`), and the model card written from it (command lines import this, not torch).

A training checkpoint holds the run's config; its run folder's ``summary.json`` adds the motion
lift when it describes the same weights; the data's class names come from what is on disk
(:func:`data_class_names`). Native and videomae exports keep all of it in ``config.json`` so an
``hf`` export made from them later still has it. :func:`model_card` writes only what is known and
says so where something is not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tats_env.config import MAEConfig

__all__ = ["ExportFormat", "FORMATS", "Provenance", "TRAINING_CONFIG_FILE", "data_class_names", "model_card"]

ExportFormat = Literal["native", "videomae", "hf"]
FORMATS: tuple[str, ...] = ("native", "videomae", "hf")

TRAINING_CONFIG_FILE = "tats_training_config.json"
"""The run's config beside an ``hf`` export's model card (``train_ppo.py --config`` reads it)."""


@dataclass(frozen=True)
class Provenance:
    """What is known about how an exported model was trained; ``None`` = not known (never guessed)."""

    train_config: dict | None = None
    """The training run's configuration (its ``config.json``, or the checkpoint's ``config``)."""
    summary: dict | None = None
    """The run's ``summary.json`` (or the same fields), only when it describes exactly these weights."""
    class_names: tuple[str, ...] | None = None
    """Class names of the training data in label order (its ``classes.txt`` or class folders)."""
    source: str | None = None
    """Where the weights were read from (a checkpoint file, an export folder, a training run)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what native and videomae exports store under ``provenance``)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Provenance:
        """Inverse of :meth:`to_dict`; unknown keys are ignored (a newer library may add some)."""
        data = data or {}
        names = data.get("class_names")
        return cls(data.get("train_config"), data.get("summary"), tuple(names) if names else None, data.get("source"))


def _read_names(path: Path) -> tuple[str, ...] | None:
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    return names or None


def data_class_names(data: str | None) -> tuple[str, ...] | None:
    """Class names of a training ``--data`` value, from what is on disk (no data is generated or decoded).

    ``synthetic``: the generator's motion names. A folder: its ``classes.txt``, else (a video folder
    without list files) its class subfolders. A list file: the ``classes.txt`` beside it. Otherwise
    (or when the path no longer exists) ``None``: a list file's labels are numbers only.
    """
    from tats_env.data import folder_class_names
    from tats_env.data.synthetic import SyntheticConfig, class_names

    if data is None:
        return None
    if data == "synthetic":
        return tuple(class_names(SyntheticConfig().num_classes))
    path = Path(data).expanduser()
    folder = path if path.is_dir() else path.parent
    if path.exists() and (folder / "classes.txt").is_file():
        return _read_names(folder / "classes.txt")
    if path.is_dir() and not any(path.glob("*.txt")):
        try:
            return tuple(folder_class_names(path)) or None
        except (OSError, ValueError):
            return None
    return None


def _architecture(cfg: MAEConfig, include_decoder: bool) -> list[str]:
    v = cfg.video
    decoder = (f"included: {cfg.decoder_embed_dim} wide, {cfg.decoder_depth} blocks (`VideoMAEForPreTraining`)"
               if include_decoder else "not included (encoder only, `VideoMAEModel`)")
    return [
        f"- ViT encoder: {cfg.embed_dim} wide, {cfg.depth} blocks, {cfg.num_heads} heads, MLP ratio {cfg.mlp_ratio}",
        f"- input: {v.num_frames} frames of {v.image_size}x{v.image_size}, patch {v.patch_size}, tubelet "
        f"{v.tubelet_size} -> {v.num_tokens} tokens; pixel mean {list(v.mean)}, std {list(v.std)} "
        f"(`preprocessor_config.json`)",
        f"- decoder: {decoder}",
    ]


def _fmt(value: Any, se: Any) -> str:
    return "not measured" if value is None else f"{value:.3f}" + ("" if se is None else f" ± {se:.3f}")


def _motion_lift(summary: Mapping[str, Any] | None) -> str:
    if summary is None:
        return "not recorded (no run summary describing these weights)"
    lift = summary.get("motion_lift")
    if not isinstance(lift, Mapping):
        return "not recorded in the run summary"
    if lift.get("last_quarter") is None:
        return "not measured (fewer than 4 sampler steps, or data without foreground masks)"
    return (f"first quarter {_fmt(lift.get('first_quarter'), lift.get('first_quarter_se'))}, last quarter "
            f"{_fmt(lift.get('last_quarter'), lift.get('last_quarter_se'))} of the sampler phase "
            f"(direction `{lift.get('direction')}`; 0 = random masking, 1 = the best K-of-N mask)")


def _training(p: Provenance) -> list[str]:
    if p.train_config is None:
        return [f"Not known: the weights came from {p.source or 'a model in memory'} without the training run's "
                "configuration."]
    c, env = p.train_config, p.train_config.get("env", {})
    sampler = c.get("sampler", {})
    lines = [
        f"- method: `{c.get('method')}` (direction `{sampler.get('direction')}`), mask ratio {env.get('mask_ratio')}",
        f"- budget: {c.get('warmup_steps')} warm-up clips with the `{c.get('warmup_masker')}` masker, then "
        f"{c.get('total_steps')} sampler clips; {c.get('num_envs')} clips per step; seed {env.get('seed')}; "
        f"preset `{env.get('preset')}`",
        f"- data: `{env.get('data')}` (split `{env.get('split')}`, sampling `{env.get('sampling')}`)",
    ]
    if p.class_names:
        lines.append(f"- classes ({len(p.class_names)}, label order): {', '.join(p.class_names)}")
    else:
        lines.append("- class names: not known")
    lines.append(f"- motion lift: {_motion_lift(p.summary)}")
    if p.summary is not None and p.summary.get("clips") is not None:
        wall = p.summary.get("wall_time_s")
        lines.append(f"- trained clips: {p.summary['clips']}" + ("" if wall is None else f" in {wall} s"))
    lines.append(f"- full configuration: `{TRAINING_CONFIG_FILE}`")
    return lines


def model_card(cfg: MAEConfig, provenance: Provenance, include_decoder: bool) -> str:
    """The ``README.md`` of an ``hf`` export: loading, architecture, training, data, motion lift, the command."""
    p = provenance
    text = [
        "---", "library_name: transformers", "tags:", "- video", "- videomae", "- masked-video-modelling",
        "- tats-env", "---", "", "# VideoMAE encoder pre-trained with tats-env", "",
        f"Source: {p.source or 'a model in memory'}. Load it with `transformers.VideoMAEModel.from_pretrained(<this "
        "folder>)`; `VideoMAEForVideoClassification` adds a new classifier head for fine-tuning. "
        "`sha256sum -c SHA256SUMS` checks the files.", "",
        "## Architecture", "", *_architecture(cfg, include_decoder), "",
        "## Training", "", *_training(p), "",
    ]
    if p.train_config is not None:
        text += ["## Command", "", "Repeat the run and this export:", "", "```",
                 f"python experiments/train_ppo.py --config {TRAINING_CONFIG_FILE} --out runs/again",
                 "python experiments/export_encoder.py --checkpoint runs/again/checkpoint.pt --out runs/again/hf "
                 "--format hf" + (" --include-decoder" if include_decoder else ""), "```", ""]
    return "\n".join(text)
