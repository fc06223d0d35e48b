"""Shared storage for workloads: NFS server, volumes and claims, and how pods attach them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.pods import PodStorage
from workstack.components.manifests.security import WORKLOAD_GID, WORKLOAD_UID
from workstack.components.manifests.validation import (
    SpecError,
    require_bucket_name,
    require_choice,
    require_dns1123_label,
    require_quantity,
)
from workstack.sdk import env

__all__ = [
    "NFS_MODES",
    "NFS_PORTS",
    "NFS_SERVER_IMAGE",
    "NfsServerSpec",
    "bucket_pod_storage",
    "build_claim",
    "build_nfs_server",
    "build_static_volume",
    "check_bucket_settings",
    "check_nfs_settings",
    "nfs_pod_storage",
]

NFS_SERVER_IMAGE = "registry.k8s.io/volume-nfs:0.8"
"""The NFS server image Kubernetes' own end-to-end tests use; exports ``/exports`` as NFSv4 root."""

NFS_PORTS = {"nfs": 2049, "mountd": 20048, "rpcbind": 111}
NFS_MODES = ("in-cluster", "managed")
FILESTORE_MINIMUM = "1Ti"
_ENDPOINT = re.compile(r"^https?://[^\s/]+(/\S*)?$")
DATA_VOLUME = "data"
# Workloads run as WORKLOAD_UID and cannot chown; the setgid bit keeps new files in the group.
_OWN_EXPORT = f"chown {WORKLOAD_UID}:{WORKLOAD_GID} /exports && chmod 2775 /exports"


@dataclass(kw_only=True, frozen=True)
class NfsServerSpec:
    """An NFS server inside the cluster, backed by a disk of its own.

    Attributes:
        name: Base name of its objects.
        namespace: Namespace it runs in; its Pod Security level must allow privileged pods.
        instance: Owning component's name, for labels.
        size: Size of the backing disk (a Kubernetes quantity).
        storage_class: StorageClass of the backing disk; None uses the cluster default.
    """

    name: str
    namespace: str
    instance: str
    size: str = "10Gi"
    storage_class: str | None = None

    def __post_init__(self) -> None:
        require_dns1123_label("name", self.name, max_length=52)
        require_dns1123_label("namespace", self.namespace)
        require_quantity("size", self.size)


def _labels(spec: NfsServerSpec) -> dict[str, str]:
    return standard_labels(name="nfs", instance=spec.instance, component="nfs-server")


def build_nfs_server(spec: NfsServerSpec) -> list[dict[str, Any]]:
    """The backing claim, the server Deployment and its Service.

    The server needs a privileged container (the kernel's nfsd); it is the only pod that does,
    and is listed in ``POD_SECURITY_EXCEPTIONS``. An init container hands the export to the
    workload user so workloads, which run as non-root, can write to it.
    """
    labels = _labels(spec)
    selector = {
        "app.kubernetes.io/instance": spec.instance,
        "app.kubernetes.io/component": "nfs-server",
    }
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{spec.name}-export", "namespace": spec.namespace, "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.size}},
        },
    }
    if spec.storage_class is not None:
        claim["spec"]["storageClassName"] = spec.storage_class
    export_mount = [{"name": "export", "mountPath": "/exports"}]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            # The backing disk is ReadWriteOnce: the old pod must stop before a new one mounts it.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "initContainers": [
                        {
                            "name": "own-export",
                            "image": NFS_SERVER_IMAGE,
                            "command": ["sh", "-c", _OWN_EXPORT],
                            "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False},
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"cpu": "100m", "memory": "64Mi"},
                            },
                            "volumeMounts": export_mount,
                        }
                    ],
                    "containers": [
                        {
                            "name": "nfs-server",
                            "image": NFS_SERVER_IMAGE,
                            "ports": [
                                {"name": port_name, "containerPort": port, "protocol": "TCP"}
                                for port_name, port in NFS_PORTS.items()
                            ],
                            "securityContext": {"privileged": True},
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            "volumeMounts": export_mount,
                        }
                    ],
                    "volumes": [
                        {
                            "name": "export",
                            "persistentVolumeClaim": {"claimName": f"{spec.name}-export"},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}
                for port_name, port in NFS_PORTS.items()
            ],
        },
    }
    return [claim, deployment, service]


