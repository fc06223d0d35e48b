"""Local mode: run a queue-workers workload's tasker and N workers as processes on this machine.

Workers are separate processes (as pods would be), started with the workload folder as their
working directory and on ``PYTHONPATH``, like ``/app`` in the image. The broker URL reaches
them through the environment, never the command line, so it does not show in process lists.
The tasker and the workers share a run id (``WORKSTACK_RUN_ID``), so a worker obeys only this
run's stop messages, and a work folder (``<out>/work``) that commands run in.

Without a broker URL (``--broker`` or ``WORKSTACK_BROKER_URL``), a RabbitMQ listening on
127.0.0.1:5672 is used, else a private node is started for the run and removed after it
(``workstack.sdk.queue.localbroker``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from workstack.sdk.callables import CallableError, load_callable
from workstack.sdk.queue.config import (
    BROKER_URL_ENV,
    RUN_ID_ENV,
    STORAGE_URL_ENV,
    WORK_DIR_ENV,
    BrokerError,
    QueueError,
    TaskerSpec,
    redact_url,
)
from workstack.sdk.queue.messages import Stage
from workstack.sdk.queue.tasker import Tasker, as_stages
from workstack.sdk.workload import Workload

__all__ = ["load_stages_from", "missing_requirements", "run_local"]

_LOG = logging.getLogger("workstack.queue.local")
_WORKER_EXIT_WAIT = 60.0
_PR_SET_PDEATHSIG = 1
# Local workers are up within seconds: a run without any for this long will not finish.
_LOCAL_NO_WORKER_TIMEOUT = 30.0


def load_stages_from(entrypoint: str, root: str | Path | None = None) -> list[Stage]:
    """Call ``module:callable`` for the stages or tasks it returns.

    The module is imported with ``root`` (default: the current folder) on ``sys.path``.

    Raises:
        QueueError: The entrypoint is not ``module:callable``, cannot be imported, or returns
            something that is not stages or tasks.
    """
    folder = str(Path(root or Path.cwd()).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        target = load_callable(entrypoint)
    except CallableError as error:
        raise QueueError(f"entrypoint: {error}") from None
    result = target()
    try:
        return as_stages(result)
    except (QueueError, TypeError) as error:
        raise QueueError(
            f"entrypoint {entrypoint!r} returned an invalid task list: {error}; expected a list "
            "of Stage, or of tasks (Task, command strings, mappings)"
        ) from None


def missing_requirements(workload: Workload) -> list[str]:
    """The workload's requirements that this Python environment does not satisfy."""
    from importlib import metadata

    from packaging.requirements import Requirement

    missing = []
    for line in workload.requirements:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            missing.append(f"{line} (found {version})")
    return missing


def run_local(
    workload: Workload,
    *,
    storage_url: str,
    broker_url: str | None = None,
    workers: int = 2,
    progress: bool | None = None,
    worker_args: Sequence[str] = (),
) -> int:
    """Run a queue-workers workload here: the tasker in this process, ``workers`` processes.

    Args:
        workload: The checked workload folder (``workstack.sdk.workload.load_workload``).
        storage_url: Where results go: a folder or a bucket URL.
        broker_url: Defaults to ``$WORKSTACK_BROKER_URL``, else ``amqp://127.0.0.1:5672``.
        workers: Worker processes to start.
        progress: As for :meth:`Tasker.run`.
        worker_args: Extra ``workstack queue worker`` options, e.g. ``["--prefetch", "2"]``.

    Returns:
        0 when every task is done and every worker exited 0, else 1.

    Raises:
        QueueError: Bad workload, settings or tasks; raised before any worker starts.
        BrokerError: The broker refused the credentials or stayed unreachable.
    """
    declared = workload.spec
    if declared.pattern != "queue-workers":
        raise QueueError(
            f"{workload.folder}: pattern {declared.pattern!r} is not queue-workers; run it with "
            "`workstack run` (which picks the pattern's local mode)"
        )
    missing = missing_requirements(workload)
    if missing:
        # The workers run the workload's commands with this interpreter, as pods run them with
        # the image's: what the image would install must be here.
        raise QueueError(
            f"{workload.folder}: requirements not installed in this environment "
            f"({sys.executable}): {', '.join(missing)}; install them first (pip install -r "
            f"{workload.dependency_file}), or run with a Python that has them"
        )
    with _broker(broker_url or os.environ.get(BROKER_URL_ENV)) as url:
        return _run(workload, storage_url, url, workers, progress, worker_args)


