"""The Dask pattern: a scheduler and workers on Kubernetes, fixed or adaptive."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from workstack.components._objects import create_object
from workstack.components.cluster import KubernetesCluster
from workstack.components.identity import WorkloadIdentity
from workstack.components.image import ImageInput, ImageRef
from workstack.components.manifests import require_dns1123_label
from workstack.components.manifests.dask import (
    DASHBOARD_PORT,
    DASK_OPERATOR_CHART,
    DASK_OPERATOR_REPO,
    DASK_OPERATOR_VERSION,
    DaskSettings,
    DaskTarget,
    build_dask_operator_resources,
    build_plain_dask,
    dask_operator_values,
    scheduler_address,
)
from workstack.components.manifests.pods import PodStorage

__all__ = ["DaskCluster", "DaskClusterArgs", "DaskSettings"]


@dataclass(kw_only=True, frozen=True)
class DaskClusterArgs:
    """Arguments for :class:`DaskCluster`.

    Attributes:
        cluster: Where it runs (the workload namespace and provider).
        image: The workload image (with the ``dask`` extra): a ``WorkloadImage`` or a reference.
        storage: Storages the pods mount.
        identity: Service account of the pods (bucket access comes with it).
        install_operator: Operator mode: install the operator chart (pinned to
            ``DASK_OPERATOR_VERSION``) in the namespace. Turn off for a second cluster in a
            namespace that has one.
        settings: Mode, size, threads and resources.
    """

    cluster: KubernetesCluster
    image: ImageInput
    storage: tuple[PodStorage, ...] = ()
    identity: WorkloadIdentity | None = None
    install_operator: bool = True
    settings: DaskSettings = field(default_factory=DaskSettings)

    def __post_init__(self) -> None:
        ImageRef.of(self.image)


class DaskCluster(pulumi.ComponentResource):
    """A Dask scheduler and workers running the workload image, with namespaced rights only.

    Plain mode creates the scheduler Deployment and Service (8786, dashboard on 8787) and a
    worker Deployment. Operator mode installs the dask-kubernetes operator chart, limited to
    this namespace (a namespaced Role, ``--namespace``), and creates a ``DaskCluster``, plus
    a ``DaskAutoscaler`` for an adaptive ``minimum``..``maximum`` range. Either way, run work on
    it from a pod with ``workstack dask run CONFIG --address <scheduler_address>``.
    """

    scheduler_address: pulumi.Output[str]
    """The scheduler inside the cluster: ``tcp://<name>-scheduler.<ns>.svc.cluster.local:8786``."""

    dashboard_command: pulumi.Output[str]
    """The ``kubectl port-forward`` command that opens the dashboard on localhost:8787."""

    def __init__(
        self, name: str, args: DaskClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:workload:DaskCluster", name, None, opts)
        require_dns1123_label("name", name, max_length=40)
        cluster = args.cluster
        namespace = cluster.namespace_name
        k8s_opts = cluster.options_for(self, args.identity)
        image = ImageRef.of(args.image)
        target = DaskTarget(
            name=name,
            namespace=namespace,
            instance=name,
            image=image.ref,
            pull_policy=image.pull_policy,
            storage=args.storage,
            service_account=args.identity.service_account if args.identity else None,
        )
        settings = args.settings
        if settings.mode == "plain":
            for obj in build_plain_dask(target, settings):
                create_object(
                    f"{name}-{obj['kind'].lower()}-{obj['metadata']['name']}", obj, k8s_opts
                )
        else:
            depends: list[pulumi.Resource] = []
            if args.install_operator:
                depends.append(
                    k8s.helm.v4.Chart(
                        f"{name}-operator",
                        chart=DASK_OPERATOR_CHART,
                        version=DASK_OPERATOR_VERSION,
                        repository_opts={"repo": DASK_OPERATOR_REPO},
                        namespace=namespace,
                        values=dask_operator_values(namespace),
                        opts=k8s_opts,
                    )
                )
            custom = pulumi.ResourceOptions.merge(
                k8s_opts, pulumi.ResourceOptions(depends_on=depends)
            )
            for obj in build_dask_operator_resources(target, settings):
                create_object(f"{name}-{obj['kind'].lower()}", obj, custom)

        self.scheduler_address = pulumi.Output.from_input(scheduler_address(name, namespace))
        ports = f"{DASHBOARD_PORT}:{DASHBOARD_PORT}"
        self.dashboard_command = pulumi.Output.from_input(
            f"kubectl port-forward -n {namespace} svc/{name}-scheduler {ports}"
        )
        self.register_outputs(
            {
                "scheduler_address": self.scheduler_address,
                "dashboard_command": self.dashboard_command,
            }
        )
