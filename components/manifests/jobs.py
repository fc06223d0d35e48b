"""One Indexed Job for any number of files: the job-per-file pattern's manifests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.pods import ContainerSpec, PodStorage, build_pod_spec
from workstack.components.manifests.validation import SpecError, require_dns1123_label, require_int
from workstack.sdk.files import EXIT_BAD_INPUT

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_MOUNT",
    "IndexedJobSpec",
    "build_indexed_job",
    "build_manifest_config_map",
    "check_job_settings",
    "manifest_text",
]

MANIFEST_MOUNT = "/etc/workstack/manifest"
MANIFEST_FILE = "inputs.txt"
_CONFIG_MAP_LIMIT = 1_000_000  # the API server refuses ConfigMaps over 1 MiB; keep a margin
_MAX_COMPLETIONS = 100_000  # Kubernetes' limit for Indexed Jobs with per-index backoff


@dataclass(kw_only=True, frozen=True)
class IndexedJobSpec:
    """An Indexed Job whose pods each take one shard of the inputs.

    Attributes:
        name: Job name.
        namespace: Its namespace.
        instance: Owning component's name, for labels.
        container: The workload container; its exit code 65 means bad input.
        shards: ``completions``: how many indexes the inputs are split over. Fixed when the
            Job is created; any number of files is spread over them.
        parallelism: Pods running at once.
        retries_per_index: ``backoffLimitPerIndex``: retries of one index before it fails.
        max_failed_indexes: Stop the whole Job once this many indexes failed; None: never.
        ttl_seconds_after_finished: Delete the finished Job (and its pods) after this long.
        active_deadline_seconds: Fail the Job if it runs longer than this.
        storage: Storages every pod mounts.
        service_account: Service account of the pods.
        manifest_config_map: ConfigMap holding a frozen input list, mounted at
            :data:`MANIFEST_MOUNT`; None when pods list their inputs themselves.
    """

    name: str
    namespace: str
    instance: str
    container: ContainerSpec
    shards: int = 10
    parallelism: int = 4
    retries_per_index: int = 2
    max_failed_indexes: int | None = None
    ttl_seconds_after_finished: int = 86_400
    active_deadline_seconds: int = 6 * 3600
    storage: Sequence[PodStorage] = field(default_factory=tuple)
    service_account: str | None = None
    manifest_config_map: str | None = None

    def __post_init__(self) -> None:
        require_dns1123_label("name", self.name, max_length=52)  # room for pod name suffixes
        require_dns1123_label("namespace", self.namespace)
        check_job_settings(
            shards=self.shards,
            parallelism=self.parallelism,
            retries_per_index=self.retries_per_index,
            max_failed_indexes=self.max_failed_indexes,
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            active_deadline_seconds=self.active_deadline_seconds,
        )


def check_job_settings(
    *,
    shards: int,
    parallelism: int,
    retries_per_index: int,
    max_failed_indexes: int | None,
    ttl_seconds_after_finished: int,
    active_deadline_seconds: int,
) -> None:
    """Validate an Indexed Job's numbers.

    Raises:
        SpecError: Naming the field out of range.
    """
    require_int("shards", shards, minimum=1, maximum=_MAX_COMPLETIONS)
    require_int("parallelism", parallelism, minimum=1, maximum=_MAX_COMPLETIONS)
    require_int("retries_per_index", retries_per_index, minimum=0, maximum=100)
    if max_failed_indexes is not None:
        require_int("max_failed_indexes", max_failed_indexes, minimum=0, maximum=shards)
    require_int("ttl_seconds_after_finished", ttl_seconds_after_finished, minimum=0)
    require_int("active_deadline_seconds", active_deadline_seconds, minimum=1)


def manifest_text(keys: Sequence[str]) -> str:
    """The frozen input list as a ConfigMap holds it: sorted keys, one per line.

    Raises:
        SpecError: The list is empty, or too large for a ConfigMap (about 1 MB): use a
            manifest file on the shared storage instead (``workstack files manifest``).
    """
    if not keys:
        raise SpecError("files", [], "expected at least one input file")
    text = "".join(f"{key}\n" for key in sorted(keys))
    if len(text.encode()) > _CONFIG_MAP_LIMIT:
        raise SpecError(
            "files",
            f"{len(keys)} files ({len(text.encode())} bytes)",
            "a ConfigMap holds at most about 1 MB; write the list to the shared storage with "
            "`workstack files manifest` and pass manifest_url instead",
        )
    return text


def build_indexed_job(spec: IndexedJobSpec) -> dict[str, Any]:
    """The Job: Indexed completions, per-index retries and a pod failure policy.

    The failure policy fails an index at once when its container exits with the bad-input
    code (retrying a malformed file cannot help), and does not count pods that were
    disrupted (node drain, preemption, Spot reclaim) against the retries.
    """
    labels = standard_labels(name="workstack", instance=spec.instance, component="job-per-file")
    storage = list(spec.storage)
    if spec.manifest_config_map is not None:
        storage.append(
            PodStorage(
                volumes=({"name": "manifest", "configMap": {"name": spec.manifest_config_map}},),
                mounts=({"name": "manifest", "mountPath": MANIFEST_MOUNT, "readOnly": True},),
            )
        )
    pod_spec = build_pod_spec(
        containers=[spec.container],
        storage=storage,
        service_account=spec.service_account,
        restart_policy="Never",
    )
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": spec.shards,
        "parallelism": spec.parallelism,
        "backoffLimitPerIndex": spec.retries_per_index,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailIndex",
                    "onExitCodes": {
                        "containerName": spec.container.name,
                        "operator": "In",
                        "values": [EXIT_BAD_INPUT],
                    },
                },
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
        "activeDeadlineSeconds": spec.active_deadline_seconds,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if spec.max_failed_indexes is not None:
        job_spec["maxFailedIndexes"] = spec.max_failed_indexes
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "spec": job_spec,
    }


def build_manifest_config_map(
    *, name: str, namespace: str, instance: str, keys: Sequence[str]
) -> dict[str, Any]:
    """A ConfigMap freezing the input list (see :func:`manifest_text`)."""
    text = manifest_text(keys)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": require_dns1123_label("name", name),
            "namespace": namespace,
            "labels": standard_labels(
                name="workstack", instance=instance, component="job-per-file"
            ),
        },
        "immutable": True,
        "data": {MANIFEST_FILE: text},
    }
