"""Dependency order, read from the registered graph (what the engine would wait for).

Rules:

- A cloud resource that refers to a cluster (by its name or id: EKS add-ons, Pod Identity
  associations, access entries, node groups; a GKE node pool; an IAM binding whose member is
  in the cluster's workload identity pool) waits for the cluster. EKS refuses add-ons and
  associations while the cluster is CREATING; Google refuses a ``<project>.svc.id.goog``
  member until a Workload Identity cluster has created the pool ("Identity Pool does not
  exist", terraform-google-modules/terraform-google-kubernetes-engine#916).
- Every Kubernetes object, chart and ConfigFile names the cluster's provider explicitly
  (without it, pulumi-kubernetes uses the ambient kubeconfig: whatever cluster the deployer
  last used); on GKE and EKS that provider waits for the node pool, or nothing can run.
- Every claim (a PersistentVolumeClaim, a StatefulSet's volumeClaimTemplates, a
  RabbitmqCluster's persistence) waits for what provides its StorageClass on that cloud:
  EKS 1.30+ has no default class (awsdocs/amazon-eks-user-guide
  kubernetes-versions-standard.adoc:62), so the EBS CSI add-on with
  ``defaultStorageClass.enabled`` or a default StorageClass object must exist and be waited
  for; GKE and minikube have built-in classes (``upstream.CLUSTER_STORAGE_CLASSES``); the
  Filestore classes need the Filestore CSI driver enabled on the cluster; a static volume
  (``storageClassName: ""``) needs its PersistentVolume, and an EFS volume the EFS CSI add-on.
- Destroy order: whatever mounts the in-cluster NFS share (through a claim bound to an
  ``nfs`` volume) is deleted before the NFS server, which ``pulumi destroy`` does for the
  resources that depend on it, through their own dependencies or their parents'
  (pkg/resource/graph/dependency_graph.go, ``DependingOn``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from workstack.components.manifests.storage import NFS_PORTS
from workstack.components.manifests.upstream import (
    CLUSTER_STORAGE_CLASSES,
    EBS_DEFAULT_CLASS,
    FILESTORE_CLASSES,
)
from workstack.offline import Deployment, RegisteredResource, Secret
from workstack.policy import pod_templates
from workstack.proof.charts import CHART, CONFIG_FILE
from workstack.proof.findings import Finding, StackContext
from workstack.proof.graph import ResourceGraph

__all__ = [
    "CLUSTER_TYPES",
    "NODE_POOL_TYPES",
    "claim_findings",
    "cluster_reference_findings",
    "nfs_destroy_findings",
    "nfs_servers",
    "ordering_findings",
    "provider_findings",
]

CLUSTER_TYPES = ("gcp:container/cluster:Cluster", "eks:index:Cluster", "aws:eks/cluster:Cluster")
NODE_POOL_TYPES = (
    "gcp:container/nodePool:NodePool",
    "eks:index:ManagedNodeGroup",
    "aws:eks/nodeGroup:NodeGroup",
)
_K8S_PROVIDER = "pulumi:providers:kubernetes"
# Inputs through which a cloud resource names the cluster it belongs to.
_CLUSTER_INPUTS = ("clusterName", "cluster")
_WORKLOAD_POOL = ".svc.id.goog["
_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
NFS_PORT = NFS_PORTS["nfs"]


def _plain(value: Any) -> Any:
    return _plain(value.value) if isinstance(value, Secret) else value


def _strings(value: Any) -> Iterator[str]:
    value = _plain(value)
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _names(cluster: RegisteredResource) -> set[str]:
    """What other resources may call the cluster by: its name, URN and ID."""
    names = {str(_plain(cluster.inputs.get("name"))), f"{cluster.name}-id"}
    return {name for name in names if name and name != "None"}


def _refers_to(resource: RegisteredResource, cluster: RegisteredResource) -> bool:
    names = _names(cluster)
    for key in _CLUSTER_INPUTS:
        value = _plain(resource.inputs.get(key))
        if isinstance(value, str) and (value in names or value.endswith(f"::{cluster.name}")):
            return True
    return cluster.type == "gcp:container/cluster:Cluster" and any(
        _WORKLOAD_POOL in text for text in _strings(resource.inputs)
    )


def cluster_reference_findings(deployment: Deployment, graph: ResourceGraph) -> list[Finding]:
    """Cloud resources that refer to a cluster but do not wait for it."""
    findings = []
    for cluster in graph.of_type(*CLUSTER_TYPES):
        for resource in deployment.resources:
            if resource is cluster or resource.type.startswith(("kubernetes:", "pulumi:")):
                continue
            if not _refers_to(resource, cluster):
                continue
            if (cluster.type, cluster.name) not in graph.waits_for(resource):
                findings.append(
                    Finding(
                        "ordering",
                        f"{resource.type} {resource.name}",
                        f"refers to cluster {cluster.name} but does not wait for it (no "
                        "dependency, not even through its inputs): it is created while the "
                        "cluster is still being created, and fails",
                    )
                )
    return findings


def provider_findings(deployment: Deployment, graph: ResourceGraph) -> list[Finding]:
    """Kubernetes resources without the cluster's provider; providers that skip the nodes."""
    findings = []
    clusters = graph.of_type(*CLUSTER_TYPES)
    pools = graph.of_type(*NODE_POOL_TYPES)
    for provider in graph.of_type(_K8S_PROVIDER):
        if clusters and not graph.waits_for_any(provider, clusters):
            findings.append(
                Finding(
                    "ordering",
                    provider.name,
                    "the Kubernetes provider does not wait for the cluster",
                )
            )
        if pools and not graph.waits_for_any(provider, pools):
            findings.append(
                Finding(
                    "ordering",
                    provider.name,
                    "the Kubernetes provider does not wait for the node pool: objects are "
                    "applied before any node can run them, and awaiting them times out",
                )
            )
    for resource in deployment.resources:
        if not (resource.is_kubernetes_object or resource.type in (CHART, CONFIG_FILE)):
            continue
        used = graph.provider_of(resource)
        if used is None or used.type != _K8S_PROVIDER:
            findings.append(
                Finding(
                    "ordering",
                    f"{resource.type} {resource.name}",
                    "has no explicit Kubernetes provider: pulumi-kubernetes would apply it "
                    "to the ambient kubeconfig's cluster",
                )
            )
    return findings


