"""Checks shared by every spec, component argument and stack config key.

Each check raises :class:`SpecError`, whose message names the offending field, the value it was
given and what is allowed, so a bad input fails before anything is created and says how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import TypeVar

from workstack.sdk.errors import WorkstackError

__all__ = [
    "SpecError",
    "parse_quantity",
    "require_bucket_name",
    "require_choice",
    "require_dns1123_label",
    "require_dns1123_subdomain",
    "require_int",
    "require_quantity",
]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)

_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(\.[0-9]+)?)(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
)
_QUANTITY_FACTORS = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")

T = TypeVar("T")


class SpecError(WorkstackError, ValueError):
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


def parse_quantity(value: str) -> Decimal | None:
    """The numeric value of a Kubernetes quantity (``500m``, ``2``, ``10Gi``), or None if invalid.

    Only the forms workstack accepts are parsed: a plain decimal with an optional SI or binary
    suffix (no exponents, no signs).
    """
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    return Decimal(match["number"]) * _QUANTITY_FACTORS[match["suffix"]]


def require_quantity(field: str, value: object, *, minimum: str | None = None) -> str:
    """Return ``value`` if it is a Kubernetes quantity such as ``500m``, ``1``, ``10Gi``.

    Args:
        field: Name of the field, used in the error.
        value: Candidate quantity.
        minimum: Smallest allowed quantity, if any.

    Raises:
        SpecError: If the value is not a quantity or is below ``minimum``.
    """
    parsed = parse_quantity(value) if isinstance(value, str) else None
    if parsed is None or parsed <= 0:
        raise SpecError(
            field, value, "expected a positive Kubernetes quantity such as 500m, 2, 512Mi or 10Gi"
        )
    if minimum is not None and parsed < (parse_quantity(minimum) or 0):
        raise SpecError(field, value, f"expected at least {minimum}")
    assert isinstance(value, str)  # parse_quantity accepted it
    return value


def require_bucket_name(field: str, value: object, *, cloud: str) -> str:
    """Return ``value`` if it is a valid bucket name on ``cloud`` (``s3`` or ``gcs``).

    Raises:
        SpecError: Naming the rule the name breaks.
    """
    if cloud == "gcs":
        pattern, rules = _GCS_BUCKET, "3-63 of a-z, 0-9, '-', '_' and '.'"
    else:
        pattern, rules = _S3_BUCKET, "3-63 of a-z, 0-9, '-' and '.'"
    allowed = (
        f"expected a {cloud.upper()} bucket name: {rules}, "
        "starting and ending with a letter or digit"
    )
    if not isinstance(value, str) or not pattern.match(value) or ".." in value:
        raise SpecError(field, value, allowed)
    if _IP_ADDRESS.match(value):
        raise SpecError(field, value, allowed + ", not shaped like an IP address")
    if cloud == "gcs" and (value.startswith("goog") or "google" in value):
        raise SpecError(
            field,
            value,
            allowed + "; GCS refuses names starting with 'goog' or containing 'google'",
        )
    if cloud != "gcs" and (
        value.startswith(("xn--", "sthree-")) or value.endswith(("-s3alias", "--ol-s3"))
    ):
        raise SpecError(
            field,
            value,
            allowed
            + "; S3 reserves the prefixes xn-- and sthree- and the suffixes -s3alias and --ol-s3",
        )
    return value
