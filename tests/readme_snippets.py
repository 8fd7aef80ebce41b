"""The README's code blocks, so tests can run exactly what a reader copies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Snippet:
    """One fenced block of the README: its language, first code line (1-based) and text."""

    language: str
    line: int
    code: str

    @property
    def where(self) -> str:
        """``README.md:<line>``, for test ids and failure messages."""
        return f"README.md:{self.line}"


def snippets(language: str, readme: Path = README) -> list[Snippet]:
    """Every fenced block of ``language`` (``python``, ``bash``) in ``readme``, in order."""
    found: list[Snippet] = []
    lang, start, lines = None, 0, []
    for number, text in enumerate(readme.read_text().splitlines(), start=1):
        fence = FENCE.match(text)
        if fence and lang is None:
            lang, start, lines = fence.group(1), number + 1, []
        elif fence and lang is not None and not fence.group(1):
            if lang == language:
                found.append(Snippet(lang, start, "\n".join(lines) + "\n"))
            lang = None
        elif lang is not None:
            lines.append(text)
    if lang is not None:
        raise ValueError(f"{readme}: the block opened at line {start - 1} is never closed")
    return found


def snippet_defining(text: str, language: str = "python") -> Snippet:
    """The one block that contains ``text`` (e.g. ``class PositionScores``)."""
    matches = [s for s in snippets(language) if text in s.code]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} README blocks contain {text!r}; expected exactly one")
    return matches[0]


def run_snippet(snippet: Snippet, namespace: dict | None = None) -> dict:
    """Execute ``snippet`` (compiled under its README line, so tracebacks point there); returns its namespace."""
    namespace = {"__name__": f"readme_line_{snippet.line}"} if namespace is None else namespace
    exec(compile(snippet.code, snippet.where, "exec"), namespace)  # noqa: S102 - the README's own code
    return namespace
