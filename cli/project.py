"""Read a Pulumi project (``Pulumi.yaml``) and its stack config files without the Pulumi CLI.

The project file's typed ``config:`` schema is the single place the stack layer's keys, types
and defaults are declared: the Pulumi CLI applies it on ``pulumi up``, and this module applies
the same rules for ``workstack render`` and for validating a stack's config in the program.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from workstack.components.manifests.settings import Problem
from workstack.sdk.errors import WorkstackError

__all__ = [
    "ConfigError",
    "ConfigKey",
    "Problem",
    "PulumiProject",
    "StackSettings",
    "find_project",
    "load_project",
]

ConfigType = Literal["string", "integer", "boolean", "array"]
SECRET_PLACEHOLDER = "[secret]"


class ConfigError(WorkstackError, ValueError):
    """A stack's config is invalid. Lists every problem found, each naming its key."""

    def __init__(self, stack: str, problems: list[Problem]) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid config for stack {stack!r}:\n{lines}")


@dataclass(frozen=True)
class ConfigKey:
    """One key of the project's typed config schema."""

    name: str
    type: ConfigType
    description: str
    default: Any = None
    secret: bool = False
    items: ConfigType | None = None

    def parse(self, raw: str, full_key: str) -> Any:
        """Turn the string the engine hands the program into a typed value, or a Problem."""
        return _parse_value(self, raw, full_key)


def _parse_value(key: ConfigKey, raw: str, full_key: str) -> Any:
    if key.type == "string":
        return raw
    if key.type == "integer":
        try:
            return int(raw)
        except ValueError:
            return Problem(full_key, raw, "expected an integer")
    if key.type == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return Problem(full_key, raw, "expected true or false")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    wanted = "expected a list of strings" if key.items == "string" else "expected a list"
    if not isinstance(value, list):
        return Problem(full_key, raw, wanted)
    if key.items == "string" and not all(isinstance(item, str) for item in value):
        return Problem(full_key, value, wanted)
    return value


@dataclass(frozen=True)
class StackSettings:
    """A stack's config as the engine hands it to a program: every value a string.

    Attributes:
        values: Full key (``project:key`` or ``provider:key``) to string value, with project
            defaults applied.
        secret_keys: Keys whose values are secrets; offline their value is a placeholder.
    """

    values: dict[str, str]
    secret_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PulumiProject:
    """A Pulumi project on disk.

    Attributes:
        root: Folder holding ``Pulumi.yaml``.
        name: Project name; the namespace of its own config keys.
        main: Folder of the program.
        stack_config_dir: Folder of the ``Pulumi.<stack>.yaml`` files.
        schema: The project's typed config keys, by short name.
    """

    root: Path
    name: str
    main: Path
    stack_config_dir: Path
    schema: dict[str, ConfigKey]

    def stack_file(self, stack: str) -> Path:
        """Path of the config file of ``stack``."""
        return self.stack_config_dir / f"Pulumi.{stack}.yaml"

    def stacks(self) -> list[str]:
        """Names of the stacks that have a config file, sorted."""
        prefix, suffix = "Pulumi.", ".yaml"
        return sorted(
            path.name[len(prefix) : -len(suffix)]
            for path in self.stack_config_dir.glob("Pulumi.*.yaml")
        )

    def read_stack(self, stack: str) -> StackSettings:
        """Read a stack's config file the way the Pulumi CLI would pass it to the program.

        Project defaults fill keys the file leaves out; structured values become JSON strings;
        ``secure:`` values, which only the stack's secrets provider can decrypt, become a
        placeholder marked secret.

        Raises:
            FileNotFoundError: The stack has no config file; the message lists the stacks.
            ConfigError: The file is not a mapping of keys to values.
        """
        path = self.stack_file(stack)
        if not path.is_file():
            known = ", ".join(self.stacks()) or "none"
            raise FileNotFoundError(f"stack {stack!r} has no config file {path}; stacks: {known}")
        document = yaml.safe_load(path.read_text()) or {}
        entries = document.get("config", {}) if isinstance(document, dict) else None
        if not isinstance(entries, dict):
            raise ConfigError(stack, [Problem(str(path), entries, "expected a `config:` mapping")])

        values: dict[str, str] = {}
        secret_keys: list[str] = []
        for key, value in entries.items():
            full_key = key if ":" in key else f"{self.name}:{key}"
            if isinstance(value, dict) and set(value) == {"secure"}:
                values[full_key] = SECRET_PLACEHOLDER
                secret_keys.append(full_key)
            else:
                values[full_key] = _engine_string(value)
        for short, key in self.schema.items():
            full_key = f"{self.name}:{short}"
            if full_key not in values and key.default is not None:
                values[full_key] = _engine_string(key.default)
        return StackSettings(values=values, secret_keys=secret_keys)

    def parse_config(self, stack: str, values: Mapping[str, str]) -> dict[str, Any]:
        """Type the project's own keys in ``values`` against the schema.

        Returns:
            Short key name to typed value for every declared key (None where unset and
            without default).

        Raises:
            ConfigError: Listing unknown project keys and values of the wrong type.
        """
        prefix = f"{self.name}:"
        problems: list[Problem] = []
        allowed = ", ".join(sorted(self.schema))
        for full_key in sorted(values):
            if full_key.startswith(prefix) and full_key[len(prefix) :] not in self.schema:
                problems.append(
                    Problem(full_key, values[full_key], f"unknown key; known: {allowed}")
                )
        typed: dict[str, Any] = {}
        for short, key in self.schema.items():
            raw = values.get(prefix + short)
            if raw is None:
                typed[short] = key.default
                continue
            parsed = key.parse(raw, prefix + short)
            if isinstance(parsed, Problem):
                problems.append(parsed)
            else:
                typed[short] = parsed
        if problems:
            raise ConfigError(stack, problems)
        return typed


def _engine_string(value: Any) -> str:
    """Encode a config value as the engine does: strings as-is, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def load_project(root: Path) -> PulumiProject:
    """Load the ``Pulumi.yaml`` in ``root``.

    Raises:
        FileNotFoundError: There is no ``Pulumi.yaml`` in ``root``.
        ValueError: The config schema declares a type Pulumi does not support.
    """
    path = root / "Pulumi.yaml"
    document = yaml.safe_load(path.read_text())
    schema: dict[str, ConfigKey] = {}
    for short, declaration in (document.get("config") or {}).items():
        if not isinstance(declaration, dict) or "type" not in declaration:
            raise ValueError(f"{path}: config key {short!r} needs a type")
        if declaration["type"] not in ("string", "integer", "boolean", "array"):
            raise ValueError(f"{path}: config key {short!r} has unsupported type")
        items = declaration.get("items")
        schema[short] = ConfigKey(
            name=short,
            type=declaration["type"],
            description=declaration.get("description", ""),
            default=declaration.get("default"),
            secret=bool(declaration.get("secret", False)),
            items=items.get("type") if isinstance(items, dict) else None,
        )
    return PulumiProject(
        root=root,
        name=document["name"],
        main=(root / document.get("main", ".")).resolve(),
        stack_config_dir=(root / document.get("stackConfigDir", ".")).resolve(),
        schema=schema,
    )


def find_project(start: Path) -> PulumiProject:
    """Load the project of the nearest ``Pulumi.yaml`` at or above ``start``.

    Raises:
        FileNotFoundError: No folder from ``start`` upward holds a ``Pulumi.yaml``.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "Pulumi.yaml").is_file():
            return load_project(folder)
    raise FileNotFoundError(f"no Pulumi.yaml in {start} or any folder above it")
