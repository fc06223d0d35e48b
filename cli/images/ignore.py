"""Which files of a workload folder go into its image: ``.dockerignore``-style rules.

Patterns follow Docker's ``.dockerignore`` syntax: paths are relative to the workload folder
with ``/`` separators, ``*`` and ``?`` match within one path segment, ``**`` matches any
number of segments, ``[...]`` is a character class, a pattern that matches a folder excludes
everything below it, ``!`` re-includes, and the last matching rule wins. Like Docker, a
pattern is anchored at the folder root: ``data`` means the top-level ``data`` folder only,
``**/__pycache__`` means every ``__pycache__``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_EXCLUDES", "IgnoreRules"]

DEFAULT_EXCLUDES: tuple[str, ...] = (
    "**/__pycache__",
    "**/*.pyc",
    "**/*.pyo",
    "**/.git",
    "**/.venv",
    "**/.mypy_cache",
    "**/.pytest_cache",
    "**/.ruff_cache",
    # Sample inputs for local runs (docs/workloads.md); never part of an image.
    "data",
    # The workload's own ignore file is build input, not code.
    ".dockerignore",
)
"""Excluded from every workload image, before the workload's own ``.dockerignore``."""


@dataclass(frozen=True)
class _Rule:
    pattern: str
    regex: re.Pattern[str]
    include: bool


def _translate(pattern: str) -> re.Pattern[str]:
    """Compile one ``.dockerignore`` pattern to a regular expression over relative paths."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            index += 2
            if pattern.startswith("/", index):
                index += 1
                out.append("(?:.*/)?")  # '**/' : zero or more whole segments
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                if body.startswith("!") or body.startswith("^"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))


def _clean(pattern: str) -> str:
    """Normalise a pattern the way Docker does: no leading '/', no '.' or empty segments."""
    parts = [part for part in pattern.strip().split("/") if part not in ("", ".")]
    return "/".join(parts)


class IgnoreRules:
    """An ordered list of exclude and ``!`` include patterns; the last match decides."""

    def __init__(self, patterns: Iterable[str]) -> None:
        rules: list[_Rule] = []
        for raw in patterns:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = _clean(line[1:] if include else line)
            if pattern:
                rules.append(_Rule(pattern, _translate(pattern), include))
        self._rules = tuple(rules)

    @classmethod
    def for_workload(cls, folder: Path, extra: Sequence[str] = ()) -> IgnoreRules:
        """The defaults, then ``extra``, then the folder's own ``.dockerignore`` if present."""
        own = folder / ".dockerignore"
        lines = own.read_text(encoding="utf-8").splitlines() if own.is_file() else []
        return cls([*DEFAULT_EXCLUDES, *extra, *lines])

    @property
    def patterns(self) -> tuple[str, ...]:
        """The rules as written after cleaning, ``!`` included."""
        return tuple(("!" if rule.include else "") + rule.pattern for rule in self._rules)

    @property
    def has_includes(self) -> bool:
        """Whether any ``!`` rule exists (then excluded folders must still be searched)."""
        return any(rule.include for rule in self._rules)

    def excluded(self, relative: str) -> bool:
        """Whether the path (relative, ``/``-separated) is left out of the image."""
        parts = relative.split("/")
        # A rule that matches a folder also matches everything below it.
        candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
        verdict = False
        for rule in self._rules:
            if any(rule.regex.fullmatch(candidate) for candidate in candidates):
                verdict = not rule.include
        return verdict
