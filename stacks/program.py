"""Compose the components a stack's config asks for and export what users need."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from stacks.config import StackConfig
from workstack.components import (
    BUCKET_ROOT,
    ArgoPipeline,
    ArgoPipelineArgs,
    ArgoWorkflows,
    ArgoWorkflowsArgs,
    BucketStorage,
    BucketStorageArgs,
    DaskCluster,
    DaskClusterArgs,
    EksCluster,
    EksClusterArgs,
    GkeCluster,
    GkeClusterArgs,
    JobPerFile,
    JobPerFileArgs,
    KubernetesCluster,
    MinikubeCluster,
    MinikubeClusterArgs,
    NfsStorage,
    NfsStorageArgs,
    PodStorage,
    QueueWorkers,
    QueueWorkersArgs,
    RabbitMq,
    RabbitMqArgs,
    WorkloadIdentity,
    WorkloadIdentityArgs,
    WorkloadImage,
    WorkloadImageArgs,
)
from workstack.components.manifests.clusters import node_platform
from workstack.sdk.env import NFS_MOUNT_PATH
from workstack.sdk.workload import Workload

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
    nfs = bucket = None
    if config.nfs is not None:
        nfs = NfsStorage(
            "nfs",
            NfsStorageArgs(
                cluster=cluster,
                settings=config.nfs,
                # Cloud data outlives a mistaken destroy unless the stack is a preview.
                protect_data=config.cloud != "minikube" and not config.ephemeral,
            ),
        )
    if config.bucket is not None:
        bucket = BucketStorage(
            "bucket",
            BucketStorageArgs(
                cluster=cluster,
                settings=config.bucket,
                identities=(identity,),
                force_destroy=config.ephemeral,
            ),
        )
    return Platform(cluster=cluster, identity=identity, nfs=nfs, bucket=bucket)


def data_root(platform: Platform) -> str:
    """Where workloads keep their inputs and outputs: the NFS mount, else the bucket."""
    return NFS_MOUNT_PATH if platform.nfs is not None else BUCKET_ROOT


def image_for(config: StackConfig, platform: Platform, workload: Workload) -> WorkloadImage:
    """The workload's image, pushed to the cluster's registry or loaded into minikube.

    It is built for the nodes' platform (not the deploying machine's), with the storage
    extra the stack's bucket needs (s3fs or gcsfs), whatever the workload lists itself.
    """
    return WorkloadImage(
        workload.spec.name,
        WorkloadImageArgs(
            workload_dir=str(workload.folder),
            registry=platform.cluster.registry,
            docker_host=config.stack_settings.docker_host,
            platform=nodes_platform(config),
            extras=storage_extras(config),
        ),
    )


def nodes_platform(config: StackConfig) -> str:
    """``linux/amd64`` or ``linux/arm64``: what the cluster's nodes run."""
    cluster = config.cluster
    if isinstance(cluster, MinikubeClusterArgs):
        return cluster.platform
    node_type = (
        cluster.machine_type if isinstance(cluster, GkeClusterArgs) else cluster.instance_types[0]
    )
    return node_platform(node_type)


def storage_extras(config: StackConfig) -> tuple[str, ...]:
    """The runtime extra that reaches the stack's bucket: ``gcs`` on GKE, else ``s3``."""
    if config.bucket is None:
        return ()
    return ("gcs",) if config.cloud == "gke" else ("s3",)


