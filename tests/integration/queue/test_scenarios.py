"""Reliability scenarios of the queue workers against a real RabbitMQ.

Workers run as separate processes (as pods would); the tasker runs in the test process.
Each scenario counts lost, duplicated and unexpected results against what was published
(see Counts in conftest.py); lost is always 0.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import pytest

from workstack.sdk.queue import Stage, Task
from workstack.sdk.queue.messages import encode_task

from .conftest import TASKS, Counts, QueueHarness, wait_for

pytestmark = pytest.mark.integration

Report = Callable[[str, Counts], None]


def _started_by(harness: QueueHarness, task: Task) -> list[str]:
    return harness.markers("started").get(task.id, [])


def test_stages_run_in_order_and_workers_exit_0(
    harness: QueueHarness, report_counts: Report
) -> None:
    first = [harness.record(n, 0.05) for n in range(6)]
    second = [harness.record(n, 0.0) for n in range(100, 104)]
    workers = [harness.start_worker() for _ in range(2)]
    report = harness.run_tasker(
        [Stage(name="first", tasks=first), Stage(name="second", tasks=second)], workers=2
    )
    assert report.ok, report
    assert [s.done for s in report.stages] == [6, 4]
    assert report.stop_messages == 2
    for worker in workers:
        assert harness.wait_exit(worker) == 0, harness.log(worker)
    # Every task of the first stage finished before any task of the second started.
    results = [harness.result(task.id) for task in first + second]
    last_first = max(r["finished"] for r in results[: len(first)])
    first_second = min(r["started"] for r in results[len(first) :])
    assert last_first <= first_second
    assert harness.result(first[3].id)["value"] == 9
    assert harness.storage.read_text(f"outputs/{first[3].id}/value.txt") == "3\n"
    counts = harness.counts(first + second, report)
    report_counts("stages", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)
    assert harness.depth("tasks") == 0


def test_tasks_do_not_see_the_broker_password(harness: QueueHarness) -> None:
    """Issue 14.8: calls (in the executor) and commands run without the broker URL."""
    call = Task(call=f"{TASKS}:broker_url_seen")
    command = Task(command='echo "${WORKSTACK_BROKER_URL:-none}"', id="env-command")
    worker = harness.start_worker()
    report = harness.run_tasker([call, command], workers=1)
    assert report.ok, report
    assert harness.wait_exit(worker) == 0, harness.log(worker)
    assert harness.result(call.id)["value"] is None
    assert harness.storage.read_text("logs/env-command.log") == "none\n"


def test_worker_killed_mid_task(harness: QueueHarness, report_counts: Report) -> None:
    tasks = [harness.record(n, 1.0) for n in range(6)]
    victim = harness.start_worker(name="victim")
    tasker = harness.start_tasker(tasks, workers=2)
    # Wait until the victim holds a task, then kill it without warning.
    held = wait_for(
        lambda: next(
            (t for t in tasks if any(m.startswith("victim-") for m in _started_by(harness, t))),
            None,
        ),
        30,
        "the first worker to start a task",
    )
    survivor = harness.start_worker(name="survivor")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    replacement = harness.start_worker(name="replacement")  # as a Job would start a new pod
    report = tasker.result(timeout=90)
    assert report.ok, report
    counts = harness.counts(tasks, report)
    report_counts("worker killed with SIGKILL mid-task", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)
    # The killed attempt left no effect; the redelivery completed it once, as attempt 2.
    assert counts.effects[held.id] == 1
    assert harness.result(held.id)["attempt"] == 2
    assert harness.result(held.id)["worker"] != "victim"
    for worker in (survivor, replacement):
        assert harness.wait_exit(worker) == 0, harness.log(worker)


def test_task_longer_than_three_heartbeats(harness: QueueHarness, report_counts: Report) -> None:
    long = harness.record(1, 7.0)  # heartbeat 2 s: more than 3 intervals
    tasks = [long, harness.record(2), harness.record(3)]
    worker = harness.start_worker()
    tasker = harness.start_tasker(tasks, workers=1)
    wait_for(lambda: _started_by(harness, long), 30, "the long task to start")
    # The broker negotiated the short heartbeat with the worker's connection.
    connections = harness.broker.ctl("list_connections", "client_properties", "timeout")
    assert any(
        "workstack-worker-w1" in line and line.endswith("\t2") for line in connections.splitlines()
    ), connections
    report = tasker.result(timeout=60)
    assert report.ok, report
    assert harness.wait_exit(worker) == 0
    log = harness.log(worker)
    assert log.count("connected to") == 1, log  # the connection survived: no reconnect
    assert "lost" not in log, log
    assert harness.result(long.id)["attempt"] == 1  # acked on the first delivery
    assert harness.result(long.id)["duration"] >= 7.0
    counts = harness.counts(tasks, report)
    report_counts("task longer than three heartbeat intervals", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


def test_broker_restart_mid_run(harness: QueueHarness, report_counts: Report) -> None:
    tasks = [harness.record(n, 0.15) for n in range(40)]
    workers = [harness.start_worker() for _ in range(2)]
    tasker = harness.start_tasker(tasks, workers=2)
    wait_for(lambda: len(harness.storage.list("results")) >= 5, 60, "the first results")
    harness.broker.stop_app()
    stopped_at = len(harness.storage.list("results"))
    time.sleep(2)  # the broker stays down a while; clients back off and retry
    harness.broker.start_app()
    report = tasker.result(timeout=120)
    assert report.ok, report
    assert stopped_at < len(tasks), "the broker restarted after the run; nothing was tested"
    for worker in workers:
        assert harness.wait_exit(worker) == 0, harness.log(worker)
        assert "lost the connection to" in harness.log(worker)
    counts = harness.counts(tasks, report)
    report_counts("broker stop_app/start_app mid-run", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)
    assert harness.depth("tasks") == 0


def test_poison_task_is_dead_lettered_and_the_rest_completes(
    harness: QueueHarness, report_counts: Report
) -> None:
    poison = harness.poison()
    tasks = [poison] + [harness.record(n, 0.02) for n in range(8)]
    workers = [harness.start_worker() for _ in range(2)]
    report = harness.run_tasker(tasks, workers=2, max_attempts=3)
    assert not report.ok
    assert (report.done, report.failed) == (8, 1)
    assert "poison task" in report.errors[poison.id]
    dead = harness.dead_letters()
    assert len(dead) == 1
    body, headers = dead[0]
    assert json.loads(body)["id"] == poison.id
    assert headers["x-workstack-reason"] == "failed"
    assert headers["x-workstack-attempts"] == 3
    assert "ValueError: poison task" in headers["x-workstack-error"]
    assert len(_started_by(harness, poison)) == 3  # exactly the bounded attempts
    stored = json.loads(harness.storage.read_text(f"errors/{poison.id}.json"))
    assert "poison task" in stored["error"]
    for worker in workers:
        assert harness.wait_exit(worker) == 0, harness.log(worker)
    counts = harness.counts(tasks, report, failing=frozenset({poison.id}))
    report_counts("poison task", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


def test_every_message_delivered_twice(harness: QueueHarness, report_counts: Report) -> None:
    tasks = [harness.record(n, 0.05) for n in range(20)]
    # Every task twice: the tasker's copies, then a second copy of each, as a republish after
    # a lost confirm (or a redelivery) would leave them.
    tasker = harness.start_tasker(tasks, workers=2)
    wait_for(lambda: harness.depth("tasks") == len(tasks), 30, "the tasker's copies")
    for task in tasks:
        harness.publish_raw(encode_task(task, stage="main", run="another-copy"))
    assert harness.depth("tasks") == 2 * len(tasks)
    workers = [harness.start_worker() for _ in range(2)]
    report = tasker.result(timeout=60)
    assert report.ok, report
    for worker in workers:
        assert harness.wait_exit(worker) == 0, harness.log(worker)
    counts = harness.counts(tasks, report)
    report_counts("every message delivered twice", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected) == (0, 0, 0)
    # A second copy found the result stored and did no work, unless both copies were
    # running at the same moment on the two workers: then the work ran twice, and wrote the
    # same output twice, atomically.
    assert counts.extra_runs < len(tasks)
    assert report.done == len(tasks)  # second notes were recognized, not counted again
    # The output is exactly what one delivery of each gives.
    for n, task in enumerate(tasks):
        assert harness.result(task.id)["value"] == n * n
        assert harness.storage.read_text(f"outputs/{task.id}/value.txt") == f"{n}\n"
    assert sorted(harness.storage.list("outputs")) == sorted(
        f"outputs/{task.id}/value.txt" for task in tasks
    )
    assert harness.depth("tasks") == 0


def test_sigterm_finishes_the_task_in_hand(harness: QueueHarness, report_counts: Report) -> None:
    tasks = [harness.record(n, 1.5) for n in range(4)]
    first = harness.start_worker("--grace", "20", name="terminated")
    tasker = harness.start_tasker(tasks, workers=1)
    held = wait_for(
        lambda: next((t for t in tasks if _started_by(harness, t)), None), 30, "a task to start"
    )
    first.send_signal(signal.SIGTERM)
    assert harness.wait_exit(first, 30) == 143
    assert harness.result(held.id)["attempt"] == 1  # finished and acked, not requeued
    assert harness.result(held.id)["worker"] == "terminated"
    other = harness.start_worker(name="other")
    report = tasker.result(timeout=60)
    assert report.ok, report
    assert harness.wait_exit(other) == 0
    counts = harness.counts(tasks, report)
    report_counts("SIGTERM mid-task, finished within the grace period", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)
    assert sum(harness.result(t.id)["worker"] == "terminated" for t in tasks) == 1


def test_sigterm_requeued_command_completes_elsewhere(
    harness: QueueHarness, report_counts: Report
) -> None:
    task = harness.command(5, 4.0)
    first = harness.start_worker("--grace", "0.5", name="terminated")
    tasker = harness.start_tasker([task], workers=1)
    wait_for(lambda: _started_by(harness, task), 30, "the command to start")
    began = time.monotonic()
    first.send_signal(signal.SIGTERM)
    assert harness.wait_exit(first, 30) == 143
    # Grace 0.5 s, then the command's process group is stopped: well before it would end.
    assert time.monotonic() - began < 3.5
    assert not harness.storage.exists(f"results/{task.id}.json")
    other = harness.start_worker(name="other")
    report = tasker.result(timeout=60)
    assert report.ok, report
    assert harness.wait_exit(other) == 0
    result = harness.result(task.id)
    # Handed back, not requeued: stopping it at the end of the grace period is no attempt.
    assert (result["attempt"], result["worker"]) == (1, "other")
    counts = harness.counts([task], report)
    report_counts("SIGTERM mid-task, requeued after the grace period", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


def test_malformed_messages_are_dead_lettered_and_the_worker_keeps_running(
    harness: QueueHarness, report_counts: Report
) -> None:
    bad = [
        b"not json at all",
        json.dumps({"v": 1, "kind": "task", "stage": "main", "run": "r", "call": "m:f"}).encode(),
        json.dumps({"v": 1, "kind": "task", "id": "x", "stage": "main", "run": "r"}).encode(),
        json.dumps({"v": 7, "kind": "task"}).encode(),
    ]
    for body in bad:
        harness.publish_raw(body)
    tasks = [harness.record(n) for n in range(5)]
    worker = harness.start_worker()
    report = harness.run_tasker(tasks, workers=1)
    assert report.ok, report
    assert harness.wait_exit(worker) == 0  # the same process went on to the end
    assert harness.log(worker).count("connected to") == 1
    dead = {body: headers for body, headers in harness.dead_letters()}
    assert set(dead) == set(bad)
    reasons = {body: headers["x-workstack-error"] for body, headers in dead.items()}
    assert all(headers["x-workstack-reason"] == "malformed" for headers in dead.values())
    assert "not valid JSON" in reasons[bad[0]]
    assert "field id: (missing)" in reasons[bad[1]]
    assert "exactly one of command" in reasons[bad[2]]
    assert "field v: 7" in reasons[bad[3]]
    assert report.unexpected == len(bad)  # their dead-letter copies are not this run's tasks
    counts = harness.counts(tasks, report)
    report_counts("malformed messages", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)


def test_prefetch_and_concurrency_above_one(harness: QueueHarness, report_counts: Report) -> None:
    # Tasks finish out of order (different lengths, two threads), one fails for good: the
    # multiple acks must cover only finished tasks, or the broker closes the channel.
    poison = harness.poison()
    tasks = [harness.record(n, 0.3 if n % 7 == 0 else 0.0) for n in range(60)] + [poison]
    options = ("--prefetch", "8", "--concurrency", "2", "--max-attempts", "2")
    workers = [harness.start_worker(*options) for _ in range(2)]
    report = harness.run_tasker(tasks, workers=2, max_attempts=2)
    assert (report.done, report.failed) == (60, 1), report
    for worker in workers:
        assert harness.wait_exit(worker) == 0, harness.log(worker)
        log = harness.log(worker)
        assert log.count("connected to") == 1, log  # no channel error, no reconnect
    assert len(_started_by(harness, poison)) == 2
    assert [json.loads(body)["id"] for body, _ in harness.dead_letters()] == [poison.id]
    counts = harness.counts(tasks, report, failing=frozenset({poison.id}))
    report_counts("prefetch 8, concurrency 2, with a poison task", counts)
    assert (counts.lost, counts.duplicated, counts.unexpected, counts.extra_runs) == (0, 0, 0, 0)
    assert harness.depth("tasks") == 0
