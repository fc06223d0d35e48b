"""A run of a workload on a deployed stack: its objects, built from the stack's contract.

``workstack submit`` (and the run components in a user's own Pulumi program) make runs with
these builders, from the same pattern builders the platform uses, so every run object is
checked like the rest. Every object carries the run's label (``workstack.dev/run``), by
which ``workstack status``, ``logs`` and ``cancel`` find it; nothing here is touched by a
later ``pulumi up``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workstack.components.manifests.contract import StackContract, WorkloadContract
from workstack.components.manifests.dask import DaskSettings, tls_storage
from workstack.components.manifests.jobs import (
    MANIFEST_FILE,
    MANIFEST_MOUNT,
    JobSettings,
    build_indexed_job,
    build_manifest_config_map,
    files_args,
)
from workstack.components.manifests.labels import run_labels, standard_labels
from workstack.components.manifests.pods import ContainerSpec, PodStorage, build_pod_spec
from workstack.components.manifests.queue import QueueSettings, QueueTarget, build_queue_workers
from workstack.components.manifests.validation import SpecError, require_dns1123_label
from workstack.sdk.files import EXIT_BAD_INPUT

__all__ = [
    "RUN_ID",
    "RunRequest",
    "build_run",
    "run_name",
]

RUN_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$")
_CONFIG_MOUNT = "/etc/workstack/run"
_EXIT_FAILED_FOR_GOOD = 2  # bad arguments or a run that cannot succeed: no retry


@dataclass(kw_only=True, frozen=True)
class RunRequest:
    """What to run: a workload of the stack, and this run's own inputs and options.

    Attributes:
        workload: The workload's name in the stack.
        run_id: The run's id (a DNS-1123 label of at most 20 characters).
        files: job-per-file: the input files listed when the run was submitted (keys
            relative to the input folder); the run is defined by them, whatever appears later.
        manifest_url: job-per-file: or a frozen list too long for a ConfigMap, on storage.
        input_url: Inputs; default ``<workload data>/inputs``.
        output_url: Outputs; default ``<workload data>/outputs`` (job-per-file, command).
        glob: job-per-file: only inputs matching this pattern.
        suffix: job-per-file: output extension replacing the input's.
        config: dask: the run config (YAML text) the client runs against the scheduler.
        force: command: run again even if the outputs are there.
        settings: Changes to the pattern's settings for this run only, by field name (e.g.
            ``{"parallelism": 8}``); checked like the stack's.
    """

    workload: str
    run_id: str
    files: tuple[str, ...] | None = None
    manifest_url: str | None = None
    input_url: str | None = None
    output_url: str | None = None
    glob: str | None = None
    suffix: str | None = None
    config: str | None = None
    force: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not RUN_ID.match(self.run_id):
            raise SpecError(
                "run_id",
                self.run_id,
                "expected 1-20 of a-z, 0-9 and '-', starting and ending with a letter or digit",
            )
        if self.files is not None and self.manifest_url is not None:
            raise SpecError("files", "(set)", "give files or manifest_url, not both")


def run_name(workload: str, run_id: str) -> str:
    """``<workload>-<run_id>``: the name of the run's main object."""
    return require_dns1123_label("run", f"{workload}-{run_id}", max_length=52)


def build_run(contract: StackContract, request: RunRequest) -> list[dict[str, Any]]:
    """Every object of one run of ``request.workload`` on the stack ``contract`` describes.

    Raises:
        SpecError: No such workload, a setting out of range, or options the pattern does not
            take; the message names the option.
    """
    workload = contract.workload(request.workload)
    builders = {
        "job-per-file": _files_run,
        "command": _command_run,
        "queue-workers": _queue_run,
        "dask": _dask_run,
        "pipeline": _pipeline_run,
    }
    return builders[workload.pattern](contract, workload, request)


def _storage(workload: WorkloadContract) -> list[PodStorage]:
    return [item.pod_storage() for item in workload.storage]


