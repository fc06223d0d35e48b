"""Read a Pulumi project (``Pulumi.yaml``) and its stack config files as the Pulumi CLI does.

``pulumi up`` and ``pulumi preview`` check a stack's config against the project's ``config:``
block before the program runs, and hand the program the merged config. This module applies
the same rules, with the same messages, so ``workstack render`` stops exactly where the CLI
would. The rules and where they come from (pulumi/pulumi at tag v3.259.0, the newest tag in
the stored snapshot; the SDK pinned here is 3.272.0 and the CLI version is not pinned):

- Loading ``Pulumi.yaml`` (``sdk/go/common/workspace/project.go``): a short ``key: value``
  becomes ``{default: value}`` for a project key and ``{value: value}`` for another namespace
  (``RewriteShorthandConfigValues``); ``Project.Validate`` refuses ``default`` together with
  ``value``, an ``array`` without ``items``, a default not of its declared type, and a key of
  another namespace with a ``type``, with a ``default`` or without a ``value``. The types are
  those of ``project.json``'s ``simpleConfigType``: string, integer, boolean, array, object.
- Reading the stack file (``sdk/go/common/workspace/loaders.go``,
  ``stackConfigNamespacedWithProject``): a key without a namespace belongs to the project.
  Keys the project does not declare, in any namespace, are passed on unchecked; rejecting
  unknown ``workstack:`` keys is the program's job (``stacks/config.py``), not the engine's.
- Merging (``pkg/workspace/config.go``, ``mergeConfig``): for each declared key in sorted
  order, a project-namespaced key the stack does not set and that has neither ``default`` nor
  ``value`` is missing; the others get their default (or value) written into the stack's
  config as plaintext (``createConfigValue``: scalars by ``%v``, the rest as JSON). Missing
  keys fail first, all in one message: ``Stack 's' is missing configuration value 'k'`` (or
  ``values 'a', 'b' and 'c'``).
- Validating (``validateStackConfigValues``): only explicitly typed keys, in sorted order,
  the first failure wins. A ``secret: true`` key whose value is not ``secure:`` fails with
  ``Stack 's' with configuration key 'k' must be encrypted as it's secret`` (a plain
  ``default`` too, since it was merged in as plaintext); then the value must be of the type
  (``ValidateConfigValue``): ``Stack 's' with configuration key 'k' must be of type 't'``,
  arrays named ``array<item type>`` (``InferFullTypeName``).
- ``pulumi up``/``preview`` wrap the error as ``validating stack config: ...``
  (``pkg/cmd/pulumi/operations/up.go`` and ``preview.go``) and stop before the program runs.
- The program receives every value as a string, structured values as compact JSON
  (``sdk/python/cmd/pulumi-language-python/main.go``, ``PULUMI_CONFIG``).

What cannot be done here: ``secure:`` values cannot be decrypted without the stack's secrets
provider, so their type is not checked and the program gets a placeholder.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workstack.components.manifests.settings import Problem
from workstack.sdk.errors import WorkstackError

__all__ = [
    "CONFIG_TYPES",
    "ConfigError",
    "ConfigKey",
    "ConfigValue",
    "ItemsType",
    "Problem",
    "ProjectError",
    "PulumiProject",
    "StackConfigError",
    "StackSettings",
    "YamlFileError",
    "find_project",
    "go_json",
    "load_project",
    "merge_stack_config",
]

CONFIG_TYPES = ("string", "integer", "boolean", "array", "object")
"""The types ``project.json`` (``simpleConfigType``) allows in a ``config:`` declaration."""
SECRET_PLACEHOLDER = "[secret]"


class ConfigError(WorkstackError, ValueError):
    """A stack's config is invalid for the program. Lists every problem, each naming its key."""

    def __init__(self, stack: str, problems: list[Problem]) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid config for stack {stack!r}:\n{lines}")


class ProjectError(WorkstackError, ValueError):
    """``Pulumi.yaml`` is one the Pulumi CLI refuses to load; the message is the CLI's."""


class StackConfigError(WorkstackError, ValueError):
    """The Pulumi CLI would refuse the stack's config before the program runs.

    Attributes:
        stack: The stack.
        engine_message: The engine's own message, e.g. ``Stack 'dev' is missing
            configuration value 'x'``.
    """

    def __init__(self, stack: str, engine_message: str) -> None:
        self.stack = stack
        self.engine_message = engine_message
        super().__init__(f"validating stack config: {engine_message}")


@dataclass(frozen=True)
class ItemsType:
    """The ``items`` of an array declaration: an item type, itself possibly an array."""

    type: str
    items: ItemsType | None = None


