"""A run's progress in its pattern's terms, and why it is stuck, in the user's terms.

:func:`collect` reads a run's objects by its ``workstack.dev/run`` label (Jobs, a Workflow,
their pods, the events about them, the claims they mount); :func:`summarize` turns them into
a :class:`RunStatus` without touching the cluster: files done, failed and with bad input for
job-per-file (from the Indexed Job's ``completedIndexes`` and ``failedIndexes`` over the frozen
input list), tasks published, done and dead-lettered for queue workers (from the tasker's
log), Argo steps for pipelines; and each :class:`Problem` that keeps it from progressing:
requests that do not fit the node type (naming the stack keys to change), an image that
cannot be pulled, a claim not bound, a quota, a crash with its last log lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from workstack.components.manifests.contract import StackContract
from workstack.components.manifests.jobs import MANIFEST_FILE
from workstack.components.manifests.labels import RUN_LABEL
from workstack.runs.kube import Kube
from workstack.sdk.commands import EXIT_BAD_INPUT

__all__ = [
    "LogTail",
    "Problem",
    "RunObjects",
    "RunStatus",
    "collect",
    "list_runs",
    "log_container",
    "no_logs",
    "parse_indexes",
    "pod_problems",
    "summarize",
]

COMPONENT = "app.kubernetes.io/component"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
LogTail = Callable[[str, str | None, bool], list[str]]
"""Last log lines of a pod: (pod name, container or None for its only one, of the previous
container) -> lines."""

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
"""The annotation naming a pod's main container; Argo sets it to ``main`` on step pods
(workflow/controller/workflowpod.go). The API server ignores it: the log request must name
the container of a pod that has several, or it is refused (400)."""


def no_logs(_pod: str, _container: str | None, _previous: bool) -> list[str]:
    """A :data:`LogTail` that reads nothing (where the log would cost a request per pod)."""
    return []


def log_container(pod: dict[str, Any]) -> str | None:
    """The container whose log ``workstack logs`` shows.

    The pod's default container, its only one (None: the API server picks it), ``main`` (an
    Argo step's work), else the first.
    """
    annotated = (pod.get("metadata", {}).get("annotations") or {}).get(DEFAULT_CONTAINER)
    if annotated:
        return str(annotated)
    names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    if len(names) <= 1:
        return None
    return "main" if "main" in names else names[0]


# Stack keys of each component's requests, and the run option that overrides them.
_RESOURCE_KEYS = {
    "job-per-file": ("jobCpu", "jobMemory", "--cpu/--memory"),
    "command": ("jobCpu", "jobMemory", "--cpu/--memory"),
    "queue-worker": ("queueWorkerCpu", "queueWorkerMemory", "--cpu/--memory"),
    "queue-tasker": ("queueTaskerCpu", "queueTaskerMemory", "--setting"),
    "dask-client": (None, None, "--cpu/--memory"),
}
_NODE_KEYS = {
    "minikube": "minikubeCpus/minikubeMemory (and `minikube start --cpus --memory`)",
    "gke": "gkeMachineType (a larger machine) or nodeMax (more nodes)",
    "eks": "eksInstanceTypes (a larger instance) or nodeMax (more nodes)",
}
_IMAGE_WAITING = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")


@dataclass(frozen=True)
class Problem:
    """Something that keeps a run from progressing.

    Attributes:
        subject: What is stuck, e.g. ``pod csv-clean-r1-0-x2z`` or ``claim shared-data``.
        reason: Why, in the user's terms.
        fix: What to change.
        logs: The last log lines that show it (a crash).
    """

    subject: str
    reason: str
    fix: str = ""
    logs: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The problem as lines to print."""
        text = [f"{self.subject}: {self.reason}"]
        if self.fix:
            text.append(f"  fix: {self.fix}")
        text += [f"  | {line}" for line in self.logs]
        return text


@dataclass
class RunObjects:
    """Everything the cluster holds about one run."""

    run_id: str
    jobs: list[dict[str, Any]] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    config_maps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether the run has no object left (never made, cancelled, or past its TTL)."""
        return not (self.jobs or self.workflows or self.pods or self.config_maps)


@dataclass
class RunStatus:
    """A run's state, progress and problems.

    Attributes:
        run_id: The run.
        workload: Its workload, when known from its objects.
        pattern: ``job-per-file``, ``queue-workers``, ``dask``, ``pipeline`` or ``command``.
        state: ``pending``, ``running``, ``succeeded`` or ``failed``.
        progress: Lines of progress in the pattern's terms.
        problems: What keeps it from progressing (or made it fail).
    """

    run_id: str
    workload: str = ""
    pattern: str = ""
    state: str = "pending"
    progress: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Succeeded or failed."""
        return self.state in ("succeeded", "failed")

    @property
    def stuck(self) -> bool:
        """Not finished, with something blocking it."""
        return not self.finished and bool(self.problems)


