"""A Dask cluster: plain Deployments and a Service, or the operator's DaskCluster resource."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

from pydantic import model_validator

from workstack.components.manifests.labels import LABEL_PREFIX, standard_labels
from workstack.components.manifests.network import build_api_server_egress
from workstack.components.manifests.pods import ContainerSpec, PodStorage, Resources, build_pod_spec
from workstack.components.manifests.settings import Between, Flag, OneOf, Settings, setting
from workstack.components.manifests.validation import SpecError, require_dns1123_label

__all__ = [
    "DASHBOARD_PORT",
    "DASK_CLIENT_LABEL",
    "DASK_MODES",
    "DASK_OPERATOR_CHART",
    "DASK_OPERATOR_REPO",
    "DASK_OPERATOR_VERSION",
    "OPERATOR_PODS",
    "SCHEDULER_PORT",
    "TLS_FILES",
    "TLS_MOUNT",
    "WORKER_HTTP_PORT",
    "DaskSettings",
    "DaskTarget",
    "build_dask_network_policies",
    "build_dask_operator_policies",
    "build_dask_operator_rbac",
    "build_dask_operator_resources",
    "build_plain_dask",
    "client_labels",
    "dask_operator_values",
    "operator_peer",
    "operator_service_account",
    "scheduler_address",
    "tls_storage",
]

SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
WORKER_HTTP_PORT = 8788
"""A worker's HTTP server (health and metrics; no dashboard): probes ask ``/health`` there."""
DASK_MODES = ("plain", "operator")
DASK_OPERATOR_CHART = "dask-kubernetes-operator"
DASK_OPERATOR_REPO = "https://helm.dask.org"
DASK_OPERATOR_VERSION = "2026.3.0"
"""The operator chart's version: the ``dask-kubernetes`` release whose CRDs the tests use."""

_WORK_DIR = "/tmp/dask"  # workers spill here; the root filesystem is read-only

DASK_CLIENT_LABEL = LABEL_PREFIX + "dask-client"
"""Pods labelled with this key and a cluster's name may reach that cluster's scheduler."""

TLS_MOUNT = "/etc/workstack/dask-tls"
"""Where scheduler, workers and clients mount the cluster's TLS Secret (read-only)."""
TLS_FILES = (
    "ca.crt",
    "scheduler.crt",
    "scheduler.key",
    "worker.crt",
    "worker.key",
    "client.crt",
    "client.key",
)
"""Keys of the TLS Secret: the cluster's own CA, and a certificate and key per role. Each
side checks the other's certificate against the CA (``distributed`` requires the peer's
certificate when a CA is given): only holders of the Secret connect."""
_TLS_ROLES = ("scheduler", "worker", "client")
# The operator retires workers and reads the adaptive target through the scheduler's HTTP API
# first, and over the (TLS-less) Dask RPC only when that fails (dask/dask-kubernetes@1daa175f
# dask_kubernetes/operator/controller/controller.py:446-505, 592-620); the API route is off
# by default in distributed (distributed.yaml: scheduler.http.routes).
_SCHEDULER_HTTP_ROUTES = (
    "distributed.http.scheduler.prometheus",
    "distributed.http.scheduler.info",
    "distributed.http.scheduler.json",
    "distributed.http.health",
    "distributed.http.proxy",
    "distributed.http.statics",
    "distributed.http.scheduler.api",
)


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
    tls: Flag = setting(True, "daskTls")
    """dask. Mutual TLS between scheduler, workers and clients, with certificates from a
    Secret the stack makes: only pods holding it connect. false: plain TCP (the
    NetworkPolicy still admits only the cluster's own workers and clients)."""

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
        tls_secret: The Secret holding the cluster's certificates (``TLS_FILES``); required
            when the settings ask for TLS.
    """

    name: str
    namespace: str
    instance: str
    image: Any
    pull_policy: str = "IfNotPresent"
    storage: Sequence[PodStorage] = field(default_factory=tuple)
    service_account: str | None = None
    tls_secret: str | None = None

    def __post_init__(self) -> None:
        require_dns1123_label("name", self.name, max_length=40)
        require_dns1123_label("namespace", self.namespace)
        if self.tls_secret is not None:
            require_dns1123_label("tls_secret", self.tls_secret)


def scheduler_address(name: str, namespace: str, *, tls: bool = False) -> str:
    """The scheduler's address inside the cluster (both modes name its Service the same)."""
    scheme = "tls" if tls else "tcp"
    return f"{scheme}://{name}-scheduler.{namespace}.svc.cluster.local:{SCHEDULER_PORT}"


