"""Tasks, stages and the JSON messages that carry them.

Every message body is a UTF-8 JSON object with a protocol version ``v`` and a ``kind``:

- ``task`` (tasker -> worker, on ``<queue>.tasks``): ``id``, ``stage``, ``run`` and either
  ``command`` (a string run by ``/bin/sh -c``, or a list of strings run without a shell) or
  ``call`` (``"package.module:function"``) with optional ``args`` (list) and ``kwargs``
  (object); optional ``timeout`` (seconds).
- ``stop`` (tasker -> worker): ``run`` and ``sent_at`` (Unix time); one per worker.
- ``results`` (worker -> tasker, on ``<queue>.results``): ``worker`` and ``results``, a list of
  ``{"id", "stage", "run", "status": "done", "attempt", "cached"}``.

Dead letters reach the tasker too, as the original task message with the headers
``x-workstack-reason`` and ``x-workstack-error`` (or the broker's ``x-first-death-reason``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from workstack.sdk.queue.config import QueueError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
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
]

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20
# Ids and stage names become storage keys and log fields: no '/', no leading '.'.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_STAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_CALL = re.compile(rf"^{_DOTTED}:{_DOTTED}$")
ID_ALLOWED = "expected 1-128 of letters, digits, '.', '_', '-', starting with a letter or digit"
STAGE_ALLOWED = "expected 1-64 of letters, digits, '.', '_', '-', starting with a letter or digit"
CALL_ALLOWED = "expected 'package.module:function' (a dotted path, a colon, a dotted name)"
_TASK_KEYS = {"v", "kind", "id", "stage", "run", "command", "call", "args", "kwargs", "timeout"}
_STOP_KEYS = {"v", "kind", "run", "sent_at"}

# Headers a worker sets on the dead letters it publishes.
REASON_HEADER = "x-workstack-reason"
ERROR_HEADER = "x-workstack-error"
ATTEMPTS_HEADER = "x-workstack-attempts"
WORKER_HEADER = "x-workstack-worker"


class MessageError(QueueError):
    """A message is not valid JSON or does not follow the message schema."""


def _json_value(field_name: str, value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise QueueError(
            f"{field_name}: {value!r} is not allowed; expected JSON values (None, bool, numbers, "
            f"strings, lists, dicts with string keys) ({error})"
        ) from None


@dataclass(kw_only=True, frozen=True)
class Task:
    """One unit of work: a shell command or a Python callable with JSON arguments.

    Attributes:
        command: A string run by ``/bin/sh -c``, or a list of strings run without a shell.
        call: ``"package.module:function"``, imported on the worker and called with
            ``*args, **kwargs``; its return value (JSON) is stored in the result record.
        args: Positional arguments for ``call`` (JSON values).
        kwargs: Keyword arguments for ``call`` (JSON values).
        id: Unique within a run; becomes the storage key of the result. By default a
            hash of the task's content, so the same task keeps its id across reruns.
        timeout: Seconds after which a command is stopped and the attempt fails; ``None``
            for no limit. Commands only: a Python call cannot be stopped from outside.
    """

    command: str | Sequence[str] | None = None
    call: str | None = None
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    timeout: float | None = None

    def __post_init__(self) -> None:
        if (self.command is None) == (self.call is None):
            raise QueueError(
                f"task: command={self.command!r}, call={self.call!r} is not allowed; expected "
                "exactly one of command (a shell command) or call ('module:function')"
            )
        if self.command is not None:
            if isinstance(self.command, str):
                if not self.command.strip():
                    raise QueueError("command: '' is not allowed; expected a shell command")
            elif not (
                isinstance(self.command, Sequence)
                and self.command
                and all(isinstance(part, str) for part in self.command)
            ):
                raise QueueError(
                    f"command: {self.command!r} is not allowed; expected a string or a non-empty "
                    "list of strings"
                )
            else:
                object.__setattr__(self, "command", tuple(self.command))
            if self.args or self.kwargs:
                raise QueueError(
                    "args/kwargs: not allowed with command; put arguments in the command line"
                )
        if self.call is not None and not (isinstance(self.call, str) and _CALL.match(self.call)):
            raise QueueError(f"call: {self.call!r} is not allowed; {CALL_ALLOWED}")
        if isinstance(self.args, str | bytes) or not isinstance(self.args, Sequence):
            raise QueueError(f"args: {self.args!r} is not allowed; expected a list of JSON values")
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise QueueError(
                f"kwargs: {self.kwargs!r} is not allowed; expected an object with string keys"
            )
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        _json_value("args", list(self.args))
        _json_value("kwargs", self.kwargs)
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not self.timeout > 0
        ):
            raise QueueError(f"timeout: {self.timeout!r} is not allowed; expected seconds above 0")
        if self.timeout is not None and self.call is not None:
            raise QueueError(
                "timeout: only allowed with command; a Python call cannot be stopped from "
                "outside, so enforce time limits inside the function"
            )
        if not self.id:
            object.__setattr__(self, "id", self._content_id())
        elif not (isinstance(self.id, str) and _ID.match(self.id)):
            raise QueueError(f"id: {self.id!r} is not allowed; {ID_ALLOWED}")

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


def encode_task(task: Task, *, stage: str, run: str) -> bytes:
    """The body of a task message."""
    message = {"v": PROTOCOL_VERSION, "kind": "task", "id": task.id, "stage": stage, "run": run}
    message.update(task._payload())
    return json.dumps(message, separators=(",", ":")).encode()


def encode_stop(*, run: str, sent_at: float) -> bytes:
    """The body of a stop message."""
    return json.dumps(
        {"v": PROTOCOL_VERSION, "kind": "stop", "run": run, "sent_at": sent_at},
        separators=(",", ":"),
    ).encode()


def encode_results(worker: str, completions: Sequence[Completion]) -> bytes:
    """The body of a completion note: one or more tasks done."""
    results = [
        {
            "id": item.id,
            "stage": item.stage,
            "run": item.run,
            "status": item.status,
            "attempt": item.attempt,
            "cached": item.cached,
        }
        for item in completions
    ]
    return json.dumps(
        {"v": PROTOCOL_VERSION, "kind": "results", "worker": worker, "results": results},
        separators=(",", ":"),
    ).encode()


def _load(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageError(
            f"message of {len(body)} bytes is too large; at most {MAX_MESSAGE_BYTES} bytes allowed"
        )
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        preview = body[:60]
        raise MessageError(
            f"message body {preview!r} is not valid UTF-8 JSON ({error}); expected a JSON object "
            'such as {"v": 1, "kind": "task", ...}'
        ) from None
    if not isinstance(data, dict):
        raise MessageError(
            f"message body is a JSON {type(data).__name__}; expected a JSON object with "
            '"v" and "kind"'
        )
    if data.get("v") != PROTOCOL_VERSION:
        raise MessageError(
            f"message field v: {data.get('v')!r} is not allowed; expected {PROTOCOL_VERSION}"
        )
    return data


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], allowed: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        shown = "(missing)" if key not in data else repr(value)
        raise MessageError(f"message field {key}: {shown} is not allowed; {allowed}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: set[str], kind: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise MessageError(
            f"{kind} message has unknown field(s) {unknown}; allowed: {sorted(allowed)}"
        )


def _task_message(data: Mapping[str, Any]) -> TaskMessage:
    _check_keys(data, _TASK_KEYS, "task")
    task_id = _field(data, "id", str, ID_ALLOWED)
    if not _ID.match(task_id):
        raise MessageError(f"message field id: {task_id!r} is not allowed; {ID_ALLOWED}")
    stage = _field(data, "stage", str, STAGE_ALLOWED)
    if not _STAGE.match(stage):
        raise MessageError(f"message field stage: {stage!r} is not allowed; {STAGE_ALLOWED}")
    run = _field(data, "run", str, "expected the run id string the tasker sets")
    try:
        task = Task(
            command=data.get("command"),
            call=data.get("call"),
            args=data.get("args", ()),
            kwargs=data.get("kwargs", {}),
            id=task_id,
            timeout=data.get("timeout"),
        )
    except QueueError as error:
        raise MessageError(f"task message {task_id!r}: {error}") from None
    return TaskMessage(task=task, stage=stage, run=run)


def decode_message(body: bytes) -> TaskMessage | StopMessage:
    """Parse a message from the tasks queue.

    Raises:
        MessageError: The body is not a valid task or stop message; the error says why.
    """
    data = _load(body)
    kind = data.get("kind")
    if kind == "task":
        return _task_message(data)
    if kind == "stop":
        _check_keys(data, _STOP_KEYS, "stop")
        return StopMessage(
            run=_field(data, "run", str, "expected the run id string the tasker sets"),
            sent_at=float(_field(data, "sent_at", (int, float), "expected a Unix time")),
        )
    raise MessageError(f"message field kind: {kind!r} is not allowed; expected 'task' or 'stop'")


def _header(headers: Mapping[str, Any], key: str) -> str:
    value = headers.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def decode_note(body: bytes, headers: Mapping[str, Any] | None) -> list[Completion]:
    """Parse a message from the results queue: a completion note or a dead letter.

    Raises:
        MessageError: The message is neither; the error says why.
    """
    headers = headers or {}
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
            f"message field kind: {data.get('kind')!r} is not allowed on the results queue; "
            "expected 'results' or a dead-lettered task"
        )
    items = _field(data, "results", list, "expected a list of results")
    completions = []
    for item in items:
        if not isinstance(item, dict):
            raise MessageError(f"result {item!r} is not allowed; expected an object")
        status = item.get("status")
        if status not in ("done", "failed"):
            raise MessageError(f"result status: {status!r} is not allowed; expected 'done'")
        completions.append(
            Completion(
                id=_field(item, "id", str, ID_ALLOWED),
                stage=_field(item, "stage", str, STAGE_ALLOWED),
                run=_field(item, "run", str, "expected a run id"),
                status=status,
                attempt=item.get("attempt", 0) if isinstance(item.get("attempt"), int) else 0,
                cached=bool(item.get("cached", False)),
            )
        )
    return completions