def _settings(model: type[Any], workload: WorkloadContract, request: RunRequest) -> Any:
    return model.model_validate({**workload.settings, **request.settings})


def _refuse_options(request: RunRequest, pattern: str, *names: str) -> None:
    for option in names:
        value = getattr(request, option)
        if value not in (None, False, {}):
            raise SpecError(option, value, f"a {pattern} run does not take {option}")


def _container(workload: WorkloadContract, args: Sequence[str], **extra: Any) -> ContainerSpec:
    return ContainerSpec(
        name="work",
        image=workload.image,
        pull_policy=workload.pull_policy,
        command=("workstack",),
        args=tuple(args),
        **extra,
    )


def _files_run(
    contract: StackContract, workload: WorkloadContract, request: RunRequest
) -> list[dict[str, Any]]:
    _refuse_options(request, "job-per-file", "config", "force")
    settings: JobSettings = _settings(JobSettings, workload, request)
    name = run_name(workload.name, request.run_id)
    objects: list[dict[str, Any]] = []
    config_map = None
    manifest = request.manifest_url
    if request.files is not None:
        config_map = f"{name}-inputs"
        inputs = build_manifest_config_map(
            name=config_map, namespace=contract.namespace, instance=name, keys=request.files
        )
        inputs["metadata"]["labels"].update(run_labels(request.run_id))
        objects.append(inputs)
        manifest = f"{MANIFEST_MOUNT}/{MANIFEST_FILE}"
    args = files_args(
        input_url=request.input_url or f"{workload.data_url}/inputs",
        output_url=request.output_url or f"{workload.data_url}/outputs",
        shards=settings.shards,
        function=None if workload.command else workload.entrypoint,
        command=workload.command,
        manifest=manifest,
        glob=request.glob,
        suffix=request.suffix,
    )
    objects.append(
        build_indexed_job(
            name=name,
            namespace=contract.namespace,
            instance=name,
            container=_container(workload, args),
            settings=settings,
            storage=_storage(workload),
            service_account=workload.service_account,
            manifest_config_map=config_map,
            run_id=request.run_id,
        )
    )
    return objects