def client_labels(name: str) -> dict[str, str]:
    """Labels that admit a pod through cluster ``name``'s NetworkPolicy as its client."""
    return {DASK_CLIENT_LABEL: name}


def tls_storage(secret: str, role: str) -> PodStorage:
    """The TLS Secret mounted read-only, and ``distributed``'s config pointing at it.

    ``distributed`` reads ``DASK_DISTRIBUTED__COMM__*`` into its config; ``dask scheduler``,
    ``dask worker`` and ``Client()`` take their ``Security`` from it (distributed
    ``security.py``), and ``require-encryption`` refuses any plain ``tcp://`` connection.

    Args:
        secret: The Secret's name.
        role: ``scheduler``, ``worker`` or ``client``: whose certificate the pod presents.
    """
    if role not in _TLS_ROLES:
        raise SpecError("role", role, "expected one of: " + ", ".join(_TLS_ROLES))
    prefix = "DASK_DISTRIBUTED__COMM__"
    role_key = role.upper()
    return PodStorage(
        volumes=({"name": "dask-tls", "secret": {"secretName": secret, "defaultMode": 0o440}},),
        mounts=({"name": "dask-tls", "mountPath": TLS_MOUNT, "readOnly": True},),
        env={
            f"{prefix}REQUIRE_ENCRYPTION": "True",
            f"{prefix}TLS__CA_FILE": f"{TLS_MOUNT}/ca.crt",
            f"{prefix}TLS__{role_key}__CERT": f"{TLS_MOUNT}/{role}.crt",
            f"{prefix}TLS__{role_key}__KEY": f"{TLS_MOUNT}/{role}.key",
        },
    )


def _tls(target: DaskTarget, settings: DaskSettings) -> bool:
    if settings.tls and target.tls_secret is None:
        raise SpecError("tls_secret", None, "TLS is on: name the Secret with its certificates")
    return settings.tls


def _storage(target: DaskTarget, settings: DaskSettings, role: str) -> list[PodStorage]:
    storage = list(target.storage)
    if _tls(target, settings):
        assert target.tls_secret is not None
        storage.append(tls_storage(target.tls_secret, role))
    return storage


def _scheduler_pod(
    target: DaskTarget, settings: DaskSettings, *, operator: bool = False
) -> dict[str, Any]:
    args = ["scheduler", "--port", str(SCHEDULER_PORT), "--dashboard-address", f":{DASHBOARD_PORT}"]
    if _tls(target, settings):
        args += ["--protocol", "tls"]
    env = {}
    if operator:
        env["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"] = str(list(_SCHEDULER_HTTP_ROUTES))
    container = ContainerSpec(
        name="scheduler",
        image=target.image,
        command=("dask",),
        args=tuple(args),
        env=env,
        ports={"tcp-comm": SCHEDULER_PORT, "http-dashboard": DASHBOARD_PORT},
        resources=settings.scheduler_resources,
        pull_policy=target.pull_policy,
    )
    pod = build_pod_spec(
        containers=[container],
        storage=_storage(target, settings, "scheduler"),
        service_account=target.service_account,
        restart_policy="Always",
    )
    pod["containers"][0]["readinessProbe"] = {
        "httpGet": {"port": "http-dashboard", "path": "/health"},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
    }
    pod["containers"][0]["livenessProbe"] = _liveness("http-dashboard")
    return pod


