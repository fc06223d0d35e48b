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

from workstack.components.cluster import Cloud, KubernetesCluster, Registry
from workstack.components.eks import EksCluster, EksClusterArgs
from workstack.components.gke import GkeCluster, GkeClusterArgs
from workstack.components.image import ImageInput, ImageRef, WorkloadImage, WorkloadImageArgs
from workstack.components.manifests import SpecError
from workstack.components.minikube import MinikubeCluster, MinikubeClusterArgs

__all__ = [
    "Cloud",
    "EksCluster",
    "EksClusterArgs",
    "GkeCluster",
    "GkeClusterArgs",
    "ImageInput",
    "ImageRef",
    "KubernetesCluster",
    "MinikubeCluster",
    "MinikubeClusterArgs",
    "Registry",
    "SpecError",
    "WorkloadImage",
    "WorkloadImageArgs",
]
