"""Turn a builder's plain-dict object into the matching typed pulumi_kubernetes resource.

Builders return objects exactly as ``kubectl apply`` would take them; this module is the only
place that knows how those map onto pulumi_kubernetes classes, so components stay thin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

__all__ = ["create_object"]

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def _resource_class(api_version: str, kind: str) -> type[pulumi.CustomResource] | None:
    """Find the typed class for a core or built-in API kind, or None for custom resources."""
    group_version = api_version.split("/")
    if len(group_version) == 1:
        group, version = "core", group_version[0]
    else:
        # "rbac.authorization.k8s.io/v1" -> module "rbac"; custom groups have no module.
        group, version = group_version[0].split(".")[0], group_version[1]
        if "." in group_version[0] and not group_version[0].endswith(".k8s.io"):
            return None
    module = getattr(getattr(k8s, group, None), version, None)
    cls = getattr(module, kind, None)
    return cls if isinstance(cls, type) and issubclass(cls, pulumi.CustomResource) else None


def create_object(
    name: str, obj: Mapping[str, Any], opts: pulumi.ResourceOptions
) -> pulumi.CustomResource:
    """Register ``obj`` as a Pulumi resource named ``name``.

    Args:
        name: Pulumi logical name (unique within the stack).
        obj: A complete Kubernetes object with ``apiVersion``, ``kind`` and ``metadata``.
        opts: Resource options; carries ``parent`` and the Kubernetes ``provider``.

    Returns:
        The typed resource for built-in kinds, a ``CustomResource`` otherwise.
    """
    api_version, kind = obj["apiVersion"], obj["kind"]
    fields = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    cls = _resource_class(api_version, kind)
    if cls is None:
        unexpected = set(fields) - {"metadata", "spec"}
        if unexpected:
            raise ValueError(
                f"custom resource {kind} has unsupported top-level fields {unexpected}"
            )
        return k8s.apiextensions.CustomResource(
            name, api_version=api_version, kind=kind, opts=opts, **fields
        )
    kwargs = {_CAMEL_BOUNDARY.sub("_", key).lower(): value for key, value in fields.items()}
    resource: pulumi.CustomResource = cls(name, opts=opts, **kwargs)
    return resource
