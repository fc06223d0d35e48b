"""Task files: one task per line, split into stages.

The format (UTF-8 text)::

    # A comment. Blank lines and lines starting with '#' are ignored.
    @stage part2
    python simulate.py --seed 1 --out results/1.csv
    {"call": "sims.metrics:summarize", "args": ["part2"], "id": "summary-2", "timeout": 600}
    @stage part3
    python simulate.py --seed 2 --phase 3

- ``@stage NAME`` starts a stage: every task of a stage completes before the next stage
  starts. Tasks before the first ``@stage`` line belong to a stage named after the file
  (``part1.txt`` -> ``part1``). Several files are stages in the order given.
- A line starting with ``{`` is a task as a JSON object with the keys ``command`` (string or
  list of strings) or ``call`` (``"module:function"``), and optionally ``args``, ``kwargs``,
  ``id`` and ``timeout``.
- Any other line is a shell command, run by ``/bin/sh -c`` on a worker.

A file is checked completely before anything is published; every problem is reported with its
file and line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from workstack.sdk.queue.config import QueueError
from workstack.sdk.queue.messages import (
    _STAGE,
    MAX_MESSAGE_BYTES,
    STAGE_ALLOWED,
    Stage,
    Task,
)

__all__ = ["TaskFileError", "load_task_files", "parse_task_lines", "to_task"]

_TASK_FIELDS = ("command", "call", "args", "kwargs", "id", "timeout")
_LINE_ALLOWED = (
    "allowed: a shell command, a JSON task object, '@stage NAME', a '#' comment or a blank line"
)
_MAX_SHOWN = 20


class TaskFileError(QueueError):
    """A task file has problems; ``problems`` lists each as ``file:line: what is wrong``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {problem}" for problem in self.problems[:_MAX_SHOWN])
        more = len(self.problems) - _MAX_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"invalid task file ({len(self.problems)} problem(s); nothing was published):\n"
            f"{shown}{tail}"
        )


def to_task(item: Task | str | Mapping[str, Any]) -> Task:
    """Make a task from a :class:`Task`, a shell command string, or a mapping of task fields.

    Raises:
        QueueError: The item is none of these, or its fields are invalid.
    """
    if isinstance(item, Task):
        return item
    if isinstance(item, str):
        return Task(command=item)
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - set(_TASK_FIELDS))
        if unknown:
            raise QueueError(
                f"task has unknown field(s) {unknown}; allowed: {', '.join(_TASK_FIELDS)}"
            )
        return Task(**dict(item))
    raise QueueError(
        f"task {item!r} is not allowed; expected a Task, a shell command string or a mapping "
        f"with the keys {', '.join(_TASK_FIELDS)}"
    )


def parse_task_lines(
    lines: Iterable[str],
    *,
    source: str,
    default_stage: str,
    seen_ids: dict[str, str] | None = None,
) -> list[Stage]:
    """Parse task-file lines (see the module docstring) into stages.

    Args:
        lines: The lines, with or without line endings.
        source: How the file is named in errors.
        default_stage: Stage of the tasks before the first ``@stage`` line.
        seen_ids: Task ids already used in this run, each with its ``file:line``; updated.

    Raises:
        TaskFileError: Listing every problem with its line number.
    """
    problems: list[str] = []
    stages: list[tuple[str, int, list[Task]]] = []
    current: list[Task] | None = None
    seen_ids = {} if seen_ids is None else seen_ids
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        where = f"{source}:{number}"
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if len(line.encode()) > MAX_MESSAGE_BYTES:
            problems.append(f"{where}: line is longer than {MAX_MESSAGE_BYTES} bytes")
            continue
        if text.startswith("@"):
            directive, _, name = text.partition(" ")
            name = name.strip()
            if directive != "@stage":
                problems.append(
                    f"{where}: directive {directive!r} is not allowed; only '@stage NAME'"
                )
            elif not _STAGE.match(name):
                problems.append(f"{where}: stage name {name!r} is not allowed; {STAGE_ALLOWED}")
            else:
                current = []
                stages.append((name, number, current))
            continue
        try:
            task = _parse_task(text)
        except QueueError as error:
            problems.append(f"{where}: {error}")
            continue
        if task.id in seen_ids:
            problems.append(
                f"{where}: task id {task.id!r} is already used on {seen_ids[task.id]}; ids must "
                'be unique within a run: write the task as JSON with its own "id"'
            )
            continue
        seen_ids[task.id] = where
        if current is None:
            if not _STAGE.match(default_stage):
                problems.append(
                    f"{where}: a task before any '@stage' line belongs to a stage named after "
                    f"the file, and {default_stage!r} is not a valid stage name ({STAGE_ALLOWED}); "
                    "start the file with '@stage NAME'"
                )
                continue
            current = []
            stages.append((default_stage, number, current))
        current.append(task)
    result = _stages(stages, source, problems)
    if problems:
        raise TaskFileError(problems)
    return result


def _parse_task(text: str) -> Task:
    if not text.startswith("{"):
        return Task(command=text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise QueueError(f"invalid JSON ({error}); {_LINE_ALLOWED}") from None
    if not isinstance(data, dict):
        raise QueueError(f"expected a JSON object; {_LINE_ALLOWED}")
    return to_task(data)


def _stages(
    found: list[tuple[str, int, list[Task]]], source: str, problems: list[str]
) -> list[Stage]:
    stages = []
    first_line: dict[str, int] = {}
    for name, line, tasks in found:
        if name in first_line:
            problems.append(
                f"{source}:{line}: stage {name!r} already started on line {first_line[name]}; "
                "stage names must be unique"
            )
            continue
        first_line[name] = line
        if not tasks:
            problems.append(f"{source}:{line}: stage {name!r} has no tasks")
            continue
        stages.append(Stage(name=name, tasks=tasks))
    return stages


def load_task_files(paths: Sequence[str | Path]) -> list[Stage]:
    """Read task files (see the module docstring) into stages, in order.

    Raises:
        TaskFileError: Listing every problem of every file, with file and line; raised before
            anything can be published.
    """
    if not paths:
        raise TaskFileError(["no task file given; pass at least one"])
    problems: list[str] = []
    stages: list[Stage] = []
    seen_ids: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"{path}: no such file")
            continue
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{path}: cannot be read as UTF-8 text ({error})")
            continue
        try:
            stages.extend(
                parse_task_lines(
                    text.splitlines(), source=str(path), default_stage=path.stem, seen_ids=seen_ids
                )
            )
        except TaskFileError as error:
            problems.extend(error.problems)
    seen: dict[str, int] = {}
    for index, stage in enumerate(stages):
        if stage.name in seen:
            problems.append(
                f"stage {stage.name!r} appears in more than one file; stage names must be unique"
            )
        seen[stage.name] = index
    if problems:
        raise TaskFileError(problems)
    return stages
