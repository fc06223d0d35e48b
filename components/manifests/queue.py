"""The queue-workers pattern's manifests: a tasker Job, and workers as a Job or a KEDA ScaledJob.

Workers finish: each exits 0 on its stop message or after ``idle_timeout`` seconds without
work, so the worker Job completes (the work-queue Job pattern: ``parallelism`` set,
``completions`` unset) instead of running forever like a Deployment. In KEDA mode a
``ScaledJob`` starts worker Jobs while the task queue holds messages, and each exits when idle.

The numbers are checked by :class:`QueueSettings` with the same bounds the runtime's
``WorkerSpec`` applies, and the queue name and storage URL by the runtime's own ``QueueSpec``,
so a stack cannot deploy settings the pods would refuse at start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

from pydantic import model_validator

from workstack.components.manifests.labels import run_labels, standard_labels
from workstack.components.manifests.network import build_api_server_egress
from workstack.components.manifests.pods import (
    ContainerSpec,
    PodStorage,
    Resources,
    build_pod_spec,
)
from workstack.components.manifests.rabbitmq import AMQP_PORT
from workstack.components.manifests.settings import Between, OneOf, Settings, setting
from workstack.components.manifests.validation import SpecError, require_dns1123_label
from workstack.sdk import env
from workstack.sdk.queue.config import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    QueueError,
    QueueNames,
    QueueSpec,
)

__all__ = [
    "KEDA_CHART",
    "KEDA_CHART_VERSION",
    "KEDA_OPERATOR_LABELS",
    "KEDA_REPO",
    "MODES",
    "QueueSettings",
    "QueueTarget",
    "build_keda_broker_policy",
    "build_keda_egress_policies",
    "build_queue_workers",
    "keda_values",
    "tasker_args",
    "worker_args",
]

KEDA_REPO = "https://kedacore.github.io/charts"
KEDA_CHART = "keda"
KEDA_CHART_VERSION = "2.20.1"
"""Chart 2.20.1 ships KEDA v2.20.1, whose CRDs the tests validate against."""

KEDA_OPERATOR_LABELS = {"app.kubernetes.io/name": "keda-operator"}
"""Labels of the KEDA operator's pods: the operator itself reads the queue length."""
KEDA_PODS = {"app.kubernetes.io/part-of": "keda-operator"}
"""Every pod of the KEDA chart (``keda.crd-labels``: kedacore/charts@v2.20.1
keda/templates/_helpers.tpl:13-21)."""

MODES = ("jobs", "keda")
_TASKER = "tasker"
_WORKER = "worker"
_SIGTERM_MARGIN = 10  # seconds between the worker's grace running out and SIGKILL


class QueueSettings(Settings):
    """How a queue set's tasker and workers run: how many, how fast, how long, how big."""

    mode: Annotated[str, OneOf(*MODES)] = setting("jobs", "queueMode")
    """queue-workers. `jobs` (a worker Job that completes when the work is done) or `keda`
    (a KEDA ScaledJob starting worker Jobs while tasks wait)."""
    workers: Annotated[int, Between(1, 10_000)] = setting(4, "queueWorkers")
    """queue-workers. Worker pods at once (with queueMode keda, the most)."""
    prefetch: Annotated[int, Between(1, 65_535)] = setting(1, "queuePrefetch")
    """queue-workers. Unacknowledged tasks per worker (1: a long task holds no other task)."""
    concurrency: Annotated[int, Between(1, 1024)] = setting(1, "queueConcurrency")
    """queue-workers. Tasks a worker runs at once; at most queuePrefetch."""
    max_attempts: Annotated[int, Between(1, 1000)] = setting(3, "queueMaxAttempts")
    """queue-workers. Deliveries before a task is dead-lettered with its error."""
    idle_timeout: Annotated[int | None, Between(1, optional=True)] = setting(
        None, "queueIdleTimeout", unset=0
    )
    """queue-workers. Seconds without a message after which a worker exits 0. 0: 900 with
    queueMode jobs (room for the tasker to start), 60 with keda."""
    grace: Annotated[int, Between(0, 3600)] = setting(20, "queueGrace")
    """queue-workers. On SIGTERM, seconds the task in hand gets to finish before it is
    requeued."""
    worker_resources: Resources = setting(Resources(), "queueWorker")
    """queue-workers. Each worker pod's CPU and memory."""
    tasker_resources: Resources = setting(
        Resources(cpu="100m", memory="512Mi", cpu_limit="500m"), "queueTasker"
    )
    """queue-workers. The tasker pod's CPU and memory (it publishes and waits)."""
    retries: Annotated[int, Between(0, 100)] = setting(6, "queueRetries")
    """queue-workers. Pod failures (crashes, an unreachable broker) a Job tolerates."""
    ttl_seconds_after_finished: Annotated[int, Between(0)] = setting(86_400, "queueTtlSeconds")
    """queue-workers. Seconds finished Jobs (and their pods, for their logs) are kept."""
    active_deadline_seconds: Annotated[int, Between(1)] = setting(24 * 3600, "queueDeadlineSeconds")
    """queue-workers. Seconds after which a running Job is failed."""
    polling_interval: Annotated[int, Between(1, 3600)] = setting(10)
    """KEDA mode: seconds between queue-length checks."""

    @model_validator(mode="after")
    def _concurrency_within_prefetch(self) -> Self:
        if self.concurrency > self.prefetch:
            allowed = f"must not exceed {{prefetch}} ({self.prefetch})"
            raise self.refuse("concurrency", self.concurrency, allowed)
        return self

    @property
    def stop_messages(self) -> int:
        """Stop messages the tasker sends at the end.

        One per worker pod in ``jobs`` mode; none under KEDA, whose workers exit when idle (a
        stop message would count as queue length and start a Job to read it).
        """
        return self.workers if self.mode == "jobs" else 0

    @property
    def worker_idle_timeout(self) -> int:
        """``idle_timeout``, or its default for the mode."""
        if self.idle_timeout is not None:
            return self.idle_timeout
        return 900 if self.mode == "jobs" else 60


