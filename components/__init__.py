"""Pulumi components for running data-science workloads on Kubernetes.

Use them in your own Pulumi program::

    from workstack.components import GkeCluster, GkeClusterArgs

    cluster = GkeCluster("ml", GkeClusterArgs(project="my-project", location="europe-west1-b",
                                             cluster_name="ml"))

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
from workstack.components.bucket import BucketStorage, BucketStorageArgs
from workstack.components.cluster import Cloud, KubernetesCluster, Registry
from workstack.components.dask_cluster import DaskCluster, DaskClusterArgs
from workstack.components.eks import EksCluster, EksClusterArgs
from workstack.components.gke import GkeCluster, GkeClusterArgs
from workstack.components.identity import WorkloadIdentity, WorkloadIdentityArgs
from workstack.components.image import ImageInput, ImageRef, WorkloadImage, WorkloadImageArgs
from workstack.components.job_per_file import JobPerFile, JobPerFileArgs
from workstack.components.manifests import SpecError
from workstack.components.manifests.pods import ContainerSpec, PodStorage, Resources
from workstack.components.minikube import MinikubeCluster, MinikubeClusterArgs
from workstack.components.nfs import NfsStorage, NfsStorageArgs
from workstack.components.queue_workers import BrokerRef, QueueWorkers, QueueWorkersArgs
from workstack.components.rabbitmq import RabbitMq, RabbitMqArgs

__all__ = [
    "BUCKET_ROOT",
    "ArgoPipeline",
    "ArgoPipelineArgs",
    "ArgoWorkflows",
    "ArgoWorkflowsArgs",
    "BrokerRef",
    "BucketStorage",
    "BucketStorageArgs",
    "Cloud",
    "ContainerSpec",
    "DaskCluster",
    "DaskClusterArgs",
    "EksCluster",
    "EksClusterArgs",
    "GkeCluster",
    "GkeClusterArgs",
    "ImageInput",
    "ImageRef",
    "JobPerFile",
    "JobPerFileArgs",
    "KubernetesCluster",
    "MinikubeCluster",
    "MinikubeClusterArgs",
    "NfsStorage",
    "NfsStorageArgs",
    "PodStorage",
    "QueueWorkers",
    "QueueWorkersArgs",
    "RabbitMq",
    "RabbitMqArgs",
    "Registry",
    "Resources",
    "SpecError",
    "WorkloadIdentity",
    "WorkloadIdentityArgs",
    "WorkloadImage",
    "WorkloadImageArgs",
]
