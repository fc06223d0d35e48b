"""Running one task on a worker (no broker): results, outputs, logs, failures, stops."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from workstack.sdk.queue import Task, current_task
from workstack.sdk.queue.execution import TaskRunner
from workstack.sdk.queue.messages import TaskMessage
from workstack.sdk.storage import Storage, open_storage

HERE = "tests.unit.test_queue_execution"


def square(n: int, *, note: str = "") -> int:
    context = current_task()
    (context.output_dir / "sub").mkdir()
    (context.output_dir / "sub" / "n.txt").write_text(f"{n} {note} {context.attempt}")
    (context.output_dir / ".hidden").write_text("not uploaded")
    return n * n


def explode() -> None:
    raise ValueError("bad input row 7")


def not_json() -> object:
    return {1, 2}


not_callable = 42


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return open_storage(tmp_path / "store")


def _run(
    storage: Storage,
    task: Task,
    *,
    attempt: int = 1,
    final: bool = False,
    cancel: threading.Event | None = None,
):  # type: ignore[no-untyped-def]
    runner = TaskRunner(storage, "w1")
    message = TaskMessage(task=task, stage="s", run="r1")
    return runner.run(message, attempt=attempt, final=final, cancel=cancel or threading.Event())


def test_a_call_stores_its_value_and_outputs(storage: Storage) -> None:
    task = Task(call=f"{HERE}:square", args=[4], kwargs={"note": "hi"}, id="sq")
    assert _run(storage, task, attempt=2).status == "done"
    result = json.loads(storage.read_text("results/sq.json"))
    assert result["value"] == 16
    assert (result["status"], result["attempt"], result["worker"], result["stage"]) == (
        "done",
        2,
        "w1",
        "s",
    )
    assert result["outputs"] == ["outputs/sq/sub/n.txt"]
    assert storage.read_text("outputs/sq/sub/n.txt") == "4 hi 2"


def test_a_stored_result_is_not_run_again(storage: Storage) -> None:
    task = Task(call=f"{HERE}:square", args=[3], id="once")
    assert _run(storage, task).status == "done"
    storage.write_text("outputs/once/sub/n.txt", "marker")
    assert _run(storage, task).status == "cached"
    assert storage.read_text("outputs/once/sub/n.txt") == "marker"


def test_a_command_gets_its_environment_and_its_log_is_stored(storage: Storage) -> None:
    script = (
        'echo "id=$WORKSTACK_TASK_ID stage=$WORKSTACK_TASK_STAGE attempt=$WORKSTACK_TASK_ATTEMPT"; '
        'echo result > "$WORKSTACK_OUTPUT_DIR/out.csv"; '
        'test "$WORKSTACK_STORAGE_URL" = "' + storage.url + '" && '
        'test "$(command -v python)" = "' + str(Path(sys.executable).parent / "python") + '"'
    )
    task = Task(command=script, id="cmd")
    assert _run(storage, task).status == "done"
    assert storage.read_text("logs/cmd.log") == "id=cmd stage=s attempt=1\n"
    assert storage.read_text("outputs/cmd/out.csv") == "result\n"
    assert json.loads(storage.read_text("results/cmd.json"))["exit_code"] == 0


def test_a_failing_command_reports_its_status_and_last_output(storage: Storage) -> None:
    task = Task(command="echo 'reading data'; echo 'no such column: x' >&2; exit 3", id="bad")
    outcome = _run(storage, task)
    assert outcome.status == "failed"
    assert outcome.error.startswith("command exited with status 3; last output:")
    assert "no such column: x" in outcome.error
    assert not storage.exists("results/bad.json")
    assert not storage.exists("errors/bad.json")  # not the last attempt
    assert _run(storage, task, attempt=3, final=True).status == "failed"
    record = json.loads(storage.read_text("errors/bad.json"))
    assert (record["attempt"], record["run"]) == (3, "r1")
    assert "no such column" in record["error"]


def test_a_failing_call_reports_a_traceback_of_its_own_code(storage: Storage) -> None:
    outcome = _run(storage, Task(call=f"{HERE}:explode"))
    assert outcome.status == "failed"
    assert outcome.error.startswith("Traceback (most recent call last):")
    assert "sdk/queue/execution.py" not in outcome.error
    assert 'in explode\n    raise ValueError("bad input row 7")' in outcome.error
    assert outcome.error.endswith("ValueError: bad input row 7")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (f"{HERE}:not_json", "returned a set, which is not JSON"),
        ("no_such_module_x:f", "cannot import 'no_such_module_x:f': ModuleNotFoundError"),
        (f"{HERE}:missing", "cannot import"),
        (f"{HERE}:not_callable", "is a int, not a callable"),
    ],
)
def test_call_problems_are_failures_with_a_clear_error(
    storage: Storage, call: str, message: str
) -> None:
    outcome = _run(storage, Task(call=call))
    assert outcome.status == "failed"
    assert message in outcome.error


def test_a_command_over_its_timeout_is_stopped(storage: Storage) -> None:
    began = time.monotonic()
    outcome = _run(storage, Task(command="sleep 30", timeout=0.5))
    assert outcome.status == "failed"
    assert outcome.error == "timed out after 0.5 s; the command was stopped"
    assert time.monotonic() - began < 10


def test_cancel_stops_a_command_and_its_children(storage: Storage, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    task = Task(command=f"sleep 30 & echo $! > {pid_file}; wait")
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    outcome = _run(storage, task, cancel=cancel)
    assert outcome.status == "interrupted"
    child = int(pid_file.read_text())
    assert (
        not Path(f"/proc/{child}").exists()
        or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
    )


def test_current_task_outside_a_task() -> None:
    with pytest.raises(RuntimeError, match="only available inside a running task"):
        current_task()