def _claims(deployment: Deployment) -> Iterator[tuple[RegisteredResource, str, Any]]:
    """Each claim a resource makes: (resource, what, storageClassName or None)."""
    for resource in deployment.resources:
        if not resource.is_kubernetes_object:
            continue
        obj, kind = resource.inputs, resource.inputs.get("kind")
        spec = obj.get("spec") or {}
        name = (obj.get("metadata") or {}).get("name")
        if kind == "PersistentVolumeClaim":
            yield resource, f"PersistentVolumeClaim/{name}", spec.get("storageClassName")
        elif kind == "StatefulSet":
            for template in spec.get("volumeClaimTemplates") or []:
                claim = (template.get("metadata") or {}).get("name")
                yield (
                    resource,
                    f"StatefulSet/{name} claim {claim}",
                    (template.get("spec") or {}).get("storageClassName"),
                )
        elif kind == "RabbitmqCluster":
            persistence = spec.get("persistence") or {}
            if str(persistence.get("storage", "10Gi")).strip() not in ("0", "0Gi"):
                yield resource, f"RabbitmqCluster/{name}", persistence.get("storageClassName")


def _storage_classes(deployment: Deployment) -> dict[str, tuple[RegisteredResource, bool]]:
    """StorageClass objects the stack creates: name -> (resource, is default)."""
    found: dict[str, tuple[RegisteredResource, bool]] = {}
    for resource in deployment.resources:
        if resource.is_kubernetes_object and resource.inputs.get("kind") == "StorageClass":
            meta = resource.inputs.get("metadata") or {}
            default = (meta.get("annotations") or {}).get(_DEFAULT_CLASS) == "true"
            found[str(meta.get("name"))] = (resource, default)
    return found


