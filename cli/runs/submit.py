"""Submitting a run of a workload on a deployed stack, and following it to its end.

:func:`submit` checks every option against the workload's pattern, pushes ``--from`` inputs,
freezes the input list of a job-per-file run at submit time (a ConfigMap when it fits, a
manifest file on the storage when it does not), builds the run's objects with
:func:`workstack.components.manifests.runs.build_run`, checks them against the Kubernetes
schemas and creates them. If the workload's folder changed since the stack was deployed (its
image tag differs from the one the folder gives now), it says so and builds the image first
(``build``) or refuses with the exact commands. :func:`follow` watches the run until it ends.
"""

from __future__ import annotations

import fnmatch
import secrets
import string
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from workstack.components.manifests.contract import StackContract, WorkloadContract
from workstack.components.manifests.jobs import manifest_text
from workstack.components.manifests.labels import RUN_LABEL
from workstack.components.manifests.runs import RunRequest, build_run, run_name
from workstack.components.manifests.validation import SpecError, parse_quantity
from workstack.runs.data import relative_to_root, storage_root
from workstack.runs.errors import ConflictError, RunsError, UsageError
from workstack.runs.kube import Kube
from workstack.runs.status import LogTail, RunStatus, collect, summarize
from workstack.runs.transfer import Progress, RemoteFolder, local_entries

__all__ = [
    "OPTIONS",
    "Submission",
    "SubmitOptions",
    "check_options",
    "follow",
    "image_drift",
    "new_run_id",
    "submit",
]

_ALL = frozenset({"job-per-file", "command", "queue-workers", "dask"})
OPTIONS: dict[str, tuple[str, frozenset[str]]] = {
    "input": ("--input", frozenset({"job-per-file", "command"})),
    "from_local": ("--from", frozenset({"job-per-file", "command"})),
    "output": ("--output", _ALL),
    "glob": ("--glob", frozenset({"job-per-file"})),
    "suffix": ("--suffix", frozenset({"job-per-file"})),
    "shards": ("--shards", frozenset({"job-per-file"})),
    "parallelism": ("--parallelism", frozenset({"job-per-file"})),
    "workers": ("--workers", frozenset({"queue-workers"})),
    "cpu": ("--cpu", _ALL),
    "memory": ("--memory", _ALL),
    "config": ("--config", frozenset({"dask"})),
    "force": ("--force", frozenset({"command"})),
    "settings": ("--setting", _ALL),
}
"""Each run option: its flag and the patterns that take it."""


@dataclass(kw_only=True, frozen=True)
class SubmitOptions:
    """The options of one submission (None: the workload's default as the stack set it)."""

    run_id: str | None = None
    input: str | None = None
    from_local: Path | None = None
    output: str | None = None
    glob: str | None = None
    suffix: str | None = None
    shards: int | None = None
    parallelism: int | None = None
    workers: int | None = None
    cpu: str | None = None
    memory: str | None = None
    config: Path | None = None
    force: bool = False
    settings: tuple[str, ...] = ()


@dataclass
class Submission:
    """A run that was created.

    Attributes:
        run_id: Its id.
        workload: The workload (with the image the run uses).
        objects: What was created.
        files: job-per-file: the frozen input list's length.
        input_url: Where its inputs are.
        output_url: Where its outputs go.
    """

    run_id: str
    workload: WorkloadContract
    objects: list[dict[str, Any]]
    files: int | None = None
    input_url: str | None = None
    output_url: str | None = None
    notes: list[str] = field(default_factory=list)


def new_run_id(now: datetime | None = None) -> str:
    """A short id that sorts by time: ``YYMMDD-HHMMSS-xx`` (16 characters)."""
    moment = now or datetime.now(UTC)
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(2))
    return f"{moment:%y%m%d-%H%M%S}-{suffix}"