@dataclass(frozen=True)
class ConfigKey:
    """One declaration of the project's ``config:`` block.

    Attributes:
        name: The key as written in ``Pulumi.yaml`` (``nodeMax``, or ``aws:region``).
        type: The declared type; None when the key is not explicitly typed (not checked).
        description: Its description.
        default: Its default (project keys only).
        value: Its fixed value (keys of other namespaces).
        secret: Whether a stack must set it encrypted (enforced for typed keys only).
        items: The item type of an array.
    """

    name: str
    type: str | None
    description: str = ""
    default: Any = None
    value: Any = None
    secret: bool = False
    items: ItemsType | None = None

    @property
    def full_type(self) -> str:
        """The type as the engine names it in errors: ``array<string>`` for arrays."""
        return _full_type_name(self.type or "", self.items)


@dataclass(frozen=True)
class ConfigValue:
    """A stack config value as the engine keeps it (``config.Value``).

    Attributes:
        text: A scalar's text, the compact JSON of a structured value, or the ciphertext.
        secure: Set with ``secure:`` (``pulumi config set --secret``).
        object: A structured value (list or mapping), held as JSON.
    """

    text: str
    secure: bool = False
    object: bool = False


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


def _full_type_name(type_name: str, items: ItemsType | None) -> str:
    # InferFullTypeName (project.go): nested arrays read array<array<string>>.
    if items is not None:
        return f"array<{_full_type_name(items.type, items.items)}>"
    return type_name


def _conforms(type_name: str, items: ItemsType | None, value: Any) -> bool:
    """``ValidateConfigValue`` (project.go): whether ``value`` is of the declared type."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return math.isfinite(value) and value == math.trunc(value)
        return isinstance(value, str) and _go_atoi(value)
    if type_name == "boolean":
        return value in ("true", "false") or isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(_conforms(items.type, items.items, item) for item in value)


def _go_atoi(text: str) -> bool:
    """Whether Go's ``strconv.Atoi`` accepts ``text``: an optional sign, then decimal digits."""
    return re.fullmatch(r"[+-]?[0-9]+", text) is not None and len(text.lstrip("+-")) <= 19