def _addon(deployment: Deployment, name: str) -> RegisteredResource | None:
    addons = ("aws:eks/addon:Addon", "eks:index:Addon")
    return next(
        (r for r in deployment.resources if r.type in addons and r.inputs.get("addonName") == name),
        None,
    )


def _ebs_default(addon: RegisteredResource | None) -> bool:
    """Whether the EBS CSI add-on is configured to create its default StorageClass."""
    if addon is None:
        return False
    raw = _plain(addon.inputs.get("configurationValues"))
    try:
        values = json.loads(raw) if isinstance(raw, str) else raw or {}
    except json.JSONDecodeError:
        return False
    return bool(((values or {}).get("defaultStorageClass") or {}).get("enabled"))


def _class_providers(
    deployment: Deployment, context: StackContext, wanted: Any
) -> tuple[list[RegisteredResource], str | None]:
    """What provides StorageClass ``wanted`` (None: the default), or why nothing does."""
    classes = _storage_classes(deployment)
    ebs = _addon(deployment, "aws-ebs-csi-driver")
    if wanted is None:
        defaults = [resource for resource, default in classes.values() if default]
        if defaults:
            return defaults + ([ebs] if ebs else []), None
        if context.cloud == "eks":
            if _ebs_default(ebs):
                assert ebs is not None
                return [ebs], None
            return [], (
                "no default StorageClass on EKS 1.30+: set the claim's class, or create a "
                f"default one (aws-ebs-csi-driver add-on with defaultStorageClass.enabled, "
                f"class {EBS_DEFAULT_CLASS}, or a StorageClass object) and wait for it"
            )
        return [], None  # GKE and minikube have a default class of their own
    if wanted in classes:
        return [classes[wanted][0]] + ([ebs] if ebs and context.cloud == "eks" else []), None
    if wanted == "" or wanted in CLUSTER_STORAGE_CLASSES.get(context.cloud, {}):
        return [], None
    if context.cloud == "gke" and wanted in FILESTORE_CLASSES:
        return [], _filestore_problem(deployment)
    if context.cloud == "eks" and wanted == EBS_DEFAULT_CLASS and _ebs_default(ebs):
        assert ebs is not None
        return [ebs], None
    return (
        [],
        f"StorageClass {wanted!r} is neither created by the stack nor built in on {context.cloud}",
    )


def _filestore_problem(deployment: Deployment) -> str | None:
    for cluster in deployment.of_type("gcp:container/cluster:Cluster"):
        addons = cluster.inputs.get("addonsConfig") or {}
        if (addons.get("gcpFilestoreCsiDriverConfig") or {}).get("enabled"):
            return None
    return "the Filestore classes exist only with the cluster's Filestore CSI driver enabled"


def claim_findings(
    deployment: Deployment, graph: ResourceGraph, context: StackContext
) -> list[Finding]:
    """Claims whose StorageClass nothing provides, or that do not wait for its provider."""
    findings = []
    for resource, what, storage_class in _claims(deployment):
        providers, problem = _class_providers(deployment, context, storage_class)
        if problem:
            findings.append(Finding("ordering", what, problem))
        elif providers and not all(
            (p.type, p.name) in graph.waits_for(resource) for p in providers
        ):
            names = ", ".join(p.name for p in providers)
            findings.append(
                Finding("ordering", what, f"does not wait for {names}, which provides its class")
            )
    findings += _volume_findings(deployment, graph)
    return findings


