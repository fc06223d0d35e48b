"""The queue-workers pattern's manifests: a tasker Job, and workers as a Job or a KEDA ScaledJob.

Workers finish: each exits 0 on its stop message or after ``idle_timeout`` seconds without
work, so the worker Job completes (the work-queue Job pattern: ``parallelism`` set,
``completions`` unset) instead of running forever like a Deployment. In KEDA mode a
``ScaledJob`` starts worker Jobs while the task queue holds messages, and each exits when idle.

Every number the runtime checks (queue name, prefetch, attempts, timeouts) is checked here by
the runtime's own ``TaskerSpec`` and ``WorkerSpec``, so a stack cannot deploy settings the pods
would refuse at start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.pods import (
    ContainerSpec,
    PodStorage,
    Resources,
    build_pod_spec,
)
from workstack.components.manifests.validation import (
    SpecError,
    require_choice,
    require_dns1123_label,
    require_int,
)
from workstack.sdk import env
from workstack.sdk.queue.config import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    QueueError,
    QueueNames,
    TaskerSpec,
    WorkerSpec,
)

__all__ = [
    "KEDA_CHART",
    "KEDA_CHART_VERSION",
    "KEDA_OPERATOR_LABELS",
    "KEDA_REPO",
    "MODES",
    "QueueWorkersSpec",
    "build_keda_broker_policy",
    "build_queue_workers",
    "check_queue_settings",
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

MODES = ("jobs", "keda")
_TASKER = "tasker"
_WORKER = "worker"
_SIGTERM_MARGIN = 10  # seconds between the worker's grace running out and SIGKILL


@dataclass(kw_only=True, frozen=True)
class QueueWorkersSpec:
    """A tasker and its workers on one queue set.

    Attributes:
        name: Base name: the Jobs are ``<name>-tasker`` and ``<name>-workers``.
        namespace: Their namespace.
        instance: Owning component's name, for labels.
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
        mode: ``jobs``: a worker Job with ``workers`` pods; ``keda``: a ScaledJob that runs up
            to ``workers`` worker Jobs while tasks wait.
        workers: Worker pods at once (the Job's parallelism, or the ScaledJob's maximum).
        prefetch: Unacknowledged tasks per worker (1: a long task holds no other task).
        concurrency: Tasks a worker runs at once, each in a thread; at most ``prefetch``.
        max_attempts: Deliveries before a task is dead-lettered with its error.
        idle_timeout: A worker exits 0 after this many seconds without a message.
        grace: On SIGTERM, seconds the task in hand gets to finish before it is requeued.
        consumer_timeout: Seconds the broker waits for an ack (RabbitMQ 3.12+); None keeps
            the broker's setting.
        tasker: Run the tasker Job; off when tasks are published from elsewhere.
        storage: Storages every pod mounts.
        service_account: Service account of the pods.
        worker_resources: CPU and memory per worker pod.
        tasker_resources: CPU and memory of the tasker pod.
        retries: Pod failures (crashes, broker unreachable) a Job tolerates.
        ttl_seconds_after_finished: Delete finished Jobs and their pods after this long.
        active_deadline_seconds: Fail a Job that runs longer.
        polling_interval: KEDA mode: seconds between queue-length checks.
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
    queue: str = "workstack"
    mode: str = "jobs"
    workers: int = 4
    prefetch: int = 1
    concurrency: int = 1
    max_attempts: int = 3
    idle_timeout: float = 900.0
    grace: float = 20.0
    consumer_timeout: float | None = None
    tasker: bool = True
    storage: Sequence[PodStorage] = field(default_factory=tuple)
    service_account: str | None = None
    worker_resources: Resources = field(default_factory=Resources)
    tasker_resources: Resources = field(
        default_factory=lambda: Resources(cpu="100m", memory="256Mi", cpu_limit="500m")
    )
    retries: int = 6
    ttl_seconds_after_finished: int = 86_400
    active_deadline_seconds: int = 24 * 3600
    polling_interval: int = 10

    def __post_init__(self) -> None:
        require_dns1123_label("name", self.name, max_length=40)
        require_dns1123_label("namespace", self.namespace)
        require_dns1123_label("broker_secret", self.broker_secret)
        check_queue_settings(mode=self.mode, workers=self.workers)
        require_int("retries", self.retries, minimum=0, maximum=100)
        require_int("ttl_seconds_after_finished", self.ttl_seconds_after_finished, minimum=0)
        require_int("active_deadline_seconds", self.active_deadline_seconds, minimum=1)
        require_int("polling_interval", self.polling_interval, minimum=1, maximum=3600)
        if self.tasker and (self.tasks_from is None) == (not self.task_files):
            raise SpecError(
                "tasks_from",
                self.tasks_from,
                "give exactly one of tasks_from (module:callable) or task_files",
            )
        try:
            self.tasker_spec()
            self.worker_spec()
        except QueueError as error:
            raise SpecError("queue settings", "", str(error)) from None

    def tasker_spec(self) -> TaskerSpec:
        """The tasker's settings, as the runtime checks them."""
        return TaskerSpec(
            queue=self.queue,
            storage_url=self.storage_url,
            workers=self.stop_messages,
            max_attempts=self.max_attempts,
        )

    def worker_spec(self) -> WorkerSpec:
        """A worker's settings, as the runtime checks them."""
        return WorkerSpec(
            queue=self.queue,
            storage_url=self.storage_url,
            prefetch=self.prefetch,
            concurrency=self.concurrency,
            max_attempts=self.max_attempts,
            idle_timeout=self.idle_timeout,
            grace=self.grace,
            consumer_timeout=self.consumer_timeout,
        )

    @property
    def stop_messages(self) -> int:
        """Stop messages the tasker sends at the end.

        One per worker pod in ``jobs`` mode; none under KEDA, whose workers exit when idle (a
        stop message would count as queue length and start a Job to read it).
        """
        return self.workers if self.mode == "jobs" else 0

    @property
    def names(self) -> QueueNames:
        """The queue set's queues."""
        return QueueNames(self.queue)