def go_json(value: Any) -> str:
    """``value`` as Go's ``json.Marshal`` writes it: compact, sorted keys, HTML escaped."""
    text = json.dumps(_go_numbers(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _go_numbers(value: Any) -> Any:
    """Whole floats as ints, as Go's float formatting writes them (``4.0`` -> ``4``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {str(key): _go_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_go_numbers(item) for item in value]
    return value


def _scalar_text(value: Any) -> str:
    """A scalar as the engine stores it (``object.MarshalString``): strings as-is, else JSON."""
    return value if isinstance(value, str) else go_json(value)


def _from_stack_file(value: Any) -> ConfigValue:
    """A value read from a stack file, as ``config.Value`` holds it."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        return ConfigValue(str(value["secure"]), secure=True)
    if value is None:
        # loaders.go, checkForEmptyConfig: "currently treated as an empty string".
        return ConfigValue("")
    if isinstance(value, dict | list):
        return ConfigValue(go_json(value), secure=_has_secure(value), object=True)
    return ConfigValue(_scalar_text(value))


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_secure(item) for item in value)
    return False


def _default_value(value: Any) -> ConfigValue:
    """``createConfigValue`` (config.go): a default or value merged in, always plaintext."""
    if isinstance(value, str | bool | int):
        return ConfigValue(_scalar_text(value))
    return ConfigValue(go_json(value), object=True)


def _missing_message(stack: str, keys: list[str]) -> str:
    """``missingStackConfigurationKeysError`` (config.go), word for word."""
    quoted = [f"'{key}'" for key in keys]
    if len(quoted) == 1:
        return f"Stack '{stack}' is missing configuration value {quoted[0]}"
    listed = ", ".join([*quoted[:-2], f"{quoted[-2]} and {quoted[-1]}"])
    return f"Stack '{stack}' is missing configuration values {listed}"


def _full_key(project: str, key: str) -> str:
    # parseConfigKey (config.go): a key without ':' belongs to the project.
    return key if ":" in key else f"{project}:{key}"


def merge_stack_config(
    project_name: str,
    declarations: Mapping[str, ConfigKey],
    stack: str,
    entries: Mapping[str, ConfigValue],
) -> StackSettings:
    """Merge the project's declarations into a stack's config and validate it, as the CLI does.

    Args:
        project_name: The project's name, the namespace of its own keys.
        declarations: The project's ``config:`` block, by the key as written.
        stack: The stack's name, as the CLI puts it in its messages.
        entries: The stack file's config by full key (``project:key``).

    Returns:
        What the program receives: every value a string; ``secure:`` values as a placeholder.

    Raises:
        StackConfigError: With the engine's message, where ``pulumi up`` would stop.
    """
    merged = dict(entries)
    missing: list[str] = []
    for name in sorted(declarations):
        declared, key = declarations[name], _full_key(project_name, name)
        if key in merged:
            continue
        if declared.default is None and declared.value is None:
            if key.split(":", 1)[0] == project_name:
                missing.append(name)
            continue
        given = declared.default if declared.default is not None else declared.value
        merged[key] = _default_value(given)
    if missing:
        raise StackConfigError(stack, _missing_message(stack, missing))
    for name in sorted(declarations):
        declared = declarations[name]
        value = merged.get(_full_key(project_name, name))
        if declared.type is None or value is None:
            continue
        problem = _value_problem(stack, declared, value)
        if problem:
            raise StackConfigError(stack, problem)
    return StackSettings(
        values={
            key: SECRET_PLACEHOLDER if value.secure else value.text for key, value in merged.items()
        },
        secret_keys=[key for key, value in merged.items() if value.secure],
    )


def _value_problem(stack: str, declared: ConfigKey, value: ConfigValue) -> str | None:
    """``validateStackConfigValue`` (config.go): the secret check, then the type check."""
    if declared.secret and not value.secure:
        return (
            f"Stack '{stack}' with configuration key '{declared.name}' "
            "must be encrypted as it's secret"
        )
    if value.secure:
        return None  # the decrypted value is checked by the engine; it cannot be read here
    content: Any = json.loads(value.text) if value.object else value.text
    if not _conforms(declared.type or "", declared.items, content):
        return (
            f"Stack '{stack}' with configuration key '{declared.name}' "
            f"must be of type '{declared.full_type}'"
        )
    return None


class _Yaml12Loader(yaml.SafeLoader):
    """YAML as Go's yaml.v3 reads it: only true/false are booleans (``yes``/``on`` are text)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


MAX_YAML_BYTES = 1 << 20
"""Largest stack or project file read (1 MiB): real ones are a few KiB."""
MAX_YAML_NODES = 100_000
"""Most nodes a file may expand to through aliases (an alias bomb of a few hundred bytes
expands to billions; Go's yaml.v3, which Pulumi uses, refuses excessive aliasing too)."""


class YamlFileError(WorkstackError, ValueError):
    """A stack or project file that is not YAML the program accepts; names file and reason."""

    def __init__(self, path: Path, value: object, allowed: str) -> None:
        self.problem = Problem(str(path), value, allowed)
        super().__init__(str(self.problem))


class _StrictLoader(_Yaml12Loader):
    """A loader that refuses duplicate keys.

    Pulumi's yaml.v3 refuses them too ("mapping key already defined"); PyYAML would let the
    last one win silently.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # refused below by the base class (unhashable)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is defined twice (lines {seen[key]} and "
                    f"{key_node.start_mark.line + 1}); the last would silently win",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes ``node`` stands for once every alias is expanded (shared nodes counted per use)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a recursive alias counts once
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = min(total, MAX_YAML_NODES + 1)
    return sizes[id(node)]


def _load_yaml(path: Path) -> Any:
    """A stack or project file as the Pulumi CLI reads it, or a clean error.

    Raises:
        YamlFileError: It is too large, not UTF-8 text, not YAML, holds a key twice or
            expands through aliases beyond :data:`MAX_YAML_NODES` nodes.
    """
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise YamlFileError(
            path, f"{size} bytes", f"a stack file of at most {MAX_YAML_BYTES} bytes"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlFileError(
            path, f"byte {error.start}", "expected UTF-8 text (is it a binary file?)"
        ) from None
    if "\x00" in text:
        raise YamlFileError(path, f"byte {text.index(chr(0))}", "expected text, found a NUL byte")
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
            raise YamlFileError(
                path,
                "(aliases)",
                f"at most {MAX_YAML_NODES} nodes once aliases are expanded; the file "
                "expands to more (an alias bomb?)",
            )
        return None if node is None else loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(error, "problem", None) or str(error)
        raise YamlFileError(path, where, f"expected valid YAML: {problem}") from None
    finally:
        loader.dispose()


@dataclass(frozen=True)
class PulumiProject:
    """A Pulumi project on disk.

    Attributes:
        root: Folder holding ``Pulumi.yaml``.
        name: Project name; the namespace of its own config keys.
        main: Folder of the program.
        stack_config_dir: Folder of the ``Pulumi.<stack>.yaml`` files.
        schema: The project's ``config:`` declarations, by the key as written.
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

    def stack_entries(self, stack: str) -> dict[str, ConfigValue]:
        """The stack file's config by full key, as the engine holds it, nothing merged.

        Raises:
            FileNotFoundError: The stack has no config file; the message lists the stacks.
            ConfigError: The file is not a mapping of keys to values.
        """
        path = self.stack_file(stack)
        if not path.is_file():
            known = ", ".join(self.stacks()) or "none"
            raise FileNotFoundError(f"stack {stack!r} has no config file {path}; stacks: {known}")
        document = _load_yaml(path) or {}
        entries = document.get("config", {}) if isinstance(document, dict) else None
        if not isinstance(entries, dict):
            raise ConfigError(stack, [Problem(str(path), entries, "expected a `config:` mapping")])
        return {
            _full_key(self.name, str(key)): _from_stack_file(value)
            for key, value in entries.items()
        }

    def read_stack(self, stack: str) -> StackSettings:
        """Read a stack's config the way ``pulumi up`` hands it to the program.

        Raises:
            FileNotFoundError: The stack has no config file; the message lists the stacks.
            ConfigError: The file is not a mapping of keys to values.
            StackConfigError: The CLI would stop here, before the program runs.
        """
        return merge_stack_config(self.name, self.schema, stack, self.stack_entries(stack))


def _items(declaration: Any) -> ItemsType | None:
    if not isinstance(declaration, dict):
        return None
    return ItemsType(type=str(declaration.get("type")), items=_items(declaration.get("items")))


def _declaration(project: str, key: str, raw: Any, path: Path) -> ConfigKey:
    """One entry of the ``config:`` block, short forms rewritten and checked as the CLI does."""
    ours = ":" not in key or key.startswith(f"{project}:")
    if not isinstance(raw, dict):
        # RewriteShorthandConfigValues: a project key's short form is its default.
        raw = {"default": raw} if ours else {"value": raw}
    unknown = sorted(set(raw) - {"type", "items", "description", "secret", "default", "value"})
    if unknown:
        raise ProjectError(f"{path}: config key {key!r} has unknown attributes {unknown}")
    declared = ConfigKey(
        name=key,
        type=raw.get("type"),
        description=str(raw.get("description", "")),
        default=raw.get("default"),
        value=raw.get("value"),
        secret=bool(raw.get("secret", False)),
        items=_items(raw.get("items")),
    )
    if declared.type is not None and declared.type not in CONFIG_TYPES:
        raise ProjectError(
            f"{path}: config key {key!r} has type {declared.type!r}; "
            f"allowed: {', '.join(CONFIG_TYPES)}"
        )
    message = _declaration_problem(ours, declared)
    if message:
        raise ProjectError(f"{path}: {message}")
    return declared


def _declaration_problem(ours: bool, declared: ConfigKey) -> str | None:
    """``Project.Validate`` (project.go), word for word."""
    key = declared.name
    if declared.default is not None and declared.value is not None:
        return f"project config '{key}' cannot have both a 'default' and 'value' attribute"
    if ours:
        if declared.type == "array" and declared.items is None:
            return (
                f"The configuration key '{key}' declares an array but does not specify the "
                "underlying type via the 'items' attribute"
            )
        if (
            declared.type is not None
            and declared.default is not None
            and not _conforms(declared.type, declared.items, declared.default)
        ):
            return (
                f"The default value specified for configuration key '{key}' is not of the "
                f"expected type '{declared.full_type}'"
            )
        return None
    if declared.type is not None:
        return (
            f"Configuration key '{key}' is not namespaced by the project and should not "
            "define a type"
        )
    if declared.default is not None:
        return (
            f"Configuration key '{key}' is not namespaced by the project and should not define "
            "a default value. Did you mean to use the 'value' attribute instead of 'default'?"
        )
    if declared.value is None:
        return f"Configuration key '{key}' is namespaced and must provide an attribute 'value'"
    return None


def load_project(root: Path) -> PulumiProject:
    """Load the ``Pulumi.yaml`` in ``root``.

    Raises:
        FileNotFoundError: There is no ``Pulumi.yaml`` in ``root``.
        ProjectError: The CLI would refuse the file (no name, a bad ``config:`` declaration).
    """
    path = root / "Pulumi.yaml"
    document = _load_yaml(path)
    if not isinstance(document, dict) or not document.get("name"):
        raise ProjectError(f"{path}: project is missing a 'name' attribute")
    name = str(document["name"])
    block = document.get("config") or {}
    if not isinstance(block, dict):
        raise ProjectError(f"{path}: `config:` must map keys to declarations")
    schema = {str(key): _declaration(name, str(key), raw, path) for key, raw in block.items()}
    return PulumiProject(
        root=root,
        name=name,
        main=(root / document.get("main", ".")).resolve(),
        stack_config_dir=(root / document.get("stackConfigDir", ".")).resolve(),
        schema=schema,
    )


def find_project(start: Path) -> PulumiProject:
    """Load the project of the nearest ``Pulumi.yaml`` at or above ``start``.

    Raises:
        FileNotFoundError: No folder from ``start`` upward holds a ``Pulumi.yaml``.
        ProjectError: The CLI would refuse that ``Pulumi.yaml``.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "Pulumi.yaml").is_file():
            return load_project(folder)
    raise FileNotFoundError(f"no Pulumi.yaml in {start} or any folder above it")