def build_static_volume(
    *,
    name: str,
    instance: str,
    size: str,
    claim_namespace: str,
    source: Mapping[str, Any],
    mount_options: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """A ReadWriteMany PersistentVolume and the claim bound to it, one to one.

    The volume is cluster-scoped, so its name is the claim's prefixed with the claim's
    namespace: stacks sharing a cluster never collide.

    Args:
        name: Name of the claim.
        instance: Owning component's name, for labels.
        size: Capacity (a Kubernetes quantity).
        claim_namespace: Namespace of the claim (the workload namespace).
        source: The volume source, ``{"nfs": {...}}`` or ``{"csi": {...}}``; values are passed
            through untouched (an NFS server address may be a Pulumi output).
        mount_options: Mount options for the volume.
    """
    require_dns1123_label("name", name)
    require_quantity("size", size)
    if len(source) != 1 or next(iter(source)) not in ("nfs", "csi"):
        raise SpecError("source", sorted(source), "expected exactly one of: nfs, csi")
    labels = standard_labels(name="workstack", instance=instance, component="storage")
    volume_name = require_dns1123_label("name", f"{claim_namespace}-{name}")
    volume: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name, "labels": labels},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteMany"],
            # A static volume cannot be deleted by Kubernetes; the data's lifetime follows the
            # server's disk or the managed file system, which Pulumi owns.
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": claim_namespace, "name": name},
            **source,
        },
    }
    if mount_options:
        volume["spec"]["mountOptions"] = list(mount_options)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": claim_namespace, "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": volume_name,
            "resources": {"requests": {"storage": size}},
        },
    }
    return [volume, claim]


def build_claim(
    *, name: str, namespace: str, instance: str, size: str, storage_class: str
) -> dict[str, Any]:
    """A ReadWriteMany claim that a CSI driver provisions dynamically (GKE Filestore)."""
    require_dns1123_label("name", name)
    require_quantity("size", size)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": standard_labels(name="workstack", instance=instance, component="storage"),
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": size}},
        },
    }


def nfs_pod_storage(claim_name: str) -> PodStorage:
    """Mount the claim at ``/data`` and tell the runtime where it is."""
    return PodStorage(
        volumes=({"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}},),
        mounts=({"name": DATA_VOLUME, "mountPath": env.NFS_MOUNT_PATH},),
        env={env.NFS_PATH: env.NFS_MOUNT_PATH},
    )


def bucket_pod_storage(url: Any, *, credentials_secret: str | None = None) -> PodStorage:
    """Tell the runtime the bucket URL; credentials come from the pod's cloud identity.

    Args:
        url: ``s3://name`` or ``gs://name``; may be a Pulumi output.
        credentials_secret: Only for an S3-compatible endpoint outside a cloud (minikube): a
            Secret holding ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
            ``AWS_ENDPOINT_URL_S3``, read into the environment.
    """
    return PodStorage(
        env={env.BUCKET_URL: url},
        env_from_secrets=(credentials_secret,) if credentials_secret else (),
    )


def check_nfs_settings(*, cloud: str, mode: str, size: str, claim_name: str) -> None:
    """Validate NFS storage settings for a cluster of kind ``cloud``.

    Raises:
        SpecError: Naming ``mode``, ``size`` or ``claim_name``.
    """
    require_choice("mode", mode, NFS_MODES)
    require_dns1123_label("claim_name", claim_name)
    if mode == "managed" and cloud not in ("gke", "eks"):
        raise SpecError(
            "mode", mode, "managed NFS needs GKE (Filestore) or EKS (EFS); use in-cluster"
        )
    minimum = FILESTORE_MINIMUM if (mode, cloud) == ("managed", "gke") else None
    require_quantity("size", size, minimum=minimum)


def check_bucket_settings(
    *,
    cloud: str,
    bucket_name: str | None,
    endpoint_url: str | None,
    access_key_given: bool,
    secret_key_given: bool,
) -> None:
    """Validate bucket settings for a cluster of kind ``cloud``.

    On GKE and EKS no endpoint or key may be given: pods reach the bucket through their
    workload identity. Elsewhere (minikube) an S3-compatible endpoint, an existing bucket's
    name and its credentials are required.

    Raises:
        SpecError: Naming ``bucket_name``, ``endpoint_url`` or ``credentials``.
    """
    in_cloud = cloud in ("gke", "eks")
    any_key, both_keys = access_key_given or secret_key_given, access_key_given and secret_key_given
    if bucket_name is not None:
        require_bucket_name("bucket_name", bucket_name, cloud="gcs" if cloud == "gke" else "s3")
    if in_cloud and (endpoint_url is not None or any_key):
        raise SpecError(
            "endpoint_url" if endpoint_url is not None else "credentials",
            endpoint_url if endpoint_url is not None else "(set)",
            "static keys and endpoints are refused on GKE and EKS; pods reach the bucket "
            "through their workload identity (Workload Identity, Pod Identity or IRSA)",
        )
    if in_cloud:
        return
    if endpoint_url is None or not _ENDPOINT.match(endpoint_url):
        raise SpecError(
            "endpoint_url",
            endpoint_url,
            "an S3-compatible endpoint such as http://minio.minio:9000 is required outside GKE "
            "and EKS",
        )
    if bucket_name is None:
        raise SpecError("bucket_name", None, "name the existing bucket on the endpoint")
    if not both_keys:
        raise SpecError(
            "credentials", None, "the endpoint's access key and secret key are both required"
        )