def check_queue_settings(*, mode: str, workers: int) -> None:
    """Validate the pattern's mode and worker count (a stack's config, say).

    Raises:
        SpecError: Naming the field and what is allowed.
    """
    require_choice("mode", mode, MODES)
    require_int("workers", workers, minimum=1, maximum=10_000)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def tasker_args(spec: QueueWorkersSpec) -> list[str]:
    """``workstack`` arguments of the tasker container."""
    args = ["queue", "tasker", "--queue", spec.queue, "--storage", spec.storage_url]
    args += ["--workers", str(spec.stop_messages), "--max-attempts", str(spec.max_attempts)]
    if spec.tasks_from is not None:
        args += ["--from", spec.tasks_from]
    for path in spec.task_files:
        args += ["--file", path]
    return [*args, "--no-progress"]


def worker_args(spec: QueueWorkersSpec) -> list[str]:
    """``workstack`` arguments of a worker container."""
    args = ["queue", "worker", "--queue", spec.queue, "--storage", spec.storage_url]
    args += ["--prefetch", str(spec.prefetch), "--concurrency", str(spec.concurrency)]
    args += ["--max-attempts", str(spec.max_attempts)]
    args += ["--idle-timeout", _number(spec.idle_timeout), "--grace", _number(spec.grace)]
    if spec.consumer_timeout is not None:
        args += ["--consumer-timeout", _number(spec.consumer_timeout)]
    return args


def _labels(spec: QueueWorkersSpec, role: str) -> dict[str, str]:
    return standard_labels(
        name="workstack",
        instance=spec.instance,
        component=f"queue-{role}",
        extra=spec.broker_labels,
    )


def _pod_template(spec: QueueWorkersSpec, role: str) -> dict[str, Any]:
    worker = role == _WORKER
    container = ContainerSpec(
        name=role,
        image=spec.image,
        pull_policy=spec.pull_policy,
        command=("workstack",),
        args=tuple(worker_args(spec) if worker else tasker_args(spec)),
        secret_env={env.BROKER_URL: (spec.broker_secret, spec.broker_secret_key)},
        resources=spec.worker_resources if worker else spec.tasker_resources,
    )
    pod_spec = build_pod_spec(
        containers=[container],
        storage=list(spec.storage),
        service_account=spec.service_account,
        restart_policy="Never",
    )
    if worker:
        # SIGTERM first gives the task in hand `grace` seconds, then requeues it; the
        # kubelet must not SIGKILL the worker before that is done.
        pod_spec["terminationGracePeriodSeconds"] = int(spec.grace) + _SIGTERM_MARGIN
    return {"metadata": {"labels": _labels(spec, role)}, "spec": pod_spec}


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


