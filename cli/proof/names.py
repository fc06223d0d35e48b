r"""Globally scoped names: valid for their service, and different between stacks.

A name is global when two stacks of one project (or two previews) would meet on it: Google
service account ids within a project, IAM role names within an account (explicit names
only: Pulumi adds a random suffix to names it generates), GKE and EKS cluster names,
bucket names (global), image repositories, and on a cluster two stacks share (minikube)
every cluster-scoped Kubernetes object and objects in shared namespaces (kube-system), the
charts' and bundles' included (from the facts table). Two stacks that meet on a name either
fail to create it, or share it and delete it under each other.

Name rules (sources: terraform-provider-google v7.45.0 and the AWS docs, as in the
research report ``pulumi-cloud-facts.md`` §7-8):

- Google service account id: 6-30 characters, ``^[a-z]([-a-z0-9]*[a-z0-9])?$``.
- GKE cluster name: at most 40 characters, lowercase letters, digits and hyphens, starting
  with a letter, ending with a letter or digit.
- IAM role name: 1-64 characters of ``[\w+=,.@-]``; ``name_prefix`` at most 38.
- EKS cluster name: 1-100 characters, ``^[0-9A-Za-z][A-Za-z0-9\-_]*$``.
- ECR repository: 2-256 characters, lowercase path components.
- S3 bucket: 3-63 lowercase letters, digits, dots and hyphens, a letter or digit at each
  end; ``bucket_prefix`` at most 37. GCS bucket: 3-63 of those and underscores (no dots
  here: dotted names need domain verification).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from workstack.components.manifests.upstream import ClusterObject
from workstack.offline import OFFLINE_ACCOUNT, Deployment, RegisteredResource, Secret
from workstack.proof.charts import bundle_uses, holds
from workstack.proof.findings import Finding

__all__ = ["GlobalName", "collisions", "global_names", "name_findings"]

_CLUSTER_SCOPED = {
    "Namespace",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "APIService",
    "IngressClass",
    "CSIDriver",
}
_SHARED_NAMESPACES = {"kube-system", "kube-public", "default"}


@dataclass(frozen=True)
class GlobalName:
    """A name that must be unique within ``scope``.

    Attributes:
        scope: Where it must be unique, e.g. ``gcp service account in project p``.
        name: The name.
        owner: The resource (or chart) that creates it.
    """

    scope: str
    name: str
    owner: str


def _plain(value: Any) -> Any:
    return _plain(value.value) if isinstance(value, Secret) else value


def _text(resource: RegisteredResource, key: str) -> str | None:
    value = _plain(resource.inputs.get(key))
    return value if isinstance(value, str) and value else None


def _cluster_identity(deployment: Deployment) -> str:
    """Which Kubernetes cluster the deployment's objects go to."""
    for resource in deployment.of_type("pulumi:providers:kubernetes"):
        context = _text(resource, "context")
        if context:  # an existing cluster (minikube): the kubeconfig context names it
            return f"context {context} of {_text(resource, 'kubeconfig') or '~/.kube/config'}"
    for type_token in ("gcp:container/cluster:Cluster", "eks:index:Cluster"):
        for resource in deployment.of_type(type_token):
            return f"{type_token.split(':')[0]} cluster {_text(resource, 'name')}"
    return "the cluster"


def _cloud_names(resource: RegisteredResource, region: str) -> Iterator[GlobalName]:
    owner = f"{resource.type} {resource.name}"
    project = _text(resource, "project") or "the provider's project"
    simple = {
        "gcp:serviceaccount/account:Account": ("accountId", f"Google service account in {project}"),
        "gcp:container/cluster:Cluster": (
            "name",
            f"GKE cluster in {project}/{_text(resource, 'location')}",
        ),
        "gcp:artifactregistry/repository:Repository": (
            "repositoryId",
            f"Artifact Registry repository in {project}/{_text(resource, 'location')}",
        ),
        "gcp:storage/bucket:Bucket": ("name", "GCS bucket (global)"),
        "aws:iam/role:Role": ("name", f"IAM role in account {OFFLINE_ACCOUNT}"),
        "eks:index:Cluster": ("name", f"EKS cluster in {OFFLINE_ACCOUNT}/{region}"),
        "aws:eks/cluster:Cluster": ("name", f"EKS cluster in {OFFLINE_ACCOUNT}/{region}"),
        "aws:ecr/repository:Repository": ("name", f"ECR repository in {OFFLINE_ACCOUNT}/{region}"),
        "aws:s3/bucket:Bucket": ("bucket", "S3 bucket (global)"),
        "aws:s3/bucketV2:BucketV2": ("bucket", "S3 bucket (global)"),
    }
    if resource.type in simple:
        key, scope = simple[resource.type]
        name = _text(resource, key)
        if name:
            yield GlobalName(scope, name, owner)


