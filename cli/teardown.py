"""What would block ``pulumi destroy`` or survive it, found in an offline deployment.

A preview environment must go away completely: nothing protected, nothing retained, no
deletion protection, no bucket or registry that refuses to be deleted while it holds data,
no chart that keeps its CRDs, and a Kubernetes provider that can forget objects whose cluster
is already gone.
"""

from __future__ import annotations

from workstack.offline import Deployment, RegisteredResource

__all__ = ["blockers"]


def _problem(resource: RegisteredResource) -> str | None:
    inputs, kind = resource.inputs, resource.type
    if kind == "gcp:container/cluster:Cluster" and inputs.get("deletionProtection", True):
        return "deletion protection is on (GKE's default when unset)"
    if kind == "eks:index:Cluster" and inputs.get("deletionProtection", False):
        return "deletion protection is on"
    if kind in ("aws:s3/bucket:Bucket", "gcp:storage/bucket:Bucket") and not inputs.get(
        "forceDestroy"
    ):
        return "a bucket that still holds objects cannot be deleted (forceDestroy is off)"
    if kind == "aws:ecr/repository:Repository" and not inputs.get("forceDelete"):
        return "a repository that still holds images cannot be deleted (forceDelete is off)"
    if kind == "pulumi:providers:kubernetes" and inputs.get("deleteUnreachable") != "true":
        return (
            "objects of a cluster deleted first would stay in the state (deleteUnreachable is off)"
        )
    if kind == "kubernetes:helm.sh/v4:Chart":
        values = inputs.get("values") or {}
        if isinstance(values, dict) and (values.get("crds") or {}).get("keep") is True:
            return "the chart keeps its CRDs after uninstall"
    return None


def blockers(deployment: Deployment) -> list[str]:
    """One line per resource that would block ``pulumi destroy`` or outlive it."""
    found = []
    for resource in deployment.resources:
        where = f"{resource.type} {resource.name}"
        if resource.protect:
            found.append(f"{where}: protected")
        if resource.retain_on_delete:
            found.append(f"{where}: retained on delete")
        problem = _problem(resource)
        if problem is not None:
            found.append(f"{where}: {problem}")
    return found