def _name(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def collect(kube: Kube, run_id: str) -> RunObjects:
    """Read every object of ``run_id`` (and the events and claims about its pods)."""
    selector = f"{RUN_LABEL}={run_id}"
    found = RunObjects(run_id=run_id)
    found.jobs = kube.list("Job", selector=selector)
    found.config_maps = kube.list("ConfigMap", selector=selector)
    try:
        found.workflows = kube.list("Workflow", selector=selector)
    except Exception:  # no Argo CRD on this cluster: there is no pipeline run either
        found.workflows = []
    found.pods = kube.list("Pod", selector=selector)
    for workflow in found.workflows:
        found.pods += kube.list("Pod", selector=f"{WORKFLOW_LABEL}={_name(workflow)}")
    names = {_name(o) for o in [*found.jobs, *found.pods, *found.workflows]}
    claims = {
        volume["persistentVolumeClaim"]["claimName"]
        for pod in found.pods
        for volume in pod.get("spec", {}).get("volumes", [])
        if "persistentVolumeClaim" in volume
    }
    if names:
        found.events = [
            event
            for event in kube.list("Event")
            if event.get("involvedObject", {}).get("name") in names | claims
        ]
    found.claims = [claim for claim in kube.list("PersistentVolumeClaim") if _name(claim) in claims]
    return found


def parse_indexes(text: str | None) -> set[int]:
    """``"0-2,5"`` (an Indexed Job's completed or failed indexes) -> ``{0, 1, 2, 5}``."""
    indexes: set[int] = set()
    for part in filter(None, (text or "").split(",")):
        low, _, high = part.partition("-")
        indexes.update(range(int(low), int(high or low) + 1))
    return indexes


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _job_state(job: dict[str, Any]) -> str:
    if _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        return "succeeded"
    if _condition(job, "Failed") or _condition(job, "FailureTarget"):
        return "failed"
    status = job.get("status", {})
    return "running" if status.get("active") or status.get("startTime") else "pending"


def summarize(
    objects: RunObjects, contract: StackContract, *, logs: LogTail | None = None
) -> RunStatus:
    """The run's state, progress and problems, from its objects alone (plus pod log tails)."""
    status = RunStatus(run_id=objects.run_id)
    tail = logs or no_logs
    if objects.workflows:
        _pipeline(status, objects.workflows[0])
    elif objects.jobs:
        _jobs(status, objects, tail)
    if objects.jobs or objects.workflows:
        name = _name((objects.workflows or objects.jobs)[0])
        suffix = f"-{objects.run_id}"
        base = name.rsplit("-tasker", 1)[0].rsplit("-workers", 1)[0]
        status.workload = base[: -len(suffix)] if base.endswith(suffix) else base
    if not status.finished or status.state == "failed":
        for job in objects.jobs:
            status.problems += _job_problems(job, objects.events)
        for pod in objects.pods:
            status.problems += pod_problems(
                pod, objects.events, objects.claims, contract, tail, pattern=status.pattern
            )
    return status


def _jobs(status: RunStatus, objects: RunObjects, tail: LogTail) -> None:
    components = {_labels(job).get(COMPONENT, "") for job in objects.jobs}
    states = [_job_state(job) for job in objects.jobs]
    if "failed" in states:
        status.state = "failed"
    elif all(state == "succeeded" for state in states):
        status.state = "succeeded"
    elif "running" in states:
        status.state = "running"
    if "job-per-file" in components:
        status.pattern = "job-per-file"
        _files_progress(status, objects)
    elif components & {"queue-tasker", "queue-worker"}:
        status.pattern = "queue-workers"
        _queue_progress(status, objects, tail)
    elif "dask-client" in components:
        status.pattern = "dask"
        _last_line_progress(status, objects, tail, "the client")
    else:
        status.pattern = "command"
        _last_line_progress(status, objects, tail, "the command")


def _files_progress(status: RunStatus, objects: RunObjects) -> None:
    job = next(j for j in objects.jobs if _labels(j).get(COMPONENT) == "job-per-file")
    shards = int(job.get("spec", {}).get("completions") or 1)
    keys: list[str] | None = None
    for config_map in objects.config_maps:
        text = config_map.get("data", {}).get(MANIFEST_FILE)
        if text is not None:
            keys = sorted(line for line in text.splitlines() if line.strip())
    job_status = job.get("status", {})
    completed = parse_indexes(job_status.get("completedIndexes"))
    failed = parse_indexes(job_status.get("failedIndexes"))
    bad = {index for index in failed if _index_exit(objects.pods, index) == EXIT_BAD_INPUT}

    def files(indexes: Iterable[int]) -> int:
        return sum(len(keys[i::shards]) for i in indexes) if keys is not None else 0

    active = int(job_status.get("active") or 0)
    if keys is None:
        status.progress.append(
            f"indexes: {len(completed)} of {shards} done, {len(failed - bad)} failed, "
            f"{len(bad)} with bad input, {active} running (inputs listed in a manifest file)"
        )
        return
    left = len(keys) - files(completed) - files(failed)
    status.progress.append(
        f"files: {files(completed)} of {len(keys)} done, {files(failed - bad)} failed, "
        f"{files(bad)} in shards with bad input, {left} to go "
        f"({len(completed)}/{shards} indexes done, {active} running)"
    )
    if bad:
        status.progress.append(
            f"bad input in index(es) {_ranges(bad)}: `workstack logs {objects.run_id} --index N` "
            "names the files"
        )


def _ranges(indexes: set[int]) -> str:
    return ",".join(str(i) for i in sorted(indexes))


def _index_exit(pods: list[dict[str, Any]], index: int) -> int | None:
    codes = []
    for pod in pods:
        if _labels(pod).get(INDEX_LABEL) == str(index):
            for container in pod.get("status", {}).get("containerStatuses") or []:
                terminated = container.get("state", {}).get("terminated")
                if terminated is not None:
                    codes.append(int(terminated.get("exitCode", 0)))
    return codes[-1] if codes else None


_STAGE = re.compile(r"stage (\S+): published (\d+)/(\d+), done (\d+), failed (\d+)")
_FINAL = re.compile(r"run \S+ (succeeded|failed): (\d+) done, (\d+) failed")


def _queue_progress(status: RunStatus, objects: RunObjects, tail: LogTail) -> None:
    taskers = [p for p in objects.pods if _labels(p).get(COMPONENT) == "queue-tasker"]
    lines = tail(_name(taskers[-1]), log_container(taskers[-1]), False) if taskers else []
    final = [m for m in map(_FINAL.search, lines) if m]
    stages = [m for m in map(_STAGE.search, lines) if m]
    if final:
        verdict, done, failed = final[-1].groups()
        status.progress.append(f"tasks: {done} done, {failed} dead-lettered (run {verdict})")
    elif stages:
        stage, published, total, done, failed = stages[-1].groups()
        status.progress.append(
            f"tasks of stage {stage}: {published} of {total} published, {done} done, "
            f"{failed} dead-lettered"
        )
    else:
        status.progress.append("tasks: the tasker has not reported yet")
    workers = [j for j in objects.jobs if _labels(j).get(COMPONENT) == "queue-worker"]
    for job in workers:
        job_status = job.get("status", {})
        status.progress.append(
            f"workers: {job_status.get('active') or 0} running, "
            f"{job_status.get('succeeded') or 0} finished, {job_status.get('failed') or 0} failed"
        )
    status.progress.append(
        "queue depth: the broker is inside the cluster; the tasker's counts above are its view"
    )


def _last_line_progress(status: RunStatus, objects: RunObjects, tail: LogTail, who: str) -> None:
    if objects.pods:
        lines = tail(_name(objects.pods[-1]), log_container(objects.pods[-1]), False)
        if lines:
            status.progress.append(f"{who}: {lines[-1]}")


def _pipeline(status: RunStatus, workflow: dict[str, Any]) -> None:
    status.pattern = "pipeline"
    wf_status = workflow.get("status", {})
    phase = wf_status.get("phase") or "Pending"
    status.state = {
        "Succeeded": "succeeded",
        "Failed": "failed",
        "Error": "failed",
        "Running": "running",
    }.get(phase, "pending")
    steps = [
        node
        for node in (wf_status.get("nodes") or {}).values()
        if node.get("type") in ("Pod", "Container")
    ]
    counts: dict[str, int] = {}
    for node in steps:
        counts[node.get("phase", "Pending")] = counts.get(node.get("phase", "Pending"), 0) + 1
    summary = ", ".join(f"{count} {phase.lower()}" for phase, count in sorted(counts.items()))
    status.progress.append(f"steps: {summary or 'none started'}")
    for node in sorted(steps, key=lambda n: str(n.get("startedAt") or "")):
        line = f"  {node.get('displayName') or node.get('name')}: {node.get('phase')}"
        if node.get("message"):
            line += f" ({node['message']})"
        status.progress.append(line)
    if status.state == "failed" and wf_status.get("message"):
        status.problems.append(Problem(f"workflow {_name(workflow)}", wf_status["message"]))


def _job_problems(job: dict[str, Any], events: list[dict[str, Any]]) -> list[Problem]:
    problems = []
    subject = f"job {_name(job)}"
    failed = _condition(job, "Failed")
    if failed is not None:
        reason = failed.get("reason", "")
        fix = ""
        if reason == "DeadlineExceeded":
            fix = "raise jobDeadlineSeconds (queueDeadlineSeconds for queue workers)"
        problems.append(Problem(subject, f"failed: {reason}: {failed.get('message', '')}", fix))
    for event in events:
        involved = event.get("involvedObject", {})
        if involved.get("kind") != "Job" or involved.get("name") != _name(job):
            continue
        message = str(event.get("message", ""))
        if event.get("reason") == "FailedCreate" and "exceeded quota" in message:
            problems.append(
                Problem(
                    subject,
                    f"cannot start pods, a ResourceQuota is exhausted: {message}",
                    "lower the run's requests (--cpu/--memory), wait for other pods to end, "
                    "or ask for a larger quota in the namespace",
                )
            )
        elif event.get("reason") == "FailedCreate":
            problems.append(Problem(subject, f"cannot start pods: {message}"))
    return problems


def _requests(pod: dict[str, Any]) -> str:
    parts = []
    for container in pod.get("spec", {}).get("containers", []):
        requests = container.get("resources", {}).get("requests", {})
        parts.append(", ".join(f"{key} {value}" for key, value in sorted(requests.items())))
    return "; ".join(p for p in parts if p) or "no requests"


def _resource_fix(component: str, cloud: str) -> str:
    cpu, memory, option = _RESOURCE_KEYS.get(component, (None, None, "--cpu/--memory"))
    keys = f"{cpu}/{memory} in the stack config, or " if cpu else ""
    node = _NODE_KEYS.get(cloud, "a larger node type")
    return f"lower {keys}this run's {option}; or raise {node}"


def pod_problems(
    pod: dict[str, Any],
    events: list[dict[str, Any]],
    claims: list[dict[str, Any]],
    contract: StackContract,
    logs: LogTail,
    *,
    pattern: str = "",
) -> list[Problem]:
    """What keeps ``pod`` from running, or made it fail, with the fix."""
    name = _name(pod)
    subject = f"pod {name}"
    component = _labels(pod).get(COMPONENT, pattern)
    status = pod.get("status", {})
    problems: list[Problem] = []
    about = [e for e in events if e.get("involvedObject", {}).get("name") == name]
    scheduled = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
    )
    if scheduled is not None and scheduled.get("status") == "False":
        problems.append(_unschedulable(subject, pod, scheduled, about, claims, contract, component))
    for container in status.get("containerStatuses") or []:
        problems += _container_problems(subject, pod, container, contract, logs, component)
    return problems


