"""An existing cluster reached through a kubeconfig: minikube by default, or any other."""

from __future__ import annotations

import pulumi

from workstack.components.cluster import KubernetesCluster
from workstack.components.manifests.clusters import MinikubeClusterArgs

__all__ = ["MinikubeCluster", "MinikubeClusterArgs"]


class MinikubeCluster(KubernetesCluster):
    """A cluster that already exists, such as minikube: no cloud resources are created.

    There is no registry: workload images are loaded into the cluster's container runtime
    instead of pushed (see ``WorkloadImage``), so nothing leaves the machine.
    """

    context: str
    """The kubeconfig context this cluster is reached through."""

    def __init__(
        self, name: str, args: MinikubeClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:cluster:MinikubeCluster", name, None, opts)
        self.cloud = "minikube"
        self.context = args.context
        self.registry = None
        self._connect(
            name,
            kubeconfig=args.resolved_kubeconfig_path(),
            context=args.context,
            namespace=args.namespace,
            delete_unreachable=args.delete_unreachable,
        )
        self._register()
