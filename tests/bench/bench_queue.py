"""Queue workers: consume throughput against Celery and bare pika; publishing with confirms.

Everything runs against one private RabbitMQ node (3.10, quorum queues) started here on
127.0.0.1, with the same number of worker processes per system, no-op tasks, persistent
messages and acknowledgements sent after a task completes, and the same AMQP prefetch (1,
the default, and 10):

- workstack: ``workstack queue worker`` (concurrency 1): each task runs in the worker's
  executor process, its result record is written to the storage, then it is acknowledged
  (worker CPU counts the executor too);
- Celery: ``task_acks_late=True``, ``worker_prefetch_multiplier`` = the prefetch (1 is the
  configuration for the same guarantees), persistent delivery, a quorum queue, the ``solo``
  pool with concurrency 1 (one process per worker, as above);
- bare pika: a ``BlockingConnection`` consumer that acks each message in its callback.

Each system consumes a queue filled beforehand; throughput is counted only while all its
workers are consuming. Systems are measured in turn, repetition after repetition, and the
median is reported: the machine is shared, so single numbers are noisy. A repetition that
gets stuck (a queue not drained in time, a worker gone) is reported and retried once; if the
retry fails too it is left out and marked, instead of losing the whole run.

    python -m tests.bench queue
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

TITLE = "Queue workers: consume throughput and publishing with confirms"
_T = TypeVar("_T")

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
TASKS = 4000
REPETITIONS = 5
PREFETCHES = (1, 10)
PUBLISH_TASKS = 20_000
PUBLISH_BASELINE_TASKS = 2_000
PUBLISH_REPETITIONS = 3
_CELERY_QUEUE_ENV = "WORKSTACK_BENCH_CELERY_QUEUE"
_CELERY_PREFETCH_ENV = "WORKSTACK_BENCH_CELERY_PREFETCH"


def noop() -> None:
    """The no-op task of every system."""


# -- worker processes ----------------------------------------------------------------------


def _env(broker_url: str) -> dict[str, str]:
    env = dict(os.environ, WORKSTACK_BROKER_URL=broker_url)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _start_workstack(
    broker_url: str, queue: str, storage: str, prefetch: int
) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "workstack.sdk.queue", "worker", "--queue", queue]
    options = ["--storage", storage, "--prefetch", str(prefetch), "--idle-timeout", "600"]
    return [
        subprocess.Popen(
            [*command, *options, "--worker-id", f"bench-{n}"],
            cwd=ROOT,
            env=_env(broker_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(WORKERS)
    ]


def _start_bare(broker_url: str, queue: str, prefetch: int) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "tests.bench.bench_queue", "bare-worker", broker_url, queue]
    return [
        subprocess.Popen([*command, str(prefetch)], cwd=ROOT, env=_env(broker_url))
        for _ in range(WORKERS)
    ]


def _start_celery(broker_url: str, queue: str, prefetch: int) -> list[subprocess.Popen[bytes]]:
    env = _env(broker_url)
    env[_CELERY_QUEUE_ENV] = queue
    env[_CELERY_PREFETCH_ENV] = str(prefetch)
    command = [sys.executable, "-m", "celery", "-A", "tests.bench.celery_app", "worker"]
    options = ["-P", "solo", "-c", "1", "-Q", queue, "-l", "warning"]
    quiet = ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    return [
        subprocess.Popen(
            [*command, *options, *quiet, "-n", f"bench{n}@%h"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(WORKERS)
    ]


def _bare_worker(broker_url: str, queue: str, prefetch: int) -> None:
    """The baseline: consume and ack each message in the callback."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)

    def on_message(channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
        channel.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, on_message)
    channel.start_consuming()


# -- filling and draining queues ---------------------------------------------------------------


def _channel(broker_url: str) -> Any:
    import pika

    return pika.BlockingConnection(pika.URLParameters(broker_url)).channel()


def _fill_task_queue(broker_url: str, queue: str, count: int) -> str:
    """Declare a workstack queue set and put ``count`` no-op tasks in it; return its name."""
    import pika

    from workstack.sdk.queue import QueueNames, Task
    from workstack.sdk.queue.broker import declare_topology
    from workstack.sdk.queue.messages import encode_task

    names = QueueNames(queue)
    channel = _channel(broker_url)
    declare_topology(channel, names, max_attempts=3)
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    for n in range(count):
        task = Task(call="tests.bench.bench_queue:noop", id=f"t{n}")
        body = encode_task(task, stage="bench", run="bench")
        channel.basic_publish("", names.tasks, body, properties)
    _wait_depth(channel, names.tasks, count)
    channel.connection.close()
    return names.tasks


