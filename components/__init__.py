"""Pulumi components for running data-science workloads on Kubernetes.

Use them in your own Pulumi program::

    from workstack.components import GkeCluster, GkeClusterArgs

    cluster = GkeCluster("ml", GkeClusterArgs(project="my-project", location="europe-west1-b",
                                             cluster_name="ml"))

Components take Pulumi wiring (the cluster, an image, storage, an identity) plus a settings
model (``JobSettings``, ``QueueSettings``...) whose fields are the stack keys of ``Pulumi.yaml``.
Every cluster component has the same outputs (``kubeconfig``, ``provider``, ``namespace``,
``registry``), so the workload components take any of them. ``WorkloadImage`` builds a
workload folder into an image and pushes it to a cluster's ``registry`` (or loads it, for
minikube); workload components take it, or a plain image reference, as an ``ImageInput``.
"""

from workstack.components._locations import BUCKET_ROOT
from workstack.components.argo import (
    ArgoPipeline,
    ArgoPipelineArgs,
    ArgoWorkflows,
    ArgoWorkflowsArgs,
)
from workstack.components.bucket import BucketSettings, BucketStorage, BucketStorageArgs
from workstack.components.cluster import Cloud, KubernetesCluster, Registry
from workstack.components.dask_cluster import DaskCluster, DaskClusterArgs, DaskSettings
from workstack.components.eks import EksCluster, EksClusterArgs
from workstack.components.gke import GkeCluster, GkeClusterArgs
from workstack.components.identity import WorkloadIdentity, WorkloadIdentityArgs
from workstack.components.image import ImageInput, ImageRef, WorkloadImage, WorkloadImageArgs
from workstack.components.job_per_file import JobPerFile, JobPerFileArgs, JobSettings
from workstack.components.manifests import SpecError
from workstack.components.manifests.pods import ContainerSpec, PodStorage, Resources
from workstack.components.manifests.settings import SettingsError
from workstack.components.minikube import MinikubeCluster, MinikubeClusterArgs
from workstack.components.nfs import NfsSettings, NfsStorage, NfsStorageArgs
from workstack.components.queue_workers import (
    BrokerRef,
    QueueSettings,
    QueueWorkers,
    QueueWorkersArgs,
)
from workstack.components.rabbitmq import RabbitMq, RabbitMqArgs, RabbitMqSettings

__all__ = [
    "BUCKET_ROOT",
    "ArgoPipeline",
    "ArgoPipelineArgs",
    "ArgoWorkflows",
    "ArgoWorkflowsArgs",
    "BrokerRef",
    "BucketSettings",
    "BucketStorage",
    "BucketStorageArgs",
    "Cloud",
    "ContainerSpec",
    "DaskCluster",
    "DaskClusterArgs",
    "DaskSettings",
    "EksCluster",
    "EksClusterArgs",
    "GkeCluster",
    "GkeClusterArgs",
    "ImageInput",
    "ImageRef",
    "JobPerFile",
    "JobPerFileArgs",
    "JobSettings",
    "KubernetesCluster",
    "MinikubeCluster",
    "MinikubeClusterArgs",
    "NfsSettings",
    "NfsStorage",
    "NfsStorageArgs",
    "PodStorage",
    "QueueSettings",
    "QueueWorkers",
    "QueueWorkersArgs",
    "RabbitMq",
    "RabbitMqArgs",
    "RabbitMqSettings",
    "Registry",
    "Resources",
    "SettingsError",
    "SpecError",
    "WorkloadIdentity",
    "WorkloadIdentityArgs",
    "WorkloadImage",
    "WorkloadImageArgs",
]
