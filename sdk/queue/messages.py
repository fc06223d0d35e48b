"""Tasks, stages and the JSON messages that carry them.

Every message body is a UTF-8 JSON object with a protocol version ``v`` and a ``kind``:

- ``task`` (tasker -> worker, on ``<queue>.tasks``): ``id``, ``stage``, ``run`` and either
  ``command`` (a string run by ``/bin/sh -c``, or ``bash -c`` with ``"shell": "bash"``, or a
  list of strings run without a shell) or ``call`` (``"package.module:function"``) with
  optional ``args`` (list) and ``kwargs`` (object); optional ``timeout`` (seconds),
  ``outputs`` (paths the task must leave in the work folder), ``env`` (extra environment of a
  command) and ``on_error`` (``"continue"``: a non-zero exit is recorded, not retried, as bash
  does without ``set -e``).
- ``stop`` (tasker -> worker): ``run`` and ``sent_at`` (Unix time); one per worker.
- ``results`` (worker -> tasker, on ``<queue>.results``): ``worker`` and ``results``, a list of
  ``{"id", "stage", "run", "status": "done", "attempt", "cached"}`` (and ``"exit"`` for a
  ``continue`` command that exited non-zero).

Dead letters reach the tasker too, as the original task message with the headers
``x-workstack-reason`` and ``x-workstack-error`` (or the broker's ``x-first-death-reason``).

Decoding never raises anything but :class:`MessageError`, whatever the body: bodies above
``MAX_MESSAGE_BYTES``, nested deeper than ``MAX_DEPTH``, not UTF-8, not JSON, with ``NaN``,
infinite numbers or integers Python refuses to parse (more than 4300 digits) are all malformed,
with a reason that says which.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from workstack.sdk.queue.config import QueueError

__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "ON_ERROR",
    "PROTOCOL_VERSION",
    "SHELLS",
    "Completion",
    "MessageError",
    "Stage",
    "StopMessage",
    "Task",
    "TaskMessage",
    "check_unique_ids",
    "decode_message",
    "decode_note",
    "encode_results",
    "encode_stop",
    "encode_task",
    "is_dead_letter",
]

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20
MAX_DEPTH = 32
"""Nesting of JSON arrays and objects a message may have (the envelope is level 1)."""
SHELLS = ("sh", "bash")
ON_ERROR = ("fail", "continue")
_MAX_OUTPUTS = 256
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Ids and stage names become storage keys and log fields: no '/', no leading '.'.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_STAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_CALL = re.compile(rf"^{_DOTTED}:{_DOTTED}$")
ID_ALLOWED = "expected 1-128 of letters, digits, '.', '_', '-', starting with a letter or digit"
STAGE_ALLOWED = "expected 1-64 of letters, digits, '.', '_', '-', starting with a letter or digit"
CALL_ALLOWED = "expected 'package.module:function' (a dotted path, a colon, a dotted name)"
_TASK_KEYS = {
    "v",
    "kind",
    "id",
    "stage",
    "run",
    "command",
    "call",
    "args",
    "kwargs",
    "timeout",
    "outputs",
    "env",
    "shell",
    "on_error",
}
_STOP_KEYS = {"v", "kind", "run", "sent_at"}

# Headers a worker sets on the dead letters it publishes.
REASON_HEADER = "x-workstack-reason"
ERROR_HEADER = "x-workstack-error"
ATTEMPTS_HEADER = "x-workstack-attempts"
WORKER_HEADER = "x-workstack-worker"
# Attempts a task had before this copy of it was published (a worker handing back a task it
# did not run republishes it with its count, instead of requeueing, which RabbitMQ 3.x counts
# as a delivery: rabbit_fifo:return_one/7 increments delivery_count on every return).
PRIOR_HEADER = "x-workstack-prior-attempts"
# Set by the tasker on a task it publishes again after losing a publisher confirm: another
# copy may be in the queue or running.
COPY_HEADER = "x-workstack-copy"


class MessageError(QueueError):
    """A message is not valid JSON or does not follow the message schema."""


def _json_value(field_name: str, value: Any) -> str:
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise QueueError(
            f"{field_name}: {_short(value)} is not allowed; expected JSON values (None, bool, "
            f"numbers, strings, lists, dicts with string keys) ({type(error).__name__}: "
            f"{str(error)[:80]})"
        ) from None
    _check_depth(field_name, value, 1)
    return text


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # e.g. an int with too many digits to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}..."


def _check_depth(field_name: str, value: Any, level: int) -> None:
    """Raise if ``value`` nests lists and dicts deeper than ``MAX_DEPTH``.

    ``level`` is the value's own; iterative, so a deep value cannot exhaust the stack here.
    """
    stack = [(value, level)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > MAX_DEPTH:
                raise QueueError(
                    f"{field_name}: nested more than {MAX_DEPTH} levels deep; at most "
                    f"{MAX_DEPTH} levels of lists and objects are allowed"
                )
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _relative_path(field_name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 1024:
        raise QueueError(
            f"{field_name}: {_short(value)} is not allowed; expected a path relative to the work "
            "folder, such as 'output/run-1.json'"
        )
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\0" in value:
        raise QueueError(
            f"{field_name}: {value!r} is not allowed; expected a path inside the work folder "
            "(relative, without '..')"
        )
    return value


@dataclass(kw_only=True, frozen=True)
class Task:
    """One unit of work: a shell command or a Python callable with JSON arguments.

    Attributes:
        command: A string run by ``/bin/sh -c`` (``bash -c`` with ``shell="bash"``), or a list
            of strings run without a shell. Commands run in the work folder.
        call: ``"package.module:function"``, imported on the worker and called with
            ``*args, **kwargs``; its return value (JSON) is stored in the result record.
        args: Positional arguments for ``call`` (JSON values).
        kwargs: Keyword arguments for ``call`` (JSON values).
        id: Unique within a run; becomes the storage key of the result. By default a
            hash of the task's content, so the same task keeps its id across reruns.
        timeout: Seconds after which the attempt is stopped and fails; ``None`` for no limit.
        outputs: Paths (relative to the work folder) the task must leave behind: an attempt
            that does not is a failure, and a finished task whose outputs are gone is run
            again by the next run.
        env: Extra environment variables of a command.
        shell: ``"sh"`` (default) or ``"bash"``, the shell of a string command.
        on_error: ``"fail"`` (default): a non-zero exit fails the attempt (retried, then
            dead-lettered); ``"continue"``: the exit status is recorded and the task counts as
            done for its stage, as bash goes on after a failing line without ``set -e``
            (a rerun runs it again).
    """

    command: str | Sequence[str] | None = None
    call: str | None = None
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    timeout: float | None = None
    outputs: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    shell: str | None = None
    on_error: str = "fail"

    def __post_init__(self) -> None:
        self._check_fields(checked_json=False)

    def _check_fields(self, *, checked_json: bool) -> None:
        if (self.command is None) == (self.call is None):
            raise QueueError(
                f"task: command={_short(self.command)}, call={_short(self.call)} is not allowed; "
                "expected exactly one of command (a shell command) or call ('module:function')"
            )
        if self.command is not None:
            if isinstance(self.command, str):
                if not self.command.strip():
                    raise QueueError("command: '' is not allowed; expected a shell command")
                if "\0" in self.command:
                    raise QueueError("command: a NUL character is not allowed in a command")
            elif not (
                isinstance(self.command, Sequence)
                and self.command
                and all(isinstance(part, str) and "\0" not in part for part in self.command)
            ):
                raise QueueError(
                    f"command: {_short(self.command)} is not allowed; expected a string or a "
                    "non-empty list of strings"
                )
            else:
                object.__setattr__(self, "command", tuple(self.command))
            if self.args or self.kwargs:
                raise QueueError(
                    "args/kwargs: not allowed with command; put arguments in the command line"
                )
        if self.call is not None and not (isinstance(self.call, str) and _CALL.match(self.call)):
            raise QueueError(f"call: {_short(self.call)} is not allowed; {CALL_ALLOWED}")
        if isinstance(self.args, str | bytes) or not isinstance(self.args, Sequence):
            raise QueueError(
                f"args: {_short(self.args)} is not allowed; expected a list of JSON values"
            )
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise QueueError(
                f"kwargs: {_short(self.kwargs)} is not allowed; expected an object with string keys"
            )
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        if not checked_json:  # a decoded message is JSON already (and its depth checked)
            _json_value("args", list(self.args))
            _json_value("kwargs", self.kwargs)
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not 0 < self.timeout < 1e9
        ):
            raise QueueError(
                f"timeout: {_short(self.timeout)} is not allowed; expected seconds above 0"
            )
        self._check_extras()
        if not self.id:
            object.__setattr__(self, "id", self._content_id())
        elif not (isinstance(self.id, str) and _ID.match(self.id)):
            raise QueueError(f"id: {_short(self.id)} is not allowed; {ID_ALLOWED}")

    def _check_extras(self) -> None:
        if not self.outputs and not self.env and self.shell is None and self.on_error == "fail":
            # The defaults: nothing to check (the usual task; decoding stays cheap).
            object.__setattr__(self, "outputs", ())
            object.__setattr__(self, "env", {})
            return
        outputs = self.outputs
        if isinstance(outputs, str | bytes) or not isinstance(outputs, Sequence):
            raise QueueError(
                f"outputs: {_short(outputs)} is not allowed; expected a list of paths relative "
                "to the work folder"
            )
        if len(outputs) > _MAX_OUTPUTS:
            raise QueueError(f"outputs: {len(outputs)} paths; at most {_MAX_OUTPUTS} allowed")
        object.__setattr__(
            self, "outputs", tuple(_relative_path("outputs", item) for item in outputs)
        )
        if not isinstance(self.env, Mapping) or not all(
            isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str) and "\0" not in v
            for k, v in self.env.items()
        ):
            raise QueueError(
                f"env: {_short(self.env)} is not allowed; expected an object of variable names "
                "(letters, digits, '_') to string values"
            )
        reserved = sorted(k for k in self.env if k.startswith("WORKSTACK_"))
        if reserved:
            raise QueueError(
                f"env: {reserved} is not allowed; WORKSTACK_* variables are set by the worker"
            )
        object.__setattr__(self, "env", dict(self.env))
        if self.shell is not None and self.shell not in SHELLS:
            raise QueueError(
                f"shell: {_short(self.shell)} is not allowed; expected one of {list(SHELLS)}"
            )
        if self.on_error not in ON_ERROR:
            raise QueueError(
                f"on_error: {_short(self.on_error)} is not allowed; expected one of "
                f"{list(ON_ERROR)}"
            )
        if self.call is not None and (self.env or self.shell or self.on_error != "fail"):
            raise QueueError(
                "env/shell/on_error: only allowed with command; a Python call gets its inputs "
                "as args and kwargs"
            )
        if self.shell is not None and not isinstance(self.command, str):
            raise QueueError("shell: only allowed with a command given as one string")

    def _content_id(self) -> str:
        content = _json_value("task", self._payload())
        return hashlib.sha256(content.encode()).hexdigest()[:20]

    def _payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if self.command is not None:
            payload["command"] = (
                self.command if isinstance(self.command, str) else list(self.command)
            )
        else:
            payload["call"] = self.call
            if self.args:
                payload["args"] = list(self.args)
            if self.kwargs:
                payload["kwargs"] = dict(self.kwargs)
        if self.timeout is not None:
            payload["timeout"] = self.timeout
        # Only what differs from the defaults: ids of tasks made before these fields existed
        # stay the same.
        if self.outputs:
            payload["outputs"] = list(self.outputs)
        if self.env:
            payload["env"] = dict(self.env)
        if self.shell is not None:
            payload["shell"] = self.shell
        if self.on_error != "fail":
            payload["on_error"] = self.on_error
        return payload

    @property
    def label(self) -> str:
        """A short description for logs: the command line or the callable."""
        if self.command is None:
            return f"{self.call}()"
        return self.command if isinstance(self.command, str) else " ".join(self.command)


@dataclass(kw_only=True, frozen=True)
class Stage:
    """Tasks that must all complete before the next stage starts.

    Attributes:
        name: Shown in progress and logs, stored in result records.
        tasks: The stage's tasks; their ids must be unique within the run.
    """

    name: str
    tasks: Sequence[Task]

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and _STAGE.match(self.name)):
            raise QueueError(f"stage name: {self.name!r} is not allowed; {STAGE_ALLOWED}")
        tasks = tuple(self.tasks)
        if not tasks:
            raise QueueError(f"stage {self.name!r}: no tasks; a stage needs at least one task")
        bad = [task for task in tasks if not isinstance(task, Task)]
        if bad:
            raise QueueError(f"stage {self.name!r}: {bad[0]!r} is not allowed; expected Task")
        object.__setattr__(self, "tasks", tasks)


def check_unique_ids(stages: Iterable[Stage]) -> None:
    """Raise :class:`QueueError` if two tasks of a run share an id, naming both places."""
    seen: dict[str, str] = {}
    for stage in stages:
        for index, task in enumerate(stage.tasks, start=1):
            where = f"stage {stage.name!r} task {index}"
            if task.id in seen:
                raise QueueError(
                    f"task id {task.id!r} is used twice ({seen[task.id]} and {where}); ids must "
                    "be unique within a run: give one an explicit id"
                )
            seen[task.id] = where


@dataclass(frozen=True)
class TaskMessage:
    """A task as a worker receives it."""

    task: Task
    stage: str
    run: str


@dataclass(frozen=True)
class StopMessage:
    """Tells one worker to finish what it holds and exit 0."""

    run: str
    sent_at: float


@dataclass(frozen=True)
class Completion:
    """What the tasker learns about one task: it is done, or it failed for good."""

    id: str
    stage: str
    run: str
    status: Literal["done", "failed"]
    attempt: int = 0
    cached: bool = False
    error: str = ""
    exit: int = 0
    """A ``continue`` command's non-zero exit status (0 otherwise)."""