def _fill_celery_queue(broker_url: str, queue: str, count: int) -> str:
    from tests.bench import celery_app

    app = celery_app.make_app(broker_url, queue, worker=False)
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task(celery_app.NOOP, queue=queue, producer=producer)
    channel = _channel(broker_url)
    _wait_depth(channel, queue, count)
    channel.connection.close()
    return queue


def _wait_depth(channel: Any, queue: str, count: int) -> None:
    deadline = time.monotonic() + 120
    while channel.queue_declare(queue, passive=True).method.message_count < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{queue} did not fill up to {count} messages")
        time.sleep(0.05)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and of its live descendants (a workstack worker's
    executor processes) so far."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for candidate, seconds in times.items():
        node = candidate
        while node in parents and node != pid and node > 1:
            node = parents[node]
        if node == pid:
            total += seconds
    return total


@dataclass(frozen=True)
class _Drain:
    """One measurement: throughput, and CPU per task of the workers and of the broker."""

    rate: float
    worker_us: float
    broker_us: float


def _drain(
    broker_url: str, broker_pid: int, queue: str, workers: list[subprocess.Popen[bytes]]
) -> _Drain:
    """Tasks per second while every worker consumes: from the moment all are subscribed
    until the queue holds no ready message; CPU time over the same window."""
    channel = _channel(broker_url)
    try:
        deadline = time.monotonic() + 150  # 4,000 tasks at 30/s: far slower is stuck
        while True:
            state = channel.queue_declare(queue, passive=True).method
            if state.consumer_count >= WORKERS:
                started, left = time.perf_counter(), state.message_count
                worker_cpu = sum(_cpu_seconds(worker.pid) for worker in workers)
                broker_cpu = _cpu_seconds(broker_pid)
                break
            if any(worker.poll() is not None for worker in workers):
                raise RuntimeError(f"a worker of {queue} exited early")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers of {queue} never subscribed")
            time.sleep(0.005)
        while channel.queue_declare(queue, passive=True).method.message_count > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{queue} was not drained")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        worker_cpu = sum(_cpu_seconds(worker.pid) for worker in workers) - worker_cpu
        broker_cpu = _cpu_seconds(broker_pid) - broker_cpu
        return _Drain(
            rate=left / elapsed,
            worker_us=worker_cpu / max(left, 1) * 1e6,
            broker_us=broker_cpu / max(left, 1) * 1e6,
        )
    finally:
        channel.connection.close()


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.kill()
    for worker in workers:
        worker.wait()


def _measure_consume(
    broker: Any, system: str, round_: int, storage_root: Path, disk_root: Path
) -> _Drain:
    broker_url = broker.url
    kind, _, prefetch_text = system.partition("@")
    prefetch = int(prefetch_text)
    queue = f"bench-{kind}-{prefetch}-{round_}"
    if kind == "celery":
        name = _fill_celery_queue(broker_url, queue, TASKS)
        workers = _start_celery(broker_url, queue, prefetch)
    elif kind == "pika":
        name = _fill_task_queue(broker_url, queue, TASKS)
        workers = _start_bare(broker_url, name, prefetch)
    else:
        name = _fill_task_queue(broker_url, queue, TASKS)
        root = storage_root if kind == "workstack" else disk_root
        storage = tempfile.mkdtemp(prefix=f"{queue}-", dir=root)
        workers = _start_workstack(broker_url, queue, storage, prefetch)
    try:
        return _drain(broker_url, broker.pid, name, workers)
    finally:
        _stop(workers)
        channel = _channel(broker_url)
        channel.queue_delete(name)
        channel.connection.close()


# -- publishing ------------------------------------------------------------------------------


class _PublishClock:
    """A progress view that notes when every task of the stage is confirmed."""

    def __init__(self) -> None:
        self.started = 0.0
        self.total = 0
        self.confirmed = threading.Event()
        self.finished = 0.0

    def stage(self, name: str, total: int) -> None:
        self.started, self.total = time.perf_counter(), total

    def update(self, published: int, done: int, failed: int) -> None:
        if published >= self.total and not self.confirmed.is_set():
            self.finished = time.perf_counter()
            self.confirmed.set()

    def close(self) -> None:
        pass


