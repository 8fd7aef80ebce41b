"""Command lines built from config dataclasses: one flag per field, help from field docstrings.

Experiments declare an ``Args`` dataclass with a docstring under every field (CleanRL style)
and call :func:`parse_config`. Flags are the field names with dashes (``--mask-ratio``);
booleans get ``--flag/--no-flag``; ``Literal`` fields get choices; ``--config FILE.yaml``
loads defaults from YAML, and explicit flags override the file.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

T = TypeVar("T")


def field_docstrings(cls: type) -> dict[str, str]:
    """Map each field of dataclass ``cls`` to the string literal written just below it."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, following in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _converter(tp: Any) -> tuple[Any, dict[str, Any]]:
    """An argparse ``type`` and extra keyword arguments for annotation ``tp``."""
    tp, _ = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return type(choices[0]), {"choices": choices}
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return (args[0] if args else str), {"nargs": "+"}
    if tp is Path:
        return Path, {}
    if tp in (int, float, str):
        return tp, {}
    return str, {}


def build_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with one flag per field of dataclass ``cls`` plus ``--config``."""
    parser = argparse.ArgumentParser(
        description=description or (inspect.getdoc(cls) or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML file with field values (flags override it)")
    docs = field_docstrings(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        help_text = docs.get(field.name, "")
        tp = hints[field.name]
        if tp is bool:
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
            continue
        convert, extra = _converter(tp)
        parser.add_argument(flag, dest=field.name, type=convert, default=argparse.SUPPRESS,
                            help=help_text, **extra)
    return parser


def _defaults(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            out[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[field.name] = field.default_factory()  # type: ignore[misc]
    return out


def config_from_dict(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Build dataclass ``cls`` from ``values``; unknown keys raise ``ValueError`` naming them and the source."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{source}: unknown option(s) {unknown}; known: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    fixed = {}
    for key, value in values.items():
        tp, _ = _unwrap_optional(hints[key])
        if typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        elif tp is Path and isinstance(value, str):
            value = Path(value)
        fixed[key] = value
    return cls(**{**_defaults(cls), **fixed})


def parse_config(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Parse ``argv`` into an instance of dataclass ``cls`` (YAML defaults, then flags)."""
    args = vars(build_parser(cls, description).parse_args(argv))
    config_file = args.pop("config")
    values: dict[str, Any] = {}
    if config_file is not None:
        loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: expected a mapping of option names to values")
        values.update({k.replace("-", "_"): v for k, v in loaded.items()})
        config_file = str(config_file)
    values.update(args)
    return config_from_dict(cls, values, source=config_file or "command line")
