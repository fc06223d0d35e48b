"""Checks shared by every spec, component argument and stack config key.

Each check raises :class:`SpecError`, whose message names the offending field, the value it was
given and what is allowed, so a bad input fails before anything is created and says how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

__all__ = [
    "SpecError",
    "require_choice",
    "require_dns1123_label",
    "require_dns1123_subdomain",
    "require_int",
]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)

T = TypeVar("T")


class SpecError(ValueError):
    """A field has a value that is not allowed.

    Attributes:
        field: Dotted name of the field or config key, as the user wrote it.
        value: The rejected value.
        allowed: What the field accepts, phrased for the user.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: {value!r} is not allowed; {allowed}")


def require_dns1123_label(field: str, value: object, *, max_length: int = 63) -> str:
    """Return ``value`` if it is a DNS-1123 label (a Kubernetes object or namespace name).

    Args:
        field: Name of the field, used in the error.
        value: Candidate name.
        max_length: Upper bound; some clouds allow less than Kubernetes' 63.

    Raises:
        SpecError: If the value is not a lowercase alphanumeric-and-dash label of the right length.
    """
    if not isinstance(value, str) or not _DNS1123_LABEL.match(value) or len(value) > max_length:
        raise SpecError(
            field,
            value,
            f"expected a DNS-1123 label: at most {max_length} characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit",
        )
    return value


def require_dns1123_subdomain(field: str, value: object) -> str:
    """Return ``value`` if it is a DNS-1123 subdomain (dot-separated labels, at most 253 chars).

    Raises:
        SpecError: If the value is not a valid subdomain.
    """
    if not isinstance(value, str) or not _DNS1123_SUBDOMAIN.match(value) or len(value) > 253:
        raise SpecError(
            field,
            value,
            "expected a DNS-1123 subdomain: dot-separated labels of a-z, 0-9 and '-', "
            "at most 253 characters",
        )
    return value


def require_choice(field: str, value: T, choices: Iterable[T]) -> T:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        SpecError: Naming every allowed choice.
    """
    allowed = list(choices)
    if value not in allowed:
        raise SpecError(field, value, "allowed: " + ", ".join(str(c) for c in allowed))
    return value


def require_int(field: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an integer within ``[minimum, maximum]``.

    Booleans are rejected even though Python treats them as integers.

    Raises:
        SpecError: If the value is not an integer or lies outside the range.
    """
    bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(field, value, f"expected an integer {bounds}")
    if value < minimum or (maximum is not None and value > maximum):
        raise SpecError(field, value, f"expected an integer {bounds}")
    return value