def check_options(workload: WorkloadContract, options: SubmitOptions) -> None:
    """Refuse an option the workload's pattern does not take, naming what it takes.

    Raises:
        UsageError: The option, its value, the workload's pattern and the options it takes.
    """
    for attribute, (flag, patterns) in OPTIONS.items():
        value = getattr(options, attribute)
        if value in (None, False, ()) or workload.pattern in patterns:
            continue
        takes = [flag for flag, patterns in OPTIONS.values() if workload.pattern in patterns]
        shown = " ".join(value) if isinstance(value, tuple) else value
        raise UsageError(
            f"option {flag} {shown!r} is not allowed for {workload.name} (a {workload.pattern} "
            f"workload); it takes: {', '.join(takes) or 'no run options'}"
        )


def _parse_settings(items: tuple[str, ...]) -> dict[str, Any]:
    """``--setting a.b=1`` -> ``{"a": {"b": 1}}`` (values read as YAML scalars)."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"--setting {item!r} is not allowed; expected KEY=VALUE with a setting's field "
                "name, e.g. --setting retries_per_index=3 or --setting resources.cpu_limit=2"
            )
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = result
        *parents, last = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return result


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resources(current: dict[str, Any], cpu: str | None, memory: str | None) -> dict[str, Any]:
    resources = dict(current)
    for name, value in (("cpu", cpu), ("memory", memory)):
        if value is not None and parse_quantity(value) is None:
            raise UsageError(
                f"--{name} {value!r} is not allowed; expected a Kubernetes quantity such as "
                + ("500m or 2" if name == "cpu" else "512Mi or 2Gi")
            )
    if cpu is not None:
        resources["cpu"] = cpu
        limit = resources.get("cpu_limit")
        if limit is None or (parse_quantity(limit) or Decimal(0)) < (
            parse_quantity(cpu) or Decimal(0)
        ):
            resources["cpu_limit"] = cpu
    if memory is not None:
        resources["memory"] = memory
        limit = resources.get("memory_limit")
        if limit is not None and (parse_quantity(limit) or 0) < (parse_quantity(memory) or 0):
            resources["memory_limit"] = memory
    return resources


def run_settings(workload: WorkloadContract, options: SubmitOptions) -> dict[str, Any]:
    """The settings the run changes, merged over the stack's (builders validate them)."""
    stack = dict(workload.settings)
    change: dict[str, Any] = {}
    if options.shards is not None:
        change["shards"] = options.shards
    if options.parallelism is not None:
        change["parallelism"] = options.parallelism
    if options.workers is not None:
        change["workers"] = options.workers
    key = "worker_resources" if workload.pattern == "queue-workers" else "resources"
    if options.cpu is not None or options.memory is not None:
        base = stack.get(key, {}) if workload.pattern != "dask" else {}
        change[key] = _resources(base, options.cpu, options.memory)
    change = _merge(change, _parse_settings(options.settings))
    if not change:
        return {}
    if workload.pattern == "dask":
        return change  # the client Job's settings start from the defaults, not the cluster's
    return {
        name: _merge(stack.get(name, {}), value) if isinstance(value, dict) else value
        for name, value in change.items()
    }


# -- the image ----------------------------------------------------------------------------


def _deployed_tag(image: str) -> str:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def image_drift(workload: WorkloadContract, project_root: Path) -> tuple[str, str] | None:
    """``(deployed tag, tag of the folder now)`` if they differ, else None.

    None too when the contract does not say how the image was built, or the folder is not
    here (a user without the project's workloads cannot have changed them).
    """
    source = workload.source
    if source is None:
        return None
    folder = Path(source.folder)
    folder = folder if folder.is_absolute() else project_root / folder
    if not (folder / "workload.yaml").is_file():
        return None
    from workstack.images import ContextError, plan_context
    from workstack.sdk.workload import WorkloadError

    try:
        plan = plan_context(
            folder, base_image=source.base_image, platform=source.platform, extras=source.extras
        )
    except (ContextError, WorkloadError) as error:
        raise UsageError(f"workload folder {folder}: {error}") from None
    deployed = _deployed_tag(workload.image) or source.tag
    return None if plan.tag == deployed else (deployed, plan.tag)