def _object_names(obj: Mapping[str, Any], owner: str, cluster: str) -> Iterator[GlobalName]:
    kind, meta = obj.get("kind", ""), obj.get("metadata") or {}
    namespace = meta.get("namespace")
    if kind in _CLUSTER_SCOPED or namespace in _SHARED_NAMESPACES:
        where = f" in namespace {namespace}" if namespace and kind not in _CLUSTER_SCOPED else ""
        yield GlobalName(f"{kind}{where} on {cluster}", str(meta.get("name")), owner)


def global_names(
    deployment: Deployment, config: Mapping[str, str] | None = None
) -> list[GlobalName]:
    """Every globally scoped name the deployment creates, charts and bundles included.

    Args:
        deployment: The render.
        config: Its config: ``aws:region`` scopes EKS clusters and ECR repositories (the
            stacks use the default AWS provider, configured by it).
    """
    region = (config or {}).get("aws:region", "")
    for resource in deployment.of_type("pulumi:providers:aws"):
        region = _text(resource, "region") or region
    cluster = _cluster_identity(deployment)
    names: list[GlobalName] = []
    for resource in deployment.resources:
        names += _cloud_names(resource, region or "the provider's region")
        if resource.is_kubernetes_object:
            names += _object_names(_plain(resource.inputs), resource.name, cluster)
    for use in bundle_uses(deployment):
        for obj in use.bundle.cluster_objects if use.bundle else ():
            if holds(use, obj.when):
                names += _object_names(_bundle_object(obj, use.release), use.label, cluster)
    return names


def _bundle_object(obj: ClusterObject, release: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": obj.name.replace("{release}", release)}
    if obj.namespace:
        meta["namespace"] = obj.namespace
    return {"kind": obj.kind, "metadata": meta}


def collisions(
    renders: Mapping[str, Deployment], configs: Mapping[str, Mapping[str, str]] | None = None
) -> list[Finding]:
    """Names two renders (stacks, previews) would both create in the same scope.

    Args:
        renders: Each render by a label (the stack's name).
        configs: Each render's config by the same label, where known.
    """
    seen: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for label, deployment in renders.items():
        for found in set(global_names(deployment, (configs or {}).get(label))):
            seen.setdefault((found.scope, found.name), []).append((label, found.owner))
    findings = []
    for (scope, name), owners in sorted(seen.items()):
        stacks = sorted({label for label, _ in owners})
        if len(stacks) > 1:
            by = "; ".join(f"{label}: {owner}" for label, owner in sorted(set(owners)))
            findings.append(
                Finding(
                    "names",
                    f"{scope}: {name}",
                    f"created by {len(stacks)} stacks ({by}): the second fails to create it, "
                    "or both manage one object and destroying either deletes it for both",
                )
            )
    return findings


_RULES: dict[str, tuple[str, re.Pattern[str], int, int]] = {
    "gcp:serviceaccount/account:Account": (
        "accountId",
        re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"),
        6,
        30,
    ),
    "gcp:container/cluster:Cluster": ("name", re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"), 1, 40),
    "aws:iam/role:Role": ("name", re.compile(r"^[\w+=,.@-]+$"), 1, 64),
    "eks:index:Cluster": ("name", re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]*$"), 1, 100),
    "aws:ecr/repository:Repository": (
        "name",
        re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$"),
        2,
        256,
    ),
    "aws:s3/bucket:Bucket": ("bucket", re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"), 3, 63),
    "gcp:storage/bucket:Bucket": ("name", re.compile(r"^[a-z0-9][a-z0-9_-]*[a-z0-9]$"), 3, 63),
}
_PREFIX_LIMITS = {
    "aws:iam/role:Role": ("namePrefix", 38),
    "aws:s3/bucket:Bucket": ("bucketPrefix", 37),
}


def name_findings(deployment: Deployment) -> list[Finding]:
    """Names their service would refuse (length, characters)."""
    findings = []
    for resource in deployment.resources:
        rule = _RULES.get(resource.type)
        if rule is not None:
            key, pattern, shortest, longest = rule
            name = _text(resource, key)
            if name is not None and not (shortest <= len(name) <= longest and pattern.match(name)):
                findings.append(
                    Finding(
                        "names",
                        f"{resource.type} {resource.name}",
                        f"{key} {name!r} is refused: expected {shortest}-{longest} characters "
                        f"matching {pattern.pattern}",
                    )
                )
        prefix = _PREFIX_LIMITS.get(resource.type)
        if prefix is not None:
            key, longest = prefix
            value = _text(resource, key)
            if value is not None and len(value) > longest:
                findings.append(
                    Finding(
                        "names",
                        f"{resource.type} {resource.name}",
                        f"{key} {value!r} is longer than {longest} characters (the provider "
                        "appends a 26-character unique suffix)",
                    )
                )
    return findings
