"""Pure builders: typed specs in, Kubernetes objects (plain dicts) out.

Nothing here imports Pulumi, so every builder is tested on its own, checked against the
Kubernetes schemas and pinned by golden YAML files. Components call these and only wrap the
result in a Pulumi resource.
"""

from workstack.components.manifests.kubeconfig import build_gke_kubeconfig
from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.namespace import NamespaceSpec, build_namespace
from workstack.components.manifests.validation import (
    SpecError,
    require_choice,
    require_dns1123_label,
    require_dns1123_subdomain,
    require_int,
)

__all__ = [
    "NamespaceSpec",
    "SpecError",
    "build_gke_kubeconfig",
    "build_namespace",
    "require_choice",
    "require_dns1123_label",
    "require_dns1123_subdomain",
    "require_int",
    "standard_labels",
]
