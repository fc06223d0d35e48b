"""One Indexed Job for any number of files: the job-per-file pattern's manifests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any, Self

from pydantic import model_validator

from workstack.components.manifests.labels import run_labels, standard_labels
from workstack.components.manifests.pods import (
    ContainerSpec,
    PodStorage,
    Resources,
    build_pod_spec,
)
from workstack.components.manifests.settings import Between, Settings, setting
from workstack.components.manifests.validation import SpecError, require_dns1123_label
from workstack.sdk.callables import CallableError, check_callable_path
from workstack.sdk.files import EXIT_BAD_INPUT, FileJob, JobError

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_MOUNT",
    "JobSettings",
    "build_indexed_job",
    "build_manifest_config_map",
    "files_args",
    "manifest_text",
]

MANIFEST_MOUNT = "/etc/workstack/manifest"
MANIFEST_FILE = "inputs.txt"
_CONFIG_MAP_LIMIT = 1_000_000  # the API server refuses ConfigMaps over 1 MiB; keep a margin
_MAX_COMPLETIONS = 100_000  # Kubernetes' limit for Indexed Jobs with per-index backoff


class JobSettings(Settings):
    """How a job-per-file run is split, retried and bounded: one Indexed Job for any input."""

    shards: Annotated[int, Between(1, _MAX_COMPLETIONS)] = setting(10, "jobShards")
    """job-per-file. Indexes (pods over the Job's life) the input files are split over."""
    parallelism: Annotated[int, Between(1, _MAX_COMPLETIONS)] = setting(4, "jobParallelism")
    """job-per-file. Pods running at once."""
    retries_per_index: Annotated[int, Between(0, 100)] = setting(2, "jobRetriesPerIndex")
    """job-per-file. Retries of a failing index (never for bad input or a node disruption)."""
    max_failed_indexes: Annotated[int | None, Between(0, _MAX_COMPLETIONS, optional=True)] = (
        setting(None)
    )
    """Fail the whole Job once this many indexes failed; None runs every index."""
    ttl_seconds_after_finished: Annotated[int, Between(0)] = setting(86_400, "jobTtlSeconds")
    """job-per-file. Seconds a finished Job (and its pods, for their logs) is kept."""
    active_deadline_seconds: Annotated[int, Between(1)] = setting(6 * 3600, "jobDeadlineSeconds")
    """job-per-file. Seconds after which a running Job is failed."""
    resources: Resources = setting(Resources(), "job")
    """job-per-file. Each pod's CPU and memory."""

    @model_validator(mode="after")
    def _failed_indexes_within_shards(self) -> Self:
        if self.max_failed_indexes is not None and self.max_failed_indexes > self.shards:
            allowed = f"must not exceed {{shards}} ({self.shards})"
            raise self.refuse("max_failed_indexes", self.max_failed_indexes, allowed)
        return self


def files_args(
    *,
    input_url: str,
    output_url: str,
    shards: int,
    function: str | None = None,
    command: str | None = None,
    manifest: str | None = None,
    glob: str | None = None,
    suffix: str | None = None,
) -> tuple[str, ...]:
    """The arguments of ``workstack files run`` in each pod of the Job.

    The pods' own checks (``workstack.sdk.files.FileJob``: the command's placeholders, the
    suffix, the locations; the function's form) run here too, so a Job that would only fail
    in its pods is refused before anything is created.

    Raises:
        SpecError: Neither or both of ``function`` and ``command``, or what the pods refuse.
    """
    if (function is None) == (command is None):
        raise SpecError("function", function, "give exactly one of function or command")
    if function is not None:
        try:
            check_callable_path("function", function)
        except CallableError:
            raise SpecError(
                "function", function, "expected module:function such as 'csv_clean:process'"
            ) from None
    try:
        # The pods' checks of the command and suffix (the locations are the caller's to
        # check: they name the options the user gave).
        FileJob(
            input_url="/in",
            output_url="/out",
            function=function,
            command=command,
            pattern=glob,
            suffix=suffix,
        )
    except JobError as error:
        message = str(error)
        field = "suffix" if message.startswith("suffix") else "command"
        value = suffix if field == "suffix" else command
        # The runtime's message already names the value; keep what it says is allowed.
        allowed = message.split(" is not allowed; ", 1)[-1]
        raise SpecError(field, value, allowed) from None
    args = ["files", "run", "--input", input_url, "--output", output_url]
    args += ["--shards", str(shards)]
    args += ["--function", function] if function else ["--command", str(command)]
    for flag, value in (("--manifest", manifest), ("--glob", glob), ("--suffix", suffix)):
        if value is not None:
            args += [flag, value]
    return tuple(args)


def manifest_text(keys: Sequence[str]) -> str:
    """The frozen input list as a ConfigMap holds it: sorted keys, one per line.

    Raises:
        SpecError: The list is empty, or too large for a ConfigMap (about 1 MB): use a
            manifest file on the shared storage instead (``workstack files manifest``).
    """
    if not keys:
        raise SpecError("files", [], "expected at least one input file")
    for key in keys:
        parts = key.split("/")
        if not key or key.startswith("/") or ".." in parts or "" in parts or "\\" in key:
            raise SpecError(
                "files",
                key,
                "expected keys relative to the input folder, such as 'a/b.csv' (no '..', no "
                "leading '/', no empty part)",
            )
    text = "".join(f"{key}\n" for key in sorted(keys))
    if len(text.encode()) > _CONFIG_MAP_LIMIT:
        raise SpecError(
            "files",
            f"{len(keys)} files ({len(text.encode())} bytes)",
            "a ConfigMap holds at most about 1 MB; write the list to the shared storage with "
            "`workstack files manifest` and pass manifest_url instead",
        )
    return text


def build_indexed_job(
    *,
    name: str,
    namespace: str,
    instance: str,
    container: ContainerSpec,
    settings: JobSettings,
    storage: Sequence[PodStorage] = (),
    service_account: str | None = None,
    manifest_config_map: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The Job: Indexed completions, per-index retries and a pod failure policy.

    The failure policy fails an index at once when its container exits with the bad-input
    code (retrying a malformed file cannot help), and does not count pods that were
    disrupted (node drain, preemption, Spot reclaim) against the retries.

    Args:
        name: Job name.
        namespace: Its namespace.
        instance: Owning component's (or run's) name, for labels.
        container: The workload container; its exit code 65 means bad input. Its resources
            are ``settings.resources``.
        settings: Split, retries, bounds and resources.
        storage: Storages every pod mounts.
        service_account: Service account of the pods.
        manifest_config_map: ConfigMap holding a frozen input list, mounted at
            :data:`MANIFEST_MOUNT`; None when pods list their inputs themselves.
        run_id: The run the Job belongs to (a label ``workstack status`` finds it by).
    """
    require_dns1123_label("name", name, max_length=52)  # room for pod name suffixes
    require_dns1123_label("namespace", namespace)
    labels = standard_labels(
        name="workstack", instance=instance, component="job-per-file", extra=run_labels(run_id)
    )
    mounts = list(storage)
    if manifest_config_map is not None:
        mounts.append(
            PodStorage(
                volumes=({"name": "manifest", "configMap": {"name": manifest_config_map}},),
                mounts=({"name": "manifest", "mountPath": MANIFEST_MOUNT, "readOnly": True},),
            )
        )
    pod_spec = build_pod_spec(
        containers=[replace(container, resources=settings.resources)],
        storage=mounts,
        service_account=service_account,
        restart_policy="Never",
    )
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": settings.shards,
        "parallelism": settings.parallelism,
        "backoffLimitPerIndex": settings.retries_per_index,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailIndex",
                    "onExitCodes": {
                        "containerName": container.name,
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
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "activeDeadlineSeconds": settings.active_deadline_seconds,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if settings.max_failed_indexes is not None:
        job_spec["maxFailedIndexes"] = settings.max_failed_indexes
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
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