def encode_task(task: Task, *, stage: str, run: str, env: Mapping[str, str] | None = None) -> bytes:
    """The body of a task message.

    ``env`` (the run's environment for commands) is added under the task's own ``env``; it
    does not change the task's id, so a rerun with another value still finds what is done.
    """
    message = {"v": PROTOCOL_VERSION, "kind": "task", "id": task.id, "stage": stage, "run": run}
    message.update(task._payload())
    if env and task.command is not None:
        message["env"] = {**env, **task.env}
    return json.dumps(message, separators=(",", ":")).encode()


def encode_stop(*, run: str, sent_at: float) -> bytes:
    """The body of a stop message."""
    return json.dumps(
        {"v": PROTOCOL_VERSION, "kind": "stop", "run": run, "sent_at": sent_at},
        separators=(",", ":"),
    ).encode()


def encode_results(worker: str, completions: Sequence[Completion]) -> bytes:
    """The body of a completion note: one or more tasks done."""
    results = []
    for item in completions:
        result: dict[str, Any] = {
            "id": item.id,
            "stage": item.stage,
            "run": item.run,
            "status": item.status,
            "attempt": item.attempt,
            "cached": item.cached,
        }
        if item.exit:
            result["exit"] = item.exit
        results.append(result)
    return json.dumps(
        {"v": PROTOCOL_VERSION, "kind": "results", "worker": worker, "results": results},
        separators=(",", ":"),
    ).encode()


