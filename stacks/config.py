"""The stack's config, read once into a typed, validated :class:`StackConfig`.

Key names, types and defaults come from the ``config:`` schema in ``Pulumi.yaml``; the rules
about what a value may be come from the component argument classes, whose errors are renamed
here to the config key the user wrote. Every problem is reported at once, before any
resource is registered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pulumi

from workstack.components import (
    Cloud,
    EksClusterArgs,
    GkeClusterArgs,
    MinikubeClusterArgs,
    SpecError,
)
from workstack.components.manifests.dask import check_dask_settings
from workstack.components.manifests.jobs import check_job_settings
from workstack.components.manifests.queue import check_queue_settings
from workstack.components.manifests.rabbitmq import RabbitMqSpec
from workstack.components.manifests.storage import check_bucket_settings, check_nfs_settings
from workstack.project import ConfigError, Problem, PulumiProject, load_project
from workstack.sdk.workload import Workload, WorkloadError, load_workload

__all__ = [
    "CLOUDS",
    "NFS_CLAIM",
    "STORAGE_MODES",
    "ClusterArgs",
    "StackConfig",
    "StorageConfig",
    "WorkloadsConfig",
    "load_stack_config",
    "parse_stack_config",
]

CLOUDS: tuple[Cloud, ...] = ("minikube", "gke", "eks")
STORAGE_MODES = ("nfs", "bucket", "both")
NFS_CLAIM = "shared-data"
"""Name of the NFS claim in the workload namespace."""
T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKLOADS_DIR = PROJECT_ROOT / "workloads"

ClusterArgs = MinikubeClusterArgs | GkeClusterArgs | EksClusterArgs


@dataclass(kw_only=True, frozen=True)
class StorageConfig:
    """The stack's shared storage, validated for its cloud.

    Attributes:
        nfs: Whether the stack has NFS storage.
        bucket: Whether the stack has a bucket.
        nfs_mode: ``in-cluster`` or ``managed``.
        nfs_size: Capacity of the NFS volume.
        bucket_name: Bucket name, or None to generate one.
        bucket_versioning: Keep old object versions.
        bucket_endpoint: minikube: the S3-compatible endpoint.
        bucket_access_key_id: minikube: the endpoint's access key (a secret).
        bucket_secret_access_key: minikube: the endpoint's secret key (a secret).
    """

    nfs: bool
    bucket: bool
    nfs_mode: str
    nfs_size: str
    bucket_name: str | None
    bucket_versioning: bool
    bucket_endpoint: str | None = None
    bucket_access_key_id: str | None = field(default=None, repr=False)
    bucket_secret_access_key: str | None = field(default=None, repr=False)


@dataclass(kw_only=True, frozen=True)
class WorkloadsConfig:
    """The workloads the stack runs, and the settings of their patterns.

    Attributes:
        workloads: Each workload's checked folder, in the order given.
        docker_host: minikube: the Docker engine images are built with and loaded into.
        job_shards: job-per-file: indexes of the Job.
        job_parallelism: job-per-file: pods at once.
        dask_mode: dask: ``plain`` or ``operator``.
        dask_workers: dask: workers (the fewest, when adaptive).
        dask_max_workers: dask: most workers; None when fixed.
        queue_workers: queue-workers: worker pods at once (the most, under KEDA).
        queue_mode: queue-workers: ``jobs`` or ``keda``.
        rabbitmq_replicas: queue-workers: broker nodes.
        install_operators: Install the operators the workloads need.
    """

    workloads: tuple[Workload, ...] = ()
    docker_host: str | None = None
    job_shards: int = 10
    job_parallelism: int = 4
    dask_mode: str = "plain"
    dask_workers: int = 2
    dask_max_workers: int | None = None
    queue_workers: int = 4
    queue_mode: str = "jobs"
    rabbitmq_replicas: int = 1
    install_operators: bool = True

    def of_pattern(self, pattern: str) -> list[Workload]:
        """The workloads of one pattern."""
        return [w for w in self.workloads if w.spec.pattern == pattern]


@dataclass(kw_only=True, frozen=True)
class StackConfig:
    """Everything the stack program needs, typed and validated.

    Attributes:
        stack: Stack name.
        cloud: Which cluster component the stack uses.
        ephemeral: Whether the stack is a preview environment meant to be destroyed.
        cluster: Arguments of the cluster component.
        storage: The shared storage.
        workloads: What runs on it.
    """

    stack: str
    cloud: Cloud
    ephemeral: bool
    cluster: ClusterArgs
    storage: StorageConfig
    workloads: WorkloadsConfig = field(default_factory=WorkloadsConfig)


def load_stack_config() -> StackConfig:
    """Read this deployment's config from the Pulumi runtime and validate it.

    Raises:
        ConfigError: Naming every invalid, missing or unknown key.
    """
    # pulumi.Config can only look keys up; unknown keys are found by listing the full map the
    # engine handed the program (the PULUMI_CONFIG environment, or set_all_config).
    values: dict[str, str] = dict(pulumi.runtime.get_config_env())
    values.update(pulumi.runtime.config.CONFIG.get())
    return parse_stack_config(load_project(PROJECT_ROOT), pulumi.get_stack(), values)


def parse_stack_config(
    project: PulumiProject, stack: str, values: Mapping[str, str]
) -> StackConfig:
    """Validate a stack's raw config (full key to string) into a :class:`StackConfig`.

    Raises:
        ConfigError: Naming every invalid, missing or unknown key.
    """
    typed = project.parse_config(stack, values)
    cloud = typed["cloud"]
    if cloud not in CLOUDS:
        raise ConfigError(
            stack, [Problem("workstack:cloud", cloud, "allowed: " + ", ".join(CLOUDS))]
        )

    builders: dict[str, Callable[[dict[str, Any], Mapping[str, str], str], ClusterArgs]] = {
        "minikube": _minikube_args,
        "gke": _gke_args,
        "eks": _eks_args,
    }
    problems = _missing_provider_keys(cloud, values)
    if problems:
        raise ConfigError(stack, problems)
    cluster = builders[cloud](typed, values, stack)
    storage = _storage(typed, cloud, stack)
    return StackConfig(
        stack=stack,
        cloud=cloud,
        ephemeral=typed["ephemeral"],
        cluster=cluster,
        storage=storage,
        workloads=_workloads(typed, cloud, stack),
    )


def _workloads(typed: dict[str, Any], cloud: str, stack: str) -> WorkloadsConfig:
    known = sorted(p.parent.name for p in WORKLOADS_DIR.glob("*/workload.yaml"))
    loaded = []
    for name in typed["workloads"]:
        folder = WORKLOADS_DIR / name
        if not (folder / "workload.yaml").is_file():
            raise ConfigError(
                stack,
                [Problem("workstack:workloads", name, "known workloads: " + ", ".join(known))],
            )
        try:
            loaded.append(load_workload(folder))
        except WorkloadError as error:
            raise ConfigError(stack, [Problem("workstack:workloads", name, str(error))]) from None
    names = [w.spec.name for w in loaded]
    if len(set(names)) != len(names):
        raise ConfigError(stack, [Problem("workstack:workloads", names, "list each workload once")])
    if typed["dockerHost"] and cloud != "minikube":
        raise ConfigError(
            stack,
            [
                Problem(
                    "workstack:dockerHost",
                    typed["dockerHost"],
                    "only minikube builds on a given engine; GKE and EKS push to their registry",
                )
            ],
        )
    maximum = typed["daskMaxWorkers"] or None
    settings = WorkloadsConfig(
        workloads=tuple(loaded),
        docker_host=typed["dockerHost"] or None,
        job_shards=typed["jobShards"],
        job_parallelism=typed["jobParallelism"],
        dask_mode=typed["daskMode"],
        dask_workers=typed["daskWorkers"],
        dask_max_workers=maximum,
        queue_workers=typed["queueWorkers"],
        queue_mode=typed["queueMode"],
        rabbitmq_replicas=typed["rabbitmqReplicas"],
        install_operators=typed["installOperators"],
    )
    job_keys = {"shards": "workstack:jobShards", "parallelism": "workstack:jobParallelism"}
    _check(
        stack,
        job_keys,
        lambda: check_job_settings(
            shards=settings.job_shards,
            parallelism=settings.job_parallelism,
            retries_per_index=2,
            max_failed_indexes=None,
            ttl_seconds_after_finished=0,
            active_deadline_seconds=1,
        ),
    )
    dask_keys = {
        "mode": "workstack:daskMode",
        "workers": "workstack:daskWorkers",
        "minimum": "workstack:daskWorkers",
        "maximum": "workstack:daskMaxWorkers",
    }
    _check(
        stack,
        dask_keys,
        lambda: check_dask_settings(
            mode=settings.dask_mode,
            workers=None if maximum else settings.dask_workers,
            minimum=settings.dask_workers if maximum else None,
            maximum=maximum,
            threads=1,
        ),
    )
    queue_keys = {
        "mode": "workstack:queueMode",
        "workers": "workstack:queueWorkers",
        "replicas": "workstack:rabbitmqReplicas",
    }
    _check(
        stack,
        queue_keys,
        lambda: check_queue_settings(mode=settings.queue_mode, workers=settings.queue_workers),
    )
    _check(
        stack,
        queue_keys,
        lambda: RabbitMqSpec(
            name="rabbitmq",
            namespace="default",
            instance="rabbitmq",
            replicas=settings.rabbitmq_replicas,
        ),
    )
    return settings


def _storage(typed: dict[str, Any], cloud: str, stack: str) -> StorageConfig:
    mode = typed["storage"]
    if mode not in STORAGE_MODES:
        raise ConfigError(
            stack, [Problem("workstack:storage", mode, "allowed: " + ", ".join(STORAGE_MODES))]
        )
    config = StorageConfig(
        nfs=mode in ("nfs", "both"),
        bucket=mode in ("bucket", "both"),
        nfs_mode=typed["nfsMode"],
        nfs_size=typed["nfsSize"],
        bucket_name=typed["bucketName"] or None,
        bucket_versioning=typed["bucketVersioning"],
        bucket_endpoint=typed["bucketEndpoint"] or None,
        bucket_access_key_id=typed["bucketAccessKeyId"] or None,
        bucket_secret_access_key=typed["bucketSecretAccessKey"] or None,
    )
    keys = {
        "mode": "workstack:nfsMode",
        "size": "workstack:nfsSize",
        "bucket_name": "workstack:bucketName",
        "endpoint_url": "workstack:bucketEndpoint",
        "credentials": "workstack:bucketAccessKeyId and workstack:bucketSecretAccessKey",
    }
    if config.nfs:
        _check(
            stack,
            keys,
            lambda: check_nfs_settings(
                cloud=cloud, mode=config.nfs_mode, size=config.nfs_size, claim_name=NFS_CLAIM
            ),
        )
    if config.bucket:
        _check(
            stack,
            keys,
            lambda: check_bucket_settings(
                cloud=cloud,
                bucket_name=config.bucket_name,
                endpoint_url=config.bucket_endpoint,
                access_key_given=config.bucket_access_key_id is not None,
                secret_key_given=config.bucket_secret_access_key is not None,
            ),
        )
    return config


def _missing_provider_keys(cloud: str, values: Mapping[str, str]) -> list[Problem]:
    required: dict[str, list[tuple[str, ...]]] = {
        "gke": [("gcp:project",), ("gcp:region", "gcp:zone")],
        "eks": [("aws:region",)],
    }
    problems = []
    for alternatives in required.get(cloud, []):
        if not any(values.get(key) for key in alternatives):
            problems.append(
                Problem(
                    " or ".join(alternatives),
                    None,
                    f"required when workstack:cloud is {cloud}; "
                    f"set it with `pulumi config set {alternatives[0]} <value>`",
                )
            )
    return problems


def default_cluster_name(stack: str) -> str:
    """``workstack-<stack>``, made a valid cluster name on every cloud (at most 40 chars)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", stack.lower()).strip("-")
    return f"workstack-{slug}"[:40].rstrip("-")


