"""The workload namespace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.validation import require_choice, require_dns1123_label

__all__ = ["POD_SECURITY_LEVELS", "NamespaceSpec", "build_namespace"]

POD_SECURITY_LEVELS = ("restricted", "baseline", "privileged")


@dataclass(kw_only=True, frozen=True)
class NamespaceSpec:
    """A namespace that workloads run in.

    Attributes:
        name: Namespace name (DNS-1123 label).
        instance: Name of the component that owns it.
        stack: Pulumi stack that owns it, if known.
        pod_security: Pod Security Admission level enforced on every pod in the namespace.
            ``restricted`` by default: workload pods run as non-root with no privileges.
    """

    name: str
    instance: str
    stack: str | None = None
    pod_security: str = "restricted"

    def __post_init__(self) -> None:
        require_dns1123_label("namespace", self.name)
        require_choice("pod_security", self.pod_security, POD_SECURITY_LEVELS)


def build_namespace(spec: NamespaceSpec) -> dict[str, Any]:
    """Build the Namespace object, with Pod Security Admission enforcing ``spec.pod_security``."""
    labels = standard_labels(
        name="workstack",
        instance=spec.instance,
        component="namespace",
        stack=spec.stack,
        extra={
            "kubernetes.io/metadata.name": spec.name,
            "pod-security.kubernetes.io/enforce": spec.pod_security,
            # Audit logs still record what the restricted level would reject.
            "pod-security.kubernetes.io/audit": "restricted",
            "pod-security.kubernetes.io/warn": spec.pod_security,
        },
    )
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": spec.name, "labels": labels},
    }
