"""Running one task on a worker, and what it leaves in the storage.

Storage layout, under the queue set's storage root (keys are task ids):

- ``results/<id>.json``: written last, atomically, when a task succeeded. Its presence means
  "done": a redelivered task whose result exists is not run again.
- ``outputs/<id>/...``: the files a task left in its output folder
  (``$WORKSTACK_OUTPUT_DIR`` for commands, ``current_task().output_dir`` for callables).
- ``logs/<id>.log``: stdout and stderr of a command (the latest attempt).
- ``errors/<id>.json``: the error of a task that failed for good (it was dead-lettered).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from workstack.sdk.queue.messages import TaskMessage
from workstack.sdk.storage import Storage

__all__ = [
    "Outcome",
    "TaskContext",
    "TaskRunner",
    "current_task",
    "error_key",
    "log_key",
    "output_prefix",
    "result_key",
    "stored_ids",
]

_ERROR_LIMIT = 4000
_LOG_TAIL = 2000
_KILL_WAIT = 5.0


def result_key(task_id: str) -> str:
    """Storage key of a task's result record."""
    return f"results/{task_id}.json"


def error_key(task_id: str) -> str:
    """Storage key of the record of a task that failed for good."""
    return f"errors/{task_id}.json"


def log_key(task_id: str) -> str:
    """Storage key of a command's output."""
    return f"logs/{task_id}.log"


def output_prefix(task_id: str) -> str:
    """Storage folder of a task's output files."""
    return f"outputs/{task_id}"


def stored_ids(storage: Storage, kind: Literal["results", "errors"]) -> set[str]:
    """Ids of the tasks with a result record (``results``) or an error record (``errors``)."""
    prefix, suffix = f"{kind}/", ".json"
    return {key[len(prefix) : -len(suffix)] for key in storage.list(kind) if key.endswith(suffix)}


class TaskContext:
    """What a running task knows about itself; see :func:`current_task`."""

    def __init__(
        self, *, id: str, stage: str, run: str, attempt: int, worker: str, storage_url: str
    ) -> None:
        self.id = id
        self.stage = stage
        self.run = run
        self.attempt = attempt
        self.worker = worker
        self.storage_url = storage_url
        """The queue set's storage (``open_storage(storage_url)``), e.g. for earlier outputs."""
        self._scratch: Path | None = None

    @property
    def scratch(self) -> Path:
        """A private temporary folder of this attempt, removed afterwards."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"workstack-{self.id}-"))
            (self._scratch / "output").mkdir()
        return self._scratch

    @property
    def output_dir(self) -> Path:
        """Files written here are uploaded to ``outputs/<id>/`` when the task succeeds."""
        return self.scratch / "output"

    def cleanup(self) -> None:
        """Remove the scratch folder, if one was made."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


_CURRENT: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("workstack_task")


