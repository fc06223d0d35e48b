"""Running one task, what it leaves in the storage, and when a task counts as done.

Storage layout, under the queue set's storage root (keys are task ids):

- ``results/<id>.json``: written last, atomically, when a task succeeded. It lists what the
  task left behind: ``outputs`` (storage keys under ``outputs/<id>/``) and ``files`` (paths in
  the work folder: the task's declared ``outputs``, and the files a command named on its
  command line that it created or changed).
- ``outputs/<id>/...``: the files a task left in its output folder
  (``$WORKSTACK_OUTPUT_DIR`` for commands, ``current_task().output_dir`` for callables).
- ``logs/<id>.log``: stdout and stderr of a command (the latest attempt).
- ``errors/<id>.json``: the error of a task that failed for good (it was dead-lettered).
- ``running/<id>/<worker>-<n>.json``: a copy of the task may be running (see worker.py).
- ``runs/<run>.json``: a tasker's run, ``"finished": true`` once its stop messages are out.

**Done** means: the result record exists and is complete JSON with status ``done``, its command
(if any) exited 0, every output and file it lists still exists, and a command ran in the work
folder that is there now. A task whose record is there but whose outputs were deleted
(asreview's tasker wipes its work folder first) is not done: the next run runs it again.

The work folder's identity is ``workstack-work.json`` in it (a random id, made by the first
tasker or worker that finds none; not a hidden file, so ``rm -rf work/*`` removes it too).
A command's record keeps the id: once the folder is wiped and made again, every command that
ran in it counts as not done, whether or not its files could be told from its command line.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from workstack.sdk.env import BROKER_URL
from workstack.sdk.storage import Storage

__all__ = [
    "Outcome",
    "TaskContext",
    "TaskRunner",
    "current_task",
    "done_ids",
    "error_key",
    "log_key",
    "output_prefix",
    "record_is_done",
    "result_key",
    "stored_ids",
    "task_environment",
    "work_identity",
]

_ERROR_LIMIT = 4000
_LOG_TAIL = 2000
_MAX_NAMED = 64  # command-line words looked at as possible output files


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


def _in_work(work_dir: str, relative: str) -> str:
    return os.path.join(work_dir, relative.rstrip("/"))


WORK_ID_FILE = "workstack-work.json"


def work_identity(work_dir: str, *, create: bool) -> str | None:
    """The work folder's id (see the module docstring); made now if ``create`` and missing."""
    path = os.path.join(work_dir, WORK_ID_FILE)
    for _ in range(3):
        try:
            with open(path, encoding="utf-8") as handle:
                found = json.load(handle).get("id")
            return str(found) if found else None
        except FileNotFoundError:
            if not create:
                return None
        except (OSError, ValueError, AttributeError):
            return None
        os.makedirs(work_dir, exist_ok=True)
        temp = f"{path}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump({"id": uuid.uuid4().hex}, handle)
        try:
            os.link(temp, path)  # fails if another process made it first: then read theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    return None


def record_is_done(
    record: Mapping[str, Any],
    storage: Storage,
    work_dir: str,
    *,
    stored: set[str] | None = None,
    work_id: str | bool | None = False,
) -> str | None:
    """Why the task of ``record`` is not done, or None if it is (see the module docstring).

    Args:
        record: A parsed result record.
        storage: The queue set's storage.
        work_dir: The work folder its ``files`` are relative to.
        stored: Every key under ``outputs/``, if already listed (saves a lookup per key).
        work_id: The work folder's current id, if already read (False: read it here).
    """
    if record.get("status") != "done":
        return "its result record is incomplete"
    code = record.get("exit_code", 0)
    if code not in (0, None):
        return f"its command exited with status {code}"
    for key in record.get("outputs") or ():
        present = key in stored if stored is not None else storage.exists(str(key))
        if not present:
            return f"its output {key} is gone"
    for relative in record.get("files") or ():
        if not os.path.exists(_in_work(work_dir, str(relative))):
            return f"its file {relative} is gone from the work folder"
    if record.get("work"):
        current = work_identity(work_dir, create=False) if work_id is False else work_id
        if record["work"] != current:
            return "the work folder it ran in was wiped since"
    return None


