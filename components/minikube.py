"""An existing cluster reached through a kubeconfig: minikube by default, or any other."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pulumi

from workstack.components.cluster import KubernetesCluster
from workstack.components.manifests import SpecError, require_dns1123_label

__all__ = ["MinikubeCluster", "MinikubeClusterArgs"]


@dataclass(kw_only=True, frozen=True)
class MinikubeClusterArgs:
    """Arguments for :class:`MinikubeCluster`.

    Attributes:
        kubeconfig_path: Kubeconfig file to use. None means the first entry of ``$KUBECONFIG``,
            or ``~/.kube/config``, as kubectl would choose.
        context: Kubeconfig context naming the cluster; ``minikube`` is what minikube writes.
        namespace: Workload namespace to create.
        delete_unreachable: Let ``pulumi destroy`` forget objects if the cluster is already
            gone (deleted minikube); for preview stacks.
    """

    kubeconfig_path: str | None = None
    context: str = "minikube"
    namespace: str = "workstack"
    delete_unreachable: bool = False

    def __post_init__(self) -> None:
        if self.kubeconfig_path is not None and not self.kubeconfig_path.strip():
            raise SpecError("kubeconfig_path", self.kubeconfig_path, "expected a file path or None")
        if not self.context.strip():
            raise SpecError("context", self.context, "expected a kubeconfig context name")
        require_dns1123_label("namespace", self.namespace)

    def resolved_kubeconfig_path(self) -> str:
        """The kubeconfig file this cluster is reached through."""
        if self.kubeconfig_path is not None:
            return str(Path(self.kubeconfig_path).expanduser())
        from_env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        return from_env or str(Path("~/.kube/config").expanduser())


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