def _check(stack: str, keys: Mapping[str, str], check: Callable[[], T]) -> T:
    """Run ``check``; rename a SpecError's argument names to the config keys they came from.

    Besides the failing field, messages may mention other arguments (``max_nodes``,
    ``maximum (4)``); those are renamed too, and nothing else in the message is.
    """
    try:
        return check()
    except SpecError as error:
        allowed = error.allowed
        for argument, key in keys.items():
            # A snake_case name is always an argument; a plain word only when it is quoted
            # with its value, "maximum (4)", as the messages refer to other arguments.
            follows = r"(?![\w-])" if "_" in argument else r"(?=\s\()"
            allowed = re.sub(rf"(?<![\w-]){argument}{follows}", key, allowed)
        raise ConfigError(
            stack, [Problem(keys.get(error.field, error.field), error.value, allowed)]
        ) from None


def _minikube_args(typed: dict[str, Any], values: Mapping[str, str], stack: str) -> ClusterArgs:
    keys = {
        "kubeconfig_path": "workstack:kubeconfig",
        "context": "workstack:kubeContext",
        "namespace": "workstack:namespace",
    }
    return _check(
        stack,
        keys,
        lambda: MinikubeClusterArgs(
            kubeconfig_path=typed["kubeconfig"] or None,
            context=typed["kubeContext"],
            namespace=typed["namespace"],
            delete_unreachable=typed["ephemeral"],
        ),
    )


