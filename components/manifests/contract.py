"""The contract between a deployed stack and the runs made on it.

``pulumi up`` deploys the platform (cluster, storage, broker, operators, identities, images,
templates) and never starts work; ``workstack submit`` starts runs. What a run needs to know
about the platform is the stack output ``contract``, one :class:`StackContract`: the
namespace, each workload's image, pattern and settings, and how its pods reach storage, the
broker and the scheduler. Runs are built from it with the same pure builders the components
use, so a run's objects are checked like the rest.

Read it with ``pulumi stack output contract --json`` (the Automation API does the same), or
from a file holding that JSON.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from workstack.components.manifests.pods import PodStorage
from workstack.components.manifests.validation import SpecError

__all__ = [
    "CONTRACT_VERSION",
    "BrokerContract",
    "ImageSource",
    "StackContract",
    "StorageContract",
    "WorkloadContract",
    "load_contract",
]

CONTRACT_VERSION: Literal[1] = 1

Pattern = Literal["job-per-file", "queue-workers", "dask", "pipeline", "command"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StorageContract(_Model):
    """How pods attach one storage (a :class:`PodStorage`, as data)."""

    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()
    env: dict[str, str] = {}
    env_from_secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, storage: PodStorage) -> StorageContract:
        """The contract of resolved ``storage`` (no Pulumi outputs left in it)."""
        return cls(
            volumes=storage.volumes,
            mounts=storage.mounts,
            env={key: str(value) for key, value in storage.env.items()},
            env_from_secrets=storage.env_from_secrets,
        )

    def pod_storage(self) -> PodStorage:
        """What the builders take."""
        return PodStorage(
            volumes=self.volumes,
            mounts=self.mounts,
            env=dict(self.env),
            env_from_secrets=self.env_from_secrets,
        )


class BrokerContract(_Model):
    """The broker a queue workload's pods reach: its Secret, and the labels its policy admits."""

    name: str
    secret_name: str
    secret_key: str = "url"
    client_labels: dict[str, str] = {}


class ImageSource(_Model):
    """How the stack built a workload's image, so ``submit`` can tell the folder changed since.

    Attributes:
        folder: The workload folder, relative to the project root.
        tag: The content-hash tag the stack built (``workstack.images.plan_context``'s).
        platform: The nodes' platform it was built for.
        extras: workstack extras the stack added (``s3``, ``gcs``).
        base_image: The image it builds on.
        docker_host: The engine it was loaded into (minikube), or None.
    """

    folder: str
    tag: str
    platform: str
    extras: tuple[str, ...] = ()
    base_image: str
    docker_host: str | None = None


class WorkloadContract(_Model):
    """One workload as runs see it.

    Attributes:
        name: The workload's name (from ``workload.yaml``).
        pattern: How it runs.
        image: Its image reference, pinned (``repo:tag@digest`` when pushed).
        pull_policy: The pull policy that goes with the image.
        entrypoint: ``module:callable`` (or a ``pipeline.yaml``); empty for a command.
        command: The command line of a command workload (or job-per-file script).
        data_url: Root of its data: ``/data/<name>`` on NFS or ``s3://.../<name>``.
        service_account: The service account its pods run as.
        settings: The settings of its pattern (``JobSettings``, ``QueueSettings``, ...) as
            the stack configured them, by field name.
        storage: How its pods attach the stack's storage.
        broker: queue-workers: the broker.
        keda: queue-workers: the stack runs KEDA ScaledJob workers (runs start a tasker only).
        scheduler_address: dask: the scheduler inside the cluster.
        scheduler_labels: dask: labels a client pod needs to reach the scheduler.
        scheduler_tls_secret: dask: the Secret with the cluster's CA and client certificate
            a client pod mounts (None: the scheduler takes plain TCP).
        workflow_template: pipeline: the WorkflowTemplate runs are submitted from.
        source: How its image was built (None from a stack deployed before it was recorded).
    """

    name: str
    pattern: Pattern
    image: str
    pull_policy: str
    entrypoint: str = ""
    command: str | None = None
    data_url: str
    service_account: str | None = None
    settings: dict[str, Any] = {}
    storage: tuple[StorageContract, ...] = ()
    broker: BrokerContract | None = None
    keda: bool = False
    scheduler_address: str | None = None
    scheduler_labels: dict[str, str] = {}
    scheduler_tls_secret: str | None = None
    workflow_template: str | None = None
    source: ImageSource | None = None


class StackContract(_Model):
    """What a deployed stack offers runs.

    Attributes:
        version: Version of this contract; a reader refuses one it does not know.
        stack: The stack's name.
        cloud: ``minikube``, ``gke`` or ``eks``.
        namespace: Where runs are created.
        kube_context: The kubeconfig context (minikube); None: the stack's ``kubeconfig``.
        nfs_claim: The NFS claim, or None.
        bucket_url: The bucket's URL, or None.
        workloads: Each workload, by name.
    """

    version: Literal[1] = CONTRACT_VERSION
    stack: str
    cloud: str
    namespace: str
    kube_context: str | None = None
    nfs_claim: str | None = None
    bucket_url: str | None = None
    workloads: dict[str, WorkloadContract] = {}

    def workload(self, name: str) -> WorkloadContract:
        """The workload called ``name``.

        Raises:
            SpecError: The stack has no such workload; the message lists its workloads.
        """
        if name not in self.workloads:
            known = ", ".join(sorted(self.workloads)) or "none"
            raise SpecError("workload", name, f"stack {self.stack!r} has: {known}")
        return self.workloads[name]


def load_contract(data: Any, *, source: str = "the stack's outputs") -> StackContract:
    """Read a contract from the stack output (a mapping) or its JSON.

    Raises:
        SpecError: It is missing, of another version, or malformed; the message says which.
    """
    if data is None:
        raise SpecError(
            "contract", None, f"{source} have no contract: run `pulumi up` with this workstack"
        )
    try:
        if isinstance(data, str | bytes):
            return StackContract.model_validate_json(data)
        return StackContract.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(contract)"
        raise SpecError(
            "contract", where, f"{source} hold an unreadable contract: {first['msg']}"
        ) from None