def _reject_constant(name: str) -> Any:
    raise _ConstantError(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _InfiniteError(text)
    return value


class _InfiniteError(ValueError):
    pass


class _ConstantError(ValueError):
    pass


_EXAMPLE = 'expected a JSON object such as {"v": 1, "kind": "task", ...}'
# One decoder for every message: json.loads builds a new one per call when given hooks.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)


def _load(body: bytes) -> dict[str, Any]:
    """Parse a body into a JSON object, turning every way it can fail into a MessageError."""
    if not isinstance(body, bytes | bytearray):
        raise MessageError(f"message body is a {type(body).__name__}; expected bytes")
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageError(
            f"message of {len(body)} bytes is too large; at most {MAX_MESSAGE_BYTES} bytes allowed"
        )
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as error:
        raise MessageError(
            f"message body {bytes(body[:60])!r} is not valid UTF-8 ({error}); {_EXAMPLE}"
        ) from None
    try:
        data = _DECODER.decode(text)
    except _InfiniteError:
        raise MessageError(
            "message body has a number too large for a float (such as 1e999), which is not "
            "allowed; numbers must be finite"
        ) from None
    except _ConstantError as error:
        raise MessageError(
            f"message body has the number {error}, which is not allowed (NaN and Infinity are "
            f"not JSON); {_EXAMPLE}"
        ) from None
    except RecursionError:
        raise MessageError(
            f"message body is nested too deeply to decode; at most {MAX_DEPTH} levels of "
            "lists and objects are allowed"
        ) from None
    except json.JSONDecodeError as error:
        raise MessageError(
            f"message body {body[:60]!r} is not valid JSON ({error}); {_EXAMPLE}"
        ) from None
    except ValueError as error:
        # int("7" * 5000) and the like: Python refuses integers above 4300 digits
        # (sys.int_info.default_max_str_digits) rather than spend quadratic time on them.
        raise MessageError(
            f"message body cannot be decoded ({str(error)[:200]}); numbers must have at "
            f"most 4300 digits; {_EXAMPLE}"
        ) from None
    except MemoryError:
        raise MessageError("message body cannot be decoded in memory") from None
    if not isinstance(data, dict):
        raise MessageError(
            f"message body is a JSON {type(data).__name__}; expected a JSON object with "
            '"v" and "kind"'
        )
    # Fewer brackets than levels allowed (counting those in strings too): no need to look.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        _check_decoded(data)
    if data.get("v") != PROTOCOL_VERSION:
        raise MessageError(
            f"message field v: {_short(data.get('v'))} is not allowed; expected {PROTOCOL_VERSION}"
        )
    return data


def _check_decoded(data: Any) -> None:
    """A decoded document has at most MAX_DEPTH levels (and finite floats)."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise MessageError(
                    f"message body is nested more than {MAX_DEPTH} levels deep; at most "
                    f"{MAX_DEPTH} levels of lists and objects are allowed"
                )
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            raise MessageError(
                "message body has a number too large for a float (such as 1e999), which is not "
                "allowed; numbers must be finite"
            )


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], allowed: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        shown = "(missing)" if key not in data else _short(value)
        raise MessageError(f"message field {key}: {shown} is not allowed; {allowed}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: set[str], kind: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise MessageError(
            f"{kind} message has unknown field(s) {[k[:40] for k in unknown[:10]]}; "
            f"allowed: {sorted(allowed)}"
        )


def _run_id(data: Mapping[str, Any]) -> str:
    run = _field(data, "run", str, f"expected the run id the tasker sets ({ID_ALLOWED})")
    if not _ID.match(run):
        raise MessageError(f"message field run: {_short(run)} is not allowed; {ID_ALLOWED}")
    return str(run)


def _task_message(data: Mapping[str, Any]) -> TaskMessage:
    _check_keys(data, _TASK_KEYS, "task")
    task_id = _field(data, "id", str, ID_ALLOWED)
    if not _ID.match(task_id):
        raise MessageError(f"message field id: {_short(task_id)} is not allowed; {ID_ALLOWED}")
    stage = _field(data, "stage", str, STAGE_ALLOWED)
    if not _STAGE.match(stage):
        raise MessageError(f"message field stage: {_short(stage)} is not allowed; {STAGE_ALLOWED}")
    run = _run_id(data)
    task = object.__new__(Task)
    values = {
        "command": data.get("command"),
        "call": data.get("call"),
        "args": data.get("args", ()),
        "kwargs": data.get("kwargs", {}),
        "id": task_id,
        "timeout": data.get("timeout"),
        "outputs": data.get("outputs", ()),
        "env": data.get("env", {}),
        "shell": data.get("shell"),
        "on_error": data.get("on_error", "fail"),
    }
    for name, value in values.items():
        object.__setattr__(task, name, value)
    try:
        task._check_fields(checked_json=True)
    except QueueError as error:
        raise MessageError(f"task message {task_id!r}: {error}") from None
    return TaskMessage(task=task, stage=stage, run=run)


def decode_message(body: bytes) -> TaskMessage | StopMessage:
    """Parse a message from the tasks queue.

    Raises:
        MessageError: The body is not a valid task or stop message; the error says why.
            Nothing else is raised, whatever the body.
    """
    data = _load(body)
    kind = data.get("kind")
    if kind == "task":
        return _task_message(data)
    if kind == "stop":
        _check_keys(data, _STOP_KEYS, "stop")
        sent_at = _field(data, "sent_at", (int, float), "expected a Unix time")
        return StopMessage(run=_run_id(data), sent_at=float(sent_at))
    raise MessageError(
        f"message field kind: {_short(kind)} is not allowed; expected 'task' or 'stop'"
    )


def _header(headers: Mapping[str, Any], key: str) -> str:
    value = headers.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def is_dead_letter(headers: Mapping[str, Any] | None) -> bool:
    """Whether a message on the results queue is a dead letter, not a completion note.

    A dead-lettered task, or junk a worker dead-lettered from the tasks queue.
    """
    headers = headers if isinstance(headers, Mapping) else {}
    return bool(_header(headers, REASON_HEADER) or _header(headers, "x-first-death-reason"))


def decode_note(body: bytes, headers: Mapping[str, Any] | None) -> list[Completion]:
    """Parse a message from the results queue: a completion note or a dead letter.

    Raises:
        MessageError: The message is neither; the error says why. Nothing else is raised.
    """
    headers = headers if isinstance(headers, Mapping) else {}
    reason = _header(headers, REASON_HEADER) or _header(headers, "x-first-death-reason")
    if reason:
        # A dead letter: the original task message, failed for good.
        message = decode_message(body)
        if not isinstance(message, TaskMessage):
            raise MessageError("dead-lettered stop message; nothing to record")
        error = _header(headers, ERROR_HEADER) or f"dead-lettered by the broker: {reason}"
        attempts = headers.get(ATTEMPTS_HEADER)
        return [
            Completion(
                id=message.task.id,
                stage=message.stage,
                run=message.run,
                status="failed",
                attempt=attempts if isinstance(attempts, int) else 0,
                error=error,
            )
        ]
    data = _load(body)
    if data.get("kind") != "results":
        raise MessageError(
            f"message field kind: {_short(data.get('kind'))} is not allowed on the results "
            "queue; expected 'results' or a dead-lettered task"
        )
    items = _field(data, "results", list, "expected a list of results")
    completions = []
    for item in items:
        if not isinstance(item, dict):
            raise MessageError(f"result {_short(item)} is not allowed; expected an object")
        status = item.get("status")
        if status not in ("done", "failed"):
            raise MessageError(
                f"result status: {_short(status)} is not allowed; expected 'done' or 'failed'"
            )
        task_id = _field(item, "id", str, ID_ALLOWED)
        attempt = item.get("attempt", 0)
        code = item.get("exit", 0)
        completions.append(
            Completion(
                id=task_id,
                stage=_field(item, "stage", str, STAGE_ALLOWED),
                run=_field(item, "run", str, "expected a run id"),
                status=status,
                attempt=attempt
                if isinstance(attempt, int) and not isinstance(attempt, bool)
                else 0,
                cached=item.get("cached") is True,
                exit=code if isinstance(code, int) and not isinstance(code, bool) else 0,
            )
        )
    return completions