def _job(spec: QueueWorkersSpec, role: str, job_spec: dict[str, Any]) -> dict[str, Any]:
    suffix = "workers" if role == _WORKER else role
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{spec.name}-{suffix}",
            "namespace": spec.namespace,
            "labels": _labels(spec, role),
        },
        "spec": job_spec,
    }


def _tasker_job(spec: QueueWorkersSpec) -> dict[str, Any]:
    """The tasker: one pod, retried after a crash (it skips tasks already done).

    Tasks that failed for good (exit 1) or bad input (exit 2) end the Job at once: a rerun
    would publish the same tasks and fail the same way.
    """
    return _job(
        spec,
        _TASKER,
        {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": spec.retries,
            "podFailurePolicy": _failure_policy(_TASKER, (EXIT_FAILED, EXIT_BAD_INPUT)),
            "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "template": _pod_template(spec, _TASKER),
        },
    )


def _worker_job_spec(spec: QueueWorkersSpec, *, parallelism: int) -> dict[str, Any]:
    """The workers' Job spec: the work-queue pattern.

    ``completions`` unset: the Job succeeds once its workers have exited 0 (stop message or
    idle), and crashed workers are replaced up to ``retries``.
    """
    return {
        "parallelism": parallelism,
        "backoffLimit": spec.retries,
        "podFailurePolicy": _failure_policy(_WORKER, (EXIT_BAD_INPUT,)),
        "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
        "activeDeadlineSeconds": spec.active_deadline_seconds,
        "template": _pod_template(spec, _WORKER),
    }


def _trigger_authentication_name(spec: QueueWorkersSpec) -> str:
    return f"{spec.name}-broker"


def _scaled_job(spec: QueueWorkersSpec) -> dict[str, Any]:
    job_spec = _worker_job_spec(spec, parallelism=1)
    job_spec["completions"] = 1
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {
            "name": f"{spec.name}-workers",
            "namespace": spec.namespace,
            "labels": _labels(spec, _WORKER),
        },
        "spec": {
            "jobTargetRef": job_spec,
            "pollingInterval": spec.polling_interval,
            "minReplicaCount": 0,
            "maxReplicaCount": spec.workers,
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
                        "queueName": spec.names.tasks,
                        "mode": "QueueLength",
                        "value": str(spec.prefetch),
                    },
                    "authenticationRef": {"name": _trigger_authentication_name(spec)},
                }
            ],
        },
    }


def _trigger_authentication(spec: QueueWorkersSpec) -> dict[str, Any]:
    """KEDA reads the broker URL (its ``host`` parameter) from the broker's Secret."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {
            "name": _trigger_authentication_name(spec),
            "namespace": spec.namespace,
            "labels": _labels(spec, _WORKER),
        },
        "spec": {
            "secretTargetRef": [
                {"parameter": "host", "name": spec.broker_secret, "key": spec.broker_secret_key}
            ]
        },
    }


def build_queue_workers(spec: QueueWorkersSpec) -> list[dict[str, Any]]:
    """Every object of the pattern.

    The tasker Job (when ``spec.tasker``) and the workers: a Job, or a ScaledJob and its
    TriggerAuthentication in KEDA mode.
    """
    objects = [_tasker_job(spec)] if spec.tasker else []
    if spec.mode == "jobs":
        objects.append(
            _job(spec, _WORKER, _worker_job_spec(spec, parallelism=spec.workers)),
        )
    else:
        objects += [_trigger_authentication(spec), _scaled_job(spec)]
    return objects


def build_keda_broker_policy(
    *, name: str, namespace: str, instance: str, broker: str, keda_namespace: str
) -> dict[str, Any]:
    """Let the KEDA operator through the broker's NetworkPolicy.

    The operator opens an AMQP connection to read the queue length. NetworkPolicies add up,
    so the broker's own policy stays as it is.
    """
    from workstack.components.manifests.rabbitmq import AMQP_PORT

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
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": keda_namespace}
                            },
                            "podSelector": {"matchLabels": dict(KEDA_OPERATOR_LABELS)},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": AMQP_PORT}],
                }
            ],
        },
    }


def keda_values(namespace: str) -> dict[str, Any]:
    """Values of the KEDA chart.

    KEDA watches only the workload namespace, and its pods run under the restricted Pod
    Security Standard like everything else in it.
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
        "watchNamespace": namespace,
        "podSecurityContext": {part: dict(pod) for part in parts},
        "securityContext": {part: dict(container) for part in parts},
    }
