"""Compose the components a stack's config asks for and export what users need."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pulumi

from stacks.config import PROJECT_ROOT, StackConfig
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
from workstack.components.manifests.contract import (
    BrokerContract,
    ImageSource,
    StackContract,
    StorageContract,
    WorkloadContract,
)
from workstack.components.manifests.dask import scheduler_address
from workstack.images import DEFAULT_BASE_IMAGE
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


@dataclass
class Deployed:
    """A workload deployed on the platform: its image, and what its runs need."""

    workload: Workload
    image: WorkloadImage
    settings: dict[str, Any]
    service_account: str
    platform_piece: pulumi.Resource | None = None
    broker: RabbitMq | None = None
    keda: bool = False
    scheduler_address: str | None = None
    scheduler_labels: dict[str, str] = dataclasses.field(default_factory=dict)
    scheduler_tls_secret: str | None = None
    workflow_template: str | None = None


def deploy_workloads(config: StackConfig, platform: Platform) -> dict[str, Deployed]:
    """Each workload's image and the platform its pattern needs; runs are not started.

    ``pulumi up`` owns the platform and never starts, reruns or replaces work: job-per-file,
    command and queue runs, Dask clients and pipeline runs are made by ``workstack submit``
    from the stack's ``contract`` output. What stays running belongs here: the Dask cluster,
    the broker and (in KEDA mode) the ScaledJob that starts workers while tasks wait, and
    each pipeline's WorkflowTemplate.
    """
    root = data_root(platform)
    storage = tuple(platform.storage)
    install_operators = config.stack_settings.install_operators
    operator_scope = config.stack_settings.operator_scope
    account = platform.identity.service_account
    deployed: dict[str, Deployed] = {}
    # What mounts the in-cluster NFS share is deleted before its server: a pod whose NFS
    # server went first hangs in Terminating on its unmount, and the destroy with it.
    on_storage = [platform.nfs] if platform.nfs is not None else []

    def after(*first: pulumi.Resource | None) -> pulumi.ResourceOptions:
        """Wait for the NFS share and for the piece that installs a shared operator."""
        return pulumi.ResourceOptions(
            depends_on=[*on_storage, *(r for r in first if r is not None)]
        )

    for workload in config.of_pattern("job-per-file") + config.of_pattern("command"):
        name = workload.spec.name
        deployed[name] = Deployed(
            workload, image_for(config, platform, workload), _settings(config.job), account
        )
    first_dask: DaskCluster | None = None
    for workload in config.of_pattern("dask"):
        name = workload.spec.name
        image = image_for(config, platform, workload)
        # One operator per namespace: the first cluster installs it, the others wait for it.
        dask_cluster = DaskCluster(
            name,
            DaskClusterArgs(
                cluster=platform.cluster,
                image=image,
                storage=storage,
                identity=platform.identity,
                install_operator=install_operators and first_dask is None,
                operator_here=install_operators,
                operator_scope=operator_scope,
                settings=config.dask,
            ),
            after(first_dask),
        )
        first_dask = first_dask or dask_cluster
        deployed[name] = Deployed(
            workload,
            image,
            _settings(config.dask),
            account,
            platform_piece=dask_cluster,
            scheduler_address=scheduler_address(
                name, platform.cluster.namespace_name, tls=config.dask.tls
            ),
            scheduler_labels=dict(dask_cluster.client_labels),
            scheduler_tls_secret=dask_cluster.tls_secret,
        )
    queued = config.of_pattern("queue-workers")
    if queued:
        broker = RabbitMq(
            "rabbitmq",
            RabbitMqArgs(
                cluster=platform.cluster,
                settings=config.rabbitmq,
                install_operator=install_operators,
                operator_scope=operator_scope,
            ),
        )
        keda = config.queue.mode == "keda"
        first_queue: QueueWorkers | None = None
        for workload in queued:
            name = workload.spec.name
            image = image_for(config, platform, workload)
            piece: QueueWorkers | None = None
            if keda:
                # A service: the ScaledJob starts worker Jobs whenever tasks wait. KEDA is
                # installed once, with the first workload; the others wait for it.
                piece = QueueWorkers(
                    name,
                    QueueWorkersArgs(
                        cluster=platform.cluster,
                        image=image,
                        broker=broker,
                        storage_url=f"{root}/{name}",
                        tasker=False,
                        storage=storage,
                        identity=platform.identity,
                        install_keda=install_operators and first_queue is None,
                        # KEDA runs here, or where another stack on the cluster put it.
                        keda_namespace=platform.cluster.namespace_name
                        if install_operators
                        else None,
                        operator_scope=operator_scope,
                        settings=config.queue,
                    ),
                    after(first_queue),
                )
                first_queue = first_queue or piece
            deployed[name] = Deployed(
                workload,
                image,
                _settings(config.queue),
                account,
                platform_piece=piece,
                broker=broker,
                keda=keda,
            )
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
            image = image_for(config, platform, workload)
            template = ArgoPipeline(
                name,
                ArgoPipelineArgs(
                    argo=argo,
                    cluster=platform.cluster,
                    image=image,
                    workload_dir=str(workload.folder),
                    data_url=f"{root}/{name}",
                    storage=storage,
                ),
                after(),
            )
            deployed[name] = Deployed(
                workload,
                image,
                {},
                argo.identity.service_account,
                platform_piece=template,
                workflow_template=template.name,
            )
    return deployed


def _settings(model: Any) -> dict[str, Any]:
    settings: dict[str, Any] = model.model_dump(mode="json")
    return settings


def image_source(config: StackConfig, item: Deployed) -> ImageSource:
    """How the workload's image was built: ``submit`` plans the folder's again to compare."""
    folder = item.workload.folder.resolve()
    try:
        relative = folder.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:  # a workload outside the project: its absolute path
        relative = str(folder)
    return ImageSource(
        folder=relative,
        tag=item.image.tag,
        platform=item.image.platform,
        extras=storage_extras(config),
        base_image=DEFAULT_BASE_IMAGE,
        docker_host=config.stack_settings.docker_host,
    )


def contract(
    config: StackConfig, platform: Platform, deployed: dict[str, Deployed]
) -> pulumi.Output[dict[str, Any]]:
    """The stack output runs are made from (:class:`StackContract`), once outputs resolve."""
    root = data_root(platform)
    cluster = platform.cluster
    images = {name: item.image.ref for name, item in deployed.items()}
    storage_env = [
        pulumi.Output.all(**{k: pulumi.Output.from_input(v) for k, v in s.env.items()})
        for s in platform.storage
    ]
    bucket_url = platform.bucket.url if platform.bucket is not None else None

    def build(resolved: dict[str, Any]) -> dict[str, Any]:
        storage = tuple(
            StorageContract.of(dataclasses.replace(s, env=env))
            for s, env in zip(platform.storage, resolved["storage"], strict=True)
        )
        bucket = resolved["bucket"]
        workloads = {}
        for name, item in deployed.items():
            spec = item.workload.spec
            data_url = f"{root}/{name}"
            if bucket is not None and root == BUCKET_ROOT:
                data_url = f"{bucket}/{name}"
            workloads[name] = WorkloadContract(
                name=name,
                pattern=spec.pattern,  # type: ignore[arg-type]  # checked by load_workload
                image=resolved["images"][name],
                pull_policy=item.image.pull_policy,
                entrypoint=spec.entrypoint,
                command=spec.command,
                data_url=data_url,
                service_account=item.service_account,
                settings=item.settings,
                storage=storage,
                broker=(
                    BrokerContract(
                        name=item.broker.broker_name,
                        secret_name=item.broker.secret_name,
                        client_labels=dict(item.broker.client_labels),
                    )
                    if item.broker is not None
                    else None
                ),
                keda=item.keda,
                scheduler_address=item.scheduler_address,
                scheduler_labels=item.scheduler_labels,
                scheduler_tls_secret=item.scheduler_tls_secret,
                workflow_template=item.workflow_template,
                source=image_source(config, item),
            )
        return StackContract(
            stack=config.stack,
            cloud=config.cloud,
            namespace=cluster.namespace_name,
            kube_context=(
                config.cluster.context if isinstance(config.cluster, MinikubeClusterArgs) else None
            ),
            nfs_claim=platform.nfs.claim_name if platform.nfs is not None else None,
            bucket_url=bucket,
            workloads=workloads,
        ).model_dump(mode="json")

    return pulumi.Output.all(
        images=pulumi.Output.all(**images),
        storage=pulumi.Output.all(*storage_env),
        bucket=bucket_url,
    ).apply(build)


def compose(config: StackConfig) -> Platform:
    """Build the stack described by ``config`` and export its outputs."""
    platform = make_platform(config)
    deployed = deploy_workloads(config, platform)
    pulumi.export("workloads", sorted(deployed))
    pulumi.export(
        "dask",
        {
            name: {
                "scheduler": item.platform_piece.scheduler_address,
                "dashboard": item.platform_piece.dashboard_command,
            }
            for name, item in deployed.items()
            if isinstance(item.platform_piece, DaskCluster)
        },
    )
    pulumi.export("contract", contract(config, platform, deployed))
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
