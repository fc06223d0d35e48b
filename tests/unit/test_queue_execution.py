"""Running one task in an executor (no broker): results, outputs, logs, failures, done-ness."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from workstack.sdk.queue import Task, current_task
from workstack.sdk.queue.execution import TaskRunner, done_ids
from workstack.sdk.queue.messages import encode_task
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


def _work(storage: Storage) -> str:
    return f"{storage.url}/work"


def _run(storage: Storage, task: Task, *, attempt: int = 1, final: bool = False):  # type: ignore[no-untyped-def]
    runner = TaskRunner(storage, "w1", _work(storage))
    message = json.loads(encode_task(task, stage="s", run="r1"))
    return runner.run(message, attempt=attempt, final=final)


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


def test_tasks_do_not_get_the_broker_password(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14.8: the worker's broker URL (with its password) stays out of task commands."""
    monkeypatch.setenv("WORKSTACK_BROKER_URL", "amqp://u:s3cret@broker:5672/%2F")
    task = Task(command='echo "url=${WORKSTACK_BROKER_URL:-none}"; env', id="env")
    assert _run(storage, task).status == "done"
    log = storage.read_text("logs/env.log")
    assert log.startswith("url=none\n")
    assert "s3cret" not in log


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


def test_a_continue_command_is_done_with_its_exit_status_but_not_for_reruns(
    storage: Storage,
) -> None:
    task = Task(command="mkdir output; mkdir output", on_error="continue", shell="bash", id="mk")
    outcome = _run(storage, task)
    assert (outcome.status, outcome.exit) == ("done", 1)
    assert json.loads(storage.read_text("results/mk.json"))["exit_code"] == 1
    assert done_ids(storage, _work(storage), ["mk"]) == (
        set(),
        {"mk": "its command exited with status 1"},
    )


def test_named_and_declared_outputs_are_recorded_and_checked(storage: Storage) -> None:
    work = Path(_work(storage))
    task = Task(
        command="mkdir -p out && echo 1 > out/a.txt && touch hidden.txt && cat missing.csv || true",
        outputs=["hidden.txt"],
        id="files",
    )
    assert _run(storage, task).status == "done"
    record = json.loads(storage.read_text("results/files.json"))
    assert record["files"] == ["hidden.txt", "out/", "out/a.txt"]
    assert done_ids(storage, str(work), ["files"]) == ({"files"}, {})
    (work / "out" / "a.txt").unlink()
    done, stale = done_ids(storage, str(work), ["files"])
    assert done == set()
    assert stale == {"files": "its file out/a.txt is gone from the work folder"}
    assert _run(storage, task).status == "done"  # not cached: it runs again


def test_a_declared_output_left_out_fails_the_attempt(storage: Storage) -> None:
    outcome = _run(storage, Task(command="true", outputs=["never.txt"], id="lazy"))
    assert outcome.status == "failed"
    assert "declared output(s) ['never.txt'] missing" in outcome.error


def test_a_deleted_output_in_the_storage_means_not_done(storage: Storage) -> None:
    task = Task(call=f"{HERE}:square", args=[2], id="sq2")
    assert _run(storage, task).status == "done"
    storage.delete("outputs/sq2/sub/n.txt")
    assert done_ids(storage, _work(storage), ["sq2"])[1] == {
        "sq2": "its output outputs/sq2/sub/n.txt is gone"
    }
    assert _run(storage, task).status == "done"


def test_current_task_outside_a_task() -> None:
    with pytest.raises(RuntimeError, match="only available inside a running task"):
        current_task()
