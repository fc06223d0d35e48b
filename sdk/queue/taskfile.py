"""Task files: one task per line, split into stages.

The format (UTF-8 text)::

    # A comment. Blank lines and lines starting with '#' are ignored.
    @stage part2
    python simulate.py --seed 1 --out results/1.csv
    {"call": "sims.metrics:summarize", "args": ["part2"], "id": "summary-2", "timeout": 600}
    @stage part3
    python simulate.py --seed 2 --phase 3

- ``@stage NAME`` starts a stage: every task of a stage completes before the next stage
  starts. Tasks before the first ``@stage`` line belong to a stage named after the file:
  its name without a final ``.txt`` (``part1.txt`` -> ``part1``, ``jobs.sh.part2`` ->
  ``jobs.sh.part2``). Several files are stages in the order given.
- A line starting with ``{`` is a task as a JSON object with the keys ``command`` (string or
  list of strings) or ``call`` (``"module:function"``), and optionally ``args``, ``kwargs``,
  ``id``, ``timeout``, ``outputs``, ``env``, ``shell`` and ``on_error``.
- Any other line is a shell command, run by ``/bin/sh -c`` on a worker.

**Shell scripts** (a file named ``*.sh`` or ``*.sh.<part>``, or starting with a ``#!`` line
naming sh or bash), such as the ``jobs.sh`` asreview's makita writes, run as bash would run
them, line by line: every line is a command for ``bash -c`` (``sh`` if the ``#!`` line says
so), ``#`` lines are comments, a trailing backslash continues a line. Without ``set -e`` a
failing line does not fail the run (``on_error: continue``: its exit status is recorded and
shown, and a rerun runs it again); after ``set -e`` (or ``set -o errexit``) it does, until
``set +e``. Other ``set`` options (``-u``, ``-o pipefail``, ...) apply to every later line.
Lines that change the shell for the lines after them (``cd``, ``export``, ``VAR=value``,
``source``...) or that are not a complete command on their own (a multi-line ``for``) are
errors: each line runs on its own, possibly on another worker.

A file is checked completely before anything is published; every problem is reported with its
file and line number.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
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

__all__ = [
    "TaskFileError",
    "default_stage_name",
    "is_shell_script",
    "load_task_files",
    "parse_script_lines",
    "parse_task_lines",
    "to_task",
]

_TASK_FIELDS = (
    "command",
    "call",
    "args",
    "kwargs",
    "id",
    "timeout",
    "outputs",
    "env",
    "shell",
    "on_error",
)
# Builtins whose effect is on the shell itself, for the lines after them.
_STATEFUL = {
    "cd": "changes the folder of the lines after it",
    "pushd": "changes the folder of the lines after it",
    "popd": "changes the folder of the lines after it",
    "export": "sets a variable for the lines after it (use the tasker's --env NAME=value)",
    "unset": "unsets a variable for the lines after it",
    "source": "loads definitions for the lines after it",
    ".": "loads definitions for the lines after it",
    "alias": "defines an alias for the lines after it",
    "umask": "changes the file mode mask of the lines after it",
    "shopt": "changes shell options for the lines after it",
    "trap": "sets a trap for the lines after it",
    "exit": "ends the script",
}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_COMPOUND = {"if", "then", "elif", "else", "fi", "for", "while", "until", "do", "done", "case",
             "esac", "function", "select", "{", "}", "(", ")"}  # fmt: skip
_SCRIPT_NAME = re.compile(r"\.(ba)?sh(\.[A-Za-z0-9_-]+)?$")
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


def default_stage_name(path: Path) -> str:
    """The stage of a file's tasks before any ``@stage`` line: its name without ``.txt``."""
    name = path.name
    return name[: -len(".txt")] if name.endswith(".txt") else name


def is_shell_script(path: Path, first_line: str) -> str | None:
    """``"bash"`` or ``"sh"`` if the file is a shell script (see the module docstring)."""
    if first_line.startswith("#!"):
        interpreter = first_line[2:].strip().split()
        words = [Path(w).name for w in interpreter]
        if "sh" in words or "dash" in words:
            return "sh"
        if "bash" in words:
            return "bash"
    return "bash" if _SCRIPT_NAME.search(path.name) else None