def _node_keys() -> dict[str, str]:
    return {
        "cluster_name": "workstack:clusterName",
        "min_nodes": "workstack:nodeMin",
        "max_nodes": "workstack:nodeMax",
        "namespace": "workstack:namespace",
    }


def _gke_args(typed: dict[str, Any], values: Mapping[str, str], stack: str) -> ClusterArgs:
    location_key = "gcp:zone" if values.get("gcp:zone") else "gcp:region"
    keys = _node_keys() | {
        "project": "gcp:project",
        "location": location_key,
        "machine_type": "workstack:nodeType",
        "release_channel": "workstack:gkeReleaseChannel",
    }
    node_type = {"machine_type": typed["nodeType"]} if typed["nodeType"] else {}
    return _check(
        stack,
        keys,
        lambda: GkeClusterArgs(
            project=values["gcp:project"],
            location=values[location_key],
            cluster_name=typed["clusterName"] or default_cluster_name(stack),
            min_nodes=typed["nodeMin"],
            max_nodes=typed["nodeMax"],
            spot=typed["nodeSpot"],
            release_channel=typed["gkeReleaseChannel"],
            deletion_protection=not typed["ephemeral"],
            namespace=typed["namespace"],
            **node_type,
        ),
    )


def _eks_args(typed: dict[str, Any], values: Mapping[str, str], stack: str) -> ClusterArgs:
    keys = _node_keys() | {
        "instance_types": "workstack:nodeType",
        "kubernetes_version": "workstack:eksVersion",
        "identity": "workstack:eksIdentity",
        "admin_principal_arns": "workstack:eksAdminArns",
        "vpc_id": "workstack:eksVpcId",
        "subnet_ids": "workstack:eksSubnetIds",
    }
    node_type = {"instance_types": (typed["nodeType"],)} if typed["nodeType"] else {}
    return _check(
        stack,
        keys,
        lambda: EksClusterArgs(
            cluster_name=typed["clusterName"] or default_cluster_name(stack),
            min_nodes=typed["nodeMin"],
            max_nodes=typed["nodeMax"],
            spot=typed["nodeSpot"],
            kubernetes_version=typed["eksVersion"] or None,
            admin_principal_arns=tuple(typed["eksAdminArns"]),
            identity=typed["eksIdentity"],
            deletion_protection=not typed["ephemeral"],
            force_delete_images=typed["ephemeral"],
            vpc_id=typed["eksVpcId"] or None,
            subnet_ids=tuple(typed["eksSubnetIds"]),
            namespace=typed["namespace"],
            **node_type,
        ),
    )