def _unschedulable(
    subject: str,
    pod: dict[str, Any],
    scheduled: dict[str, Any],
    events: list[dict[str, Any]],
    claims: list[dict[str, Any]],
    contract: StackContract,
    component: str,
) -> Problem:
    message = str(scheduled.get("message", ""))
    autoscaler = [
        str(e.get("message", "")) for e in events if e.get("reason") == "NotTriggerScaleUp"
    ]
    if "PersistentVolumeClaim" in message or "persistentvolumeclaim" in message:
        return _claim_problem(subject, message, claims)
    if "Insufficient" in message or any("Insufficient" in m for m in autoscaler):
        return Problem(
            subject,
            f"Pending: its requests ({_requests(pod)}) do not fit the nodes "
            f"({message}{'; autoscaler: ' + autoscaler[-1] if autoscaler else ''})",
            _resource_fix(component, contract.cloud),
        )
    if any("max node group size reached" in m for m in autoscaler) or "Too many pods" in message:
        return Problem(
            subject,
            f"Pending: every node is full and no more can be added ({message})",
            "raise nodeMax in the stack config, or lower this run's --parallelism",
        )
    return Problem(subject, f"Pending: cannot be scheduled: {message}")


def _claim_problem(subject: str, message: str, claims: list[dict[str, Any]]) -> Problem:
    details = []
    for claim in claims:
        phase = claim.get("status", {}).get("phase", "Pending")
        if phase != "Bound":
            details.append(f"claim {_name(claim)} is {phase}")
    return Problem(
        subject,
        f"Pending: its storage claim is not bound ({'; '.join(details) or message})",
        "the stack's NFS storage is not ready: check `kubectl get pvc,pv` and the NFS server "
        "pod, then `pulumi up` the stack again",
    )


