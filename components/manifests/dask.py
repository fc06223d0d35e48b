"""A Dask cluster: plain Deployments and a Service, or the operator's DaskCluster resource."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

from pydantic import model_validator

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.pods import ContainerSpec, PodStorage, Resources, build_pod_spec
from workstack.components.manifests.settings import Between, OneOf, Settings, setting
from workstack.components.manifests.validation import SpecError, require_dns1123_label

__all__ = [
    "DASHBOARD_PORT",
    "DASK_MODES",
    "DASK_OPERATOR_CHART",
    "DASK_OPERATOR_REPO",
    "DASK_OPERATOR_VERSION",
    "SCHEDULER_PORT",
    "DaskSettings",
    "DaskTarget",
    "build_dask_operator_resources",
    "build_plain_dask",
    "dask_operator_values",
    "scheduler_address",
]

SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
DASK_MODES = ("plain", "operator")
DASK_OPERATOR_CHART = "dask-kubernetes-operator"
DASK_OPERATOR_REPO = "https://helm.dask.org"
DASK_OPERATOR_VERSION = "2026.3.0"
"""The operator chart's version: the ``dask-kubernetes`` release whose CRDs the tests use."""

_WORK_DIR = "/tmp/dask"  # workers spill here; the root filesystem is read-only


class DaskSettings(Settings):
    """A Dask cluster's mode and size: fixed workers, or adaptive between two bounds."""

    mode: Annotated[str, OneOf(*DASK_MODES)] = setting("plain", "daskMode")
    """dask. `plain` (Deployments and a Service) or `operator` (dask-kubernetes operator)."""
    workers: Annotated[int, Between(0, 1000)] = setting(2, "daskWorkers")
    """dask. Workers; with daskMaxWorkers, the fewest."""
    max_workers: Annotated[int | None, Between(1, 1000, optional=True)] = setting(
        None, "daskMaxWorkers", unset=0
    )
    """dask. 0 keeps daskWorkers fixed; more scales between them (needs daskMode operator)."""
    threads: Annotated[int, Between(1, 256)] = setting(1, "daskThreads")
    """dask. Threads per worker."""
    worker_resources: Resources = setting(
        Resources(cpu="1", memory="2Gi", cpu_limit="1"), "daskWorker"
    )
    """dask. Each worker's CPU and memory."""
    scheduler_resources: Resources = setting(
        Resources(cpu="250m", memory="1Gi", cpu_limit="1"), "daskScheduler"
    )
    """dask. The scheduler's CPU and memory."""

    @model_validator(mode="after")
    def _size(self) -> Self:
        if self.max_workers is None:
            if self.workers < 1:
                raise self.refuse("workers", self.workers, "a fixed cluster needs at least 1")
            return self
        if self.workers > self.max_workers:
            allowed = f"must not exceed {{max_workers}} ({self.max_workers})"
            raise self.refuse("workers", self.workers, allowed)
        if self.mode != "operator":
            raise self.refuse(
                "mode",
                self.mode,
                "adaptive scaling ({max_workers} set) needs mode operator (a DaskAutoscaler)",
            )
        return self

    @property
    def adaptive(self) -> bool:
        """Whether the cluster scales between ``workers`` and ``max_workers``."""
        return self.max_workers is not None


@dataclass(kw_only=True, frozen=True)
class DaskTarget:
    """Where a Dask cluster runs and what image: everything but its settings.

    Attributes:
        name: Cluster name; the scheduler Service is ``<name>-scheduler``.
        namespace: Its namespace.
        instance: Owning component's name, for labels.
        image: The workload image (with ``workstack[dask]``).
        pull_policy: The image's pull policy (``Never`` for an image loaded into minikube).
        storage: Storages the workers (and scheduler) mount.
        service_account: Service account of the pods (bucket access).
    """

    name: str
    namespace: str
    instance: str
    image: Any
    pull_policy: str = "IfNotPresent"
    storage: Sequence[PodStorage] = field(default_factory=tuple)
    service_account: str | None = None

    def __post_init__(self) -> None:
        require_dns1123_label("name", self.name, max_length=40)
        require_dns1123_label("namespace", self.namespace)


def scheduler_address(name: str, namespace: str) -> str:
    """The scheduler's address inside the cluster (both modes name its Service the same)."""
    return f"tcp://{name}-scheduler.{namespace}.svc.cluster.local:{SCHEDULER_PORT}"