def deploy_workloads(config: StackConfig, platform: Platform) -> dict[str, pulumi.Resource]:
    """Each configured workload, built and run in its pattern."""
    root = data_root(platform)
    storage = tuple(platform.storage)
    install_operators = config.stack_settings.install_operators
    deployed: dict[str, pulumi.Resource] = {}
    for workload in config.of_pattern("job-per-file"):
        name = workload.spec.name
        deployed[name] = JobPerFile(
            name,
            JobPerFileArgs(
                cluster=platform.cluster,
                image=image_for(config, platform, workload),
                input_url=f"{root}/{name}/inputs",
                output_url=f"{root}/{name}/outputs",
                function=workload.spec.entrypoint,
                storage=storage,
                identity=platform.identity,
                settings=config.job,
            ),
        )
    first_dask: DaskCluster | None = None
    for workload in config.of_pattern("dask"):
        name = workload.spec.name
        # One operator per namespace: the first cluster installs it, the others wait for it.
        after_first = pulumi.ResourceOptions(depends_on=[first_dask] if first_dask else [])
        deployed[name] = dask_cluster = DaskCluster(
            name,
            DaskClusterArgs(
                cluster=platform.cluster,
                image=image_for(config, platform, workload),
                storage=storage,
                identity=platform.identity,
                install_operator=install_operators and first_dask is None,
                settings=config.dask,
            ),
            after_first,
        )
        first_dask = first_dask or dask_cluster
    queued = config.of_pattern("queue-workers")
    if queued:
        broker = RabbitMq(
            "rabbitmq",
            RabbitMqArgs(
                cluster=platform.cluster,
                settings=config.rabbitmq,
                install_operator=install_operators,
            ),
        )
        first_queue: QueueWorkers | None = None
        for workload in queued:
            name = workload.spec.name
            # KEDA is installed once, with the first workload; the others wait for it.
            after_first = pulumi.ResourceOptions(depends_on=[first_queue] if first_queue else [])
            deployed[name] = queue_workers = QueueWorkers(
                name,
                QueueWorkersArgs(
                    cluster=platform.cluster,
                    image=image_for(config, platform, workload),
                    broker=broker,
                    storage_url=f"{root}/{name}",
                    tasks_from=workload.spec.entrypoint,
                    storage=storage,
                    identity=platform.identity,
                    install_keda=install_operators and first_queue is None,
                    keda_namespace=platform.cluster.namespace_name,
                    settings=config.queue,
                ),
                after_first,
            )
            first_queue = first_queue or queue_workers
        pulumi.export("rabbitmq", {"management": broker.management_command})
    pipelines = config.of_pattern("pipeline")
    if pipelines:
        argo = ArgoWorkflows(
            "argo",
            ArgoWorkflowsArgs(
                cluster=platform.cluster, bucket=platform.bucket, install_crds=install_operators
            ),
        )
        for workload in pipelines:
            name = workload.spec.name
            deployed[name] = ArgoPipeline(
                name,
                ArgoPipelineArgs(
                    argo=argo,
                    cluster=platform.cluster,
                    image=image_for(config, platform, workload),
                    workload_dir=str(workload.folder),
                    data_url=f"{root}/{name}",
                    storage=storage,
                ),
            )
    return deployed


def compose(config: StackConfig) -> Platform:
    """Build the stack described by ``config`` and export its outputs."""
    platform = make_platform(config)
    deployed = deploy_workloads(config, platform)
    pulumi.export("workloads", sorted(deployed))
    pulumi.export(
        "dask",
        {
            name: {"scheduler": cluster.scheduler_address, "dashboard": cluster.dashboard_command}
            for name, cluster in deployed.items()
            if isinstance(cluster, DaskCluster)
        },
    )
    cluster = platform.cluster
    pulumi.export("cloud", config.cloud)
    if isinstance(config.cluster, MinikubeClusterArgs):
        # The node's size is the user's to declare: what the stack runs must fit in it.
        pulumi.export("minikube", {"cpus": config.cluster.cpus, "memory": config.cluster.memory})
    pulumi.export("namespace", cluster.namespace)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("registry", cluster.registry.url if cluster.registry else None)
    pulumi.export("serviceAccount", platform.identity.service_account)
    pulumi.export("nfsClaim", platform.nfs.claim_name if platform.nfs else None)
    pulumi.export("bucketUrl", platform.bucket.url if platform.bucket else None)
    return platform
