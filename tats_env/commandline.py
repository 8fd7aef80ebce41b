"""Command lines from config dataclasses (tyro), with YAML files and saved configs as defaults.

Every entry point declares a (nested) config dataclass with a docstring under each field and
calls :func:`parse`: ``tyro`` builds the flags (``--mask-ratio``, ``--reward.mode``, ...), shows
every default in ``--help`` and validates the values. ``--config FILE.yaml`` sets defaults that
explicit flags override. A YAML file mirrors the config: nested mappings or dotted keys, field
names or flag names (``mask_ratio``, ``mask-ratio``, ``reward: {mode: cooperative}``,
``reward.mode: cooperative``); a field a flattened config exposes at the top level (such as
``mask_ratio`` of the env) may be written at the top level.

:func:`to_args` turns such a mapping (or a config saved with :func:`config_to_dict`) back into
flags, so YAML files, saved run configs and the command line all go through tyro's parser and
its error messages (which name the flag and the allowed values).
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import tyro
import yaml

__all__ = ["parse", "prog_name", "exit_with_error", "to_args", "config_to_dict", "load_config_file", "flag_names", "field_flags"]

T = TypeVar("T")


def _arg_name(annotation: Any) -> str | None:
    """The ``name`` of a ``tyro.conf.arg(...)`` in an ``Annotated`` type, or None."""
    for meta in getattr(annotation, "__metadata__", ()):
        name = getattr(meta, "name", None)
        if type(meta).__name__ == "_ArgConfig" and name is not None:
            return name
    return None


def _dataclass_type(annotation: Any) -> type | None:
    """The dataclass behind an annotation (``Annotated`` / ``Optional`` unwrapped), or None."""
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation
    return base if isinstance(base, type) and dataclasses.is_dataclass(base) else None


def _fields(cls: type) -> dict[str, tuple[str, Any]]:
    """``{field name: (flag stem, annotation)}``; a flattened nested config has flag stem ``""``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = {}
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        name = _arg_name(annotation)
        out[f.name] = (f.name if name is None else name, annotation)
    return out


def flag_names(cls: type, prefix: str = "") -> list[str]:
    """Every flag ``cls`` accepts (``--mask-ratio``, ``--reward.mode``, ...), in field order."""
    names = []
    for field_name, (stem, annotation) in _fields(cls).items():
        sub = _dataclass_type(annotation)
        path = prefix + (stem + "." if stem else "")
        if sub is not None:
            names += flag_names(sub, path)
        else:
            names.append("--" + (prefix + stem).replace("_", "-"))
    return names


def field_flags(cls: type, field_prefix: str = "", flag_prefix: str = "") -> dict[str, str]:
    """``{dotted field path: flag}`` of every leaf option, e.g. ``{"env.mask_ratio": "--mask-ratio"}``."""
    flags: dict[str, str] = {}
    for field_name, (stem, annotation) in _fields(cls).items():
        sub = _dataclass_type(annotation)
        if sub is not None:
            flags.update(field_flags(sub, f"{field_prefix}{field_name}.", flag_prefix + (stem + "." if stem else "")))
        else:
            flags[field_prefix + field_name] = "--" + (flag_prefix + stem).replace("_", "-")
    return flags


def _lookup(cls: type, key: str) -> tuple[str, Any] | None:
    """Find ``key`` (field or flag spelling) in ``cls`` or in its flattened nested configs.

    Returns ``(flag stem path relative to cls, annotation)``.
    """
    wanted = key.replace("-", "_")
    fields = _fields(cls)
    for field_name, (stem, annotation) in fields.items():
        if wanted in (field_name, stem):
            return stem, annotation
    for field_name, (stem, annotation) in fields.items():
        sub = _dataclass_type(annotation)
        if sub is not None and stem == "":
            found = _lookup(sub, key)
            if found is not None:
                return found
    return None


def _scalar(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, Path):
        return str(value)
    return str(value)