def rebuild_image(workload: WorkloadContract, project_root: Path) -> str:
    """Build the workload's image from its folder as the stack would, and push or load it.

    Without a registry (pull policy ``Never``, minikube) it is built into the engine the stack
    loads images into (``dockerHost``); with one it is pushed there with your docker login.

    Returns:
        The reference the run's pods use.

    Raises:
        RunsError: Docker failed (its message included).
    """
    from workstack.images import Docker, DockerError, build_image, plan_context

    source = workload.source
    assert source is not None, "image_drift found a source"
    folder = Path(source.folder)
    folder = folder if folder.is_absolute() else project_root / folder
    repository = workload.image.split("@", 1)[0].rsplit(":", 1)[0]
    env = {"DOCKER_HOST": source.docker_host} if source.docker_host else None
    try:
        docker = Docker.find(env)
        plan = plan_context(
            folder, base_image=source.base_image, platform=source.platform, extras=source.extras
        )
        with tempfile.TemporaryDirectory(prefix="workstack-context-") as scratch:
            built = build_image(
                plan.write(Path(scratch) / "context"), docker, repository=repository
            )
        if workload.pull_policy == "Never":
            return built.ref
        docker.check(["push", built.ref])
        found = docker.inspect_image(built.ref) or {}
        digests = [d for d in found.get("RepoDigests") or [] if d.startswith(repository + "@")]
        return f"{built.ref}@{digests[0].split('@', 1)[1]}" if digests else built.ref
    except DockerError as error:
        raise RunsError(f"building the image of {workload.name} failed: {error}") from None


def _image(
    contract: StackContract,
    workload: WorkloadContract,
    project_root: Path,
    *,
    build: bool,
    use_deployed: bool,
    notes: list[str],
) -> WorkloadContract:
    drift = image_drift(workload, project_root)
    if drift is None:
        return workload
    deployed, current = drift
    said = (
        f"workload {workload.name} changed since stack {contract.stack} was deployed (its image "
        f"is tagged {deployed}; the folder now gives {current})"
    )
    if use_deployed:
        notes.append(f"{said}; running the deployed image as asked")
        return workload
    if not build:
        how = (
            "loads it into minikube's engine" if workload.pull_policy == "Never" else ("pushes it")
        )
        raise UsageError(
            f"{said}. Deploy it first: `pulumi up -s {contract.stack}` (builds the image and "
            f"{how}; it starts no run), or add --build to build it now, or "
            "--use-deployed-image to run the code as deployed"
        )
    notes.append(f"{said}; building it")
    return workload.model_copy(update={"image": rebuild_image(workload, project_root)})


# -- submit -------------------------------------------------------------------------------


def _location(contract: StackContract, given: str | None) -> str | None:
    if given is None:
        return None
    relative = relative_to_root(contract, given)
    root = storage_root(contract)
    return f"{root}/{relative}" if relative else root


def _frozen_keys(keys: list[str], glob: str | None, input_url: str) -> list[str]:
    selected = sorted(k for k in keys if glob is None or fnmatch.fnmatchcase(k, glob))
    if not selected:
        raise UsageError(
            f"no input files under {input_url}"
            + (f" match --glob {glob!r}" if glob else "")
            + ": push some with `workstack data push LOCAL REMOTE` or give --from LOCAL"
        )
    return selected


