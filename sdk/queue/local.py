"""Local mode: run a queue-workers workload's tasker and N workers as processes on this machine.

Workers are separate processes (as pods would be), started with the workload folder as their
working directory and on ``PYTHONPATH``, like ``/app`` in the image. The broker URL reaches
them through the environment, never the command line, so it does not show in process lists.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workstack.sdk.queue.config import (
    BROKER_URL_ENV,
    STORAGE_URL_ENV,
    QueueError,
    TaskerSpec,
    resolve_broker_url,
)
from workstack.sdk.queue.messages import Stage
from workstack.sdk.queue.tasker import Tasker, as_stages

__all__ = ["Workload", "load_stages_from", "load_workload", "run_local"]

_LOG = logging.getLogger("workstack.queue.local")
_KEYS = {"name", "pattern", "entrypoint", "extras"}
_PATTERNS = ("job-per-file", "queue-workers", "dask", "pipeline")
_EXTRAS = ("queue", "dask", "s3", "gcs")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_WORKER_EXIT_WAIT = 60.0


@dataclass(frozen=True)
class Workload:
    """The parts of ``workload.yaml`` local mode needs (see docs/workloads.md)."""

    root: Path
    name: str
    pattern: str
    entrypoint: str
    extras: tuple[str, ...]


def load_workload(folder: str | Path) -> Workload:
    """Read and check ``<folder>/workload.yaml``.

    Raises:
        QueueError: The file is missing, or a key is unknown or has a value that is not
            allowed; the error names the key and what is allowed.
    """
    root = Path(folder).resolve()
    path = root / "workload.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QueueError(f"{path}: no such file; a workload folder needs workload.yaml") from None
    except yaml.YAMLError as error:
        raise QueueError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise QueueError(f"{path}: expected a mapping with the keys {sorted(_KEYS)}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise QueueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    name, pattern, entrypoint = data.get("name"), data.get("pattern"), data.get("entrypoint")
    extras = data.get("extras", [])
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        raise QueueError(
            f"{path}: name: {name!r} is not allowed; expected a DNS-1123 label (a-z, 0-9, '-', "
            "at most 63 characters)"
        )
    if pattern not in _PATTERNS:
        raise QueueError(f"{path}: pattern: {pattern!r} is not allowed; one of {list(_PATTERNS)}")
    if not isinstance(entrypoint, str) or not _ENTRYPOINT.match(entrypoint):
        raise QueueError(
            f"{path}: entrypoint: {entrypoint!r} is not allowed; expected 'module:callable'"
        )
    if not isinstance(extras, list) or any(extra not in _EXTRAS for extra in extras):
        raise QueueError(f"{path}: extras: {extras!r} is not allowed; a list of {list(_EXTRAS)}")
    return Workload(
        root=root, name=name, pattern=pattern, entrypoint=entrypoint, extras=tuple(extras)
    )


def load_stages_from(entrypoint: str, root: str | Path | None = None) -> list[Stage]:
    """Call ``module:callable`` for the stages or tasks it returns.

    The module is imported with ``root`` (default: the current folder) on ``sys.path``.

    Raises:
        QueueError: The entrypoint is not ``module:callable``, cannot be imported, or returns
            something that is not stages or tasks.
    """
    if not _ENTRYPOINT.match(entrypoint):
        raise QueueError(f"entrypoint: {entrypoint!r} is not allowed; expected 'module:callable'")
    module_name, _, attribute = entrypoint.partition(":")
    folder = str(Path(root or Path.cwd()).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise QueueError(f"entrypoint {entrypoint!r}: cannot import it ({error})") from None
    result = target()
    try:
        return as_stages(result)
    except (QueueError, TypeError) as error:
        raise QueueError(
            f"entrypoint {entrypoint!r} returned an invalid task list: {error}; expected a list "
            "of Stage, or of tasks (Task, command strings, mappings)"
        ) from None


def run_local(
    workload_dir: str | Path,
    *,
    broker_url: str | None = None,
    workers: int = 2,
    storage_url: str | None = None,
    progress: bool | None = None,
    worker_args: Sequence[str] = (),
) -> int:
    """Run a queue-workers workload here: the tasker in this process, ``workers`` processes.

    Args:
        workload_dir: The workload folder (with ``workload.yaml``).
        broker_url: Defaults to ``$WORKSTACK_BROKER_URL``, else ``amqp://127.0.0.1:5672``.
        workers: Worker processes to start.
        storage_url: Where results go; defaults to ``out/<workload name>`` in the current
            folder.
        progress: As for :meth:`Tasker.run`.
        worker_args: Extra ``workstack queue worker`` options, e.g. ``["--prefetch", "2"]``.

    Returns:
        0 when every task is done and every worker exited 0, else 1.

    Raises:
        QueueError: Bad workload, settings or tasks; raised before any worker starts.
        BrokerError: The broker refused the credentials or stayed unreachable.
    """
    workload = load_workload(workload_dir)
    if workload.pattern != "queue-workers":
        raise QueueError(
            f"{workload.root}: pattern {workload.pattern!r} cannot run locally yet; local mode "
            "supports pattern 'queue-workers'"
        )
    stages = load_stages_from(workload.entrypoint, workload.root)
    storage = storage_url or str(Path.cwd() / "out" / workload.name)
    spec = TaskerSpec(
        queue=workload.name, storage_url=storage, broker_url=broker_url, workers=workers
    )
    env = dict(os.environ)
    env[BROKER_URL_ENV] = resolve_broker_url(broker_url)
    env[STORAGE_URL_ENV] = storage
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(workload.root), env.get("PYTHONPATH", "")) if part
    )
    command = [sys.executable, "-m", "workstack.sdk.queue", "worker", "--queue", workload.name]
    processes = [
        subprocess.Popen(
            [*command, "--worker-id", f"local-{index}", *worker_args], cwd=workload.root, env=env
        )
        for index in range(workers)
    ]
    _LOG.info("started %d worker process(es); results go to %s", workers, storage)
    try:
        report = Tasker(spec).run(stages, progress=progress)
    except BaseException:
        _stop(processes)
        raise
    codes = _wait(processes)
    if any(codes):
        _LOG.error("worker exit statuses: %s", codes)
    return 0 if report.ok and not any(codes) else 1


def _wait(processes: list[subprocess.Popen[bytes]]) -> list[int]:
    deadline = time.monotonic() + _WORKER_EXIT_WAIT
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _LOG.warning("worker %d did not exit after its stop message; stopping it", process.pid)
    _stop(processes)
    return [process.returncode for process in processes]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
