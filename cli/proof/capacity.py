"""Whether what a stack runs at once fits the nodes it runs on.

Demand is the sum of the pod requests of everything that runs at the same time: platform
Deployments and StatefulSets at their replicas, RabbitMQ nodes, Dask schedulers and workers
(at the autoscaler's maximum), the NFS server, the pods of every chart and bundle (from the
facts table, overridden by the values given), each Job at its parallelism, each KEDA
ScaledJob at its ``maxReplicaCount``, and of each pipeline its largest step (one step at a
time). A pod requests ``max(sum of its containers, largest init container)`` per resource,
as the scheduler counts it.

Supply is what the nodes leave to pods (``upstream.NODE_TYPES``: allocatable by the
cloud's reservation formula) minus the system pods on each node and once per cluster
(``upstream.SYSTEM_PODS``, partly estimates): on GKE up to ``nodeMax`` nodes (the pool
autoscales), on EKS the group's desired size, ``max(nodeMin, 1)`` (nothing scales it), on
minikube the node ``minikubeCpus``/``minikubeMemory`` declares. The largest pod must also fit
one node. Packing losses between nodes are not modelled: a sum that fits can still strand a
pod, so the check is necessary, not sufficient.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from workstack.components.manifests.upstream import (
    NODE_TYPES,
    RABBITMQ_DEFAULT_RESOURCES,
    RABBITMQ_SETUP_CONTAINER,
    SYSTEM_PODS,
    lookup,
)
from workstack.components.manifests.validation import parse_quantity
from workstack.offline import Deployment, Secret
from workstack.proof.charts import BundleUse, bundle_uses, holds
from workstack.proof.findings import Finding, StackContext

__all__ = [
    "COMPONENT_KEYS",
    "NODE_KEYS",
    "Demand",
    "Nodes",
    "capacity_findings",
    "demands",
    "nodes_of",
    "pod_request",
    "run_demands",
]

COMPONENT_KEYS: dict[str, tuple[str, ...]] = {
    "job-per-file": ("workstack:jobParallelism", "workstack:jobCpu", "workstack:jobMemory"),
    "queue-worker": (
        "workstack:queueWorkers",
        "workstack:queueWorkerCpu",
        "workstack:queueWorkerMemory",
    ),
    "queue-tasker": ("workstack:queueTaskerCpu", "workstack:queueTaskerMemory"),
    "dask-worker": (
        "workstack:daskWorkers",
        "workstack:daskMaxWorkers",
        "workstack:daskWorkerCpu",
        "workstack:daskWorkerMemory",
    ),
    "dask-scheduler": ("workstack:daskSchedulerCpu", "workstack:daskSchedulerMemory"),
    "broker": ("workstack:rabbitmqReplicas", "workstack:rabbitmqCpu", "workstack:rabbitmqMemory"),
    "operator": ("workstack:installOperators",),
    "storage": ("workstack:storage", "workstack:nfsMode"),
    "workloads": ("workstack:workloads",),
}
"""The stack keys that size each part of what runs (by ``app.kubernetes.io/component``)."""
_KIND_COMPONENT = {
    "RabbitmqCluster": "broker",
    "DaskCluster": "dask-worker",
    "Workflow": "workloads",
    "WorkflowTemplate": "workloads",
    "nfs-server": "storage",
}
# Argo comes with a pipeline workload; the other bundles are the operators.
_BUNDLE_COMPONENT = {"argo-workflows": "workloads"}
NODE_KEYS: dict[str, tuple[str, ...]] = {
    "gke": ("workstack:nodeMax", "workstack:gkeMachineType"),
    "eks": ("workstack:nodeMin", "workstack:eksInstanceTypes"),
    "minikube": ("workstack:minikubeCpus", "workstack:minikubeMemory"),
}
_KEDA_MAX_REPLICAS = 100  # ScaledJob maxReplicaCount default (keda.sh/v1alpha1 ScaledJob)


@dataclass(frozen=True)
class Demand:
    """Pods that run at once: ``count`` pods of one request.

    Attributes:
        what: Which object or chart pod.
        count: How many pods at once.
        cpu_m: Each pod's CPU request, millicores.
        memory_mib: Each pod's memory request, MiB.
        keys: Stack keys that change it.
    """

    what: str
    count: int
    cpu_m: int
    memory_mib: float
    keys: tuple[str, ...] = ()

    @property
    def total(self) -> tuple[int, float]:
        """CPU (m) and memory (MiB) of all its pods."""
        return self.count * self.cpu_m, self.count * self.memory_mib


@dataclass(frozen=True)
class Nodes:
    """What the cluster's nodes leave to the stack's pods.

    Attributes:
        description: ``4 x e2-standard-4`` and how the count follows.
        count: Nodes.
        cpu_m: Per node, after the per-node system pods.
        memory_mib: Per node, after the per-node system pods.
        shared_cpu_m: Once-per-cluster system pods' CPU.
        shared_memory_mib: Their memory.
        keys: The stack keys that size the nodes.
    """

    description: str
    count: int
    cpu_m: int
    memory_mib: float
    shared_cpu_m: int
    shared_memory_mib: float
    keys: tuple[str, ...]

    @property
    def total(self) -> tuple[int, float]:
        """CPU (m) and memory (MiB) left to the stack on all nodes."""
        return (
            self.count * self.cpu_m - self.shared_cpu_m,
            self.count * self.memory_mib - self.shared_memory_mib,
        )


def _cpu(value: Any) -> int:
    parsed = parse_quantity(str(value)) if value is not None else None
    return math.ceil(parsed * 1000) if parsed is not None else 0


def _memory(value: Any) -> float:
    parsed = parse_quantity(str(value)) if value is not None else None
    return float(parsed) / 2**20 if parsed is not None else 0.0


def _requests(resources: Mapping[str, Any] | None) -> tuple[int, float]:
    requests = (resources or {}).get("requests") or {}
    return _cpu(requests.get("cpu")), _memory(requests.get("memory"))


def pod_request(spec: Mapping[str, Any]) -> tuple[int, float]:
    """A pod spec's request as the scheduler counts it: max(containers' sum, largest init)."""
    containers = [_requests(c.get("resources")) for c in spec.get("containers") or []]
    inits = [_requests(c.get("resources")) for c in spec.get("initContainers") or []]
    cpu = max(sum(c for c, _ in containers), max((c for c, _ in inits), default=0))
    memory = max(sum(m for _, m in containers), max((m for _, m in inits), default=0.0))
    return cpu, memory


def _keys_of(obj: Mapping[str, Any]) -> tuple[str, ...]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    component = labels.get("app.kubernetes.io/component", "")
    component = _KIND_COMPONENT.get(component, component)
    return COMPONENT_KEYS.get(component) or COMPONENT_KEYS.get(
        _KIND_COMPONENT.get(str(obj.get("kind")), ""), ()
    )


def _template_spec(template: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (template or {}).get("spec") or {}


def _object_demands(obj: Mapping[str, Any], autoscalers: Mapping[str, int]) -> Iterator[Demand]:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    label = f"{kind}/{(obj.get('metadata') or {}).get('name')}"
    keys = _keys_of(obj)
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        count = spec.get("replicas", 1)
        yield Demand(label, count, *pod_request(_template_spec(spec.get("template"))), keys)
    elif kind == "Job" and not spec.get("suspend"):
        count = min(spec.get("parallelism", 1), spec.get("completions") or math.inf)
        yield Demand(label, int(count), *pod_request(_template_spec(spec.get("template"))), keys)
    elif kind == "ScaledJob":
        target = spec.get("jobTargetRef") or {}
        count = spec.get("maxReplicaCount", _KEDA_MAX_REPLICAS) * target.get("parallelism", 1)
        yield Demand(label, count, *pod_request(_template_spec(target.get("template"))), keys)
    elif kind == "Pod":
        yield Demand(label, 1, *pod_request(spec), keys)
    elif kind == "RabbitmqCluster":
        yield _broker(label, spec, keys)
    elif kind in ("DaskCluster", "DaskWorkerGroup"):
        yield from _dask(label, obj, spec, autoscalers)
    elif kind in ("Workflow", "WorkflowTemplate") and spec.get("templates"):
        steps = [
            pod_request({"containers": [t.get("container") or t.get("script")]})
            for t in spec.get("templates") or []
            if t.get("container") or t.get("script")
        ]
        if steps:
            cpu, memory = max(steps)
            yield Demand(f"{label} (largest step)", 1, cpu, memory, keys)


def _broker(label: str, spec: Mapping[str, Any], keys: tuple[str, ...]) -> Demand:
    cpu, memory = _requests(spec.get("resources"))
    if not spec.get("resources"):
        cpu, memory = RABBITMQ_DEFAULT_RESOURCES
    init_cpu, init_memory = RABBITMQ_SETUP_CONTAINER
    return Demand(
        label, spec.get("replicas", 1), max(cpu, init_cpu), max(memory, init_memory), keys
    )


def _dask(
    label: str, obj: Mapping[str, Any], spec: Mapping[str, Any], autoscalers: Mapping[str, int]
) -> Iterator[Demand]:
    name = (obj.get("metadata") or {}).get("name", "")
    scheduler_keys = COMPONENT_KEYS["dask-scheduler"]
    if "scheduler" in spec:
        yield Demand(
            f"{label} scheduler", 1, *pod_request(_template_spec(spec["scheduler"])), scheduler_keys
        )
    worker = spec.get("worker") or {}
    count = max(worker.get("replicas", 1), autoscalers.get(name, 0))
    yield Demand(
        f"{label} workers",
        count,
        *pod_request(_template_spec(worker)),
        COMPONENT_KEYS["dask-worker"],
    )


def _chart_demands(use: BundleUse) -> Iterator[Demand]:
    assert use.bundle is not None
    for pod in use.bundle.pods:
        if not holds(use, pod.when):
            continue
        count = use.value(pod.replicas_key) if pod.replicas_key else pod.replicas
        cpu, memory = pod.cpu_m, float(pod.memory_mib)
        given = lookup(use.values, pod.resources_key) if pod.resources_key else None
        if isinstance(given, Mapping) and given.get("requests"):
            cpu, memory = _requests(given)
        yield Demand(
            f"{use.resource.name}: {pod.name}",
            int(count if count is not None else pod.replicas),
            cpu,
            memory,
            COMPONENT_KEYS["operator"]
            if use.bundle.name != "argo-workflows"
            else COMPONENT_KEYS["workloads"],
        )


def _plain(value: Any) -> Any:
    return _plain(value.value) if isinstance(value, Secret) else value


def demands(deployment: Deployment) -> list[Demand]:
    """Everything that runs at once, one entry per object or chart pod."""
    objects = [_plain(o) for o in deployment.kubernetes_objects()]
    autoscalers = {
        (o.get("spec") or {}).get("cluster", ""): int((o.get("spec") or {}).get("maximum", 0))
        for o in objects
        if o.get("kind") == "DaskAutoscaler"
    }
    # A WorkflowTemplate runs nothing until a run is submitted from it: see run_demands.
    platform = [o for o in objects if o.get("kind") != "WorkflowTemplate"]
    found = [d for obj in platform for d in _object_demands(obj, autoscalers)]
    for use in bundle_uses(deployment):
        if use.bundle is not None:
            found += _chart_demands(use)
    return [d for d in found if d.count and (d.cpu_m or d.memory_mib)]


def run_demands(deployment: Deployment) -> list[Demand]:
    """One run of each workload, built from the stack's contract as ``workstack submit`` would.

    The stack starts no work itself (its Jobs are runs), so what runs is read from the
    contract: a job-per-file Job at its parallelism, a tasker and its workers, a Dask client,
    a command's Job. A pipeline's steps are counted with its WorkflowTemplate.
    """
    from workstack.components.manifests.contract import load_contract
    from workstack.components.manifests.runs import RunRequest, build_run

    raw = _plain(deployment.outputs.get("contract"))
    if raw is None:
        return []
    contract = load_contract(raw)
    templates = {
        (o.get("metadata") or {}).get("name"): o
        for o in (_plain(obj) for obj in deployment.kubernetes_objects())
        if o.get("kind") == "WorkflowTemplate"
    }
    found: list[Demand] = []
    for name, workload in sorted(contract.workloads.items()):
        if workload.pattern == "pipeline":
            template = templates.get(workload.workflow_template)
            if template is not None:  # one step at a time: the largest
                found += [
                    Demand(f"run of {name}: {d.what}", d.count, d.cpu_m, d.memory_mib, d.keys)
                    for d in _object_demands(template, {})
                ]
            continue
        config = "run: {}\n" if workload.pattern == "dask" else None
        request = RunRequest(workload=name, run_id="capacity", config=config)
        for obj in build_run(contract, request):
            found += [
                Demand(f"run of {name}: {d.what}", d.count, d.cpu_m, d.memory_mib, d.keys)
                for d in _object_demands(obj, {})
            ]
    return [d for d in found if d.count and (d.cpu_m or d.memory_mib)]


def _system(cloud: str) -> tuple[tuple[int, float], tuple[int, float]]:
    """Per-node and per-cluster system pod requests on ``cloud``."""
    pods = [p for p in SYSTEM_PODS if p.cloud == cloud]
    node = [p for p in pods if p.per_node]
    shared = [p for p in pods if not p.per_node]
    return (
        (sum(p.cpu_m for p in node), float(sum(p.memory_mib for p in node))),
        (sum(p.cpu_m for p in shared), float(sum(p.memory_mib for p in shared))),
    )


def nodes_of(deployment: Deployment, context: StackContext) -> Nodes | Finding:
    """The nodes the stack's pods get, or a finding when their type is not in the table."""
    (node_cpu, node_memory), (shared_cpu, shared_memory) = _system(context.cloud)
    keys = NODE_KEYS.get(context.cloud, ())
    if context.cloud == "minikube":
        size = _plain(deployment.outputs.get("minikube")) or {}
        cpus, memory = int(size.get("cpus", 2)), _memory(size.get("memory", "3Gi"))
        return Nodes(
            f"1 minikube node ({cpus} CPU, {memory / 1024:.1f} GiB)",
            1,
            cpus * 1000 - node_cpu,
            memory - node_memory,
            shared_cpu,
            shared_memory,
            keys,
        )
    pools = deployment.of_type("gcp:container/nodePool:NodePool") + deployment.of_type(
        "eks:index:ManagedNodeGroup"
    )
    if not pools:
        return Finding("capacity", context.stack, "no node pool found to run the stack on")
    pool = pools[0].inputs
    if context.cloud == "gke":
        types = [str((pool.get("nodeConfig") or {}).get("machineType", "e2-medium"))]
        autoscaling = pool.get("autoscaling") or {}
        count = int(autoscaling.get("totalMaxNodeCount") or autoscaling.get("maxNodeCount") or 1)
        how = "nodeMax: the pool autoscales up to it"
    else:
        types = [str(t) for t in pool.get("instanceTypes") or []]
        count = int((pool.get("scalingConfig") or {}).get("desiredSize", 1))
        how = "the group's desired size, max(nodeMin, 1): no autoscaler runs on EKS"
    unknown = [t for t in types if t not in NODE_TYPES]
    if unknown or not types:
        known = ", ".join(n for n, t in NODE_TYPES.items() if t.cloud == context.cloud)
        return Finding(
            "capacity",
            ", ".join(keys[1:]),
            f"node type {', '.join(unknown) or '(none)'} is not in the capacity table "
            f"(upstream.NODE_TYPES); known: {known}",
        )
    smallest = min((NODE_TYPES[t] for t in types), key=lambda n: (n.cpu_m, n.memory_mib))
    return Nodes(
        f"{count} x {smallest.name} ({how})",
        count,
        smallest.cpu_m - node_cpu,
        smallest.memory_mib - node_memory,
        shared_cpu,
        shared_memory,
        keys,
    )