def parse_script_lines(
    lines: Iterable[str],
    *,
    source: str,
    stage: str,
    shell: str,
    seen_ids: dict[str, str] | None = None,
) -> list[Stage]:
    """Parse a shell script as bash would run it, one task per command line.

    Raises:
        TaskFileError: Listing every problem with its line number.
    """
    problems: list[str] = []
    tasks: list[Task] = []
    seen_ids = {} if seen_ids is None else seen_ids
    options: list[str] = []
    errexit = False
    pending = ""
    start = 0
    numbered = list(enumerate(lines, start=1))
    for number, raw in numbered:
        line = raw.rstrip("\r\n")
        if pending:
            line = pending + line
        else:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        pending = ""
        where = f"{source}:{start}"
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            words = shlex.split(text, comments=True)
        except ValueError as error:
            problems.append(f"{where}: {text[:60]!r} is not a complete command ({error})")
            continue
        if not words:
            continue
        first = words[0]
        if first == "set":
            flags = words[1:]
            if any(f in ("-e", "-o errexit") for f in flags) or flags[:2] == ["-o", "errexit"]:
                errexit = True
            if any(f == "+e" for f in flags) or flags[:2] == ["+o", "errexit"]:
                errexit = False
            options.append(text)
            continue
        if first in _STATEFUL or (_ASSIGNMENT.match(first) and len(words) == 1):
            why = _STATEFUL.get(first, "sets a variable for the lines after it")
            problems.append(
                f"{where}: {text[:60]!r} {why}, which a task file cannot carry over: each line "
                "runs on its own, possibly on another worker; put it on the line that needs "
                "it (e.g. 'cd data && python run.py')"
            )
            continue
        if (first in _COMPOUND or text.endswith(("&&", "||", "|", "\\")) or "<<" in text) and (
            not _complete(text)
        ):
            problems.append(
                f"{where}: {text[:60]!r} is not a complete command on its own (a construct over "
                "several lines?); each line of a task file must be one"
            )
            continue
        command = "\n".join([*options, text]) if options else text
        try:
            task = Task(command=command, shell=shell, on_error="fail" if errexit else "continue")
        except QueueError as error:
            problems.append(f"{where}: {error}")
            continue
        if task.id in seen_ids:
            problems.append(
                f"{where}: the same command as on {seen_ids[task.id]}; bash would run it twice, "
                "a task file runs each command once: make the lines differ"
            )
            continue
        seen_ids[task.id] = where
        tasks.append(task)
    if pending:
        problems.append(f"{source}:{start}: the file ends with a line continuation")
    if not _STAGE.match(stage):
        problems.append(
            f"{source}: its tasks belong to a stage named after the file, and {stage!r} is not "
            f"a valid stage name ({STAGE_ALLOWED}); rename the file"
        )
    elif not tasks and not problems:
        problems.append(f"{source}: no command in this shell script")
    if problems:
        raise TaskFileError(problems)
    return [Stage(name=stage, tasks=tasks)]


def _complete(text: str) -> bool:
    """Whether bash parses ``text`` as complete commands (``bash -n``)."""
    bash = shutil.which("bash")
    if bash is None:
        return False
    done = subprocess.run([bash, "-n", "-c", text], capture_output=True, timeout=10, check=False)
    return done.returncode == 0


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
        lines = text.splitlines()
        shell = is_shell_script(path, lines[0] if lines else "")
        try:
            if shell is not None:
                stages.extend(
                    parse_script_lines(
                        lines,
                        source=str(path),
                        stage=default_stage_name(path),
                        shell=shell,
                        seen_ids=seen_ids,
                    )
                )
            else:
                stages.extend(
                    parse_task_lines(
                        lines,
                        source=str(path),
                        default_stage=default_stage_name(path),
                        seen_ids=seen_ids,
                    )
                )
        except TaskFileError as error:
            problems.extend(error.problems)
    seen: dict[str, int] = {}
    for index, stage in enumerate(stages):
        if stage.name in seen:
            problems.append(
                f"stage {stage.name!r} appears in more than one file; stage names must be unique "
                "(rename a file, or start it with '@stage NAME')"
            )
        seen[stage.name] = index
    if problems:
        raise TaskFileError(problems)
    return stages