def _volume_findings(deployment: Deployment, graph: ResourceGraph) -> list[Finding]:
    """Static volumes: EFS volumes wait for the EFS driver; bound claims for their volume."""
    findings = []
    efs = _addon(deployment, "aws-efs-csi-driver")
    volumes = {}
    for resource in deployment.resources:
        if not (
            resource.is_kubernetes_object and resource.inputs.get("kind") == "PersistentVolume"
        ):
            continue
        spec = resource.inputs.get("spec") or {}
        ref = spec.get("claimRef") or {}
        volumes[(ref.get("namespace"), ref.get("name"))] = resource
        name = (resource.inputs.get("metadata") or {}).get("name")
        efs_volume = (spec.get("csi") or {}).get("driver") == "efs.csi.aws.com"
        if efs_volume and (efs is None or (efs.type, efs.name) not in graph.waits_for(resource)):
            findings.append(
                Finding(
                    "ordering",
                    f"PersistentVolume/{name}",
                    "an EFS volume must wait for the aws-efs-csi-driver add-on",
                )
            )
    for resource in deployment.resources:
        obj = resource.inputs
        if not (resource.is_kubernetes_object and obj.get("kind") == "PersistentVolumeClaim"):
            continue
        meta = obj.get("metadata") or {}
        volume = volumes.get((meta.get("namespace"), meta.get("name")))
        static = (obj.get("spec") or {}).get("storageClassName") == ""
        if (
            static
            and volume is not None
            and (volume.type, volume.name) not in graph.waits_for(resource)
        ):
            findings.append(
                Finding(
                    "ordering",
                    f"PersistentVolumeClaim/{meta.get('name')}",
                    f"a claim bound to a static volume must wait for {volume.name}",
                )
            )
    return findings


def nfs_servers(deployment: Deployment) -> list[RegisteredResource]:
    """Deployments that serve NFS in the cluster (a container port 2049)."""
    servers = []
    for resource in deployment.resources:
        if not (resource.is_kubernetes_object and resource.inputs.get("kind") == "Deployment"):
            continue
        for template in pod_templates(resource.inputs):
            ports = [
                port.get("containerPort")
                for container in template.spec.get("containers") or []
                for port in container.get("ports") or []
            ]
            if NFS_PORT in ports:
                servers.append(resource)
    return servers


def _nfs_claims(deployment: Deployment) -> set[tuple[str | None, str | None]]:
    """(namespace, name) of the claims bound to an NFS volume."""
    claims = set()
    for resource in deployment.resources:
        obj = resource.inputs
        if resource.is_kubernetes_object and obj.get("kind") == "PersistentVolume":
            spec = obj.get("spec") or {}
            if "nfs" in spec:
                ref = spec.get("claimRef") or {}
                claims.add((ref.get("namespace"), ref.get("name")))
    return claims


def nfs_destroy_findings(deployment: Deployment, graph: ResourceGraph) -> list[Finding]:
    """What mounts the in-cluster NFS share is deleted before the server that serves it.

    A pod whose NFS server is gone cannot unmount (a hard mount retries for ever): it stays
    Terminating, and so does its namespace, and ``pulumi destroy`` times out waiting.
    """
    servers = nfs_servers(deployment)
    claims = _nfs_claims(deployment)
    if not servers or not claims:
        return []
    findings = []
    for resource in deployment.resources:
        if not resource.is_kubernetes_object:
            continue
        namespace = (resource.inputs.get("metadata") or {}).get("namespace")
        mounted = {
            volume["persistentVolumeClaim"].get("claimName")
            for template in pod_templates(resource.inputs)
            for volume in template.spec.get("volumes") or []
            if isinstance(volume.get("persistentVolumeClaim"), dict)
        }
        if not any((namespace, claim) in claims for claim in mounted):
            continue
        meta = resource.inputs.get("metadata") or {}
        later = graph.deleted_before(resource)
        missing = [s.name for s in servers if (s.type, s.name) not in later]
        if missing:
            findings.append(
                Finding(
                    "ordering",
                    f"{resource.inputs.get('kind')}/{meta.get('name')}",
                    "its pods mount the in-cluster NFS share, so `pulumi destroy` must delete "
                    f"it before the NFS server ({', '.join(missing)}): make it (or its "
                    "component) depend on the NfsStorage; otherwise its pods hang unmounting",
                )
            )
    return findings


def ordering_findings(deployment: Deployment, context: StackContext) -> list[Finding]:
    """Every ordering rule, on one deployment."""
    graph = ResourceGraph.of(deployment)
    return [
        *cluster_reference_findings(deployment, graph),
        *provider_findings(deployment, graph),
        *claim_findings(deployment, graph, context),
        *nfs_destroy_findings(deployment, graph),
    ]
