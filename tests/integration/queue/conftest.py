"""A real RabbitMQ for the queue tests, and a harness to run workers as separate processes.

The broker is started once per session on free ports of 127.0.0.1. If it cannot start the
tests fail (they do not skip): CI installs rabbitmq-server with scripts/deps/rabbitmq.sh.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

from workstack.sdk.queue import QueueNames, Stage, Task, TaskerSpec
from workstack.sdk.queue.broker import declare_topology
from workstack.sdk.queue.localbroker import LocalBroker
from workstack.sdk.queue.tasker import Tasker, TaskerReport
from workstack.sdk.storage import Storage, open_storage

ROOT = Path(__file__).resolve().parents[3]
TASKS = "tests.integration.queue.tasks"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Counts:
    """What the output holds against what was published.

    lost: published tasks (not meant to fail) without a result. duplicated: results counted
    or stored more than once (by the tasker's report, or as output files). unexpected:
    results of tasks that were not published, or that were meant to fail. extra_runs: times
    a task's work completed beyond the first; harmless (outputs are keyed by task id and
    written atomically) but counted, since at-least-once delivery allows it.
    """

    lost: int
    duplicated: int
    unexpected: int
    extra_runs: int
    effects: dict[str, int] = field(default_factory=dict)
    submitted: int = 0
    completed: int = 0
    dead_lettered: int = 0

    def __str__(self) -> str:
        return (
            f"submitted={self.submitted} completed={self.completed} lost={self.lost} "
            f"duplicated={self.duplicated} unexpected={self.unexpected} "
            f"extra_runs={self.extra_runs} dead_lettered={self.dead_lettered}"
        )


@dataclass
class QueueHarness:
    """One queue set, its storage, and the worker processes of one test."""

    broker: LocalBroker
    queue: str
    storage_url: str
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _log_files: dict[int, Path] = field(default_factory=dict)

    @property
    def storage(self) -> Storage:
        return open_storage(self.storage_url)

    # -- tasks -------------------------------------------------------------------------

    def record(self, value: int, seconds: float = 0.0, **fields: Any) -> Task:
        return Task(call=f"{TASKS}:record", args=[self.storage_url, value, seconds], **fields)

    def poison(self) -> Task:
        return Task(call=f"{TASKS}:poison", args=[self.storage_url])

    def command(self, value: int, seconds: float) -> Task:
        return Task(
            command=[sys.executable, "-m", TASKS, self.storage_url, str(value), str(seconds)]
        )

    # -- processes ---------------------------------------------------------------------

    def start_worker(self, *options: str, name: str | None = None) -> subprocess.Popen[bytes]:
        name = name or f"w{len(self.workers) + 1}"
        log = self.logs / f"{name}.log"
        env = dict(os.environ, WORKSTACK_BROKER_URL=self.broker.url)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        command = [
            sys.executable,
            "-m",
            "workstack.sdk.queue",
            "worker",
            "--queue",
            self.queue,
            "--storage",
            self.storage_url,
            "--worker-id",
            name,
            "--heartbeat",
            "2",
            "--reconnect-max-delay",
            "2",
            "--idle-timeout",
            "120",
            *options,
        ]
        with log.open("ab") as handle:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
            )
        self.workers.append(process)
        self._log_files[process.pid] = log
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return self._log_files[process.pid].read_text(errors="replace")

    def wait_exit(self, process: subprocess.Popen[bytes], timeout: float = 60) -> int:
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"worker {process.pid} still running after {timeout} s:\n{self.log(process)}"
            )

    def stop_all(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.kill()
                process.wait()

    # -- tasker ------------------------------------------------------------------------

    def spec(self, **overrides: Any) -> TaskerSpec:
        settings: dict[str, Any] = {
            "queue": self.queue,
            "storage_url": self.storage_url,
            "broker_url": self.broker.url,
            "heartbeat": 2,
            "reconnect_max_delay": 2.0,
            "reconcile_interval": 3.0,
            "give_up_after": 120.0,
        }
        settings.update(overrides)
        return TaskerSpec(**settings)

    def run_tasker(self, stages: list[Stage] | list[Task], **overrides: Any) -> TaskerReport:
        return Tasker(self.spec(**overrides)).run(stages, progress=False)

    def start_tasker(
        self, stages: list[Stage] | list[Task], **overrides: Any
    ) -> Future[TaskerReport]:
        future: Future[TaskerReport] = Future()

        def target() -> None:
            try:
                future.set_result(self.run_tasker(stages, **overrides))
            except BaseException as error:
                future.set_exception(error)

        threading.Thread(target=target, daemon=True).start()
        return future

    # -- broker inspection -------------------------------------------------------------

    def channel(self) -> Any:
        return pika.BlockingConnection(pika.URLParameters(self.broker.url)).channel()

    def depth(self, suffix: str) -> int:
        """Ready messages in one of the set's queues (0 while it does not exist yet)."""
        channel = self.channel()
        try:
            return int(
                channel.queue_declare(f"{self.queue}.{suffix}", passive=True).method.message_count
            )
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code != 404:
                raise
            return 0
        finally:
            if channel.connection.is_open:
                channel.connection.close()

    def publish_raw(self, body: bytes, suffix: str = "tasks", headers: Any = None) -> None:
        """Publish a message to one of the set's queues as something other than the tasker
        would."""
        channel = self.channel()
        declare_topology(channel, QueueNames(self.queue), max_attempts=3)
        channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=2, headers=headers)
        channel.basic_publish("", f"{self.queue}.{suffix}", body, properties, mandatory=True)
        channel.connection.close()

    def dead_letters(self) -> list[tuple[bytes, dict[str, Any]]]:
        """Every message of the dead-letter queue, removed from it."""
        channel = self.channel()
        found = []
        while True:
            method, properties, body = channel.basic_get(f"{self.queue}.dead", auto_ack=True)
            if method is None:
                break
            found.append((body, dict(properties.headers or {})))
        channel.connection.close()
        return found

    # -- output ------------------------------------------------------------------------

    def markers(self, kind: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = collections.defaultdict(list)
        for key in self.storage.list(f"markers/{kind}"):
            _, _, task_id, name = key.split("/", 3)
            found[task_id].append(name)
        return found

    def spans(self, task_id: str) -> list[tuple[float, float]]:
        """(start, end) of every completed execution of a ``record`` task."""
        found = []
        for key in self.storage.list(f"markers/spans/{task_id}"):
            start, end = self.storage.read_text(key).split()
            found.append((float(start), float(end)))
        return found

    def result(self, task_id: str) -> dict[str, Any]:
        return dict(json.loads(self.storage.read_text(f"results/{task_id}.json")))

    def counts(
        self,
        published: list[Task],
        report: TaskerReport,
        *,
        failing: frozenset[str] = frozenset(),
    ) -> Counts:
        """Count the output against ``published`` (see :class:`Counts`)."""
        ids = {task.id for task in published}
        expected = ids - failing
        results = {key[len("results/") : -len(".json")] for key in self.storage.list("results")}
        outputs = collections.Counter(key.split("/")[1] for key in self.storage.list("outputs"))
        effects = {task_id: len(names) for task_id, names in self.markers("effects").items()}
        counted = report.done + report.failed
        return Counts(
            lost=len(expected - results),
            duplicated=max(0, counted - len(ids)) + sum(n - 1 for n in outputs.values() if n > 1),
            unexpected=len(results - expected),
            extra_runs=sum(count - 1 for count in effects.values() if count > 1),
            effects=effects,
            submitted=len(ids),
            completed=len(results & ids),
            dead_lettered=report.failed,
        )


@pytest.fixture
def harness(rabbitmq: LocalBroker, tmp_path: Path) -> Iterator[QueueHarness]:
    logs = tmp_path / "logs"
    logs.mkdir()
    queue = f"t-{uuid.uuid4().hex[:10]}"
    harness = QueueHarness(
        broker=rabbitmq, queue=queue, storage_url=str(tmp_path / "storage"), logs=logs
    )
    try:
        yield harness
    finally:
        harness.stop_all()
        channel = harness.channel()
        for suffix in ("tasks", "results", "dead"):
            channel.queue_delete(f"{queue}.{suffix}")
        channel.exchange_delete(f"{queue}.dlx")
        channel.connection.close()


@pytest.fixture
def report_counts(request: pytest.FixtureRequest) -> Callable[[str, Counts], None]:
    """Print a scenario's counts (shown with pytest -s, and in the test report on failure)."""

    def show(scenario: str, counts: Counts) -> None:
        line = f"[queue scenario] {scenario}: {counts}"
        print(line)
        request.node.user_properties.append(("counts", line))

    return show
