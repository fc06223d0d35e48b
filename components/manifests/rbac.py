"""Service accounts and the namespaced permissions each workload pattern needs.

Permissions are named sets with only the verbs a pattern uses. Nothing here makes a
ClusterRole: workloads never get cluster-wide rights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.validation import require_choice, require_dns1123_label

__all__ = [
    "PERMISSION_SETS",
    "build_role",
    "build_role_binding",
    "build_service_account",
]

_DASK_RESOURCES = ["daskclusters", "daskworkergroups", "daskautoscalers", "daskjobs"]

PERMISSION_SETS: dict[str, tuple[dict[str, Any], ...]] = {
    # Job-per-file pods and queue workers only touch storage and the broker: no API access.
    "none": (),
    # A Dask client (dask-kubernetes' operator KubeCluster) creates and scales its cluster
    # through the operator's custom resources, and finds the scheduler through its Service.
    "dask-client": (
        {
            "apiGroups": ["kubernetes.dask.org"],
            "resources": _DASK_RESOURCES,
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ),
    # The Argo executor in every step reports its outputs as WorkflowTaskResults.
    "argo-step": (
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtaskresults"],
            "verbs": ["create", "patch"],
        },
    ),
}
"""Named permission sets; a workload identity holds exactly one."""


def _metadata(name: str, namespace: str, instance: str, component: str) -> dict[str, Any]:
    return {
        "name": require_dns1123_label("name", name),
        "namespace": require_dns1123_label("namespace", namespace),
        "labels": standard_labels(name="workstack", instance=instance, component=component),
    }


def build_service_account(
    *,
    name: str,
    namespace: str,
    instance: str,
    annotations: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A service account whose API token is not mounted unless a pod asks for it.

    Args:
        name: Service account name.
        namespace: Its namespace.
        instance: Owning component's name, for labels.
        annotations: Cloud identity links (GKE Workload Identity, IRSA); values are passed
            through untouched and may be Pulumi outputs.
    """
    metadata = _metadata(name, namespace, instance, "identity")
    if annotations:
        metadata["annotations"] = dict(sorted(annotations.items()))
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata,
        "automountServiceAccountToken": False,
    }


def build_role(*, name: str, namespace: str, instance: str, permissions: str) -> dict[str, Any]:
    """A namespaced Role holding the rules of one permission set.

    Raises:
        SpecError: ``permissions`` is not a known set, or it is ``none`` (no Role is needed).
    """
    require_choice("permissions", permissions, [p for p in PERMISSION_SETS if p != "none"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(name, namespace, instance, "identity"),
        "rules": [dict(rule) for rule in PERMISSION_SETS[permissions]],
    }


def build_role_binding(
    *, name: str, namespace: str, instance: str, role: str, service_account: str
) -> dict[str, Any]:
    """Bind ``role`` to ``service_account``, both in ``namespace``."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(name, namespace, instance, "identity"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
