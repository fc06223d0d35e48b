"""A run's logs, and cancelling it.

Logs are read from the run's pods (found by the ``workstack.dev/run`` label, or Argo's
workflow label for a pipeline), one pod or all, followed or not; finished pods stay readable
until the Job's TTL (``jobTtlSeconds``, ``queueTtlSeconds``) removes them. A queue run's
tasks that failed for good have their errors on the storage (``<storage>/errors/<task>.json``,
commands' output in ``logs/``), which :func:`queue_errors_hint` points at. Cancelling deletes
the run's Jobs, Workflow and ConfigMaps with foreground propagation (their pods go first);
outputs already written stay where they are.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from workstack.components.manifests.labels import RUN_LABEL
from workstack.runs.errors import RunsError, UsageError
from workstack.runs.kube import Kube
from workstack.runs.status import COMPONENT, INDEX_LABEL, WORKFLOW_LABEL, log_container
from workstack.sdk.env import STORAGE_URL

__all__ = ["cancel_run", "log_lines", "queue_errors_hint", "select_pods"]


def _name(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def _created(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("creationTimestamp") or "") + _name(obj)


def run_pods(kube: Kube, run_id: str) -> list[dict[str, Any]]:
    """The run's pods, oldest first (a pipeline's step pods included)."""
    pods = kube.list("Pod", selector=f"{RUN_LABEL}={run_id}")
    try:
        workflows = kube.list("Workflow", selector=f"{RUN_LABEL}={run_id}")
    except RunsError:
        workflows = []
    for workflow in workflows:
        pods += kube.list("Pod", selector=f"{WORKFLOW_LABEL}={_name(workflow)}")
    return sorted(pods, key=_created)


def select_pods(
    kube: Kube, run_id: str, *, index: int | None = None, worker: int | None = None
) -> list[dict[str, Any]]:
    """The pods whose logs to show: all, one index's (its attempts) or the Nth worker.

    Raises:
        UsageError: The run has no pod left, or none for that index or worker.
    """
    pods = run_pods(kube, run_id)
    if not pods:
        raise UsageError(
            f"run {run_id} has no pods in namespace {kube.namespace}: it has not started, was "
            "cancelled, or finished longer ago than its Job's TTL (jobTtlSeconds)"
        )
    if index is not None:
        chosen = [p for p in pods if _labels(p).get(INDEX_LABEL) == str(index)]
        if not chosen:
            known = sorted({int(i) for p in pods if (i := _labels(p).get(INDEX_LABEL))})
            raise UsageError(
                f"--index {index} is not allowed; run {run_id} has pods for index(es) "
                f"{', '.join(map(str, known)) or 'none (not a job-per-file run)'}"
            )
        return chosen
    if worker is not None:
        workers = [p for p in pods if _labels(p).get(COMPONENT) == "queue-worker"]
        if not 0 <= worker < len(workers):
            raise UsageError(
                f"--worker {worker} is not allowed; run {run_id} has "
                + (f"workers 0 to {len(workers) - 1}" if workers else "no worker pods")
            )
        return [workers[worker]]
    return pods


def log_lines(
    kube: Kube, pods: list[dict[str, Any]], *, follow: bool = False, tail: int | None = None
) -> Iterator[str]:
    """The pods' log lines, each prefixed with its pod when there are several.

    Followed logs of several pods are read at once and interleaved as they come.
    """
    prefix = len(pods) > 1
    if not follow:
        for pod in pods:
            for line in kube.logs(_name(pod), container=log_container(pod), tail_lines=tail):
                yield f"[{_name(pod)}] {line}" if prefix else line
        return
    lines: queue.Queue[str | BaseException | None] = queue.Queue()

    def read(pod: dict[str, Any]) -> None:
        try:
            lines_of = kube.logs(
                _name(pod), container=log_container(pod), follow=True, tail_lines=tail
            )
            for line in lines_of:
                lines.put(f"[{_name(pod)}] {line}" if prefix else line)
        except BaseException as error:  # handed to the reading thread
            lines.put(error)
        finally:
            lines.put(None)

    readers = [threading.Thread(target=read, args=(pod,), daemon=True) for pod in pods]
    for reader in readers:
        reader.start()
    finished = 0
    while finished < len(readers):
        item = lines.get()
        if item is None:
            finished += 1
        elif isinstance(item, BaseException):
            raise item
        else:
            yield item


def queue_errors_hint(kube: Kube, run_id: str, stack: str, root: str) -> str | None:
    """Where a queue run's failed tasks left their errors, as a command that lists them."""
    for job in kube.list("Job", selector=f"{RUN_LABEL}={run_id}"):
        if _labels(job).get(COMPONENT) != "queue-tasker":
            continue
        for container in job["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if env.get("name") == STORAGE_URL:
                    url = str(env.get("value", "")).rstrip("/")
                    relative = url[len(root) :].strip("/") if url.startswith(root) else url
                    return (
                        f"tasks that failed for good keep their error in {url}/errors/ and a "
                        f"command's output in {url}/logs/: `workstack data ls "
                        f"{relative}/errors --stack {stack}`"
                    )
    return None


def cancel_run(kube: Kube, run_id: str, *, on_deleted: Callable[[str], None] | None = None) -> int:
    """Delete the run's objects (foreground: pods first); returns how many were deleted.

    Raises:
        UsageError: Nothing of that run exists.
    """
    selector = f"{RUN_LABEL}={run_id}"
    found: list[tuple[str, str]] = []
    for kind in ("Workflow", "Job", "ConfigMap"):
        try:
            objects = kube.list(kind, selector=selector)
        except RunsError:
            if kind == "Workflow":
                continue  # no Argo on this cluster
            raise
        found += [(kind, _name(obj)) for obj in objects]
    if not found:
        raise UsageError(
            f"run {run_id!r} has no objects in namespace {kube.namespace}; `workstack runs` "
            "lists the runs there"
        )
    deleted = 0
    for kind, name in found:
        if kube.delete(kind, name, propagation="Foreground"):
            deleted += 1
            if on_deleted is not None:
                on_deleted(f"{kind}/{name}")
    return deleted