def _liveness(port: str) -> dict[str, Any]:
    """Restart a process whose event loop stopped answering (a minute of failures)."""
    return {
        "httpGet": {"port": port, "path": "/health"},
        "initialDelaySeconds": 30,
        "periodSeconds": 20,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def _worker_pod(
    target: DaskTarget, settings: DaskSettings, scheduler: str | None
) -> dict[str, Any]:
    # The operator injects DASK_SCHEDULER_ADDRESS (a tcp:// one, unless the container sets
    # it: controller.py:177-190) and DASK_WORKER_NAME; plain mode names the scheduler itself.
    args = ["worker", "--nthreads", str(settings.threads), "--memory-limit", "auto"]
    args += ["--local-directory", _WORK_DIR, "--no-dashboard"]
    # Its HTTP server serves /health even without the dashboard; a fixed port for probes.
    args += ["--dashboard-address", f":{WORKER_HTTP_PORT}"]
    env = {}
    if scheduler is not None:
        args.insert(1, scheduler)
    else:
        args += ["--name", "$(DASK_WORKER_NAME)"]
        if _tls(target, settings):
            env["DASK_SCHEDULER_ADDRESS"] = scheduler_address(
                target.name, target.namespace, tls=True
            )
    container = ContainerSpec(
        name="worker",
        image=target.image,
        command=("dask",),
        args=tuple(args),
        env=env,
        ports={"http-health": WORKER_HTTP_PORT},
        resources=settings.worker_resources,
        pull_policy=target.pull_policy,
    )
    pod = build_pod_spec(
        containers=[container],
        storage=_storage(target, settings, "worker"),
        service_account=target.service_account,
        restart_policy="Always",
    )
    pod["containers"][0]["readinessProbe"] = {
        "httpGet": {"port": "http-health", "path": "/health"},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
    }
    pod["containers"][0]["livenessProbe"] = _liveness("http-health")
    return pod


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
        # The operator's own labels too, so one NetworkPolicy selects both modes' pods.
        return standard_labels(
            name="dask",
            instance=target.instance,
            component=f"dask-{role}",
            extra=_pod_selector(target.name, role),
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
        # The operator's labels too: the EKS VPC CNI admits traffic to a Service's ClusterIP
        # only when the policy's pod selector matches the Service's own selector
        # (aws/amazon-network-policy-controller-k8s pkg/resolvers/endpoints.go:451-513),
        # and the policies name the pods by those labels.
        "spec": _service_spec({**selector("scheduler"), **_pod_selector(target.name, "scheduler")}),
    }
    address = scheduler_address(target.name, target.namespace, tls=_tls(target, settings))
    return [
        deployment("scheduler", 1, _scheduler_pod(target, settings)),
        service,
        deployment("worker", settings.workers, _worker_pod(target, settings, address)),
    ]


def _pod_selector(name: str, role: str) -> dict[str, str]:
    """The labels the operator gives a cluster's pods (controller.py:120-150)."""
    return {"dask.org/cluster-name": name, "dask.org/component": role}


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
                "spec": _scheduler_pod(target, settings, operator=True),
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


def operator_service_account(release: str) -> str:
    """The operator's service account, named by workstack (the chart's ``serviceAccount.name``)."""
    return require_dns1123_label("service account", f"{release}-sa")


def dask_operator_values(
    namespace: str, release: str, *, all_namespaces: bool = False
) -> dict[str, Any]:
    """Helm values for an operator that watches, and has rights in, one namespace only.

    With ``all_namespaces`` it watches every namespace (the chart's default
    ``--all-namespaces``).

    The chart's own Role grants ``*`` on pods, services, deployments and events, and no value
    narrows it: the chart creates no RBAC here (``rbac.create: false``) and
    :func:`build_dask_operator_rbac` grants the verbs the operator's handlers use.
    """
    return {
        "rbac": {"create": False},
        "serviceAccount": {"create": True, "name": operator_service_account(release)},
        "kopfArgs": ["--all-namespaces"] if all_namespaces else ["--namespace", namespace],
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
    }


# What the operator's handlers do (dask/dask-kubernetes@1daa175f dask_kubernetes/operator/
# controller/controller.py): create and delete the scheduler and worker Deployments, the
# scheduler Service and the DaskJob runner Pod, read and list them, watch Services and Pods
# (kopf.on.field handlers, whose progress kopf keeps in annotations: patch), patch the
# custom resources' status, and post events. Nothing needs ``update``, ``deletecollection``,
# ``escalate`` or any verb the chart's ``*`` also grants.
_OPERATOR_RULES: tuple[dict[str, Any], ...] = (
    {
        "apiGroups": ["kubernetes.dask.org"],
        "resources": [
            "daskclusters",
            "daskworkergroups",
            "daskjobs",
            "daskjobs/status",
            "daskautoscalers",
            "daskworkergroups/scale",
        ],
        "verbs": ["get", "list", "watch", "patch", "create", "delete"],
    },
    {
        "apiGroups": [""],
        "resources": ["pods", "services"],
        "verbs": ["get", "list", "watch", "patch", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods/status", "services/status"], "verbs": ["get"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "patch", "create", "delete"],
    },
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
)


# kopf's own needs when it serves every namespace (the chart's ClusterRole, templates/
# clusterrole.yaml:7-18 of the packaged chart): its cluster-wide peering object, and the
# namespaces and CRDs it observes to find what to watch.
_CLUSTER_FRAMEWORK_RULES: tuple[dict[str, Any], ...] = (
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings"],
        "verbs": ["list", "watch", "patch", "get"],
    },
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
)


def build_dask_operator_rbac(
    *, namespace: str, release: str, all_namespaces: bool = False
) -> list[dict[str, Any]]:
    """The operator's Role (explicit verbs, this namespace only) and its RoleBinding.

    With ``all_namespaces``: a ClusterRole (the same verbs, plus kopf's) and its binding.
    """
    account = operator_service_account(release)
    labels = standard_labels(name="dask", instance=release, component="dask-operator")
    role = f"{release}-operator"
    if all_namespaces:
        return [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role, "labels": labels},
                "rules": [dict(rule) for rule in (*_OPERATOR_RULES, *_CLUSTER_FRAMEWORK_RULES)],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role, "labels": labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            },
        ]
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": role, "namespace": namespace, "labels": labels},
            "rules": [dict(rule) for rule in _OPERATOR_RULES],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]