def _cores(millicores: float) -> str:
    return f"{millicores / 1000:.2f} CPU"


def _gib(mib: float) -> str:
    return f"{mib / 1024:.2f} GiB"


def _overflow(
    what: str, wanted: list[Demand], nodes: Nodes, stack: str, severity: str
) -> Finding | None:
    cpu = sum(d.total[0] for d in wanted)
    memory = sum(d.total[1] for d in wanted)
    have_cpu, have_memory = nodes.total
    if cpu <= have_cpu and memory <= have_memory:
        return None
    top = sorted(wanted, key=lambda d: d.total, reverse=True)[:6]
    breakdown = "; ".join(
        f"{d.what}: {d.count} x {_cores(d.cpu_m)}/{_gib(d.memory_mib)}" for d in top
    )
    keys = sorted({k for d in top for k in d.keys})
    return Finding(
        "capacity",
        stack,
        f"{what} requests {_cores(cpu)} and {_gib(memory)}, but {nodes.description} hold "
        f"{_cores(have_cpu)} and {_gib(have_memory)} for it after system pods. Largest: "
        f"{breakdown}. Change {', '.join(nodes.keys)}, or lower {', '.join(keys)}",
        severity,
    )


def capacity_findings(deployment: Deployment, context: StackContext) -> list[Finding]:
    """Whether what the stack runs, and what one run of each workload adds, fit the nodes.

    The platform (what ``pulumi up`` waits to be ready) must fit: an error otherwise. One run
    of every workload at once on top of it should fit too: a warning otherwise, since the
    runs' pods then wait their turn (Jobs do not fail for lack of room). Every pod must fit
    one node: an error otherwise, as it would never schedule.
    """
    nodes = nodes_of(deployment, context)
    if isinstance(nodes, Finding):
        return [nodes]
    platform = demands(deployment)
    runs = run_demands(deployment)
    findings = [
        finding
        for finding in (
            _overflow("what the stack runs", platform, nodes, context.stack, "error"),
            _overflow(
                "what the stack runs, with one run of each workload at once,",
                platform + runs,
                nodes,
                context.stack,
                "warning",
            ),
        )
        if finding is not None
    ]
    if findings and findings[0].severity == "error":
        findings = findings[:1]
    wanted = platform + runs
    for demand in wanted:
        if demand.cpu_m > nodes.cpu_m or demand.memory_mib > nodes.memory_mib:
            findings.append(
                Finding(
                    "capacity",
                    demand.what,
                    f"one pod requests {_cores(demand.cpu_m)} and {_gib(demand.memory_mib)}, "
                    f"more than one node leaves ({_cores(nodes.cpu_m)}, "
                    f"{_gib(nodes.memory_mib)}): it never schedules. Change "
                    f"{', '.join(nodes.keys)} or {', '.join(demand.keys) or 'its resources'}",
                )
            )
    return findings