@contextlib.contextmanager
def _broker(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from workstack.sdk.queue.localbroker import private_broker

    with private_broker(lambda line: _LOG.info("%s", line)) as found:
        yield found


def _run(
    workload: Workload,
    storage: str,
    broker_url: str,
    workers: int,
    progress: bool | None,
    worker_args: Sequence[str],
) -> int:
    declared = workload.spec
    root = workload.folder
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    spec = TaskerSpec(
        queue=declared.name,
        storage_url=storage,
        broker_url=broker_url,
        workers=workers,
        run_id=run_id,
        no_worker_timeout=_LOCAL_NO_WORKER_TIMEOUT,
    )
    work_dir = spec.work_folder
    os.makedirs(work_dir, exist_ok=True)
    # The entrypoint may run commands itself (makita's part 1 runs in the tasker).
    saved = {key: os.environ.get(key) for key in (WORK_DIR_ENV, STORAGE_URL_ENV, RUN_ID_ENV)}
    os.environ.update({WORK_DIR_ENV: work_dir, STORAGE_URL_ENV: storage, RUN_ID_ENV: run_id})
    try:
        stages = load_stages_from(declared.entrypoint, root)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    _check_broker(spec)
    env = dict(os.environ)
    env[BROKER_URL_ENV] = broker_url
    env[STORAGE_URL_ENV] = storage
    env[WORK_DIR_ENV] = work_dir
    env[RUN_ID_ENV] = run_id
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(root), env.get("PYTHONPATH", "")) if part
    )
    command = [sys.executable, "-m", "workstack.sdk.queue", "worker", "--queue", declared.name]
    processes = [
        subprocess.Popen(
            [*command, "--worker-id", f"local-{index}", *worker_args],
            cwd=root,
            env=env,
            preexec_fn=_terminate_with_parent,
        )
        for index in range(workers)
    ]
    _LOG.info("started %d worker process(es); results go to %s", workers, storage)
    try:
        report = Tasker(spec).run(stages, progress=progress)
    except BaseException:
        _stop(processes)
        raise
    if report.aborted:
        _stop(processes)
        return 1
    codes = _wait(processes)
    if any(codes):
        _LOG.error("worker exit statuses: %s", codes)
    return 0 if report.ok and not any(codes) else 1


def _check_broker(spec: TaskerSpec) -> None:
    """Fail at once, before any worker starts, when the broker cannot be reached.

    Pods keep retrying for ``give_up_after`` (a broker may still be starting); here a
    mistyped URL or a broker not started yet is reported right away.
    """
    import pika.exceptions

    from workstack.sdk.queue.broker import declare, describe_error, fatal_error

    try:
        declare(
            spec.broker,
            spec.names,
            spec.max_attempts,
            heartbeat=spec.heartbeat,
            name=f"workstack-local-{spec.queue}",
        )
    except (pika.exceptions.AMQPError, OSError) as error:
        raise fatal_error(error, spec.broker) or BrokerError(
            f"cannot reach the broker at {redact_url(spec.broker)} ({describe_error(error)}); "
            "start a RabbitMQ there (docs/queue.md#running-locally) or give another with "
            "--broker / WORKSTACK_BROKER_URL"
        ) from None


def _terminate_with_parent() -> None:
    """Have the kernel send the worker SIGTERM when the thread that started it dies (Linux).

    Even when the local run is killed with SIGKILL, its workers requeue what they hold and
    exit instead of living on without the tasker. Elsewhere this does nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


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