def _read_record(storage: Storage, task_id: str) -> dict[str, Any] | None:
    try:
        data = json.loads(storage.read_bytes(result_key(task_id)))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def done_ids(
    storage: Storage, work_dir: str, ids: Iterable[str]
) -> tuple[set[str], dict[str, str]]:
    """Which of ``ids`` are done, and why each of the others with a result record is not."""
    wanted = set(ids)
    present = stored_ids(storage, "results") & wanted
    if not present:
        return set(), {}
    outputs = set(storage.list("outputs"))
    work_id = work_identity(work_dir, create=False)
    done: set[str] = set()
    stale: dict[str, str] = {}
    for task_id in sorted(present):
        record = _read_record(storage, task_id)
        why = "its result record is unreadable" if record is None else None
        why = why or record_is_done(
            record or {}, storage, work_dir, stored=outputs, work_id=work_id
        )
        if why is None:
            done.add(task_id)
        else:
            stale[task_id] = why
    return done, stale


class TaskContext:
    """What a running task knows about itself; see :func:`current_task`."""

    def __init__(
        self,
        *,
        id: str,
        stage: str,
        run: str,
        attempt: int,
        worker: str,
        storage_url: str,
        work_dir: str = "",
    ) -> None:
        self.id = id
        self.stage = stage
        self.run = run
        self.attempt = attempt
        self.worker = worker
        self.storage_url = storage_url
        """The queue set's storage (``open_storage(storage_url)``), e.g. for earlier outputs."""
        self.work_dir = work_dir
        """The work folder commands run in (shared when the storage is a folder)."""
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

    ``done``: it ran and its result is stored; ``cached``: it was done already (see the module
    docstring), so it did not run again; ``failed``: it raised, exited non-zero, timed out or
    left a declared output out (``error`` says how); ``interrupted``: the worker stopped it
    (shutdown), it should run again elsewhere; ``skipped``: the worker handed it back before
    it started. ``exit`` is a ``continue`` command's non-zero exit status.
    """

    status: Literal["done", "cached", "failed", "interrupted", "skipped"]
    error: str = ""
    exit: int = 0


class _TaskFailedError(Exception):
    """A failure the worker describes itself (exit status, import, outputs); no traceback."""


def task_environment() -> dict[str, str]:
    """This process's environment without what only the worker needs: the broker URL.

    The URL carries the broker password, and anyone who can publish to the queue can make a
    worker run commands; a task never talks to the broker, so it does not get it. (A task
    still runs as the worker's user in the worker's container: this keeps the password out
    of task logs, env dumps and the tools a task starts, not away from hostile code.)
    """
    return {key: value for key, value in os.environ.items() if key != BROKER_URL}


class TaskRunner:
    """Runs tasks (decoded task messages, as dicts) and records their results.

    It runs in a worker's executor process, one task at a time.
    """

    def __init__(self, storage: Storage, worker: str, work_dir: str) -> None:
        self._storage = storage
        self._worker = worker
        self._work_dir = work_dir
        self._callables: dict[str, Callable[..., Any]] = {}
        # Local storage (a folder, NFS): result records are written with os calls, which is
        # most of a short task's cost otherwise.
        self._local = storage.protocol == "file"
        self._root = storage.url
        self._made_dirs: set[str] = set()
        self._serial = 0

    # -- done or not ------------------------------------------------------------------------

    def _result_path(self, task_id: str) -> str:
        return f"{self._root}/results/{task_id}.json"

    def is_done(self, task_id: str) -> bool:
        """Whether the task is done (see the module docstring): its record and outputs."""
        if self._local:
            path = self._result_path(task_id)
            if not os.access(path, os.F_OK):  # the usual case, without an exception
                return False
            try:
                with open(path, "rb") as handle:
                    raw = handle.read()
            except OSError:
                return False
            try:
                record = json.loads(raw)
            except ValueError:
                return False
        else:
            if not self._storage.exists(result_key(task_id)):
                return False
            record = _read_record(self._storage, task_id)
        return isinstance(record, dict) and (
            record_is_done(record, self._storage, self._work_dir) is None
        )

    def _write_result(self, task_id: str, data: bytes) -> None:
        if not self._local:
            self._storage.write_bytes(result_key(task_id), data)
            return
        folder = f"{self._root}/results"
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        self._serial += 1
        temp = f"{folder}/.{task_id}.{os.getpid()}-{self._serial}.tmp"  # hidden: never listed
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(handle, data)
            os.fsync(handle)  # on disk before the task is acknowledged
        finally:
            os.close(handle)
        os.replace(temp, self._result_path(task_id))

    # -- running ------------------------------------------------------------------------------

    def run(self, message: Mapping[str, Any], *, attempt: int, final: bool) -> Outcome:
        """Run one attempt of a task unless it is done already.

        Args:
            message: The decoded task message (checked by the worker's main process).
            attempt: 1 for the first attempt.
            final: Whether no attempt follows if this one fails; its error is then stored.
        """
        task_id = str(message["id"])
        if self.is_done(task_id):
            return Outcome("cached")
        context = TaskContext(
            id=task_id,
            stage=str(message["stage"]),
            run=str(message["run"]),
            attempt=attempt,
            worker=self._worker,
            storage_url=self._storage.url,
            work_dir=self._work_dir,
        )
        started = time.time()
        record: dict[str, Any] = {
            "id": task_id,
            "stage": context.stage,
            "run": context.run,
            "status": "done",
            "attempt": attempt,
            "worker": self._worker,
        }
        exit_code = 0
        try:
            try:
                if message.get("command") is not None:
                    exit_code, files = self._run_command(message, context)
                    record["exit_code"] = exit_code
                    record["work"] = work_identity(self._work_dir, create=True)
                    if files:
                        record["files"] = files
                else:
                    record["value"] = self._run_call(message, context)
                    declared = self._declared_outputs(message)
                    if declared:
                        record["files"] = declared
                record["outputs"] = self._upload_outputs(context)
            except BaseException as error:  # a task's SystemExit or KeyboardInterrupt too
                text = _describe(error)
                if final:
                    self._store_error(context, attempt, text)
                return Outcome("failed", text)
            finished = time.time()
            record.update(started=started, finished=finished, duration=round(finished - started, 6))
            try:
                data = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
            except (TypeError, ValueError, RecursionError):
                problem = (
                    f"{message.get('call')} returned a {type(record.get('value')).__name__}, "
                    "which is not JSON; return None, a bool, number, string, list or dict "
                    "(write files to current_task().output_dir)"
                )
                if final:
                    self._store_error(context, attempt, problem)
                return Outcome("failed", problem)
            self._write_result(task_id, data)
            return Outcome("done", exit=exit_code)
        finally:
            context.cleanup()

    def _environment(self, message: Mapping[str, Any], context: TaskContext) -> dict[str, str]:
        env = task_environment()
        env.update(message.get("env") or {})
        env.update(
            WORKSTACK_TASK_ID=context.id,
            WORKSTACK_TASK_STAGE=context.stage,
            WORKSTACK_TASK_ATTEMPT=str(context.attempt),
            WORKSTACK_RUN_ID=context.run,
            WORKSTACK_OUTPUT_DIR=str(context.output_dir),
            WORKSTACK_STORAGE_URL=self._storage.url,
            WORKSTACK_WORK_DIR=self._work_dir,
            # `python` in a command is the worker's own interpreter, with workstack and the
            # workload's dependencies, as it is in the image.
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        )
        return env

    def _run_command(
        self, message: Mapping[str, Any], context: TaskContext
    ) -> tuple[int, list[str]]:
        command = message["command"]
        shell = message.get("shell") or "sh"
        if isinstance(command, str):
            argv = ["/bin/sh" if shell == "sh" else shutil.which("bash") or "bash", "-c", command]
        else:
            argv = list(command)
        os.makedirs(self._work_dir, exist_ok=True)
        named = _named_paths(command, self._work_dir)
        before = {path: _state(path) for path in named}
        log_path = context.scratch / "log"
        with log_path.open("wb") as log:
            try:
                # Same process group as this executor: when the worker dies, the executor
                # kills the group, command and all (worker.py, executor.py).
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._environment(message, context),
                    cwd=self._work_dir,
                )
            except OSError as error:
                raise _TaskFailedError(f"cannot start {argv[0]!r}: {error}") from None
            code = process.wait()
        self._storage.upload(log_path, log_key(context.id))
        if code != 0 and not (message.get("on_error") == "continue" and code > 0):
            tail = log_path.read_bytes()[-_LOG_TAIL:].decode("utf-8", "replace")
            how = f"was stopped by signal {-code}" if code < 0 else f"exited with status {code}"
            raise _TaskFailedError(f"command {how}; last output:\n{tail}")
        files = set(self._declared_outputs(message))
        for path, old in before.items():
            new = _state(path)
            if new is None:
                continue
            relative = os.path.relpath(path, self._work_dir)
            if new[0] == "dir":
                if old is None:
                    files.add(relative + "/")
            elif new != old:
                files.add(relative)
        return code, sorted(files)

    def _declared_outputs(self, message: Mapping[str, Any]) -> list[str]:
        declared = list(message.get("outputs") or ())
        missing = [p for p in declared if not os.path.exists(_in_work(self._work_dir, p))]
        if missing:
            raise _TaskFailedError(
                f"declared output(s) {missing} missing from the work folder {self._work_dir} "
                "after the task; a task must create every path in its outputs"
            )
        return declared

    def _run_call(self, message: Mapping[str, Any], context: TaskContext) -> Any:
        function = self._resolve(str(message["call"]))
        token = _CURRENT.set(context)
        try:
            return function(*(message.get("args") or ()), **(message.get("kwargs") or {}))
        finally:
            _CURRENT.reset(token)

    def _resolve(self, call: str) -> Callable[..., Any]:
        found = self._callables.get(call)
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

    def _store_error(self, context: TaskContext, attempt: int, error: str) -> None:
        record = {
            "id": context.id,
            "stage": context.stage,
            "run": context.run,
            "status": "failed",
            "attempt": attempt,
            "worker": self._worker,
            "finished": time.time(),
            "error": error,
        }
        # Best effort: the dead letter carries the error too.
        with contextlib.suppress(Exception):
            self._storage.write_text(error_key(context.id), json.dumps(record))


def _state(path: str) -> tuple[str, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    kind = "dir" if os.path.isdir(path) else "file"
    return (kind, info.st_mtime_ns, info.st_size)


def _named_paths(command: str | list[str], work_dir: str) -> list[str]:
    """Paths inside the work folder that a command names on its command line.

    Words that look like paths (``-o out/x.json``, ``--out=x.json``, ``> log.txt``): a file
    among them that the command creates or changes is one of its outputs, recorded so a rerun
    notices when it is gone. Words with shell expansions are not guessed at.
    """
    if isinstance(command, str):
        try:
            words = shlex.split(command, comments=True)
        except ValueError:
            return []
    else:
        words = list(command)
    found: list[str] = []
    root = os.path.normpath(os.path.abspath(work_dir))
    for word in words[1:]:
        if len(found) >= _MAX_NAMED:
            break
        if word.startswith("-") and "=" in word:
            word = word.split("=", 1)[1]
        word = word.lstrip("0123456789").lstrip(">").lstrip("&") if ">" in word[:3] else word
        if not word or word.startswith("-") or any(c in word for c in "$*?[]`;|&<>(){}~"):
            continue
        path = os.path.normpath(os.path.join(root, word))
        if path == root or not (path + os.sep).startswith(root + os.sep):
            continue
        found.append(path)
    return found


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
