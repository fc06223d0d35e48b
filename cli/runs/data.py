"""A stack's storage from this machine: its bucket directly, its NFS claim through a pod.

For NFS, :func:`transfer_pod` creates a short-lived pod that mounts the claim, runs as the
workloads do (the restricted profile, the workload image, which has ``workstack``), and only
sleeps; transfers are ``workstack data ...`` commands exec'd into it. It ends itself after an
hour (``activeDeadlineSeconds``) if this machine goes away, and is deleted when the block
ends. A pod that cannot start says why (:mod:`workstack.runs.status`).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import Any

from workstack.components.manifests.contract import StackContract, WorkloadContract
from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.pods import ContainerSpec, PodStorage, Resources, build_pod_spec
from workstack.runs.errors import RunsError, UsageError
from workstack.runs.kube import ExecChannel, Kube
from workstack.runs.status import no_logs, pod_problems
from workstack.runs.transfer import BucketFolder, NfsFolder, RemoteFolder
from workstack.sdk.env import NFS_MOUNT_PATH

__all__ = ["DATA_COMPONENT", "PodRunner", "build_transfer_pod", "open_folder", "transfer_pod"]

DATA_COMPONENT = "data-transfer"
_HOLD_SECONDS = 3600


def _nfs_storage(workload: WorkloadContract, claim: str) -> list[PodStorage]:
    return [
        item.pod_storage()
        for item in workload.storage
        if any(
            volume.get("persistentVolumeClaim", {}).get("claimName") == claim
            for volume in item.volumes
        )
    ]


def _carrier(contract: StackContract) -> WorkloadContract:
    """A workload whose image and storage the transfer pod borrows: any has workstack."""
    claim = contract.nfs_claim
    for name in sorted(contract.workloads):
        workload = contract.workloads[name]
        if claim is not None and _nfs_storage(workload, claim):
            return workload
    raise UsageError(
        f"stack {contract.stack!r} has no workload that mounts its NFS claim; the data commands "
        "borrow a workload's image: add a workload to the stack and `pulumi up`"
    )


def build_transfer_pod(contract: StackContract, name: str) -> dict[str, Any]:
    """The transfer pod: the NFS claim at /data, the restricted profile, sleeping an hour."""
    if contract.nfs_claim is None:
        raise UsageError(f"stack {contract.stack!r} has no NFS storage")
    workload = _carrier(contract)
    container = ContainerSpec(
        name="data",
        image=workload.image,
        pull_policy=workload.pull_policy,
        command=("workstack",),
        args=("data", "hold", "--seconds", str(_HOLD_SECONDS)),
        resources=Resources(cpu="100m", memory="256Mi", cpu_limit="1"),
    )
    spec = build_pod_spec(
        containers=[container],
        storage=_nfs_storage(workload, contract.nfs_claim),
        service_account=workload.service_account,
        restart_policy="Never",
    )
    spec["activeDeadlineSeconds"] = _HOLD_SECONDS + 60
    labels = standard_labels(name="workstack", instance=name, component=DATA_COMPONENT)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": contract.namespace, "labels": labels},
        "spec": spec,
    }


class PodRunner:
    """Runs ``workstack data ...`` in the transfer pod, over the exec stream."""

    def __init__(self, kube: Kube, pod: str) -> None:
        self._kube = kube
        self._pod = pod

    def start(self, args: Sequence[str]) -> ExecChannel:
        """Start the command in the pod."""
        return self._kube.exec(self._pod, ["workstack", "data", *args], container="data")


def _wait_running(kube: Kube, contract: StackContract, name: str, timeout: float) -> None:
    """Wait for the pod to run; give up with the reason once a problem lasted its grace."""
    started = time.monotonic()
    grace = min(30.0, timeout / 2)
    while True:
        pod = kube.get("Pod", name)
        phase = pod.get("status", {}).get("phase")
        if phase == "Running":
            return
        elapsed = time.monotonic() - started
        events = kube.list("Event", field_selector=f"involvedObject.name={name}")
        claims = kube.list("PersistentVolumeClaim")
        problems = pod_problems(pod, events, claims, contract, no_logs)
        if phase in ("Failed", "Succeeded") or (problems and elapsed > grace):
            detail = "; ".join(" ".join(p.lines()) for p in problems) or f"it is {phase}"
            raise RunsError(f"the transfer pod {name} cannot start: {detail}")
        if elapsed > timeout:
            raise RunsError(f"the transfer pod {name} did not start within {timeout:g} s ({phase})")
        time.sleep(0.5)


@contextlib.contextmanager
def transfer_pod(kube: Kube, contract: StackContract, *, timeout: float = 180.0) -> Iterator[str]:
    """A pod mounting the stack's NFS claim for the block; its name is yielded.

    Raises:
        UsageError: The stack has no NFS storage.
        RunsError: The pod cannot start (the message says why, e.g. the image cannot be pulled).
    """
    name = f"workstack-data-{secrets.token_hex(3)}"
    kube.create(build_transfer_pod(contract, name))
    try:
        _wait_running(kube, contract, name, timeout)
        yield name
    finally:
        kube.delete("Pod", name, propagation="Background")


@contextlib.contextmanager
def open_folder(
    contract: StackContract,
    kube: Kube | None,
    *,
    storage: str = "auto",
    endpoint_url: str | None = None,
) -> Iterator[RemoteFolder]:
    """The stack's storage as a :class:`RemoteFolder`: its NFS claim, else its bucket.

    Args:
        contract: The stack's contract.
        kube: A client for its cluster (NFS only).
        storage: ``auto`` (what workloads use: NFS if the stack has it), ``nfs`` or ``bucket``.
        endpoint_url: An S3-compatible endpoint for the bucket.

    Raises:
        UsageError: The stack has no such storage.
    """
    if storage not in ("auto", "nfs", "bucket"):
        raise UsageError(f"--storage {storage!r} is not allowed; expected auto, nfs or bucket")
    use_nfs = contract.nfs_claim is not None and storage in ("auto", "nfs")
    if storage == "nfs" and contract.nfs_claim is None:
        raise UsageError(f"stack {contract.stack!r} has no NFS storage")
    if use_nfs:
        assert kube is not None, "NFS is reached through the cluster"
        with transfer_pod(kube, contract) as pod:
            yield NfsFolder(PodRunner(kube, pod), NFS_MOUNT_PATH, url=f"nfs://{contract.nfs_claim}")
        return
    if contract.bucket_url is None:
        raise UsageError(f"stack {contract.stack!r} has no storage (neither NFS nor a bucket)")
    yield BucketFolder(contract.bucket_url, endpoint_url=endpoint_url)


def storage_root(contract: StackContract) -> str:
    """Where workloads keep their data: the NFS mount, else the bucket."""
    if contract.nfs_claim is not None:
        return NFS_MOUNT_PATH
    if contract.bucket_url is None:
        raise UsageError(f"stack {contract.stack!r} has no storage (neither NFS nor a bucket)")
    return contract.bucket_url.rstrip("/")


def relative_to_root(contract: StackContract, location: str) -> str:
    """A location given by the user (relative, ``/data/...`` or a bucket URL) under the root.

    Raises:
        UsageError: It lies outside the stack's storage.
    """
    root = storage_root(contract)
    text = location.rstrip("/")
    if text == root:
        return ""
    if text.startswith(root + "/"):
        return text[len(root) + 1 :]
    if "://" in text or text.startswith("/"):
        raise UsageError(
            f"{location!r} is not on stack {contract.stack!r}'s storage; expected a path "
            f"relative to it or under {root}"
        )
    return text.strip("/")