def to_args(cls: type, mapping: Mapping[str, Any], source: str = "config", prefix: str = "") -> list[str]:
    """Flags for tyro that set the values of ``mapping`` on config dataclass ``cls``.

    Unknown keys raise ``ValueError`` naming ``source``, the key and the known options.
    """
    args: list[str] = []
    for raw_key, value in mapping.items():
        key, _, rest = str(raw_key).partition(".")
        if rest:  # dotted key: "reward.mode: x" is "reward: {mode: x}"
            value = {rest: value}
        found = _lookup(cls, key)
        if found is None:
            known = ", ".join(flag.lstrip("-") for flag in flag_names(cls))
            raise ValueError(f"{source}: unknown option {prefix + str(raw_key)!r}; known options: {known}")
        stem, annotation = found
        sub = _dataclass_type(annotation)
        if sub is not None:
            if not isinstance(value, Mapping):
                raise ValueError(f"{source}: {prefix + key!r} holds options ({', '.join(flag_names(sub))}); "
                                 f"give a mapping, got {value!r}")
            args += to_args(sub, value, source, prefix + (stem + "." if stem else ""))
            continue
        flag = "--" + (prefix + stem).replace("_", "-")
        if isinstance(value, bool):
            head, _, tail = flag[2:].rpartition(".")
            args.append(flag if value else "--" + (head + "." if head else "") + "no-" + tail)
        elif isinstance(value, (list, tuple)):
            args += [flag, *(_scalar(v) for v in value)]
        elif isinstance(value, Mapping):
            raise ValueError(f"{source}: option {prefix + key!r} takes a value, got a mapping {dict(value)!r}")
        else:
            args += [flag, _scalar(value)]
    return args


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping of option values; clear errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: file not found")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"--config {path}: not valid YAML ({where}{problem})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values, got {type(loaded).__name__}")
    return loaded


def _split_config_flag(argv: Sequence[str]) -> tuple[Path | None, list[str]]:
    """Remove ``--config FILE`` / ``--config=FILE`` from ``argv``."""
    rest, config = [], None
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item == "--config":
            if i + 1 >= len(items):
                raise SystemExit("--config needs a file name")
            config, i = Path(items[i + 1]), i + 2
            continue
        if item.startswith("--config="):
            config = Path(item.split("=", 1)[1])
        else:
            rest.append(item)
        i += 1
    return config, rest


def prog_name(default: str | None = None) -> str:
    """The command's name in its messages: ``default`` (what a script shim passes), else ``sys.argv[0]``'s file name."""
    return default or Path(sys.argv[0]).name


def exit_with_error(error: BaseException | str, prog: str | None = None, code: int = 2) -> typing.NoReturn:
    """Print every line of ``error`` as ``<prog>: error: <line>`` on stderr and exit with ``code`` (no traceback)."""
    name = prog_name(prog)
    lines = [line for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    print("\n".join(f"{name}: error: {line}" for line in lines), file=sys.stderr)
    raise SystemExit(code)


def parse(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None,
          default: T | None = None, prog: str | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into ``cls``: ``default``, then ``--config FILE``, then flags.

    Values from the file are parsed by tyro exactly like flags, so a wrong type names the option
    and the file. ``--help`` lists every option with its default (and mentions ``--config``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog_name(prog)
    config_file, argv = _split_config_flag(argv)
    description = (description or (cls.__doc__ or "").strip().split("\n\n")[0]) + (
        "\n\n--config FILE.yaml sets defaults (keys are option names); flags given after it override them.")
    if config_file is not None:
        try:
            file_args = to_args(cls, load_config_file(config_file), source=f"--config {config_file}")
        except (OSError, ValueError) as exc:  # missing, unreadable, not YAML, not a mapping, unknown key
            exit_with_error(exc, prog)
        try:
            default = tyro.cli(cls, args=file_args, default=default, description=description, prog=prog)
        except SystemExit:
            print(f"(the invalid value above comes from --config {config_file})", file=sys.stderr)
            raise
    return tyro.cli(cls, args=argv, default=default, description=description, prog=prog)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of a config dataclass (paths as strings, tuples as lists)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))