@dataclass(kw_only=True, frozen=True)
class QueueTarget:
    """What a queue set runs and where: everything but the settings.

    Attributes:
        name: Base name: the Jobs are ``<name>-tasker`` and ``<name>-workers``.
        namespace: Their namespace.
        instance: Owning component's (or run's) name, for labels.
        image: The workload image reference (has ``workstack`` and the workload's code).
        pull_policy: The image pull policy.
        broker_secret: Secret holding the broker URL; pods read it as an environment variable,
            so it shows in no command line and no object but the Secret.
        broker_secret_key: Key of the URL in that Secret.
        broker_labels: Labels the broker's NetworkPolicy admits (added to every pod).
        storage_url: Where results and outputs go: a path under ``/data`` or a bucket URL.
        tasks_from: The tasker's ``module:callable`` returning stages or tasks.
        task_files: Or task files readable in the tasker pod (in the image or on storage).
        queue: Name of the queue set (queues ``<queue>.tasks``, ``.results``, ``.dead``).
        tasker: Run the tasker Job; off when tasks are published from elsewhere.
        storage: Storages every pod mounts.
        service_account: Service account of the pods.
        run_id: The run the Jobs belong to (a label); None for a KEDA service's ScaledJob.
    """

    name: str
    namespace: str
    instance: str
    image: Any
    pull_policy: str = "IfNotPresent"
    broker_secret: str
    broker_secret_key: str = "url"
    broker_labels: Mapping[str, str] = field(default_factory=dict)
    storage_url: str
    tasks_from: str | None = None
    task_files: tuple[str, ...] = ()
    queue: str
    tasker: bool = True
    storage: Sequence[PodStorage] = field(default_factory=tuple)
    service_account: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        require_dns1123_label("name", self.name, max_length=40)
        require_dns1123_label("namespace", self.namespace)
        require_dns1123_label("broker_secret", self.broker_secret)
        if self.tasker and (self.tasks_from is None) == (not self.task_files):
            raise SpecError(
                "tasks_from",
                self.tasks_from,
                "give exactly one of tasks_from (module:callable) or task_files",
            )
        try:  # the runtime's own checks of the queue name and storage URL
            QueueSpec(queue=self.queue, storage_url=self.storage_url)
        except QueueError as error:
            raise SpecError("queue", self.queue, str(error)) from None

    @property
    def names(self) -> QueueNames:
        """The queue set's queues."""
        return QueueNames(self.queue)


def tasker_args(target: QueueTarget, settings: QueueSettings) -> list[str]:
    """``workstack`` arguments of the tasker container."""
    args = ["queue", "tasker", "--queue", target.queue, "--storage", target.storage_url]
    args += ["--workers", str(settings.stop_messages)]
    args += ["--max-attempts", str(settings.max_attempts)]
    if target.tasks_from is not None:
        args += ["--from", target.tasks_from]
    for path in target.task_files:
        args += ["--file", path]
    return [*args, "--no-progress"]


def worker_args(target: QueueTarget, settings: QueueSettings) -> list[str]:
    """``workstack`` arguments of a worker container."""
    args = ["queue", "worker", "--queue", target.queue, "--storage", target.storage_url]
    args += ["--prefetch", str(settings.prefetch), "--concurrency", str(settings.concurrency)]
    args += ["--max-attempts", str(settings.max_attempts)]
    args += ["--idle-timeout", str(settings.worker_idle_timeout)]
    args += ["--grace", str(settings.grace)]
    return args


