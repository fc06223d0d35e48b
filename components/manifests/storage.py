"""Shared storage for workloads: NFS server, volumes and claims, and how pods attach them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import SecretStr, ValidationInfo, model_validator

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.network import endpoint_port
from workstack.components.manifests.pods import PodStorage
from workstack.components.manifests.security import WORKLOAD_GID, WORKLOAD_UID
from workstack.components.manifests.settings import (
    Flag,
    Label,
    OneOf,
    OptionalText,
    Quantity,
    Settings,
    setting,
)
from workstack.components.manifests.validation import (
    SpecError,
    parse_quantity,
    require_bucket_name,
    require_dns1123_label,
    require_quantity,
)
from workstack.sdk import env

__all__ = [
    "EXPORT_OPTIONS",
    "NFS_MODES",
    "NFS_MOUNT_OPTIONS",
    "NFS_PORTS",
    "NFS_SERVER_IMAGE",
    "BucketSettings",
    "NfsSettings",
    "bucket_pod_storage",
    "build_claim",
    "build_nfs_server",
    "build_static_volume",
    "build_storage_class",
    "nfs_pod_storage",
]

NFS_SERVER_IMAGE = (
    "registry.k8s.io/e2e-test-images/volume/nfs:1.6.0"
    "@sha256:fd050af01687ef04d87bcef58b9e27f8e74cde52293113cfb35e63a0253e29c2"
)
"""The NFS server Kubernetes' own end-to-end tests use (CentOS Stream 9 with nfs-utils),
pinned by the digest the registry promoter records (kubernetes/k8s.io ``images.yaml``; see
``upstream.IMAGES``). Multi-arch. It replaces ``volume-nfs:0.8``, a 2016 image of the Docker
schema 1 era that containerd 2 no longer pulls."""

NFS_PORTS = {"nfs": 2049}
"""NFSv4 needs only 2049 (no rpcbind, no mountd port): the volume mounts with nfsvers=4.1."""
NFS_MOUNT_OPTIONS = ("nfsvers=4.1", "hard")
EXPORT_OPTIONS = (
    f"rw,fsid=0,sync,no_subtree_check,all_squash,anonuid={WORKLOAD_UID},anongid={WORKLOAD_GID}"
)
"""Every client user, root included, acts as the workload user: a pod that mounts the share
cannot act as root on the data. Not ``insecure``: clients must come from a privileged port,
as the kernel's NFS client on a node does."""
# The image's own start script hard-codes `*(rw,fsid=0,insecure,no_root_squash)`
# (kubernetes test/images/volume/nfs/run_nfs.sh), so the server is started here instead:
# the export table, the kernel server's filesystem, rpc.mountd (the kernel asks it about
# exports, NFSv4 included) and rpc.nfsd with NFSv3 off. TERM unexports and stops nfsd.
_SERVE = f"""set -eu
echo "/exports *({EXPORT_OPTIONS})" > /etc/exports
mount -t nfsd nfsd /proc/fs/nfsd
rpcbind -w
rpc.mountd -N 3
exportfs -r
rpc.nfsd -N 3 8
stop() {{ exportfs -ua; rpc.nfsd 0; exit 0; }}
trap stop TERM INT
echo "NFS server exporting /exports ({EXPORT_OPTIONS})"
while true; do sleep 3600 & wait $!; done
"""
NFS_MODES = ("in-cluster", "managed")
FILESTORE_MINIMUM = "1Ti"
_ENDPOINT = re.compile(r"^https?://[^\s/]+(/\S*)?$")
DATA_VOLUME = "data"
# Workloads run as WORKLOAD_UID and cannot chown; the setgid bit keeps new files in the group.
_OWN_EXPORT = f"chown {WORKLOAD_UID}:{WORKLOAD_GID} /exports && chmod 2775 /exports"


def build_nfs_server(
    *, name: str, namespace: str, instance: str, settings: NfsSettings
) -> list[dict[str, Any]]:
    """The backing claim, the server Deployment and its Service.

    The server needs a privileged container (the kernel's nfsd); it is the only pod that does,
    and is listed in ``POD_SECURITY_EXCEPTIONS``. An init container hands the export to the
    workload user so workloads, which run as non-root, can write to it.
    """
    require_dns1123_label("name", name, max_length=52)
    require_dns1123_label("namespace", namespace)
    labels = standard_labels(name="nfs", instance=instance, component="nfs-server")
    selector = {
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": "nfs-server",
    }
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{name}-export", "namespace": namespace, "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": settings.size}},
        },
    }
    if settings.storage_class is not None:
        claim["spec"]["storageClassName"] = settings.storage_class
    export_mount = [{"name": "export", "mountPath": "/exports"}]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
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
                            "command": ["sh", "-c", _SERVE],
                            "ports": [
                                {"name": port_name, "containerPort": port, "protocol": "TCP"}
                                for port_name, port in NFS_PORTS.items()
                            ],
                            "securityContext": {"privileged": True},
                            # nfsd answers on 2049 once exported; a hung server is restarted.
                            "readinessProbe": {
                                "tcpSocket": {"port": NFS_PORTS["nfs"]},
                                "initialDelaySeconds": 5,
                                "periodSeconds": 10,
                            },
                            "livenessProbe": {
                                "tcpSocket": {"port": NFS_PORTS["nfs"]},
                                "initialDelaySeconds": 30,
                                "periodSeconds": 20,
                                "failureThreshold": 3,
                            },
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
                            "persistentVolumeClaim": {"claimName": f"{name}-export"},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
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