def submit(
    contract: StackContract,
    kube: Kube,
    workload_name: str,
    options: SubmitOptions,
    *,
    folder: Callable[[], Any],
    project_root: Path,
    build: bool = False,
    use_deployed_image: bool = False,
    progress: Progress | None = None,
) -> Submission:
    """Create a run of ``workload_name`` on the stack; see the module's docstring.

    Args:
        contract: The stack's contract.
        kube: A client for its cluster.
        workload_name: The workload.
        options: The run's options.
        folder: Opens the stack's storage (a context manager yielding a RemoteFolder), when
            inputs must be pushed or listed.
        project_root: The project whose ``workloads/`` the stack was deployed from.
        build: Build the image first if the folder changed since the deploy.
        use_deployed_image: Run the deployed image even if the folder changed.
        progress: Where a push reports its bytes.

    Raises:
        UsageError: Any bad input (exit 2), before anything is created.
        ConflictError: Never: a taken run id is a UsageError.
        RunsError: The cluster refused an object (what was created is removed again).
    """
    try:
        workload = contract.workload(workload_name)
    except SpecError as error:
        raise UsageError(str(error)) from None
    check_options(workload, options)
    run_id = options.run_id or new_run_id()
    try:
        RunRequest(workload=workload.name, run_id=run_id)
        run_name(workload.name, run_id)
    except SpecError as error:
        raise UsageError(f"--run-id {run_id!r}: {error.allowed}") from None
    if options.from_local is not None and not options.from_local.exists():
        raise UsageError(f"--from {str(options.from_local)!r}: no such folder or file")
    config = None
    if options.config is not None:
        if not options.config.is_file():
            raise UsageError(f"--config {str(options.config)!r}: no such file")
        config = options.config.read_text()
    settings = run_settings(workload, options)
    notes: list[str] = []
    input_url = _location(contract, options.input) or (
        f"{workload.data_url}/inputs" if workload.pattern in ("job-per-file", "command") else None
    )
    output_url = _location(contract, options.output)
    # Everything the builders check, checked before anything is pushed or created.
    request = RunRequest(
        workload=workload.name,
        run_id=run_id,
        files=("placeholder",) if workload.pattern == "job-per-file" else None,
        input_url=input_url,
        output_url=output_url,
        glob=options.glob,
        suffix=options.suffix,
        config=config,
        force=options.force,
        settings=settings,
    )
    _build(contract, request)
    _check_locations(workload, input_url, output_url)
    workload = _image(
        contract, workload, project_root, build=build, use_deployed=use_deployed_image, notes=notes
    )
    contract = contract.model_copy(
        update={"workloads": {**contract.workloads, workload.name: workload}}
    )

    files: list[str] | None = None
    manifest_url = None
    if options.from_local is not None or workload.pattern == "job-per-file":
        with folder() as remote:
            input_rel = relative_to_root(contract, str(input_url))
            if options.from_local is not None:
                result = remote.push(options.from_local, input_rel, progress)
                notes.append(f"pushed {options.from_local} to {input_url}: {result.line()}")
            if workload.pattern == "job-per-file":
                if options.from_local is not None:
                    _, entries = local_entries(options.from_local)
                    keys = [e.path for e in entries]
                else:
                    keys = [e.path for e in remote.list(input_rel)]
                files = _frozen_keys(keys, options.glob, str(input_url))
                manifest_url = _manifest_if_large(contract, workload, run_id, files, remote)
    request = replace(
        request,
        files=None if manifest_url else (tuple(files) if files is not None else None),
        manifest_url=manifest_url,
    )
    objects = _build(contract, request)
    _check_schemas(objects)
    _create(kube, objects, run_id)
    return Submission(
        run_id=run_id,
        workload=workload,
        objects=objects,
        files=len(files) if files is not None else None,
        input_url=input_url,
        output_url=output_url or _default_output(workload),
        notes=notes,
    )


def _default_output(workload: WorkloadContract) -> str:
    return (
        f"{workload.data_url}/outputs"
        if workload.pattern != "queue-workers"
        else (workload.data_url)
    )


def _check_locations(workload: WorkloadContract, input_url: str | None, output: str | None) -> None:
    if input_url is None or workload.pattern != "job-per-file":
        return
    from workstack.sdk.files import JobError, check_locations

    try:
        check_locations(input_url, output or f"{workload.data_url}/outputs")
    except (JobError, ValueError) as error:
        raise UsageError(f"--output: {error}") from None


def _build(contract: StackContract, request: RunRequest) -> list[dict[str, Any]]:
    from pydantic import ValidationError

    try:
        return build_run(contract, request)
    except ValidationError as error:
        # A settings model nested in the builder's validation: its SpecError says it all.
        causes = [e.get("ctx", {}).get("error") for e in error.errors(include_url=False)]
        found = [cause for cause in causes if isinstance(cause, SpecError)]
        raise UsageError(f"--setting: {found[0] if found else error}") from None
    except SpecError as error:
        flag = OPTIONS.get(error.field.split(".")[0], ("", frozenset()))[0]
        raise UsageError(f"{flag + ': ' if flag else ''}{error}") from None


