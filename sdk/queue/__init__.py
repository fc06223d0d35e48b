"""Queue workers on RabbitMQ: a tasker publishes tasks, workers run them and then exit.

Quick start (see docs/queue.md)::

    from workstack.sdk.queue import Stage, Task, Tasker, TaskerSpec

    spec = TaskerSpec(queue="sims", storage_url="s3://bucket/run-1", workers=4)
    report = Tasker(spec).run([
        Stage(name="part1", tasks=[Task(command="python simulate.py --seed 1")]),
        Stage(name="part2", tasks=[Task(call="sims.metrics:summarize", args=["part1"])]),
    ])

and on each worker ``workstack queue worker --queue sims --storage s3://bucket/run-1``.

The tasker and the worker need pika (``pip install 'workstack[queue]'``); they are imported on
first use, so the rest of this package (specs, messages, task files) works without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workstack.sdk.queue.config import (
    BROKER_URL_ENV,
    DEFAULT_BROKER_URL,
    STORAGE_URL_ENV,
    BrokerError,
    QueueError,
    QueueNames,
    QueueSpec,
    TaskerSpec,
    WorkerSpec,
    redact_url,
)
from workstack.sdk.queue.execution import TaskContext, current_task
from workstack.sdk.queue.messages import MessageError, Stage, Task
from workstack.sdk.queue.progress import ProgressView
from workstack.sdk.queue.taskfile import TaskFileError, load_task_files

if TYPE_CHECKING:
    from workstack.sdk.queue.local import run_local
    from workstack.sdk.queue.tasker import StageReport, Tasker, TaskerReport
    from workstack.sdk.queue.worker import Worker

__all__ = [
    "BROKER_URL_ENV",
    "DEFAULT_BROKER_URL",
    "STORAGE_URL_ENV",
    "BrokerError",
    "MessageError",
    "ProgressView",
    "QueueError",
    "QueueNames",
    "QueueSpec",
    "Stage",
    "StageReport",
    "Task",
    "TaskContext",
    "TaskFileError",
    "Tasker",
    "TaskerReport",
    "TaskerSpec",
    "Worker",
    "WorkerSpec",
    "current_task",
    "load_task_files",
    "redact_url",
    "run_local",
]

# Names whose modules import pika, loaded on first use.
_LAZY = {
    "StageReport": "tasker",
    "Tasker": "tasker",
    "TaskerReport": "tasker",
    "Worker": "worker",
    "run_local": "local",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
