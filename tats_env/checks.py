"""Config dataclasses that check their own fields: one place per rule, reported before any work starts.

A config class lists its range rules in :meth:`FieldChecks.field_problems` (``yield "n_steps",
"must be >= 1"``). :func:`config_problems` walks a nested config and yields every problem with
its dotted field path, which the command-line tools turn into the option's flag
(``--token-ppo.n-steps 0: must be >= 1``); :func:`check_config` raises one ``ValueError`` for
library callers. Rules that tie two configs together (a minibatch larger than a rollout) live in
the tool that composes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["ConfigError", "FieldChecks", "config_problems", "check_config", "flag_problems"]


class ConfigError(ValueError):
    """One or more option values are outside their allowed range; the message names each option, one per line.

    Every command prints each line as ``<command>: error: <line>`` and exits with status 2
    (:func:`tats_env.commandline.exit_with_error`)."""


class FieldChecks:
    """Mixin of a config dataclass whose fields have allowed ranges."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """``(field name, what is allowed)`` for every field of this config (not its nested ones) that is out of range."""
        return iter(())


def config_problems(config: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted field path, what is allowed)`` for every out-of-range field of ``config`` and its nested configs."""
    if isinstance(config, FieldChecks):
        for name, problem in config.field_problems():
            yield prefix + name, problem
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                yield from config_problems(value, f"{prefix}{f.name}.")


def check_config(config: Any) -> None:
    """Raise ``ValueError`` naming every out-of-range field of ``config`` (for callers without a command line)."""
    problems = [f"{path} = {_value(config, path)!r}: {problem}" for path, problem in config_problems(config)]
    if problems:
        raise ValueError(f"invalid {type(config).__name__}: " + "; ".join(problems))


def _value(config: Any, path: str) -> Any:
    """The value at dotted field ``path`` of a nested config."""
    for name in path.split("."):
        config = getattr(config, name)
    return config


def _show(value: Any) -> str:
    """A value as it would be typed on the command line."""
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def flag_problems(cfg: Any, problems: Iterable[tuple[str, str]]) -> Iterator[str]:
    """``"--flag value: what is allowed"`` for every ``(dotted field path, what is allowed)`` of ``cfg``."""
    from tats_env.commandline import field_flags

    flags = field_flags(type(cfg))
    for path, allowed in problems:
        flag = flags.get(path, "--" + path.replace("_", "-"))
        yield f"{flag} {_show(_value(cfg, path))}: {allowed}"
