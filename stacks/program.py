"""Compose the components a stack's config asks for and export what users need."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from stacks.config import NFS_CLAIM, StackConfig
from workstack.components import (
    BucketStorage,
    BucketStorageArgs,
    EksCluster,
    EksClusterArgs,
    GkeCluster,
    GkeClusterArgs,
    KubernetesCluster,
    MinikubeCluster,
    MinikubeClusterArgs,
    NfsStorage,
    NfsStorageArgs,
    PodStorage,
    WorkloadIdentity,
    WorkloadIdentityArgs,
)

__all__ = ["WORKLOAD_SERVICE_ACCOUNT", "Platform", "compose", "make_cluster"]

WORKLOAD_SERVICE_ACCOUNT = "workload"
"""The service account plain workloads (job-per-file, queue workers) run as."""


@dataclass(frozen=True)
class Platform:
    """What every workload of the stack runs on: cluster, identity and storage."""

    cluster: KubernetesCluster
    identity: WorkloadIdentity
    nfs: NfsStorage | None
    bucket: BucketStorage | None

    @property
    def storage(self) -> list[PodStorage]:
        """How pods attach the stack's storage."""
        return [s.pod_storage for s in (self.nfs, self.bucket) if s is not None]


def make_cluster(config: StackConfig) -> KubernetesCluster:
    """Create the cluster component the config's ``cloud`` names."""
    name = "cluster"
    if isinstance(config.cluster, GkeClusterArgs):
        return GkeCluster(name, config.cluster)
    if isinstance(config.cluster, EksClusterArgs):
        return EksCluster(name, config.cluster)
    if isinstance(config.cluster, MinikubeClusterArgs):
        return MinikubeCluster(name, config.cluster)
    raise TypeError(f"unsupported cluster arguments {type(config.cluster).__name__}")


def make_platform(config: StackConfig) -> Platform:
    """Cluster, the workload identity and the shared storage the config asks for."""
    cluster = make_cluster(config)
    identity = WorkloadIdentity(
        "workload-identity",
        WorkloadIdentityArgs(cluster=cluster, service_account=WORKLOAD_SERVICE_ACCOUNT),
    )
    storage = config.storage
    nfs = bucket = None
    if storage.nfs:
        nfs = NfsStorage(
            "nfs",
            NfsStorageArgs(
                cluster=cluster,
                mode=storage.nfs_mode,
                size=storage.nfs_size,
                claim_name=NFS_CLAIM,
                # Cloud data outlives a mistaken destroy unless the stack is a preview.
                protect_data=config.cloud != "minikube" and not config.ephemeral,
            ),
        )
    if storage.bucket:
        secret = pulumi.Output.secret
        bucket = BucketStorage(
            "bucket",
            BucketStorageArgs(
                cluster=cluster,
                bucket_name=storage.bucket_name,
                identities=(identity,),
                versioning=storage.bucket_versioning,
                force_destroy=config.ephemeral,
                endpoint_url=storage.bucket_endpoint,
                access_key_id=(
                    secret(storage.bucket_access_key_id) if storage.bucket_access_key_id else None
                ),
                secret_access_key=(
                    secret(storage.bucket_secret_access_key)
                    if storage.bucket_secret_access_key
                    else None
                ),
            ),
        )
    return Platform(cluster=cluster, identity=identity, nfs=nfs, bucket=bucket)


def compose(config: StackConfig) -> Platform:
    """Build the stack described by ``config`` and export its outputs."""
    platform = make_platform(config)
    cluster = platform.cluster
    pulumi.export("cloud", config.cloud)
    pulumi.export("namespace", cluster.namespace)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("registry", cluster.registry.url if cluster.registry else None)
    pulumi.export("serviceAccount", platform.identity.service_account)
    pulumi.export("nfsClaim", platform.nfs.claim_name if platform.nfs else None)
    pulumi.export("bucketUrl", platform.bucket.url if platform.bucket else None)
    return platform
