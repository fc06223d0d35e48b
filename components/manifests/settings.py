"""Settings: what a user can tune, one model per pattern and per platform piece.

Each field is declared once, with its default, its check and its description (the docstring
under it). A field's alias is its stack key: ``JobSettings.shards`` is ``jobShards``, set as
``workstack:jobShards`` in a stack file. Nested settings (a pod's ``Resources``) extend their
parent's key: ``QueueSettings.worker_resources.cpu`` is ``queueWorkerCpu``. Fields without an
alias are set by the program (``deletion_protection`` follows ``ephemeral``), never by config.

``Pulumi.yaml``'s ``config:`` block is generated from these models (``workstack config
schema``), and a test keeps the committed file equal to what they generate.

Components take Pulumi wiring (cluster, image, storage, identity) plus a settings object;
builders take the settings object. A bad value raises :class:`SettingsError` naming every bad
field (or stack key), the value and what is allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Self, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from workstack.components.manifests.validation import (
    SpecError,
    require_choice,
    require_dns1123_label,
    require_int,
    require_quantity,
)

__all__ = [
    "Between",
    "Checked",
    "Flag",
    "Label",
    "Names",
    "OneOf",
    "OptionalQuantity",
    "OptionalText",
    "Problem",
    "Quantity",
    "Settings",
    "SettingsError",
    "StackKey",
    "Text",
    "parse_config_value",
    "setting",
    "show_value",
    "stack_keys",
]

PulumiType = Literal["string", "integer", "boolean", "array"]
_VALIDATING: ContextVar[bool] = ContextVar("workstack_settings_validating", default=False)
T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    """One bad input: where it is (a stack key or a field), the value and what is allowed."""

    key: str
    value: object
    allowed: str

    def __str__(self) -> str:
        shown = "(missing)" if self.value is None else _shorten(show_value(self.value))
        return f"{self.key}: {shown} is not allowed; {self.allowed}"


def show_value(value: object) -> str:
    """A value as the user wrote it: a list as ``['a', 'b']``, never as a Python tuple."""
    if isinstance(value, tuple | list):
        return "[" + ", ".join(show_value(item) for item in value) + "]"
    return repr(value)


def _shorten(text: str, limit: int = 200) -> str:
    """Echo long values shortened, so a huge input cannot make a huge error message."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} characters)"


class SettingsError(SpecError):
    """Settings that are not allowed; lists every problem found.

    ``field``, ``value`` and ``allowed`` are those of the first problem, so code that handles
    a :class:`SpecError` handles this too.
    """

    def __init__(self, what: str, problems: Sequence[Problem]) -> None:
        self.what = what
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.key, first.value, first.allowed)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        self.args = (f"invalid {what}:\n{lines}",)

    def __str__(self) -> str:
        return str(self.args[0])


# Field types. Each check runs before pydantic's own, so every message is ours: it says what
# is allowed, and the key or field is added from where the value was given.


def _raising(check: Callable[..., T], *args: Any, **kwargs: Any) -> Callable[[object], T]:
    def validate(value: object) -> T:
        return check("", value, *args, **kwargs)

    return validate


def _optional(check: Callable[[object], T]) -> Callable[[object], T | None]:
    def validate(value: object) -> T | None:
        return None if value is None else check(value)

    return validate


def Between(  # noqa: N802 - used like a type: Annotated[int, Between(1, 10)]
    minimum: int, maximum: int | None = None, *, optional: bool = False
) -> BeforeValidator:
    """An integer in ``[minimum, maximum]`` (booleans and numeric strings are refused)."""
    check = _raising(require_int, minimum=minimum, maximum=maximum)
    return BeforeValidator(_optional(check) if optional else check)


def OneOf(*choices: str) -> BeforeValidator:  # noqa: N802 - used like a type
    """A string that must be one of ``choices``."""
    return BeforeValidator(_raising(require_choice, choices))


def Checked(  # noqa: N802 - used like a type
    check: Callable[[str, object], Any], *, optional: bool = False
) -> BeforeValidator:
    """A value checked by one of validation.py's ``require_*`` functions."""
    validate = _raising(check)
    return BeforeValidator(_optional(validate) if optional else validate)