def _container_problems(
    subject: str,
    pod: dict[str, Any],
    container: dict[str, Any],
    contract: StackContract,
    logs: LogTail,
    component: str,
) -> list[Problem]:
    name = _name(pod)
    state = container.get("state", {})
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason", "")
    message = waiting.get("message", "")
    image = container.get("image", "")
    if reason in _IMAGE_WAITING:
        if reason == "ErrImageNeverPull":
            fix = (
                "the image is not loaded into the cluster's engine: "
                f"`pulumi up -s {contract.stack}` builds it there (workstack:dockerHost must "
                "point at minikube's engine: "
                "`minikube docker-env --ssh-host`)"
            )
        else:
            fix = (
                f"check that the image exists and the nodes may pull it; `pulumi up -s "
                f"{contract.stack}` builds and pushes the stack's images"
            )
        return [Problem(subject, f"image {image} cannot be pulled ({reason}: {message})", fix)]
    if reason == "CreateContainerConfigError":
        return [
            Problem(
                subject, f"cannot start: {message}", "a Secret or ConfigMap it needs is missing"
            )
        ]
    if reason == "CrashLoopBackOff":
        return [
            Problem(
                subject,
                f"crash loop: restarted {container.get('restartCount', 0)} times",
                "see the last log lines",
                tuple(logs(name, container.get("name"), True)[-10:]),
            )
        ]
    terminated = state.get("terminated") or container.get("lastState", {}).get("terminated")
    if terminated is None or int(terminated.get("exitCode", 0)) == 0:
        return []
    code = int(terminated.get("exitCode", 0))
    if terminated.get("reason") == "OOMKilled":
        limits = [
            c.get("resources", {}).get("limits", {}).get("memory")
            for c in pod.get("spec", {}).get("containers", [])
        ]
        _, memory, option = _RESOURCE_KEYS.get(component, (None, None, "--memory"))
        return [
            Problem(
                subject,
                f"killed for using more memory than its limit ({', '.join(filter(None, limits))})",
                f"raise {memory + ' or ' if memory else ''}this run's {option.split('/')[-1]}",
            )
        ]
    if code == EXIT_BAD_INPUT:
        return [
            Problem(
                subject,
                "exit 65: an input file is malformed (bad input; not retried)",
                "fix or remove the file the log names, then submit again",
                tuple(logs(name, container.get("name"), False)[-5:]),
            )
        ]
    return [
        Problem(
            subject,
            f"failed with exit {code} ({terminated.get('reason', 'Error')})",
            "see the last log lines",
            tuple(logs(name, container.get("name"), False)[-10:]),
        )
    ]