def _labels(target: QueueTarget, role: str) -> dict[str, str]:
    return standard_labels(
        name="workstack",
        instance=target.instance,
        component=f"queue-{role}",
        extra={**target.broker_labels, **run_labels(target.run_id)},
    )


def _pod_template(target: QueueTarget, settings: QueueSettings, role: str) -> dict[str, Any]:
    worker = role == _WORKER
    container = ContainerSpec(
        name=role,
        image=target.image,
        pull_policy=target.pull_policy,
        command=("workstack",),
        args=tuple(worker_args(target, settings) if worker else tasker_args(target, settings)),
        env={env.RUN_ID: target.run_id} if target.run_id else {},
        secret_env={env.BROKER_URL: (target.broker_secret, target.broker_secret_key)},
        resources=settings.worker_resources if worker else settings.tasker_resources,
    )
    pod_spec = build_pod_spec(
        containers=[container],
        storage=list(target.storage),
        service_account=target.service_account,
        restart_policy="Never",
    )
    if worker:
        # SIGTERM first gives the task in hand `grace` seconds, then requeues it; the
        # kubelet must not SIGKILL the worker before that is done.
        pod_spec["terminationGracePeriodSeconds"] = settings.grace + _SIGTERM_MARGIN
    return {"metadata": {"labels": _labels(target, role)}, "spec": pod_spec}


def _failure_policy(container: str, fatal_exit_codes: Sequence[int]) -> dict[str, Any]:
    """Fail at once on exit codes a retry cannot fix; disruptions do not count."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": container,
                    "operator": "In",
                    "values": sorted(fatal_exit_codes),
                },
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def _job(target: QueueTarget, role: str, job_spec: dict[str, Any]) -> dict[str, Any]:
    suffix = "workers" if role == _WORKER else role
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{target.name}-{suffix}",
            "namespace": target.namespace,
            "labels": _labels(target, role),
        },
        "spec": job_spec,
    }


def _tasker_job(target: QueueTarget, settings: QueueSettings) -> dict[str, Any]:
    """The tasker: one pod, retried after a crash (it skips tasks already done).

    Tasks that failed for good (exit 1) or bad input (exit 2) end the Job at once: a rerun
    would publish the same tasks and fail the same way.
    """
    return _job(
        target,
        _TASKER,
        {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": settings.retries,
            "podFailurePolicy": _failure_policy(_TASKER, (EXIT_FAILED, EXIT_BAD_INPUT)),
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "activeDeadlineSeconds": settings.active_deadline_seconds,
            "template": _pod_template(target, settings, _TASKER),
        },
    )


def _worker_job_spec(
    target: QueueTarget, settings: QueueSettings, *, parallelism: int
) -> dict[str, Any]:
    """The workers' Job spec: the work-queue pattern.

    ``completions`` unset: the Job succeeds once its workers have exited 0 (stop message or
    idle), and crashed workers are replaced up to ``retries``.
    """
    return {
        "parallelism": parallelism,
        "backoffLimit": settings.retries,
        "podFailurePolicy": _failure_policy(_WORKER, (EXIT_BAD_INPUT,)),
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "activeDeadlineSeconds": settings.active_deadline_seconds,
        "template": _pod_template(target, settings, _WORKER),
    }


def _trigger_authentication_name(target: QueueTarget) -> str:
    return f"{target.name}-broker"


def _scaled_job(target: QueueTarget, settings: QueueSettings) -> dict[str, Any]:
    job_spec = _worker_job_spec(target, settings, parallelism=1)
    job_spec["completions"] = 1
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {
            "name": f"{target.name}-workers",
            "namespace": target.namespace,
            "labels": _labels(target, _WORKER),
        },
        "spec": {
            "jobTargetRef": job_spec,
            "pollingInterval": settings.polling_interval,
            "minReplicaCount": 0,
            "maxReplicaCount": settings.workers,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            # RabbitMQ's queue length counts ready messages only: "accurate" does not
            # subtract the running Jobs, whose tasks are unacked and no longer counted.
            "scalingStrategy": {"strategy": "accurate"},
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": "amqp",
                        "queueName": target.names.tasks,
                        "mode": "QueueLength",
                        "value": str(settings.prefetch),
                    },
                    "authenticationRef": {"name": _trigger_authentication_name(target)},
                }
            ],
        },
    }


def _trigger_authentication(target: QueueTarget) -> dict[str, Any]:
    """KEDA reads the broker URL (its ``host`` parameter) from the broker's Secret."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {
            "name": _trigger_authentication_name(target),
            "namespace": target.namespace,
            "labels": _labels(target, _WORKER),
        },
        "spec": {
            "secretTargetRef": [
                {
                    "parameter": "host",
                    "name": target.broker_secret,
                    "key": target.broker_secret_key,
                }
            ]
        },
    }