def _tasker_publish_rate(broker_url: str, round_: int, storage: str) -> float:
    """The tasker's own publishing (asynchronous, windowed confirms), from stage start to the
    last confirm; connecting is inside the measured time."""
    import pika

    from workstack.sdk.queue import QueueNames, Task, TaskerSpec
    from workstack.sdk.queue.messages import Completion, encode_results
    from workstack.sdk.queue.tasker import Tasker

    queue = f"bench-publish-{round_}"
    tasks = [Task(call="tests.bench.bench_queue:noop", id=f"p{n}") for n in range(PUBLISH_TASKS)]
    clock = _PublishClock()
    spec = TaskerSpec(queue=queue, storage_url=storage, broker_url=broker_url, workers=0)
    outcome: list[Any] = []
    runner = threading.Thread(
        target=lambda: outcome.append(Tasker(spec).run(tasks, progress=clock)), daemon=True
    )
    runner.start()
    if not clock.confirmed.wait(300):
        raise RuntimeError("the tasker did not publish its tasks")
    rate = PUBLISH_TASKS / (clock.finished - clock.started)
    # Play the workers' part (notes of completion) so the tasker finishes.
    names = QueueNames(queue)
    channel = _channel(broker_url)
    for start in range(0, PUBLISH_TASKS, 1000):
        notes = [
            Completion(id=task.id, stage="main", run="bench", status="done")
            for task in tasks[start : start + 1000]
        ]
        channel.basic_publish(
            "", names.results, encode_results("bench", notes), pika.BasicProperties(delivery_mode=2)
        )
    runner.join(120)
    if not outcome or not outcome[0].ok:
        raise RuntimeError("the tasker did not finish")
    for suffix in ("tasks", "results", "dead"):
        channel.queue_delete(f"{queue}.{suffix}")
    channel.connection.close()
    return rate


def _confirm_each_rate(broker_url: str, round_: int) -> float:
    """The baseline: a blocking channel in confirm mode, waiting for each publish's confirm."""
    import pika

    from workstack.sdk.queue import QueueNames, Task
    from workstack.sdk.queue.broker import declare_topology
    from workstack.sdk.queue.messages import encode_task

    names = QueueNames(f"bench-confirm-{round_}")
    channel = _channel(broker_url)
    declare_topology(channel, names, max_attempts=3)
    channel.confirm_delivery()
    bodies = [
        encode_task(Task(call="tests.bench.bench_queue:noop", id=f"p{n}"), stage="main", run="b")
        for n in range(PUBLISH_BASELINE_TASKS)
    ]
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    started = time.perf_counter()
    for body in bodies:
        channel.basic_publish("", names.tasks, body, properties, mandatory=True)
    rate = PUBLISH_BASELINE_TASKS / (time.perf_counter() - started)
    for suffix in ("tasks", "results", "dead"):
        channel.queue_delete(f"{names.name}.{suffix}")
    channel.connection.close()
    return rate


# -- the report ------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


_MARKED: list[str] = []
"""Repetitions left out (stuck twice), for the report."""


def _in_turn(
    systems: list[str], repetitions: int, measure: Callable[[str, int], _T]
) -> dict[str, list[_T]]:
    found: dict[str, list[_T]] = {system: [] for system in systems}
    for round_ in range(repetitions):
        for system in systems:
            for attempt in (1, 2):
                try:
                    found[system].append(measure(system, round_ + 100 * (attempt - 1)))
                except RuntimeError as error:
                    print(f"  {system} #{round_ + 1}: stuck ({error})", flush=True)
                    if attempt == 2:
                        _MARKED.append(f"{system} #{round_ + 1} ({error}, twice)")
                    continue
                print(f"  {system} #{round_ + 1}: {found[system][-1]}", flush=True)
                break
    return found


def run() -> str:
    """Measure and return the Markdown section."""
    from workstack.sdk.queue.localbroker import LocalBroker

    broker = LocalBroker()
    broker.start()
    tmpfs = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    storage_root = Path(tempfile.mkdtemp(prefix="workstack-bench-", dir=tmpfs))
    disk_root = Path(tempfile.mkdtemp(prefix="workstack-bench-"))  # /tmp: the ext4 disk here
    systems = [f"{kind}@{p}" for p in PREFETCHES for kind in ("workstack", "celery", "pika")]
    systems.append(f"workstack-disk@{PREFETCHES[0]}")
    try:
        consume = _in_turn(
            systems,
            REPETITIONS,
            lambda system, round_: _measure_consume(
                broker, system, round_, storage_root, disk_root
            ),
        )
        publish = _in_turn(
            ["tasker", "confirm-each"],
            PUBLISH_REPETITIONS,
            lambda system, round_: (
                _tasker_publish_rate(broker.url, round_, str(storage_root / f"p{round_}"))
                if system == "tasker"
                else _confirm_each_rate(broker.url, round_)
            ),
        )
    finally:
        broker.stop()
        shutil.rmtree(storage_root, ignore_errors=True)
        shutil.rmtree(disk_root, ignore_errors=True)
    return _report(consume, publish)