OPERATOR_PODS = {"app.kubernetes.io/name": "dask-kubernetes-operator"}
"""The operator chart's pod label (``dask_kubernetes_operator.selectorLabels``, tgz
templates/_helpers.tpl:48-51)."""


def operator_peer(*, same_namespace: bool) -> dict[str, Any]:
    """The operator as a policy peer: in this namespace, or (installed by another stack) in any."""
    peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(OPERATOR_PODS)}}
    if not same_namespace:
        peer["namespaceSelector"] = {}
    return peer


def build_dask_network_policies(
    target: DaskTarget, *, operator: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Who reaches a cluster's scheduler and workers: its own pods and clients, nobody else.

    The scheduler admits its workers and the pods labelled as its clients (``client_labels``)
    on 8786 and 8787, and, in operator mode, the operator (it reads the adaptive target and
    retires workers there). Workers talk to each other, to the scheduler and to clients on
    any port (their listeners are random). Egress follows the same pairs. Probes and
    ``kubectl port-forward`` come from the node, which policies do not filter.

    Args:
        target: The cluster.
        operator: The operator as a policy peer (:func:`operator_peer`), in operator mode.
    """
    name = target.name
    scheduler = _pod_selector(name, "scheduler")
    workers = _pod_selector(name, "worker")
    clients = client_labels(name)
    members = [{"podSelector": {"matchLabels": s}} for s in (scheduler, workers, clients)]
    meta_labels = standard_labels(name="dask", instance=target.instance, component="network")

    def policy(suffix: str, pods: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
        types = [t for t in ("Ingress", "Egress") if t.lower() in spec]
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": f"{name}-{suffix}",
                "namespace": target.namespace,
                "labels": meta_labels,
            },
            "spec": {"podSelector": {"matchLabels": pods}, "policyTypes": types, **spec},
        }

    scheduler_from = [*members, *([dict(operator)] if operator else [])]
    return [
        policy(
            "scheduler",
            scheduler,
            {
                "ingress": [{"from": scheduler_from, "ports": _scheduler_ports()}],
                "egress": [{"to": members[1:]}],
            },
        ),
        policy("workers", workers, {"ingress": [{"from": members}], "egress": [{"to": members}]}),
        policy(
            "clients",
            clients,
            {"egress": [{"to": [members[0]], "ports": _scheduler_ports()}, {"to": [members[1]]}]},
        ),
    ]


def _scheduler_ports() -> list[dict[str, Any]]:
    return [
        {"protocol": "TCP", "port": SCHEDULER_PORT},
        {"protocol": "TCP", "port": DASHBOARD_PORT},
    ]


def build_dask_operator_policies(
    *, namespace: str, instance: str, all_namespaces: bool = False
) -> list[dict[str, Any]]:
    """The operator (in this namespace) may call the API server and the clusters' schedulers.

    The schedulers of this namespace, or with ``all_namespaces`` of any.
    """
    pods = {"matchLabels": dict(OPERATOR_PODS)}
    schedulers: dict[str, Any] = {
        "podSelector": {"matchLabels": {"dask.org/component": "scheduler"}}
    }
    if all_namespaces:
        schedulers["namespaceSelector"] = {}
    return [
        build_api_server_egress(
            name=f"{instance}-api", namespace=namespace, instance=instance, pods=pods
        ),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": f"{instance}-schedulers",
                "namespace": namespace,
                "labels": standard_labels(name="dask", instance=instance, component="network"),
            },
            "spec": {
                "podSelector": pods,
                "policyTypes": ["Egress"],
                "egress": [{"to": [schedulers], "ports": _scheduler_ports()}],
            },
        },
    ]
