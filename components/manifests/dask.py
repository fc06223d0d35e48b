"""A Dask cluster: plain Deployments and a Service, or the operator's DaskCluster resource."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.pods import ContainerSpec, PodStorage, Resources, build_pod_spec
from workstack.components.manifests.validation import (
    SpecError,
    require_choice,
    require_dns1123_label,
    require_int,
)

__all__ = [
    "DASHBOARD_PORT",
    "DASK_MODES",
    "DASK_OPERATOR_CHART",
    "DASK_OPERATOR_REPO",
    "DASK_OPERATOR_VERSION",
    "SCHEDULER_PORT",
    "DaskSpec",
    "build_dask_operator_resources",
    "build_plain_dask",
    "check_dask_settings",
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


def check_dask_settings(
    *, mode: str, workers: int | None, minimum: int | None, maximum: int | None, threads: int
) -> None:
    """Validate a Dask cluster's size: fixed ``workers``, or ``minimum``..``maximum`` (operator).

    Raises:
        SpecError: Naming ``mode``, ``workers``, ``minimum``, ``maximum`` or ``threads``.
    """
    require_choice("mode", mode, DASK_MODES)
    require_int("threads", threads, minimum=1, maximum=256)
    adaptive = minimum is not None or maximum is not None
    if adaptive == (workers is not None):
        raise SpecError(
            "workers", workers, "give workers (fixed) or minimum and maximum (adaptive)"
        )
    if workers is not None:
        require_int("workers", workers, minimum=1, maximum=1000)
        return
    require_int("minimum", minimum, minimum=0, maximum=1000)
    require_int("maximum", maximum, minimum=1, maximum=1000)
    assert minimum is not None
    assert maximum is not None
    if minimum > maximum:
        raise SpecError("minimum", minimum, f"must not exceed maximum ({maximum})")
    if mode != "operator":
        raise SpecError(
            "mode", mode, "adaptive scaling (minimum/maximum) needs mode operator (DaskAutoscaler)"
        )


@dataclass(kw_only=True, frozen=True)
class DaskSpec:
    """A Dask cluster: one scheduler and a group of workers running the workload image.

    Attributes:
        name: Cluster name; the scheduler Service is ``<name>-scheduler``.
        namespace: Its namespace.
        instance: Owning component's name, for labels.
        image: The workload image (with ``workstack[dask]``).
        pull_policy: The image's pull policy (``Never`` for an image loaded into minikube).
        mode: ``plain`` or ``operator``.
        workers: Fixed number of workers; None when adaptive.
        minimum: Fewest workers (adaptive, operator mode).
        maximum: Most workers (adaptive, operator mode).
        threads: Threads per worker.
        worker_resources: CPU and memory per worker.
        scheduler_resources: CPU and memory of the scheduler.
        storage: Storages the workers (and scheduler) mount.
        service_account: Service account of the pods (bucket access).
    """

    name: str
    namespace: str
    instance: str
    image: Any
    pull_policy: str = "IfNotPresent"
    mode: str = "plain"
    workers: int | None = 2
    minimum: int | None = None
    maximum: int | None = None
    threads: int = 1
    worker_resources: Resources = field(
        default_factory=lambda: Resources(cpu="1", memory="2Gi", cpu_limit="1")
    )
    scheduler_resources: Resources = field(
        default_factory=lambda: Resources(cpu="250m", memory="1Gi", cpu_limit="1")
    )
    storage: Sequence[PodStorage] = field(default_factory=tuple)
    service_account: str | None = None

    def __post_init__(self) -> None:
        require_dns1123_label("name", self.name, max_length=40)
        require_dns1123_label("namespace", self.namespace)
        check_dask_settings(
            mode=self.mode,
            workers=self.workers,
            minimum=self.minimum,
            maximum=self.maximum,
            threads=self.threads,
        )


def scheduler_address(name: str, namespace: str) -> str:
    """The scheduler's address inside the cluster (both modes name its Service the same)."""
    return f"tcp://{name}-scheduler.{namespace}.svc.cluster.local:{SCHEDULER_PORT}"