def _verdict(ratio: float, goal: float) -> str:
    return "met" if ratio >= goal else "**not met**"


def _report(consume: dict[str, list[_Drain]], publish: dict[str, list[float]]) -> str:
    lines = [
        f"One RabbitMQ 3.10 node on 127.0.0.1 (quorum queues); {WORKERS} worker processes per "
        f"system; {TASKS:,} no-op tasks per measurement, persistent, acknowledged after "
        f"completion; each system at the same AMQP prefetch; median of {REPETITIONS} "
        "repetitions taken in turn (the machine is shared, so single runs vary a lot). "
        "workstack writes a result record per task to storage on tmpfs (one row on ext4 for "
        "context); Celery uses the solo pool with concurrency 1 and `worker_prefetch_multiplier` "
        "set to the prefetch; bare pika acks each message in its callback.",
        "",
        "| consumer | prefetch | median tasks/s | each repetition | worker CPU/task | "
        "broker CPU/task |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    labels = {
        "workstack": "workstack worker",
        "workstack-disk": "workstack worker, results on ext4",
        "celery": "Celery (acks_late)",
        "pika": "bare pika consume-and-ack",
    }
    for system, drains in consume.items():
        kind, _, prefetch = system.partition("@")
        shown = ", ".join(f"{d.rate:,.0f}" for d in drains)
        rate = _median([d.rate for d in drains])
        worker = _median([d.worker_us for d in drains])
        broker = _median([d.broker_us for d in drains])
        lines.append(
            f"| {labels[kind]} | {prefetch} | {rate:,.0f} | {shown} | {worker:.0f} µs | "
            f"{broker:.0f} µs |"
        )
    lines += ["", "| ratio (same prefetch) | measured | goal |", "| --- | --- | --- |"]

    def rate(system: str) -> float:
        return _median([d.rate for d in consume[system]])

    for prefetch in PREFETCHES:
        workstack = rate(f"workstack@{prefetch}")
        vs_celery = workstack / rate(f"celery@{prefetch}")
        vs_pika = workstack / rate(f"pika@{prefetch}")
        lines.append(
            f"| workstack / Celery, prefetch {prefetch} | {vs_celery:.2f}x | 1.5x: "
            f"{_verdict(vs_celery, 1.5)} |"
        )
        lines.append(
            f"| workstack / bare pika, prefetch {prefetch} | {vs_pika:.2f}x | 0.7x: "
            f"{_verdict(vs_pika, 0.7)} |"
        )
    publishing = _median(publish["tasker"]) / _median(publish["confirm-each"])
    lines.append(
        f"| tasker publishing / one confirm per message | {publishing:.1f}x | 5x: "
        f"{_verdict(publishing, 5)} |"
    )
    if _MARKED:
        lines += ["", "Left out (stuck twice, not measured): " + "; ".join(_MARKED) + "."]
    lines += [
        "",
        "Where a goal is not met, [queue.md](queue.md#performance) says why; the CPU columns "
        "(user + system time of the worker processes and of the broker, per task) are steadier "
        "than throughput on a shared machine.",
        "",
        f"Publishing: the tasker published {PUBLISH_TASKS:,} tasks (asynchronous publisher "
        f"confirms, window 1024, connecting included); the baseline published "
        f"{PUBLISH_BASELINE_TASKS:,} on a blocking channel waiting for each confirm; median of "
        f"{PUBLISH_REPETITIONS}.",
        "",
        "| publisher | median msg/s | each repetition |",
        "| --- | --- | --- |",
    ]
    for system, label in (("tasker", "workstack tasker"), ("confirm-each", "one confirm each")):
        shown = ", ".join(f"{v:,.0f}" for v in publish[system])
        lines.append(f"| {label} | {_median(publish[system]):,.0f} | {shown} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare-worker"]:
        _bare_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit("usage: python -m tests.bench.bench_queue bare-worker BROKER_URL QUEUE PREFETCH")
