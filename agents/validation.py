"""Up-front checks of a :class:`~agents.training.TrainConfig`: every bad value is reported before any work starts.

tyro already refuses values of the wrong type and names outside a ``Literal`` (``--export-formats
onnx``); :func:`validate_train_config` adds the ranges and cross-field rules (``--num-envs 0``,
``--mask-ratio 1``, a PPO minibatch larger than its rollout, an unknown preset or device, ...)
and raises one :class:`ConfigError` listing every problem, each naming its option, before data
is loaded or a model is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from agents import distributed
from tats_env.commandline import field_flags
from tats_env.config import PRESETS

__all__ = ["ConfigError", "validate_train_config", "check_device"]


class ConfigError(ValueError):
    """One or more option values are outside their allowed range; the message names each option."""


Rule = tuple[str, Callable[[Any], bool], str]
"""(dotted field path, predicate the value must satisfy, what is allowed)."""


def _positive(value: Any) -> bool:
    """> 0."""
    return value > 0


def _at_least_one(value: Any) -> bool:
    """>= 1."""
    return value >= 1


def _non_negative(value: Any) -> bool:
    """>= 0."""
    return value >= 0


def _none_or_positive(value: Any) -> bool:
    """None (switched off) or > 0."""
    return value is None or value > 0


GENERAL_RULES: tuple[Rule, ...] = (
    ("num_envs", _at_least_one, "must be >= 1"),
    ("total_steps", _non_negative, "must be >= 0"),
    ("warmup_steps", _non_negative, "must be >= 0"),
    ("checkpoint_every", _at_least_one, "must be >= 1 (clips)"),
    ("image_every", _at_least_one, "must be >= 1 (clips)"),
    ("summary_every", _at_least_one, "must be >= 1 (rollouts)"),
    ("max_skipped_updates", _at_least_one, "must be >= 1"),
    ("env.mask_ratio", lambda v: 0.0 < v < 1.0, "must be in (0, 1), exclusive"),
    ("env.num_workers", _non_negative, "must be >= 0"),
    ("env.foreground_threshold", lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
    ("env.reward.clip", _positive, "must be > 0"),
    ("env.engine_config.blr", _positive, "must be > 0"),
    ("env.engine_config.lr", _none_or_positive, "must be > 0 (or None: scale --mae.blr)"),
    ("env.engine_config.min_lr", _non_negative, "must be >= 0"),
    ("env.engine_config.warmup_updates", _non_negative, "must be >= 0"),
    ("env.engine_config.total_updates", lambda v: v is None or v >= 1, "must be >= 1 (or None)"),
    ("env.engine_config.weight_decay", _non_negative, "must be >= 0"),
    ("env.engine_config.betas", lambda v: len(v) == 2 and all(0.0 <= b < 1.0 for b in v), "needs two values in [0, 1)"),
    ("env.engine_config.grad_clip", _none_or_positive, "must be > 0 (or None: no clipping)"),
)
"""Rules every run checks."""

_TATS_RULES: tuple[Rule, ...] = (
    ("sampler.tats.dim", _at_least_one, "must be >= 1"),
    ("sampler.tats.depth", _at_least_one, "must be >= 1"),
    ("sampler.tats.num_heads", _at_least_one, "must be >= 1"),
    ("sampler.tats.score_limit", _positive, "must be > 0"),
)
_REINFORCE_RULES: tuple[Rule, ...] = (
    ("sampler.reinforce.learning_rate", _positive, "must be > 0"),
    ("sampler.reinforce.baseline_decay", lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    ("sampler.reinforce.ent_coef", _non_negative, "must be >= 0"),
    ("sampler.reinforce.net.dim", _at_least_one, "must be >= 1"),
    ("sampler.reinforce.net.num_heads", _at_least_one, "must be >= 1"),
)
METHOD_RULES: dict[str, tuple[Rule, ...]] = {
    "ppo_tats": _TATS_RULES + (
        ("sampler.ppo.learning_rate", _positive, "must be > 0"),
        ("sampler.ppo.n_steps", _at_least_one, "must be >= 1"),
        ("sampler.ppo.batch_size", lambda v: v is None or v >= 2,
         "must be >= 2 (SB3 normalises advantages per minibatch), or None (the whole rollout)"),
        ("sampler.ppo.n_epochs", _at_least_one, "must be >= 1"),
        ("sampler.ppo.clip_range", _positive, "must be > 0"),
        ("sampler.ppo.ent_coef", _non_negative, "must be >= 0"),
        ("sampler.ppo.vf_coef", _non_negative, "must be >= 0"),
        ("sampler.ppo.max_grad_norm", _positive, "must be > 0"),
    ),
    "a2c_tats": _TATS_RULES + (
        ("sampler.a2c.learning_rate", _positive, "must be > 0"),
        ("sampler.a2c.n_steps", _at_least_one, "must be >= 1"),
        ("sampler.a2c.ent_coef", _non_negative, "must be >= 0"),
        ("sampler.a2c.max_grad_norm", _positive, "must be > 0"),
    ),
    "sac_topk": (
        ("sampler.sac.learning_rate", _positive, "must be > 0"),
        ("sampler.sac.buffer_size", _at_least_one, "must be >= 1"),
        ("sampler.sac.batch_size", _at_least_one, "must be >= 1"),
        ("sampler.sac.learning_starts", _non_negative, "must be >= 0"),
        ("sampler.sac.train_freq", _at_least_one, "must be >= 1"),
        ("sampler.sac.token_dim", _at_least_one, "must be >= 1"),
    ),
    "reinforce": _REINFORCE_RULES,
    "reinforce_token": _REINFORCE_RULES,
    "reinforce_adamae": _REINFORCE_RULES,
    "token_ppo": (
        ("sampler.token_ppo.learning_rate", _positive, "must be > 0"),
        ("sampler.token_ppo.n_steps", _at_least_one, "must be >= 1"),
        ("sampler.token_ppo.batch_size", _at_least_one, "must be >= 1"),
        ("sampler.token_ppo.n_epochs", _at_least_one, "must be >= 1"),
        ("sampler.token_ppo.clip_range", _positive, "must be > 0"),
        ("sampler.token_ppo.ent_coef", _non_negative, "must be >= 0"),
        ("sampler.token_ppo.vf_coef", _non_negative, "must be >= 0"),
        ("sampler.token_ppo.max_grad_norm", _positive, "must be > 0"),
        ("sampler.token_ppo.sampler.dim", _at_least_one, "must be >= 1"),
        ("sampler.token_ppo.sampler.num_heads", _at_least_one, "must be >= 1"),
    ),
}
"""Rules of the hyperparameters a ``--method`` reads (the others are not used, so not checked)."""


def _value(cfg: Any, path: str) -> Any:
    """The value at dotted field ``path`` of a nested config."""
    for name in path.split("."):
        cfg = getattr(cfg, name)
    return cfg


def _show(value: Any) -> str:
    """A value as it would be typed on the command line."""
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _rule_problems(cfg: Any, rules: tuple[Rule, ...], flags: dict[str, str]) -> Iterator[str]:
    """``"--flag value: what is allowed"`` for every rule ``cfg`` breaks."""
    for path, ok, allowed in rules:
        value = _value(cfg, path)
        if not ok(value):
            yield f"{flags[path]} {_show(value)}: {allowed}"


def check_device(name: str) -> str | None:
    """Why ``--device name`` cannot be used here, or None when it can."""
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return "unknown device; use auto, cpu, cuda, cuda:N or mps"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine (use --device cpu or auto)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"this machine has {torch.cuda.device_count()} CUDA device(s)"
    elif device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available on this machine"
    elif device.type not in ("cpu", "cuda", "mps"):
        return "unsupported device type; use auto, cpu, cuda, cuda:N or mps"
    return None


def _cross_field_problems(cfg: Any) -> Iterator[str]:
    """Preset, device, data path, and the rules that tie two options together."""
    if cfg.env.preset not in PRESETS:
        yield f"--preset {cfg.env.preset}: unknown preset; choose one of {', '.join(PRESETS)}"
    device_problem = check_device(cfg.device)
    if device_problem:
        yield f"--device {cfg.device}: {device_problem}"
    data = str(cfg.env.data)
    if data != "synthetic" and not Path(data).expanduser().exists():
        yield f"--data {data}: no such file or folder (give 'synthetic', a list file or a folder of videos)"
    if cfg.method == "ppo_tats" and cfg.num_envs >= 1:
        rollout = cfg.sampler.ppo.n_steps * cfg.num_envs
        if rollout < 2:
            yield (f"--ppo.n-steps {cfg.sampler.ppo.n_steps} with --num-envs {cfg.num_envs}: a PPO rollout of "
                   f"{rollout} clip cannot be split into minibatches; needs n_steps x num_envs >= 2")
        elif cfg.sampler.ppo.batch_size is not None and cfg.sampler.ppo.batch_size > rollout:
            yield (f"--ppo.batch-size {cfg.sampler.ppo.batch_size}: larger than a rollout of --ppo.n-steps "
                   f"{cfg.sampler.ppo.n_steps} x --num-envs {cfg.num_envs} = {rollout} clips")
    if cfg.method in ("ppo_tats", "a2c_tats") and cfg.sampler.tats.num_heads >= 1 \
            and cfg.sampler.tats.dim % cfg.sampler.tats.num_heads:
        yield (f"--tats.dim {cfg.sampler.tats.dim}: must be a multiple of --tats.num-heads "
               f"{cfg.sampler.tats.num_heads}")
    if cfg.method == "token_ppo" and cfg.num_envs >= 1 \
            and cfg.sampler.token_ppo.batch_size > cfg.sampler.token_ppo.n_steps * cfg.num_envs:
        yield (f"--token-ppo.batch-size {cfg.sampler.token_ppo.batch_size}: larger than a rollout of "
               f"--token-ppo.n-steps {cfg.sampler.token_ppo.n_steps} x --num-envs {cfg.num_envs} clips")
    if cfg.method == "reinforce_adamae" and cfg.sampler.direction != "show_hard":
        yield (f"--direction {cfg.sampler.direction}: AdaMAE's rule only makes hard tokens visible (show_hard); "
               "use --method reinforce_token or token_ppo for mask_hard")
    if cfg.method == "sac_topk" and distributed.get_world_size() > 1:
        yield ("--method sac_topk: SAC cannot train under torchrun (its replay buffer and off-policy updates are not "
               "averaged across ranks); use token_ppo, ppo_tats, a2c_tats or a reinforce sampler, or one process")
    if cfg.method == "sac_topk" and cfg.sampler.sac.batch_size > cfg.sampler.sac.buffer_size:
        yield (f"--sac.batch-size {cfg.sampler.sac.batch_size}: larger than --sac.buffer-size "
               f"{cfg.sampler.sac.buffer_size}")
    if cfg.resume and cfg.overwrite:
        yield "--resume with --overwrite: choose one (continue the run, or delete it and start over)"


def validate_train_config(cfg: Any) -> None:
    """Raise :class:`ConfigError` listing every out-of-range option of ``cfg`` (a ``TrainConfig``)."""
    flags = field_flags(type(cfg))
    problems = [
        *_rule_problems(cfg, GENERAL_RULES, flags),
        *_rule_problems(cfg, METHOD_RULES.get(cfg.method, ()), flags),
        *_cross_field_problems(cfg),
    ]
    if problems:
        raise ConfigError("invalid option" + ("s" if len(problems) > 1 else "") + ":\n  " + "\n  ".join(problems))