def _manifest_if_large(
    contract: StackContract,
    workload: WorkloadContract,
    run_id: str,
    files: list[str],
    remote: RemoteFolder,
) -> str | None:
    """None if the list fits a ConfigMap; else the URL of the list written to the storage."""
    try:
        manifest_text(files)
        return None
    except SpecError:
        pass
    data_rel = relative_to_root(contract, workload.data_url)
    target = f"{data_rel}/runs/{run_id}" if data_rel else f"runs/{run_id}"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "inputs.txt"
        path.write_text("".join(f"{key}\n" for key in files))
        remote.push(path, target)
    return f"{storage_root(contract)}/{target}/inputs.txt"


def _check_schemas(objects: list[dict[str, Any]]) -> None:
    from workstack.schemas import CrdCatalog, default_crd_dirs, validate_objects

    check = validate_objects(objects, CrdCatalog(default_crd_dirs()))
    if check.errors:
        raise RunsError(
            "the run's objects are not valid for the Kubernetes schemas (a workstack bug; "
            "nothing was created):\n  " + "\n  ".join(check.errors)
        )


def _create(kube: Kube, objects: list[dict[str, Any]], run_id: str) -> None:
    created: list[dict[str, Any]] = []
    try:
        for obj in sorted(objects, key=lambda o: o["kind"] != "ConfigMap"):
            kube.create(obj)
            created.append(obj)
    except ConflictError:
        _remove(kube, created)
        raise UsageError(
            f"--run-id {run_id!r} is taken: a run with that id exists in namespace "
            f"{kube.namespace}; give another id, or none for a new one"
        ) from None
    except RunsError:
        _remove(kube, created)
        raise


def _remove(kube: Kube, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        try:
            kube.delete(obj["kind"], obj["metadata"]["name"])
        except RunsError:
            continue


# -- follow -------------------------------------------------------------------------------


def follow(
    kube: Kube,
    contract: StackContract,
    run_id: str,
    *,
    on_status: Callable[[RunStatus], None],
    logs: LogTail | None = None,
    watch_seconds: int = 30,
    give_up_stuck_after: float | None = None,
) -> RunStatus:
    """Watch the run until it succeeds or fails; ``on_status`` gets each new status.

    Raises:
        RunsError: The run disappeared (cancelled), or was stuck longer than
            ``give_up_stuck_after`` seconds (the problems are in the message).
    """
    kind = (
        "Workflow"
        if any(o.get("kind") == "Workflow" for o in collect(kube, run_id).workflows)
        else "Job"
    )
    last: list[str] | None = None
    stuck_since: float | None = None
    while True:
        objects = collect(kube, run_id)
        if objects.empty:
            raise RunsError(
                f"run {run_id} has no objects left: it was cancelled or is past its TTL"
            )
        status = summarize(objects, contract, logs=logs)
        shown = [
            status.state,
            *status.progress,
            *(line for p in status.problems for line in p.lines()),
        ]
        if shown != last:
            on_status(status)
            last = shown
        if status.finished:
            return status
        stuck_since = (stuck_since or time.monotonic()) if status.stuck else None
        if (
            give_up_stuck_after is not None
            and stuck_since is not None
            and time.monotonic() - stuck_since > give_up_stuck_after
        ):
            problems = "; ".join(" ".join(p.lines()) for p in status.problems)
            raise RunsError(f"run {run_id} was stuck for {give_up_stuck_after:g} s: {problems}")
        _wait_for_change(kube, kind, run_id, watch_seconds)


def _wait_for_change(kube: Kube, kind: str, run_id: str, seconds: int) -> None:
    """Return at the next change of the run's main objects (or after ``seconds``)."""
    events: Iterator[dict[str, Any]] = kube.watch(
        kind, selector=f"{RUN_LABEL}={run_id}", timeout_seconds=seconds
    )
    for event in events:
        if event.get("type") in ("MODIFIED", "DELETED"):
            return