def current_task() -> TaskContext:
    """The task running in this thread, for a callable task that wants its id or output folder.

    Raises:
        RuntimeError: Called outside a task.
    """
    try:
        return _CURRENT.get()
    except LookupError:
        raise RuntimeError("current_task() is only available inside a running task") from None


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended.

    ``done``: it ran and its result is stored; ``cached``: its result was already stored, so it
    did not run again; ``failed``: it raised or exited non-zero (``error`` says how);
    ``interrupted``: the worker stopped it (shutdown), it should run again elsewhere.
    """

    status: Literal["done", "cached", "failed", "interrupted"]
    error: str = ""


class _InterruptedError(Exception):
    pass


class _TaskFailedError(Exception):
    """A failure the worker describes itself (exit status, timeout, import); no traceback."""


class TaskRunner:
    """Runs tasks and records their results; safe to use from several threads."""

    def __init__(self, storage: Storage, worker: str) -> None:
        self._storage = storage
        self._worker = worker
        self._callables: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()

    def run(
        self, message: TaskMessage, *, attempt: int, final: bool, cancel: threading.Event
    ) -> Outcome:
        """Run one attempt of a task unless its result already exists.

        Args:
            message: The task.
            attempt: 1 for the first delivery.
            final: Whether no attempt follows if this one fails; its error is then stored.
            cancel: Set by the worker to stop a command (shutdown); the attempt is then
                ``interrupted``.
        """
        task = message.task
        key = result_key(task.id)
        if self._storage.exists(key):
            return Outcome("cached")
        context = TaskContext(
            id=task.id,
            stage=message.stage,
            run=message.run,
            attempt=attempt,
            worker=self._worker,
            storage_url=self._storage.url,
        )
        started = time.time()
        try:
            record: dict[str, Any] = {
                "id": task.id,
                "stage": message.stage,
                "run": message.run,
                "status": "done",
                "attempt": attempt,
                "worker": self._worker,
            }
            try:
                if task.command is not None:
                    record["exit_code"] = self._run_command(message, context, cancel)
                else:
                    record["value"] = self._run_call(message, context)
                record["outputs"] = self._upload_outputs(context)
            except _InterruptedError:
                return Outcome("interrupted")
            except Exception as error:
                text = _describe(error)
                if final:
                    self._store_error(message, attempt, text)
                return Outcome("failed", text)
            finished = time.time()
            record.update(started=started, finished=finished, duration=round(finished - started, 6))
            try:
                text = json.dumps(record, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError):
                problem = (
                    f"{task.call} returned a {type(record.get('value')).__name__}, which is not "
                    "JSON; return None, a bool, number, string, list or dict (write files to "
                    "current_task().output_dir)"
                )
                if final:
                    self._store_error(message, attempt, problem)
                return Outcome("failed", problem)
            self._storage.write_text(key, text)
            return Outcome("done")
        finally:
            context.cleanup()

    def _run_command(
        self, message: TaskMessage, context: TaskContext, cancel: threading.Event
    ) -> int:
        task = message.task
        command = task.command
        assert command is not None
        env = dict(os.environ)
        env.update(
            WORKSTACK_TASK_ID=task.id,
            WORKSTACK_TASK_STAGE=message.stage,
            WORKSTACK_TASK_ATTEMPT=str(context.attempt),
            WORKSTACK_OUTPUT_DIR=str(context.output_dir),
            WORKSTACK_STORAGE_URL=self._storage.url,
            # `python` in a command is the worker's own interpreter, with workstack and the
            # workload's dependencies, as it is in the image.
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        )
        log_path = context.scratch / "log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command if isinstance(command, str) else list(command),
                shell=isinstance(command, str),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, so a stop reaches its children
            )
            try:
                code = _wait(process, task.timeout, cancel)
            finally:
                if process.poll() is None:
                    _kill_group(process)
        self._storage.upload(log_path, log_key(task.id))
        if code != 0:
            tail = log_path.read_bytes()[-_LOG_TAIL:].decode("utf-8", "replace")
            raise _TaskFailedError(f"command exited with status {code}; last output:\n{tail}")
        return code

    def _run_call(self, message: TaskMessage, context: TaskContext) -> Any:
        task = message.task
        assert task.call is not None
        function = self._resolve(task.call)
        token = _CURRENT.set(context)
        try:
            value = function(*task.args, **task.kwargs)
        finally:
            _CURRENT.reset(token)
        return value

    def _resolve(self, call: str) -> Callable[..., Any]:
        found = self._callables.get(call)  # a dict read is atomic; imports take the lock
        if found is not None:
            return found
        module_name, _, attribute = call.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as error:
            raise _TaskFailedError(
                f"cannot import {call!r}: {type(error).__name__}: {error}"
            ) from None
        if not callable(target):
            raise _TaskFailedError(f"{call!r} is a {type(target).__name__}, not a callable")
        with self._lock:
            self._callables[call] = target
        return target  # type: ignore[no-any-return]

    def _upload_outputs(self, context: TaskContext) -> list[str]:
        if context._scratch is None:
            return []
        root = context.output_dir
        keys = []
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root).as_posix()
            # Hidden names are the storage's temp files; a task's own are not uploaded either.
            if path.is_file() and not any(part.startswith(".") for part in relative.split("/")):
                key = f"{output_prefix(context.id)}/{relative}"
                self._storage.upload(path, key)
                keys.append(key)
        return keys

    def _store_error(self, message: TaskMessage, attempt: int, error: str) -> None:
        record = {
            "id": message.task.id,
            "stage": message.stage,
            "run": message.run,
            "status": "failed",
            "attempt": attempt,
            "worker": self._worker,
            "finished": time.time(),
            "error": error,
        }
        # Best effort: the dead letter carries the error too.
        with contextlib.suppress(Exception):
            self._storage.write_text(error_key(message.task.id), json.dumps(record))


def _describe(error: BaseException) -> str:
    if isinstance(error, _TaskFailedError):
        text = str(error)
    else:
        # Start the traceback at the task's own code, below the worker's frames.
        frames = error.__traceback__
        while frames is not None and frames.tb_frame.f_code.co_filename == __file__:
            frames = frames.tb_next
        text = "".join(traceback.format_exception(type(error), error, frames)).strip()
    # Keep the end: the exception itself and the innermost frames.
    return text[-_ERROR_LIMIT:]


def _wait(process: subprocess.Popen[bytes], timeout: float | None, cancel: threading.Event) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if cancel.is_set():
            _kill_group(process)
            raise _InterruptedError
        if deadline is not None and time.monotonic() > deadline:
            _kill_group(process)
            raise _TaskFailedError(f"timed out after {timeout} s; the command was stopped")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's process group, then SIGKILL what is left after a few seconds."""
    for sig, wait in ((signal.SIGTERM, _KILL_WAIT), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