def list_runs(kube: Kube) -> list[dict[str, str]]:
    """Every run in the namespace: id, workload, pattern, state and creation time."""
    runs: dict[str, RunObjects] = {}
    for job in kube.list("Job", selector=RUN_LABEL):
        runs.setdefault(_labels(job)[RUN_LABEL], RunObjects(_labels(job)[RUN_LABEL])).jobs.append(
            job
        )
    try:
        workflows = kube.list("Workflow", selector=RUN_LABEL)
    except Exception:  # no Argo on this cluster
        workflows = []
    for workflow in workflows:
        run_id = _labels(workflow)[RUN_LABEL]
        runs.setdefault(run_id, RunObjects(run_id)).workflows.append(workflow)
    rows = []
    for run_id, objects in sorted(runs.items()):
        status = RunStatus(run_id=run_id)
        if objects.workflows:
            _pipeline(status, objects.workflows[0])
        else:
            _jobs(status, objects, no_logs)
        first = (objects.workflows or objects.jobs)[0]
        name = _name(first).rsplit("-tasker", 1)[0].rsplit("-workers", 1)[0]
        rows.append(
            {
                "run": run_id,
                "workload": name.removesuffix(f"-{run_id}"),
                "pattern": status.pattern,
                "state": status.state,
                "created": str(first.get("metadata", {}).get("creationTimestamp", "")),
            }
        )
    return rows