def _scheduler_pod(target: DaskTarget, settings: DaskSettings) -> dict[str, Any]:
    container = ContainerSpec(
        name="scheduler",
        image=target.image,
        command=("dask",),
        args=(
            "scheduler",
            "--port",
            str(SCHEDULER_PORT),
            "--dashboard-address",
            f":{DASHBOARD_PORT}",
        ),
        ports={"tcp-comm": SCHEDULER_PORT, "http-dashboard": DASHBOARD_PORT},
        resources=settings.scheduler_resources,
        pull_policy=target.pull_policy,
    )
    pod = build_pod_spec(
        containers=[container],
        storage=list(target.storage),
        service_account=target.service_account,
        restart_policy="Always",
    )
    pod["containers"][0]["readinessProbe"] = {
        "httpGet": {"port": "http-dashboard", "path": "/health"},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
    }
    return pod


def _worker_pod(
    target: DaskTarget, settings: DaskSettings, scheduler: str | None
) -> dict[str, Any]:
    # The operator injects DASK_SCHEDULER_ADDRESS and DASK_WORKER_NAME; plain mode names the
    # scheduler itself.
    args = ["worker", "--nthreads", str(settings.threads), "--memory-limit", "auto"]
    args += ["--local-directory", _WORK_DIR, "--no-dashboard"]
    if scheduler is not None:
        args.insert(1, scheduler)
    else:
        args += ["--name", "$(DASK_WORKER_NAME)"]
    container = ContainerSpec(
        name="worker",
        image=target.image,
        command=("dask",),
        args=tuple(args),
        resources=settings.worker_resources,
        pull_policy=target.pull_policy,
    )
    return build_pod_spec(
        containers=[container],
        storage=list(target.storage),
        service_account=target.service_account,
        restart_policy="Always",
    )


def _service_spec(selector: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "ClusterIP",
        "selector": selector,
        "ports": [
            {
                "name": "tcp-comm",
                "protocol": "TCP",
                "port": SCHEDULER_PORT,
                "targetPort": "tcp-comm",
            },
            {
                "name": "http-dashboard",
                "protocol": "TCP",
                "port": DASHBOARD_PORT,
                "targetPort": "http-dashboard",
            },
        ],
    }


def build_plain_dask(target: DaskTarget, settings: DaskSettings) -> list[dict[str, Any]]:
    """The scheduler Deployment and Service, and the worker Deployment."""
    if settings.mode != "plain" or settings.adaptive:
        raise SpecError("mode", settings.mode, "build_plain_dask builds a fixed-size plain cluster")

    def labels(role: str) -> dict[str, str]:
        return standard_labels(
            name="dask",
            instance=target.instance,
            component=f"dask-{role}",
            extra={"dask.org/cluster-name": target.name},
        )

    def selector(role: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/instance": target.instance,
            "app.kubernetes.io/component": f"dask-{role}",
        }

    def deployment(role: str, replicas: int, pod: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": f"{target.name}-{role}",
                "namespace": target.namespace,
                "labels": labels(role),
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector(role)},
                "template": {"metadata": {"labels": labels(role)}, "spec": pod},
            },
        }

    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{target.name}-scheduler",
            "namespace": target.namespace,
            "labels": labels("scheduler"),
        },
        "spec": _service_spec(selector("scheduler")),
    }
    address = scheduler_address(target.name, target.namespace)
    return [
        deployment("scheduler", 1, _scheduler_pod(target, settings)),
        service,
        deployment("worker", settings.workers, _worker_pod(target, settings, address)),
    ]


def build_dask_operator_resources(
    target: DaskTarget, settings: DaskSettings
) -> list[dict[str, Any]]:
    """A ``DaskCluster`` for the operator and, when adaptive, its ``DaskAutoscaler``."""
    if settings.mode != "operator":
        raise SpecError("mode", settings.mode, "build_dask_operator_resources needs mode operator")
    labels = standard_labels(name="dask", instance=target.instance, component="dask-cluster")
    metadata = {"name": target.name, "namespace": target.namespace, "labels": labels}
    cluster = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": metadata,
        "spec": {
            "worker": {
                "replicas": settings.workers,
                "spec": _worker_pod(target, settings, None),
            },
            "scheduler": {
                "spec": _scheduler_pod(target, settings),
                "service": _service_spec(
                    {"dask.org/cluster-name": target.name, "dask.org/component": "scheduler"}
                ),
            },
        },
    }
    if not settings.adaptive:
        return [cluster]
    autoscaler = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskAutoscaler",
        "metadata": metadata,
        "spec": {
            "cluster": target.name,
            "minimum": settings.workers,
            "maximum": settings.max_workers,
        },
    }
    return [cluster, autoscaler]


def dask_operator_values(namespace: str) -> dict[str, Any]:
    """Helm values for an operator that watches, and has rights in, one namespace only."""
    return {
        "rbac": {"create": True, "cluster": False},
        "kopfArgs": ["--namespace", namespace],
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
    }