def _single_job(
    *,
    name: str,
    namespace: str,
    run_id: str,
    component: str,
    container: ContainerSpec,
    settings: JobSettings,
    workload: WorkloadContract,
    volumes: Sequence[PodStorage] = (),
    fatal_exit_codes: Sequence[int] = (EXIT_BAD_INPUT, _EXIT_FAILED_FOR_GOOD),
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Job with one pod: retried after a crash, failed at once on an exit no retry fixes."""
    labels = standard_labels(
        name="workstack",
        instance=name,
        component=component,
        extra={**(extra_labels or {}), **run_labels(run_id)},
    )
    pod = build_pod_spec(
        containers=[container],
        storage=[*_storage(workload), *volumes],
        service_account=workload.service_account,
        restart_policy="Never",
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": settings.retries_per_index,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": container.name,
                            "operator": "In",
                            "values": sorted(fatal_exit_codes),
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
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def _command_run(
    contract: StackContract, workload: WorkloadContract, request: RunRequest
) -> list[dict[str, Any]]:
    _refuse_options(request, "command", "files", "manifest_url", "glob", "suffix", "config")
    if workload.command is None:
        raise SpecError("workload", workload.name, "a command workload names its command")
    settings: JobSettings = _settings(JobSettings, workload, request)
    args = ["command", "run", "--command", workload.command]
    args += ["--inputs", request.input_url or f"{workload.data_url}/inputs"]
    args += ["--outputs", request.output_url or f"{workload.data_url}/outputs"]
    if request.force:
        args.append("--force")
    container = _container(workload, args, resources=settings.resources)
    name = run_name(workload.name, request.run_id)
    return [
        _single_job(
            name=name,
            namespace=contract.namespace,
            run_id=request.run_id,
            component="command",
            container=container,
            settings=settings,
            workload=workload,
        )
    ]


def _queue_run(
    contract: StackContract, workload: WorkloadContract, request: RunRequest
) -> list[dict[str, Any]]:
    _refuse_options(
        request, "queue-workers", "files", "manifest_url", "glob", "suffix", "config", "force"
    )
    if workload.broker is None:
        raise SpecError("workload", workload.name, "the stack's contract names no broker")
    settings: QueueSettings = _settings(QueueSettings, workload, request)
    target = QueueTarget(
        name=run_name(workload.name, request.run_id),
        namespace=contract.namespace,
        instance=workload.name,
        image=workload.image,
        pull_policy=workload.pull_policy,
        broker_secret=workload.broker.secret_name,
        broker_secret_key=workload.broker.secret_key,
        broker_labels=workload.broker.client_labels,
        storage_url=request.output_url or workload.data_url,
        tasks_from=workload.entrypoint,
        queue=workload.name,
        storage=_storage(workload),
        service_account=workload.service_account,
        run_id=request.run_id,
    )
    objects = build_queue_workers(target, settings)
    if workload.keda:
        # The stack's ScaledJob starts workers while tasks wait: the run is the tasker alone.
        objects = [
            o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].endswith("-tasker")
        ]
    return objects


def _dask_run(
    contract: StackContract, workload: WorkloadContract, request: RunRequest
) -> list[dict[str, Any]]:
    _refuse_options(request, "dask", "files", "manifest_url", "glob", "suffix", "force")
    if request.config is None:
        raise SpecError("config", None, "a dask run needs its run config (the seed's YAML)")
    if workload.scheduler_address is None:
        raise SpecError("workload", workload.name, "the stack's contract names no scheduler")
    DaskSettings.model_validate(workload.settings)  # the stack's, as a check of the contract
    settings = JobSettings.model_validate(request.settings)
    name = run_name(workload.name, request.run_id)
    config_map = f"{name}-config"
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_map,
            "namespace": contract.namespace,
            "labels": standard_labels(
                name="workstack",
                instance=name,
                component="dask-client",
                extra=run_labels(request.run_id),
            ),
        },
        "immutable": True,
        "data": {"run.yaml": request.config},
    }
    args = ["dask", "run", f"{_CONFIG_MOUNT}/run.yaml", "--address", workload.scheduler_address]
    if request.output_url:
        args += ["--output", request.output_url]
    mount = PodStorage(
        volumes=({"name": "run-config", "configMap": {"name": config_map}},),
        mounts=({"name": "run-config", "mountPath": _CONFIG_MOUNT, "readOnly": True},),
    )
    # The scheduler admits only pods with its client labels, and with TLS only holders of
    # the cluster's client certificate.
    tls = (
        ()
        if workload.scheduler_tls_secret is None
        else (tls_storage(workload.scheduler_tls_secret, "client"),)
    )
    job = _single_job(
        name=name,
        namespace=contract.namespace,
        run_id=request.run_id,
        component="dask-client",
        container=_container(workload, args, resources=settings.resources),
        settings=settings,
        workload=workload,
        volumes=(mount, *tls),
        # 74: the result could not be written and was kept; a rerun would redo the work.
        fatal_exit_codes=(_EXIT_FAILED_FOR_GOOD, 74),
        extra_labels=workload.scheduler_labels,
    )
    return [config, job]


def _pipeline_run(
    contract: StackContract, workload: WorkloadContract, request: RunRequest
) -> list[dict[str, Any]]:
    _refuse_options(
        request, "pipeline", "files", "manifest_url", "glob", "suffix", "config", "force"
    )
    if workload.workflow_template is None:
        raise SpecError("workload", workload.name, "the stack's contract names no template")
    if request.settings:
        raise SpecError("settings", request.settings, "a pipeline run takes its template's")
    name = run_name(workload.name, request.run_id)
    labels = standard_labels(
        name=workload.name,
        instance=name,
        component="pipeline",
        extra=run_labels(request.run_id),
    )
    return [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": name, "namespace": contract.namespace, "labels": labels},
            "spec": {"workflowTemplateRef": {"name": workload.workflow_template}},
        }
    ]
