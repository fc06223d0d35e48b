"""The eight failures an outside fault harness found (issue 15), each on a real RabbitMQ.

Every test here failed on the code before its fix (see docs/queue.md, "Failure handling").
Waits are bounded (a hang fails the test instead of stalling the run); nothing is timed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest

from workstack.sdk.queue import BrokerError, Stage, Task
from workstack.sdk.queue.messages import encode_task

from .conftest import Counts, QueueHarness, wait_for

pytestmark = pytest.mark.integration

Report = Callable[[str, Counts], None]


def _started(harness: QueueHarness, task: Task) -> list[str]:
    return harness.markers("started").get(task.id, [])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- 1. malformed messages of any shape --------------------------------------------------------

_NESTED = b"[" * 200_000 + b"]" * 200_000
_HUGE_INT = (
    b'{"v":1,"kind":"task","id":"big","stage":"main","run":"r","call":"m:f","args":['
    + b"7" * 5000
    + b"]}"
)
_BAD_BODIES = {
    "nested": _NESTED,
    "huge-int": _HUGE_INT,
    "nan": b'{"v":1,"kind":"task","id":"nan","stage":"main","run":"r","call":"m:f","args":[NaN]}',
    "infinite": b'{"v":1,"kind":"task","id":"inf","stage":"main","run":"r","call":"m:f",'
    b'"args":[1e999]}',
    "not-utf8": b'{"v":1,"kind":"\xff\xfe"}',
    "deep-args": b'{"v":1,"kind":"task","id":"deep","stage":"main","run":"r","call":"m:f",'
    b'"args":' + b"[" * 500 + b"]" * 500 + b"}",
}


def test_undecodable_bodies_are_dead_lettered_by_workers_and_tasker(
    harness: QueueHarness, report_counts: Report
) -> None:
    for body in _BAD_BODIES.values():
        harness.publish_raw(body)
    # Junk on the results queue too: the tasker reads it.
    harness.publish_raw(_NESTED, suffix="results")
    harness.publish_raw(b"\x00\x01 not json", suffix="results")
    tasks = [harness.record(n) for n in range(4)]
    worker = harness.start_worker()
    report = harness.start_tasker(tasks, workers=1).result(timeout=90)
    assert report.ok, report
    assert harness.wait_exit(worker) == 0, harness.log(worker)
    assert harness.log(worker).count("connected to") == 1  # it never crashed or reconnected
    dead = harness.dead_letters()
    reasons = {body: headers.get("x-workstack-reason") for body, headers in dead}
    errors = {body: str(headers.get("x-workstack-error", "")) for body, headers in dead}
    for name, body in _BAD_BODIES.items():
        assert reasons.get(body) == "malformed", name
    assert "nested too deeply" in errors[_NESTED]
    assert "4300 digits" in errors[_HUGE_INT]
    assert "NaN" in errors[_BAD_BODIES["nan"]]
    assert "not valid UTF-8" in errors[_BAD_BODIES["not-utf8"]]
    assert "nested more than" in errors[_BAD_BODIES["deep-args"]]
    # The results-queue junk was dead-lettered by the tasker, with its reason, not dropped.
    assert reasons.get(b"\x00\x01 not json") == "malformed"
    assert "results" in errors[b"\x00\x01 not json"]
    assert harness.depth("results") == 0
    counts = harness.counts(tasks, report)
    report_counts("undecodable bodies on the tasks and results queues", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


def test_tasker_gives_up_when_the_same_failure_repeats(harness: QueueHarness) -> None:
    # A user that may declare and read but not publish to the default exchange: every
    # publish closes the channel with ACCESS_REFUSED, on every reconnection.
    user = f"u{harness.queue[2:]}"
    harness.broker.ctl("add_user", user, "secret")
    try:
        harness.broker.ctl("set_permissions", "-p", "/", user, ".*", f"^{harness.queue}\\..*", ".*")
        url = f"amqp://{user}:secret@127.0.0.1:{harness.broker.port}/%2F"
        future = harness.start_tasker([harness.record(1)], workers=0, broker_url=url)
        try:
            error = future.exception(timeout=90)
        except FutureTimeout:
            pytest.fail("the tasker kept reconnecting after the same failure")
        assert isinstance(error, BrokerError), error
        assert "ACCESS_REFUSED" in str(error)
        assert "same failure" in str(error)
    finally:
        harness.broker.ctl("delete_user", user)


# -- 2. a stop message of an earlier run --------------------------------------------------------


def test_a_leftover_stop_does_not_end_the_next_runs_worker(
    harness: QueueHarness, report_counts: Report
) -> None:
    first = [harness.record(n) for n in range(3)]
    worker_a = harness.start_worker(name="a")
    report_a = harness.run_tasker(first, workers=2)  # one worker: one stop is left over
    assert report_a.ok, report_a
    assert harness.wait_exit(worker_a) == 0
    assert harness.depth("tasks") == 1
    second = [harness.record(n) for n in range(10, 14)]
    worker_b = harness.start_worker(name="b")
    try:
        report_b = harness.start_tasker(second, workers=1).result(timeout=60)
    except FutureTimeout:
        pytest.fail(f"run B hung; its worker said:\n{harness.log(worker_b)}")
    assert report_b.ok, report_b
    assert harness.wait_exit(worker_b) == 0
    assert "stop message of an earlier run" in harness.log(worker_b)
    assert all(harness.result(t.id)["worker"] == "b" for t in second)
    counts = harness.counts(first + second, report_b)
    report_counts("a stop message left over from an earlier run", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


# -- 3. hand-backs of unstarted tasks are not attempts ------------------------------------------


def test_sigterm_rounds_at_prefetch_10_dead_letter_nothing(
    harness: QueueHarness, report_counts: Report
) -> None:
    tasks = [harness.record(n, 0.4) for n in range(30)]
    tasker = harness.start_tasker(tasks, workers=1, max_attempts=3)
    for round_ in range(4):
        name = f"round{round_}"
        victim = harness.start_worker("--prefetch", "10", name=name)
        wait_for(
            lambda n=name: any(m.startswith(f"{n}-") for t in tasks for m in _started(harness, t)),
            30,
            "the worker to start a task",
        )
        victim.send_signal(signal.SIGTERM)
        assert harness.wait_exit(victim, 40) == 143, harness.log(victim)
    last = harness.start_worker("--prefetch", "10", name="last")
    report = tasker.result(timeout=120)
    assert report.ok, report.errors
    assert harness.wait_exit(last) == 0
    assert harness.dead_letters() == []
    counts = harness.counts(tasks, report)
    report_counts("SIGTERM four times at prefetch 10", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


# -- 4. the stage barrier across a broker restart -----------------------------------------------


def test_stage_barrier_holds_while_a_copy_still_runs(
    harness: QueueHarness, report_counts: Report
) -> None:
    long = harness.record(1, 6.0)
    first = [long]
    second = [harness.record(n, 0.05) for n in range(100, 106)]
    workers = [harness.start_worker(name=f"w{n}") for n in range(2)]
    tasker = harness.start_tasker(
        [Stage(name="one", tasks=first), Stage(name="two", tasks=second)], workers=2
    )
    wait_for(lambda: _started(harness, long), 30, "the long task to start")
    harness.broker.stop_app()
    time.sleep(1.0)
    harness.broker.start_app()
    report = tasker.result(timeout=120)
    assert report.ok, report
    for worker in workers:
        assert harness.wait_exit(worker) == 0, harness.log(worker)
    ended = max(end for end in (e for _, e in harness.spans(long.id)))
    began = min(start for task in second for start, _ in harness.spans(task.id))
    assert ended <= began, (
        f"stage two started {ended - began:.1f} s before a copy of stage one ended"
    )
    counts = harness.counts(first + second, report)
    report_counts("stage barrier across stop_app/start_app", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected) == (0, 0, 0)


# -- 5. a task that holds the GIL --------------------------------------------------------------


def test_a_task_holding_the_gil_keeps_the_connection(
    harness: QueueHarness, report_counts: Report
) -> None:
    held = Task(call="tests.integration.queue.tasks:hold_gil", args=[harness.storage_url, 10])
    tasks = [held, harness.record(1), harness.record(2)]
    workers = [harness.start_worker(name=f"w{n}") for n in range(2)]
    report = harness.start_tasker(tasks, workers=2).result(timeout=90)
    assert report.ok, report
    for worker in workers:
        assert harness.wait_exit(worker) == 0
        log = harness.log(worker)
        assert log.count("connected to") == 1, log  # heartbeats kept flowing
    assert harness.result(held.id)["value"] == "held"
    counts = harness.counts(tasks, report)
    report_counts("a task that holds the GIL for 10 s (heartbeat 2 s)", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


# -- 6. a command dies with its worker ---------------------------------------------------------


def test_a_running_command_dies_with_its_killed_worker(
    harness: QueueHarness, report_counts: Report
) -> None:
    task = harness.command(7, 6.0)
    victim = harness.start_worker(name="victim")
    tasker = harness.start_tasker([task], workers=1)
    [pid] = wait_for(lambda: _started(harness, task), 30, "the command to start")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    wait_for(lambda: not _alive(int(pid)), 10, "the command to die with its worker")
    other = harness.start_worker(name="other")
    report = tasker.result(timeout=60)
    assert report.ok, report
    assert harness.wait_exit(other) == 0
    counts = harness.counts([task], report)
    report_counts("worker killed with SIGKILL while its command runs", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


# -- 7. no worker left ---------------------------------------------------------------------------


def test_the_tasker_fails_when_no_worker_is_left(harness: QueueHarness) -> None:
    early = harness.start_worker("--idle-timeout", "1", name="early")
    assert harness.wait_exit(early, 30) == 0
    future = harness.start_tasker([harness.record(n) for n in range(3)], no_worker_timeout=3)
    try:
        report = future.result(timeout=60)
    except FutureTimeout:
        pytest.fail("the tasker waited for workers that had gone")
    assert not report.ok
    assert report.aborted is not None
    assert f"no worker consumes {harness.queue}.tasks" in report.aborted


# -- 8. reruns with outputs gone -----------------------------------------------------------------


def test_a_rerun_runs_again_the_tasks_whose_outputs_are_gone(
    harness: QueueHarness, tmp_path: Path
) -> None:
    work = Path(harness.storage_url) / "work"
    tasks = [harness.record(n) for n in range(4)]
    made = work / "made"
    copies = [
        Task(command=f"mkdir -p {made} && echo {n} > {made}/copy-{n}.txt", id=f"copy-{n}")
        for n in range(3)
    ]
    # Declared outputs: a command whose output is not named on its command line.
    declared = Task(
        command=f"{sys.executable} -c \"open('{made}/hidden.txt', 'w').write('x')\"",
        id="hidden",
        outputs=["made/hidden.txt"],
    )
    everything = tasks + copies + [declared]
    worker = harness.start_worker()
    assert harness.run_tasker(everything, workers=1).ok
    assert harness.wait_exit(worker) == 0
    # As asreview's tasker does: outputs are wiped, the result records stay.
    harness.storage.delete(f"outputs/{tasks[0].id}/value.txt")
    (made / "copy-1.txt").unlink()
    (made / "hidden.txt").unlink()
    worker = harness.start_worker(name="again")
    report = harness.run_tasker(everything, workers=1)
    assert report.ok, report
    assert harness.wait_exit(worker) == 0
    assert report.stages[0].already_done == len(everything) - 3
    assert harness.storage.read_text(f"outputs/{tasks[0].id}/value.txt") == "0\n"
    assert (made / "copy-1.txt").read_text() == "1\n"
    assert (made / "hidden.txt").read_text() == "x"
    assert os.path.isfile(made / "copy-0.txt")
    recorded = harness.result("copy-2")
    assert recorded["files"] == ["made/copy-2.txt"]


def test_a_published_copy_of_each_task_is_identical(harness: QueueHarness) -> None:
    # The encoding the tests rely on stays the tasker's (a guard for the tests above).
    task = harness.record(3)
    body = json.loads(encode_task(task, stage="main", run="r"))
    assert body["call"] == "tests.integration.queue.tasks:record"


# -- executors: crashes and timeouts --------------------------------------------------------------


def test_a_task_that_kills_its_process_is_a_failed_attempt_not_a_dead_worker(
    harness: QueueHarness, report_counts: Report
) -> None:
    crash = Task(call="tests.integration.queue.tasks:crash", args=[harness.storage_url])
    tasks = [crash] + [harness.record(n) for n in range(5)]
    worker = harness.start_worker("--max-attempts", "2")
    report = harness.run_tasker(tasks, workers=1, max_attempts=2)
    assert (report.done, report.failed) == (5, 1), report
    assert "the worker's process running the task exited with status 9" in report.errors[crash.id]
    assert harness.wait_exit(worker) == 0
    assert harness.log(worker).count("connected to") == 1  # the worker itself never died
    assert len(_started(harness, crash)) == 2
    counts = harness.counts(tasks, report, failing=frozenset({crash.id}))
    report_counts("a task that kills its own process (os._exit)", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


def test_timeouts_stop_commands_and_calls(harness: QueueHarness) -> None:
    command = Task(command="sleep 30", timeout=1, id="slow-command")
    call = Task(
        call="tests.integration.queue.tasks:spin", args=[harness.storage_url, 30], timeout=1
    )
    worker = harness.start_worker("--max-attempts", "1")
    report = harness.start_tasker([command, call], workers=1, max_attempts=1).result(timeout=90)
    assert report.failed == 2, report
    assert report.errors["slow-command"].startswith("timed out after 1 s")
    assert report.errors[call.id].startswith("timed out after 1 s")
    assert harness.wait_exit(worker) == 0
    assert harness.markers("effects") == {}  # neither ran to its end
