"""The queue-workers pattern: a tasker Job and workers that finish when the work is done."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from workstack.components._locations import check_reachable
from workstack.components._objects import create_object
from workstack.components.cluster import KubernetesCluster
from workstack.components.identity import WorkloadIdentity
from workstack.components.image import ImageInput, ImageRef
from workstack.components.manifests import SpecError, require_dns1123_label
from workstack.components.manifests.operators import OPERATOR_SCOPES
from workstack.components.manifests.pods import PodStorage
from workstack.components.manifests.queue import (
    KEDA_CHART,
    KEDA_CHART_VERSION,
    KEDA_REPO,
    QueueSettings,
    QueueTarget,
    build_keda_broker_policy,
    build_keda_egress_policies,
    build_queue_workers,
    keda_values,
)
from workstack.components.manifests.validation import require_choice
from workstack.components.rabbitmq import RabbitMq

__all__ = ["BrokerRef", "QueueSettings", "QueueWorkers", "QueueWorkersArgs"]


@dataclass(kw_only=True, frozen=True)
class BrokerRef:
    """A broker the workers reach: the Secret with its URL and the labels its policy admits.

    ``BrokerRef.of(rabbitmq)`` takes them from a :class:`RabbitMq`; give them by hand for a
    broker made elsewhere (``name`` is its Service, whose pods the KEDA policy selects).
    """

    name: str
    secret_name: str
    secret_key: str = "url"
    client_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_dns1123_label("broker name", self.name)
        require_dns1123_label("broker secret_name", self.secret_name)

    @classmethod
    def of(cls, broker: RabbitMq | BrokerRef) -> BrokerRef:
        """The reference to ``broker``."""
        if isinstance(broker, BrokerRef):
            return broker
        return cls(
            name=broker.broker_name,
            secret_name=broker.secret_name,
            client_labels=dict(broker.client_labels),
        )


@dataclass(kw_only=True, frozen=True)
class QueueWorkersArgs:
    """Arguments for :class:`QueueWorkers`.

    Attributes:
        cluster: Where the Jobs run (its workload namespace and provider).
        image: The workload image: a ``WorkloadImage`` or an image reference.
        broker: A ``RabbitMq`` in the same namespace, or a ``BrokerRef``.
        storage_url: Where results and outputs go: a path under ``/data`` (NFS storage) or an
            ``s3://``/``gs://`` URL.
        tasks_from: The workload's ``module:callable`` returning its stages or tasks (the
            ``entrypoint`` of a queue-workers ``workload.yaml``).
        task_files: Or task files the tasker pod can read (one task per line).
        queue: Queue set name; defaults to the component's name.
        tasker: Run the tasker Job; turn off when tasks are published from elsewhere.
        storage: Storages the pods mount (``NfsStorage.pod_storage``, ``BucketStorage...``).
        identity: Service account the pods run as (bucket access comes with it).
        install_keda: KEDA mode: install the pinned KEDA chart in the namespace, watching
            only it. Turn off when the cluster has KEDA already (it is cluster-wide: CRDs,
            an APIService), and give ``keda_namespace``.
        keda_namespace: Namespace of the cluster's KEDA operator when not installed here;
            None admits it from any namespace.
        operator_scope: ``namespace``: KEDA installed here serves this namespace only;
            ``cluster``: every namespace, for other stacks on the cluster that do not
            install operators.
        settings: Mode, workers, prefetch, attempts, timeouts and resources.
        run_id: Names the run that the tasker (and, in ``jobs`` mode, the worker) Job make:
            they are ``<name>-<run_id>-tasker`` and ``-workers``. A new id makes a new run;
            other changes leave a created run alone. None only for a KEDA service without
            a tasker (a ScaledJob that starts workers whenever tasks wait).
    """

    cluster: KubernetesCluster
    image: ImageInput
    broker: RabbitMq | BrokerRef
    storage_url: str
    tasks_from: str | None = None
    task_files: tuple[str, ...] = ()
    queue: str | None = None
    tasker: bool = True
    storage: tuple[PodStorage, ...] = ()
    identity: WorkloadIdentity | None = None
    install_keda: bool = True
    keda_namespace: str | None = "keda"
    operator_scope: str = "namespace"
    settings: QueueSettings = field(default_factory=QueueSettings)
    run_id: str | None = None

    def target(self, name: str, namespace: str, image: ImageRef | None = None) -> QueueTarget:
        """What runs where (validated); without ``image``, a stand-in for checks."""
        broker = BrokerRef.of(self.broker)
        return QueueTarget(
            name=f"{name}-{self.run_id}" if self.run_id else name,
            namespace=namespace,
            instance=name,
            image=image.ref if image else "image",
            pull_policy=image.pull_policy if image else "IfNotPresent",
            broker_secret=broker.secret_name,
            broker_secret_key=broker.secret_key,
            broker_labels=broker.client_labels,
            storage_url=self.storage_url,
            tasks_from=self.tasks_from,
            task_files=self.task_files,
            queue=self.queue or name,
            tasker=self.tasker,
            storage=self.storage,
            service_account=self.identity.service_account if self.identity else None,
            run_id=self.run_id,
        )

    def __post_init__(self) -> None:
        ImageRef.of(self.image)
        if self.run_id is not None:
            require_dns1123_label("run_id", self.run_id, max_length=20)
        elif self.tasker or self.settings.mode == "jobs":
            raise SpecError(
                "run_id",
                None,
                "a tasker or worker Job is a run: give a run_id (only a KEDA service with "
                "tasker=False runs without one)",
            )
        check_reachable("storage_url", self.storage_url, self.storage)
        if self.keda_namespace is not None:
            require_dns1123_label("keda_namespace", self.keda_namespace)
        require_choice("operator_scope", self.operator_scope, OPERATOR_SCOPES)
        self.target("queue", "default")


class QueueWorkers(pulumi.ComponentResource):
    """A tasker Job publishing the workload's tasks and worker Jobs that run them.

    Workers exit 0 on their stop message (one per worker, sent once every task is done) or
    after ``idle_timeout`` without work, so the Jobs complete and remove themselves after
    ``ttl_seconds_after_finished``; nothing runs, or bills, once the work is done. Pods read
    the broker URL from its Secret and carry the labels its NetworkPolicy admits. A task that
    keeps failing is dead-lettered to ``<queue>.dead`` with its error after ``max_attempts``
    deliveries, and the queue keeps flowing.
    """

    queue: str
    """Name of the queue set; tasks wait in ``<queue>.tasks``, failures in ``<queue>.dead``."""

    worker_job_name: str
    """The worker Job (``jobs`` mode) or ScaledJob (``keda`` mode)."""

    tasker_job_name: str | None
    """The tasker Job, when there is one."""

    def __init__(
        self, name: str, args: QueueWorkersArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:workload:QueueWorkers", name, None, opts)
        cluster = args.cluster
        k8s_opts = cluster.options_for(self, args.identity)
        target = args.target(name, cluster.namespace_name, ImageRef.of(args.image))
        settings = args.settings
        self.queue = target.queue
        self.worker_job_name = f"{target.name}-workers"
        self.tasker_job_name = f"{target.name}-tasker" if target.tasker else None

        depends: list[pulumi.Resource] = []
        if isinstance(args.broker, RabbitMq):
            depends.append(args.broker)
        if settings.mode == "keda":
            keda_namespace = args.keda_namespace
            if args.install_keda:
                keda_namespace = target.namespace
                everywhere = args.operator_scope == "cluster"
                for policy in build_keda_egress_policies(
                    namespace=target.namespace,
                    instance=name,
                    broker=BrokerRef.of(args.broker).name,
                    all_namespaces=everywhere,
                ):
                    create_object(f"{policy['metadata']['name']}-policy", policy, k8s_opts)
                depends.append(
                    k8s.helm.v4.Chart(
                        f"{name}-keda",
                        chart=KEDA_CHART,
                        version=KEDA_CHART_VERSION,
                        repository_opts={"repo": KEDA_REPO},
                        namespace=target.namespace,
                        values=keda_values(target.namespace, all_namespaces=everywhere),
                        opts=k8s_opts,
                    )
                )
            create_object(
                f"{name}-keda-policy",
                build_keda_broker_policy(
                    name=f"{name}-keda-to-broker",
                    namespace=target.namespace,
                    instance=name,
                    broker=BrokerRef.of(args.broker).name,
                    keda_namespace=keda_namespace,
                ),
                k8s_opts,
            )
        after = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=depends))
        for obj in build_queue_workers(target, settings):
            kind = obj["kind"]
            options = after
            if kind == "Job":
                # `pulumi up` creates the Jobs and returns; the Jobs' deadline bounds them.
                obj["metadata"]["annotations"] = {"pulumi.com/skipAwait": "true"}
                # A run: kept once finished (a TTL-deleted Job would be created again by
                # `pulumi up --refresh`) and left alone by later changes.
                obj["spec"].pop("ttlSecondsAfterFinished")
                options = pulumi.ResourceOptions.merge(
                    after, pulumi.ResourceOptions(ignore_changes=["spec"])
                )
            create_object(f"{obj['metadata']['name']}-{kind.lower()}", obj, options)
        self.register_outputs(
            {
                "queue": self.queue,
                "worker_job_name": self.worker_job_name,
                "tasker_job_name": self.tasker_job_name,
            }
        )
