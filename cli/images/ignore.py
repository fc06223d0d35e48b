"""Which files of a workload folder go into its image: ``.dockerignore``-style rules.

Every image leaves out caches, the sample ``data`` folder and files that usually hold
secrets (:data:`SECRET_EXCLUDES`); then the workload's ``.dockerignore`` and
``.workstackignore`` apply, in that order, and can re-include anything with ``!``.

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
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_EXCLUDES", "IGNORE_FILES", "SECRET_EXCLUDES", "IgnoreRules", "Rule"]

IGNORE_FILES = (".dockerignore", ".workstackignore")
"""The workload's own rule files, read in this order (so ``.workstackignore`` has the last
word); neither goes into the image."""

SECRET_EXCLUDES: tuple[str, ...] = (
    # Environment files that tools such as docker compose, python-dotenv and direnv read.
    "**/.env",
    "**/.env.*",
    "**/.envrc",
    # Credential folders of the cloud CLIs, SSH, GnuPG, Docker and kubectl.
    "**/.aws",
    "**/.azure",
    "**/.config/gcloud",
    "**/.ssh",
    "**/.gnupg",
    "**/.docker",
    "**/.kube",
    # Keys and certificates with their private keys.
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/*.pfx",
    "**/*.jks",
    "**/*.keystore",
    "**/*.ppk",
    "**/id_rsa*",
    "**/id_dsa*",
    "**/id_ecdsa*",
    "**/id_ed25519*",
    # Credential files by name (AWS's credentials, Google's credentials.json, ...).
    "**/credentials*",
    "**/.git-credentials",
    "**/*service-account*.json",
    "**/kubeconfig",
    "**/kubeconfig.*",
    "**/*.kubeconfig",
    # Package index and other login files.
    "**/.netrc",
    "**/.pypirc",
    "**/.npmrc",
    "**/.s3cfg",
    "**/.htpasswd",
)
"""Excluded from every image because they usually hold credentials (docs/images.md lists
where each comes from). A workload that means to ship one re-includes it with a ``!``
rule in ``.workstackignore``, e.g. ``!config/credentials.example``."""

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
    # The workload's own ignore files are build input, not code.
    *IGNORE_FILES,
)
"""Excluded from every workload image, with :data:`SECRET_EXCLUDES`, before the workload's
own rule files."""


@dataclass(frozen=True)
class Rule:
    """One exclude (or ``!`` include) pattern and where it was written.

    Attributes:
        pattern: The cleaned pattern, without ``!``.
        include: Whether it is a ``!`` rule.
        origin: ``default``, ``default (secrets)`` or ``<file>:<line>``.
    """

    pattern: str
    include: bool
    origin: str
    regex: re.Pattern[str] = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"{'!' if self.include else ''}{self.pattern} ({self.origin})"


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

    def __init__(self, patterns: Iterable[str | tuple[str, str]]) -> None:
        """Rules from patterns, each a string or a ``(pattern, origin)`` pair."""
        rules: list[Rule] = []
        for item in patterns:
            raw, origin = item if isinstance(item, tuple) else (item, "given")
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = _clean(line[1:] if include else line)
            if pattern:
                rules.append(Rule(pattern, include, origin, _translate(pattern)))
        self._rules = tuple(rules)

    @classmethod
    def for_workload(cls, folder: Path, extra: Sequence[str] = ()) -> IgnoreRules:
        """The defaults, the secret defaults, ``extra``, then the folder's own rule files."""
        patterns: list[tuple[str, str]] = [(p, "default") for p in DEFAULT_EXCLUDES]
        patterns += [(p, "default (secrets)") for p in SECRET_EXCLUDES]
        patterns += [(p, "given") for p in extra]
        for name in IGNORE_FILES:
            own = folder / name
            if own.is_file():
                lines = own.read_text(encoding="utf-8").splitlines()
                patterns += [(line, f"{name}:{n}") for n, line in enumerate(lines, start=1)]
        return cls(patterns)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The rules as written after cleaning, ``!`` included."""
        return tuple(("!" if rule.include else "") + rule.pattern for rule in self._rules)

    @property
    def has_includes(self) -> bool:
        """Whether any ``!`` rule exists (then excluded folders must still be searched)."""
        return any(rule.include for rule in self._rules)

    def deciding_rule(self, relative: str) -> Rule | None:
        """The last rule that matches the path (or a folder above it), or None."""
        parts = relative.split("/")
        # A rule that matches a folder also matches everything below it.
        candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
        decided = None
        for rule in self._rules:
            if any(rule.regex.fullmatch(candidate) for candidate in candidates):
                decided = rule
        return decided

    def excluded(self, relative: str) -> bool:
        """Whether the path (relative, ``/``-separated) is left out of the image."""
        rule = self.deciding_rule(relative)
        return rule is not None and not rule.include