def _scheduler_pod(spec: DaskSpec) -> dict[str, Any]:
    container = ContainerSpec(
        name="scheduler",
        image=spec.image,
        command=("dask",),
        args=(
            "scheduler",
            "--port",
            str(SCHEDULER_PORT),
            "--dashboard-address",
            f":{DASHBOARD_PORT}",
        ),
        ports={"tcp-comm": SCHEDULER_PORT, "http-dashboard": DASHBOARD_PORT},
        resources=spec.scheduler_resources,
        pull_policy=spec.pull_policy,
    )
    pod = build_pod_spec(
        containers=[container],
        storage=list(spec.storage),
        service_account=spec.service_account,
        restart_policy="Always",
    )
    pod["containers"][0]["readinessProbe"] = {
        "httpGet": {"port": "http-dashboard", "path": "/health"},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
    }
    return pod


def _worker_pod(spec: DaskSpec, scheduler: str | None) -> dict[str, Any]:
    # The operator injects DASK_SCHEDULER_ADDRESS and DASK_WORKER_NAME; plain mode names the
    # scheduler itself.
    args = ["worker", "--nthreads", str(spec.threads), "--memory-limit", "auto"]
    args += ["--local-directory", _WORK_DIR, "--no-dashboard"]
    if scheduler is not None:
        args.insert(1, scheduler)
    else:
        args += ["--name", "$(DASK_WORKER_NAME)"]
    container = ContainerSpec(
        name="worker",
        image=spec.image,
        command=("dask",),
        args=tuple(args),
        resources=spec.worker_resources,
        pull_policy=spec.pull_policy,
    )
    return build_pod_spec(
        containers=[container],
        storage=list(spec.storage),
        service_account=spec.service_account,
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


def build_plain_dask(spec: DaskSpec) -> list[dict[str, Any]]:
    """The scheduler Deployment and Service, and the worker Deployment."""
    if spec.mode != "plain" or spec.workers is None:
        raise SpecError("mode", spec.mode, "build_plain_dask builds a fixed-size plain cluster")

    def labels(role: str) -> dict[str, str]:
        return standard_labels(
            name="dask",
            instance=spec.instance,
            component=f"dask-{role}",
            extra={"dask.org/cluster-name": spec.name},
        )

    def selector(role: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/instance": spec.instance,
            "app.kubernetes.io/component": f"dask-{role}",
        }

    def deployment(role: str, replicas: int, pod: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": f"{spec.name}-{role}",
                "namespace": spec.namespace,
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
            "name": f"{spec.name}-scheduler",
            "namespace": spec.namespace,
            "labels": labels("scheduler"),
        },
        "spec": _service_spec(selector("scheduler")),
    }
    address = scheduler_address(spec.name, spec.namespace)
    return [
        deployment("scheduler", 1, _scheduler_pod(spec)),
        service,
        deployment("worker", spec.workers, _worker_pod(spec, address)),
    ]


def build_dask_operator_resources(spec: DaskSpec) -> list[dict[str, Any]]:
    """A ``DaskCluster`` for the operator and, when adaptive, its ``DaskAutoscaler``."""
    if spec.mode != "operator":
        raise SpecError("mode", spec.mode, "build_dask_operator_resources needs mode operator")
    labels = standard_labels(name="dask", instance=spec.instance, component="dask-cluster")
    metadata = {"name": spec.name, "namespace": spec.namespace, "labels": labels}
    replicas = spec.workers if spec.workers is not None else spec.minimum
    cluster = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": metadata,
        "spec": {
            "worker": {"replicas": replicas, "spec": _worker_pod(spec, None)},
            "scheduler": {
                "spec": _scheduler_pod(spec),
                "service": _service_spec(
                    {"dask.org/cluster-name": spec.name, "dask.org/component": "scheduler"}
                ),
            },
        },
    }
    if spec.workers is not None:
        return [cluster]
    autoscaler = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskAutoscaler",
        "metadata": metadata,
        "spec": {"cluster": spec.name, "minimum": spec.minimum, "maximum": spec.maximum},
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
