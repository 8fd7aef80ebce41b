"""Up-front checks of the main job's options: every bad value is reported before any work starts.

tyro already refuses values of the wrong type and names outside a ``Literal``. The range of
each field is checked by its own config (:mod:`tats_env.checks`: ``field_problems``);
:func:`validate_train_config` collects those, adds the rules that tie options together
(preset, device, data source and split, a minibatch larger than its rollout, a direction the sampler cannot
learn, torchrun for a sampler that cannot average its updates, ...) and raises one
:class:`ConfigError` listing every problem, each naming its option, before data is loaded or a
model is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agents.job import distributed
from agents.registry import SAMPLERS, sampler_env_config
from tats_env.checks import ConfigError, config_problems, flag_problems
from tats_env.commandline import field_flags
from tats_env.device import check_device
from tats_env.outdir import out_problem
from tats_env.config import PRESETS, get_preset
from tats_env.data.source import DataSourceError, check_data_source

__all__ = ["ConfigError", "validate_train_config", "check_device", "flag_problems"]


def _general_problems(cfg: Any) -> Iterator[tuple[str, str]]:
    """The job's own fields."""
    for name in ("num_envs", "checkpoint_every", "image_every", "summary_every", "max_skipped_updates"):
        if getattr(cfg, name) < 1:
            yield name, "must be >= 1"
    for name in ("total_steps", "warmup_steps"):
        if getattr(cfg, name) < 0:
            yield name, "must be >= 0"


def _mask_count_problem(cfg: Any) -> str | None:
    """``--mask-ratio`` that rounds to K = 1 or K = N - 1 masked tokens: a degenerate K-of-N mask."""
    if cfg.env.preset not in PRESETS or not 0.0 < cfg.env.mask_ratio < 1.0:
        return None  # reported by their own checks
    n = get_preset(cfg.env.preset).video.num_tokens
    k = int(round(cfg.env.mask_ratio * n))
    if n > 3 and (k <= 1 or k >= n - 1):
        low, high = 2 / n, (n - 2) / n
        return (f"--mask-ratio {cfg.env.mask_ratio}: rounds to K = {max(k, 1)} of N = {n} tokens masked at --preset "
                f"{cfg.env.preset} (K must be in [2, {n - 2}]: a ratio in [{low:.4f}, {high:.4f}])")
    return None


def _cross_field_problems(cfg: Any) -> Iterator[str]:
    """Preset, device, data path, run folder, and the rules that tie two options together."""
    if cfg.env.preset not in PRESETS:
        yield f"--preset {cfg.env.preset}: unknown preset; choose one of {', '.join(PRESETS)}"
    mask_count = _mask_count_problem(cfg)
    if mask_count:
        yield mask_count
    out = out_problem(cfg.out)
    if out:
        yield f"--out {cfg.out}: {out}"
    device_problem = check_device(cfg.device)
    if device_problem:
        yield f"--device {cfg.device}: {device_problem}"
    try:
        check_data_source(cfg.env.data, cfg.env.split)
    except DataSourceError as exc:
        yield str(exc)
    spec = SAMPLERS.get(cfg.method)
    if spec is None or not spec.learned:
        yield f"--method {cfg.method}: not a learned sampler of the registry"
        return
    if cfg.num_envs >= 1:  # minibatches that must fit in the method's rollout
        flags = field_flags(type(cfg))
        for section in spec.sections:
            rollout_problems = getattr(getattr(cfg.sampler, section), "rollout_problems", None)
            if rollout_problems is not None:
                problems = rollout_problems(cfg.num_envs, lambda name, s=section: flags[f"sampler.{s}.{name}"])
                yield from flag_problems(cfg, ((f"sampler.{section}.{name}", text) for name, text in problems))
    if cfg.sampler.direction not in spec.directions:
        yield (f"--direction {cfg.sampler.direction}: --method {cfg.method} learns only {' or '.join(spec.directions)}; "
               "use --method reinforce_token or token_ppo for the other direction")
    if not spec.distributed and distributed.get_world_size() > 1:
        yield (f"--method {cfg.method}: cannot train under torchrun (its updates are not averaged across ranks); use "
               "token_ppo, ppo_tats, a2c_tats or a reinforce sampler, or one process")
    try:
        sampler_env_config(cfg.method, cfg.env, cfg.sampler)
    except ValueError as exc:
        yield str(exc)
    if cfg.resume and cfg.overwrite:
        yield "--resume with --overwrite: choose one (continue the run, or delete it and start over)"


def validate_train_config(cfg: Any) -> None:
    """Raise :class:`ConfigError` listing every out-of-range option of ``cfg`` (a ``TrainConfig``)."""
    problems = [
        *flag_problems(cfg, _general_problems(cfg)),
        *flag_problems(cfg, config_problems(cfg.env, "env.")),
        *flag_problems(cfg, config_problems(cfg.sampler, "sampler.")),
        *_cross_field_problems(cfg),
    ]
    if problems:
        raise ConfigError("\n".join(problems))  # one problem per line: the scripts print each as an error: line