def build_storage_class(
    *, name: str, provisioner: str, parameters: Mapping[str, str]
) -> dict[str, Any]:
    """A StorageClass whose volumes are made when a pod first uses them, deleted with claims.

    ``WaitForFirstConsumer`` puts a zonal disk in the zone its pod is scheduled to, and
    ``Delete`` removes the disk with its claim, so ``pulumi destroy`` leaves none behind.
    """
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": require_dns1123_label("name", name),
            "labels": standard_labels(name="workstack", instance=name, component="storage"),
        },
        "provisioner": provisioner,
        "parameters": dict(parameters),
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
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


class NfsSettings(Settings):
    """A ReadWriteMany volume every workload pod mounts at ``/data``.

    Validate with ``context={"cloud": ...}`` (``validated_for``) to apply the rules of a
    cluster: managed NFS needs GKE or EKS, and Filestore's smallest instance is 1Ti.
    """

    mode: Annotated[str, OneOf(*NFS_MODES)] = setting("in-cluster", "nfsMode")
    """`in-cluster` (an NFS server on a disk of its own; any cluster) or `managed` (Filestore
    on GKE, at least 1Ti; EFS on EKS)."""
    size: Quantity = setting("10Gi", "nfsSize")
    """Capacity of the NFS volume, a Kubernetes quantity such as 10Gi."""
    claim_name: Label = setting("shared-data")
    """Name of the PersistentVolumeClaim workloads mount."""
    storage_class: OptionalText = setting(None)
    """In-cluster mode: StorageClass of the server's disk; None is the cluster's default."""

    @model_validator(mode="after")
    def _fits_the_cloud(self, info: ValidationInfo) -> Self:
        cloud = (info.context or {}).get("cloud")
        if cloud is None:
            return self
        if self.mode == "managed" and cloud not in ("gke", "eks"):
            raise self.refuse(
                "mode", self.mode, "managed NFS needs GKE (Filestore) or EKS (EFS); use in-cluster"
            )
        if (self.mode, cloud) == ("managed", "gke"):
            minimum = parse_quantity(FILESTORE_MINIMUM)
            if (parse_quantity(self.size) or 0) < (minimum or 0):
                allowed = f"Filestore needs at least {FILESTORE_MINIMUM}"
                raise self.refuse("size", self.size, allowed)
        return self


class BucketSettings(Settings):
    """A bucket for inputs and outputs: S3 on EKS, GCS on GKE, an S3-compatible endpoint else.

    Validate with ``context={"cloud": ...}`` (``validated_for``): on GKE and EKS pods reach
    the bucket through their workload identity, so an endpoint or keys are refused; elsewhere
    (minikube) an existing bucket on an S3-compatible endpoint and its keys are required.
    """

    name: OptionalText = setting(None, "bucketName", unset="")
    """Bucket name. Empty lets Pulumi generate a unique one on GKE and EKS; on minikube it
    names the existing bucket on bucketEndpoint."""
    versioning: Flag = setting(False, "bucketVersioning")
    """Keep old versions of overwritten and deleted objects in the bucket."""
    endpoint: OptionalText = setting(None, "bucketEndpoint", unset="")
    """minikube only. S3-compatible endpoint (e.g. MinIO) holding the bucket."""
    access_key_id: SecretStr | None = setting(None, "bucketAccessKeyId", secret=True)
    """minikube only. Access key of bucketEndpoint (`pulumi config set --secret`)."""
    secret_access_key: SecretStr | None = setting(None, "bucketSecretAccessKey", secret=True)
    """minikube only. Secret key of bucketEndpoint (`pulumi config set --secret`)."""
    location: OptionalText = setting(None)
    """GCS location; None is the cluster's region."""

    @model_validator(mode="after")
    def _fits_the_cloud(self, info: ValidationInfo) -> Self:
        cloud = (info.context or {}).get("cloud")
        if cloud is None:
            return self
        if self.name is not None:
            try:
                require_bucket_name("", self.name, cloud="gcs" if cloud == "gke" else "s3")
            except SpecError as error:
                raise self.refuse("name", self.name, error.allowed) from None
        keys = (self.access_key_id, self.secret_access_key)
        if cloud in ("gke", "eks"):
            if self.endpoint is not None or any(k is not None for k in keys):
                field = "endpoint" if self.endpoint is not None else "access_key_id"
                raise self.refuse(
                    field,
                    self.endpoint if self.endpoint is not None else "(set)",
                    "static keys and endpoints are refused on GKE and EKS; pods reach the "
                    "bucket through their workload identity (Workload Identity, Pod Identity "
                    "or IRSA)",
                )
            return self
        if self.versioning:
            raise self.refuse(
                "versioning",
                True,
                "applies to the buckets workstack creates on GKE and EKS; outside them the "
                "bucket exists already: turn versioning on at its endpoint",
            )
        if self.endpoint is None or not _ENDPOINT.match(self.endpoint):
            raise self.refuse(
                "endpoint",
                self.endpoint,
                "an S3-compatible endpoint such as http://minio.minio:9000 is required outside "
                "GKE and EKS",
            )
        try:
            endpoint_port(self.endpoint)
        except SpecError as error:
            raise self.refuse("endpoint", self.endpoint, error.allowed) from None
        if self.name is None:
            raise self.refuse("name", None, "name the existing bucket on the endpoint")
        for field, key in zip(("access_key_id", "secret_access_key"), keys, strict=True):
            if key is None:
                raise self.refuse(
                    field,
                    None,
                    "the endpoint's {access_key_id} and {secret_access_key} are both required",
                )
        return self
