"""Package attributes imported on first use (PEP 562), so that command lines and config modules that import a
package do not pay for torch, timm or stable-baselines3 until a name that needs them is used.

A package lists what it exports and where each name lives (:func:`lazy_table`) and sets
``__getattr__ = lazy_attributes(__name__, table)``; the first access imports the module, and the value is then
stored in the package, so later accesses are plain attribute lookups.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_table", "lazy_attributes"]


def lazy_table(modules: Mapping[str, Iterable[str]], prefix: str = "") -> dict[str, str]:
    """``{name: prefix + module}`` from ``{module: names}`` (e.g. ``prefix="tats_env.env."``)."""
    return {name: prefix + module for module, names in modules.items() for name in names}


def lazy_attributes(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``name`` comes from the module ``table[name]`` on first use
    (then cached in the package); other names raise the usual ``AttributeError``."""
    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name]), name)
        setattr(sys.modules[package], name, value)
        return value
    return __getattr__
