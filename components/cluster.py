"""The shape every cluster component shares, so workload components accept any of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from workstack.components._objects import create_object
from workstack.components.manifests import NamespaceSpec, build_namespace
from workstack.components.manifests.network import build_namespace_policies

__all__ = ["Cloud", "KubernetesCluster", "Registry", "StorageClassPlan"]

Cloud = Literal["minikube", "gke", "eks"]


@dataclass(frozen=True)
class Registry:
    """Where a cluster's workload images are pushed, and how pushes authenticate.

    Attributes:
        kind: ``artifact-registry`` (authenticates with the deployer's Google access token)
            or ``ecr`` (authenticates with an ECR authorization token for ``registry_id``).
            Neither needs a credential from the user.
        url: The repository URL images are pushed under.
        server: Registry host name to log in to.
        registry_id: The AWS account that owns an ECR repository; None for Artifact Registry.
    """

    kind: Literal["artifact-registry", "ecr"]
    url: pulumi.Output[str]
    server: pulumi.Output[str]
    registry_id: pulumi.Output[str] | None = None

    def image_ref(self, image: str, tag: str) -> pulumi.Output[str]:
        """The full reference for ``image`` at ``tag`` in this registry.

        Artifact Registry holds one image per path (``<url>/<image>:<tag>``); the ECR repository
        is a single repository, so the image name goes into the tag (``<url>:<image>-<tag>``).
        """
        if self.kind == "ecr":
            return self.url.apply(lambda url: f"{url}:{image}-{tag}")
        return self.url.apply(lambda url: f"{url}/{image}:{tag}")


@dataclass(frozen=True)
class StorageClassPlan:
    """A StorageClass a cluster component makes once its provider exists.

    Attributes:
        name: The class's name, which claims give as ``storageClassName``.
        resource_name: Pulumi name of the object.
        manifest: The StorageClass object.
        depends_on: The storage driver (an add-on) that must exist first.
    """

    name: str
    resource_name: str
    manifest: dict[str, Any]
    depends_on: tuple[pulumi.Resource, ...] = ()


class KubernetesCluster(pulumi.ComponentResource):
    """Base for MinikubeCluster, GkeCluster and EksCluster: one set of outputs for all three.

    Subclasses create their cloud resources, then call :meth:`_connect` with the kubeconfig,
    which makes the Kubernetes provider and the workload namespace, and finally
    ``register_outputs``.
    """

    cloud: Cloud
    """Which kind of cluster this is."""

    kubeconfig: pulumi.Output[str]
    """Kubeconfig (contents, or for an existing cluster the path the provider reads); secret."""

    provider: k8s.Provider
    """Kubernetes provider for this cluster. Pass it to children with ``ResourceOptions``."""

    namespace: pulumi.Output[str]
    """Name of the workload namespace, resolved once the namespace exists."""

    namespace_name: str
    """Name of the workload namespace, for builders that need it as a plain string (pair it
    with ``depends_on=[cluster]``)."""

    registry: Registry | None
    """Where images are pushed; None when images are loaded straight into the cluster."""

    storage_class: str | None = None
    """The StorageClass claims should name; None: the cluster's default class serves them."""

    storage_ready: tuple[pulumi.Resource, ...] = ()
    """What a claim must wait for: the storage class and its driver. Namespaces holding
    claims wait for it too, so ``pulumi destroy`` deletes them (and their disks) first."""

    def options_for(
        self,
        parent: pulumi.Resource,
        *after: pulumi.Resource | None,
        storage: bool = False,
    ) -> pulumi.ResourceOptions:
        """Options for a Kubernetes object of ``parent`` on this cluster.

        It uses this cluster's provider and waits for the cluster (its namespace), for
        ``after`` (an identity whose cloud binding pods need, a chart whose CRDs it uses) and,
        with ``storage``, for the storage class its claims name.
        """
        depends: list[pulumi.Resource] = [self, *(r for r in after if r is not None)]
        if storage:
            depends += self.storage_ready
        return pulumi.ResourceOptions(parent=parent, provider=self.provider, depends_on=depends)

    def _connect(
        self,
        name: str,
        *,
        kubeconfig: pulumi.Input[str],
        namespace: str,
        context: str | None = None,
        delete_unreachable: bool = False,
        depends_on: list[pulumi.Resource] | None = None,
        storage: StorageClassPlan | None = None,
    ) -> None:
        """Create the Kubernetes provider and the workload namespace.

        Args:
            name: The component's name; children are named after it.
            kubeconfig: Kubeconfig contents, or the path of a kubeconfig file.
            namespace: Workload namespace name.
            context: Kubeconfig context to use; None uses the current context.
            delete_unreachable: Let ``pulumi destroy`` forget objects whose cluster is already
                gone, so a torn-down preview environment leaves no stuck state behind.
            depends_on: Resources that must exist before the provider connects (node pools).
            storage: A StorageClass to make for the claims, when the cluster has no default.
        """
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.namespace_name = namespace
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=kubeconfig,
            context=context,
            delete_unreachable=delete_unreachable,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        if storage is not None:
            self.storage_class = storage.name
            self.storage_ready = (
                create_object(
                    storage.resource_name,
                    storage.manifest,
                    pulumi.ResourceOptions(
                        parent=self, provider=self.provider, depends_on=list(storage.depends_on)
                    ),
                ),
            )
        spec = NamespaceSpec(name=namespace, instance=name, stack=pulumi.get_stack())
        created = create_object(
            f"{name}-namespace",
            build_namespace(spec),
            pulumi.ResourceOptions(
                parent=self, provider=self.provider, depends_on=list(self.storage_ready)
            ),
        )
        # Nothing in the namespace talks to anything but what a policy allows: DNS and the
        # cloud identity endpoint here, each pattern's own traffic in its component.
        in_namespace = pulumi.ResourceOptions(
            parent=self, provider=self.provider, depends_on=[created]
        )
        for policy in build_namespace_policies(
            namespace=namespace, instance=name, cloud=self.cloud
        ):
            create_object(f"{name}-{policy['metadata']['name']}", policy, in_namespace)
        # Resolves only once the namespace exists, so everything placed in it waits for it.
        self.namespace = created.id.apply(lambda _: namespace)

    def _register(self) -> None:
        """Register the common outputs; subclasses call this last."""
        outputs: dict[str, object] = {
            "cloud": self.cloud,
            "kubeconfig": self.kubeconfig,
            "namespace": self.namespace,
        }
        if self.registry is not None:
            outputs["registry_url"] = self.registry.url
        self.register_outputs(outputs)