def build_queue_workers(target: QueueTarget, settings: QueueSettings) -> list[dict[str, Any]]:
    """Every object of the pattern.

    The tasker Job (when ``target.tasker``) and the workers: a Job, or a ScaledJob and its
    TriggerAuthentication in KEDA mode.
    """
    objects = [_tasker_job(target, settings)] if target.tasker else []
    if settings.mode == "jobs":
        worker_job = _worker_job_spec(target, settings, parallelism=settings.workers)
        objects.append(_job(target, _WORKER, worker_job))
    else:
        objects += [_trigger_authentication(target), _scaled_job(target, settings)]
    return objects


def build_keda_broker_policy(
    *, name: str, namespace: str, instance: str, broker: str, keda_namespace: str | None
) -> dict[str, Any]:
    """Let the KEDA operator through the broker's NetworkPolicy.

    The operator opens an AMQP connection to read the queue length. NetworkPolicies add up,
    so the broker's own policy stays as it is. ``keda_namespace`` None admits the operator
    from any namespace (one another stack installed, wherever it is).
    """
    keda: dict[str, Any] = {"podSelector": {"matchLabels": dict(KEDA_OPERATOR_LABELS)}}
    keda["namespaceSelector"] = (
        {"matchLabels": {"kubernetes.io/metadata.name": keda_namespace}}
        if keda_namespace is not None
        else {}
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": require_dns1123_label("name", name),
            "namespace": namespace,
            "labels": standard_labels(name="workstack", instance=instance, component="keda"),
        },
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": broker}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [keda],
                    "ports": [{"protocol": "TCP", "port": AMQP_PORT}],
                }
            ],
        },
    }


def build_keda_egress_policies(
    *, namespace: str, instance: str, broker: str, all_namespaces: bool = False
) -> list[dict[str, Any]]:
    """KEDA's pods may call the API server, and its operator the broker (AMQP).

    This stack's broker, or with ``all_namespaces`` the brokers of every namespace it serves.
    """
    brokers: dict[str, Any] = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": broker}}}
    if all_namespaces:
        # Other stacks' brokers carry their own names: any RabbitMQ node, in any namespace
        # (the operator labels every node so: cluster-operator v2.21.1
        # internal/metadata/label.go:20-22).
        brokers = {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "rabbitmq"}},
        }
    labels = standard_labels(name="workstack", instance=instance, component="keda")
    return [
        build_api_server_egress(
            name=f"{instance}-keda-api",
            namespace=namespace,
            instance=instance,
            pods={"matchLabels": dict(KEDA_PODS)},
        ),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": require_dns1123_label("name", f"{instance}-keda-amqp"),
                "namespace": namespace,
                "labels": labels,
            },
            "spec": {
                "podSelector": {"matchLabels": dict(KEDA_OPERATOR_LABELS)},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [brokers],
                        "ports": [{"protocol": "TCP", "port": AMQP_PORT}],
                    }
                ],
            },
        },
    ]


def keda_values(namespace: str, *, all_namespaces: bool = False) -> dict[str, Any]:
    """Values of the KEDA chart: one namespace, the narrowest rights the chart offers.

    KEDA watches only the workload namespace (``all_namespaces``: every namespace, through the
    chart's ClusterRoleBinding, and Secrets everywhere, which TriggerAuthentications in other
    namespaces name; templates/manager/clusterrolebindings.yaml:2, clusterrole.yaml:50), and
    its pods run under the restricted Pod
    Security Standard like everything else in it. A ScaledJob is scaled by the operator
    itself: the metrics API server (an APIService, ``system:auth-delegator`` and a RoleBinding
    in kube-system) and the admission webhooks (a cluster-wide ValidatingWebhookConfiguration
    and ClusterRole) serve ScaledObjects and validation only, and are left out. Secrets are
    read in the release namespace only (``restrict.secret``), and no ``*/*`` get rule is made
    (``enabledCustomScaledRefKinds: false``; Deployments and StatefulSets stay supported).
    Sources: kedacore/charts@v2.20.1 keda/values.yaml:159, 209, 330-344, 898-916;
    templates/manager/clusterrole.yaml:50-87, deployment.yaml:89-97.
    """
    container = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod = {"runAsNonRoot": True}
    parts = ("operator", "metricServer", "webhooks")
    return {
        "watchNamespace": "" if all_namespaces else namespace,
        "podSecurityContext": {part: dict(pod) for part in parts},
        "securityContext": {part: dict(container) for part in parts},
        "permissions": {"operator": {"restrict": {"secret": not all_namespaces}}},
        "rbac": {"enabledCustomScaledRefKinds": False},
        "metricsServer": {"enabled": False},
        "webhooks": {"enabled": False},
        # The operator would otherwise keep patching the metrics APIService it no longer has.
        "certificates": {"operator": {"apiServicePatching": {"enabled": False}}},
    }