def _require_flag(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SpecError(field, value, "expected true or false")
    return value


def _require_text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(field, value, "expected a non-empty string")
    return value


def _require_names(field: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SpecError(field, value, "expected a list of strings")
    return tuple(value)


Flag = Annotated[bool, Checked(_require_flag)]
"""``true`` or ``false``."""
Text = Annotated[str, Checked(_require_text)]
"""A non-empty string."""
OptionalText = Annotated[str | None, Checked(_require_text, optional=True)]
"""A non-empty string, or None."""
Names = Annotated[tuple[str, ...], Checked(_require_names)]
"""A list of strings (a YAML list in a stack file)."""
Label = Annotated[str, Checked(require_dns1123_label)]
"""A DNS-1123 label: a Kubernetes object or namespace name."""
Quantity = Annotated[str, Checked(require_quantity)]
"""A Kubernetes quantity such as ``500m``, ``2``, ``512Mi`` or ``10Gi``."""
OptionalQuantity = Annotated[str | None, Checked(require_quantity, optional=True)]
"""A Kubernetes quantity, or None."""


def setting(
    default: Any,
    key: str | None = None,
    *,
    unset: str | int | None = None,
    secret: bool = False,
) -> Any:
    """Declare a field: its default and, if users set it in stack files, its stack key.

    Args:
        default: The default, written here and nowhere else.
        key: The stack key (without the project prefix); None: not settable by config.
        unset: For an optional field (default None), the value that means "unset" in a stack
            file, since Pulumi's typed config has no null: ``""`` or ``0``.
        secret: The value is a secret: it must be set with ``pulumi config set --secret``.
    """
    extra: dict[str, Any] = {}
    if unset is not None:
        extra["unset"] = unset
    if secret:
        extra["secret"] = True
    return Field(default, alias=key, json_schema_extra=extra or None, repr=not secret)


class Settings(BaseModel):
    """Base of every settings model: frozen, no unknown fields, our error messages.

    Construct with field names (``JobSettings(shards=50)``); stack files use the aliases.
    Cross-field rules are ``model_validator(mode="after")`` methods that call
    :meth:`refuse`.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        loc_by_alias=False,
        use_attribute_docstrings=True,
        arbitrary_types_allowed=True,
    )

    def __init__(self, **data: Any) -> None:
        # pydantic calls __init__ for nested models and for model_validate too; only the
        # outermost call turns its errors into ours, so nested errors keep their paths.
        if _VALIDATING.get():
            super().__init__(**data)
            return
        token = _VALIDATING.set(True)
        try:
            super().__init__(**data)
        except ValidationError as error:
            problems = _problems(type(self), error, _field_name)
            raise SettingsError(type(self).__name__, problems) from None
        finally:
            _VALIDATING.reset(token)

    @staticmethod
    def refuse(field: str, value: object, allowed: str) -> SpecError:
        """An error for a cross-field rule.

        ``allowed`` may name other fields of the same model as ``{field}``; they are shown
        as the user wrote them (the stack key, or the field name).
        """
        return SpecError(field, value, allowed)

    def validated_for(self, **context: Any) -> Self:
        """These settings checked again with the rules that depend on ``context``.

        Some rules depend on where settings are used (``cloud="gke"``); models read the
        context in their validators.

        Raises:
            SettingsError: Naming every field that breaks a rule.
        """
        token = _VALIDATING.set(True)
        try:
            return self.model_validate(self.model_dump(), context=context)
        except ValidationError as error:
            problems = _problems(type(self), error, _field_name)
            raise SettingsError(type(self).__name__, problems) from None
        finally:
            _VALIDATING.reset(token)

    @classmethod
    def from_stack(
        cls,
        values: Mapping[str, str],
        *,
        namespace: str,
        secret_keys: Iterable[str] = (),
        fixed: Mapping[str, Any] | None = None,
        sources: Mapping[str, str] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Self:
        """Build from a stack's raw config (full key to the string the engine hands over).

        Args:
            values: ``<namespace>:<key>`` to string, as in ``PULUMI_CONFIG``.
            namespace: The project's config namespace (its name).
            secret_keys: Full keys whose values were set as secrets.
            fixed: Field values the program sets (by field name; nested with dots).
            sources: For fixed fields that come from other config keys (``gcp:zone``), the
                key to name in errors.
            context: Validation context (see :meth:`validated_for`).

        Raises:
            SettingsError: Naming every bad stack key, with the value and what is allowed.
        """
        data: dict[str, Any] = {}
        problems: list[Problem] = []
        secrets = set(secret_keys)
        for key in stack_keys(cls):
            full = f"{namespace}:{key.name}"
            if full not in values:
                continue
            if key.secret and full not in secrets:
                problems.append(
                    Problem(
                        full,
                        "(plaintext)",
                        f"a secret; set it with `pulumi config set --secret {key.name} ...`",
                    )
                )
                continue
            parsed = parse_config_value(key.type, values[full])
            if isinstance(parsed, Problem):
                problems.append(Problem(full, values[full], parsed.allowed))
                continue
            if key.unset is not None and parsed == key.unset:
                continue  # "" or 0: the field's own default (None)
            _put(data, key.path, parsed)
        for dotted, value in (fixed or {}).items():
            _put(data, tuple(dotted.split(".")), value)
        if problems:
            raise SettingsError(f"config for {cls.__name__}", problems)
        token = _VALIDATING.set(True)
        try:
            return cls.model_validate(data, context=dict(context or {}))
        except ValidationError as error:
            paths = {key.path: f"{namespace}:{key.name}" for key in stack_keys(cls)}
            paths.update({tuple(k.split(".")): v for k, v in (sources or {}).items()})

            def name(path: tuple[str, ...]) -> str:
                return paths.get(path) or _field_name(path)

            raise SettingsError("config", _problems(cls, error, name)) from None
        finally:
            _VALIDATING.reset(token)


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


def _field_name(path: tuple[str, ...]) -> str:
    return ".".join(path) or "(settings)"


_PYDANTIC_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "tuple_type": "expected a list",
    "model_type": "expected a mapping of settings",
    "model_attributes_type": "expected a mapping of settings",
    "is_instance_of": "expected an object of the right type",
}


def _problems(
    model: type[BaseModel], error: ValidationError, name: Callable[[tuple[str, ...]], str]
) -> list[Problem]:
    """Our problems from pydantic's errors: each names its field (or key) and what is allowed."""
    problems = []
    for item in error.errors(include_url=False):
        path = tuple(str(part) for part in item["loc"] if not isinstance(part, int))
        value: object = item.get("input")
        allowed = _PYDANTIC_MESSAGES.get(item["type"], item["msg"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, SpecError):
            value, allowed = cause.value, cause.allowed
            if cause.field:  # a cross-field rule: it names its field, and others as {field}
                allowed = _name_fields(allowed, path, name)
                path = (*path, *cause.field.split("."))
        if item["type"] == "missing":
            value = None
        if item["type"] == "extra_forbidden":
            allowed = "unknown field; known: " + ", ".join(sorted(model.model_fields))
        problems.append(Problem(name(path), value, allowed))
    return problems


def _name_fields(text: str, scope: tuple[str, ...], name: Callable[[tuple[str, ...]], str]) -> str:
    """Replace ``{field}`` in a message by that field as the user knows it."""
    return re.sub(r"\{(\w+)\}", lambda match: name((*scope, match.group(1))), text)


@dataclass(frozen=True)
class StackKey:
    """One stack key: where its value goes and how ``Pulumi.yaml`` declares it."""

    name: str
    path: tuple[str, ...]
    type: PulumiType
    default: Any
    description: str
    unset: str | int | None = None
    secret: bool = False


def stack_keys(model: type[BaseModel]) -> list[StackKey]:
    """Every stack key of ``model``, nested settings expanded, in declaration order."""
    return list(_walk(model, "", (), model.model_construct(), ""))


def _walk(
    model: type[BaseModel],
    prefix: str,
    path: tuple[str, ...],
    defaults: BaseModel | None,
    context: str,
) -> Iterator[StackKey]:
    for field_name, info in model.model_fields.items():
        if info.alias is None:
            continue
        key = prefix + info.alias[:1].upper() + info.alias[1:] if prefix else info.alias
        default = getattr(defaults, field_name, None) if defaults is not None else None
        description = " ".join((info.description or "").split())
        nested = _settings_class(info)
        if nested is not None:
            outer = f"{context} {description}".strip().rstrip(".")
            yield from _walk(nested, key, (*path, field_name), default, outer + ":")
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        unset = extra.get("unset")
        yield StackKey(
            name=key,
            path=(*path, field_name),
            type=_pulumi_type(info),
            default=unset if default is None else _plain(default),
            description=f"{context} {description}".strip(),
            unset=unset,  # type: ignore[arg-type]
            secret=bool(extra.get("secret")),
        )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _settings_class(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _pulumi_type(info: FieldInfo) -> PulumiType:
    annotation: Any = info.annotation
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not NoneType)
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if get_origin(annotation) in (tuple, list):
        return "array"
    return "string"


def parse_config_value(kind: PulumiType, raw: str) -> Any:
    """A config value as the engine hands it over (a string) turned into ``kind``, or a Problem.

    The engine passes every value as a string and structured values as JSON (Pulumi
    ``sdk/python/cmd/pulumi-language-python/main.go``: ``PULUMI_CONFIG``); integers must parse
    as base-10 integers and booleans must be ``true`` or ``false`` (Pulumi
    ``sdk/go/common/workspace/project.go``, ``ValidateConfigValue``).
    """
    if kind == "string":
        return raw
    if kind == "integer":
        text = raw.strip()
        if re.fullmatch(r"[+-]?[0-9]{1,18}", text):
            return int(text)
        return Problem("", raw, "expected an integer")
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return Problem("", raw, "expected true or false")
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return Problem("", raw, "expected a list of strings")
    return tuple(value)
