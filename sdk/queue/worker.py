"""The worker: consumes tasks, runs them in executor processes, and exits when the work is done.

The main process is one event loop (pika's ``SelectConnection`` on an ``IOLoop`` that lives as
long as the worker, across reconnections): it reads deliveries, hands tasks to executor
processes (``executor.py``) over pipes, reads their outcomes from the same loop, and
acknowledges. No task code runs in it, so heartbeats flow even while a task holds the GIL or
crashes its process. A task is acknowledged only after its result is in the storage, so a
worker that dies mid-task loses nothing: RabbitMQ redelivers the task, and a redelivered task
that is done (see ``execution.py``) is not run again.

Attempts. ``x-delivery-count`` (quorum queues) counts every return of a message to the queue:
RabbitMQ 3.x increments it for every requeue, reject and channel close alike
(``rabbit_fifo:return_one/7``; only 4.3 stops counting ``basic.nack``, rabbitmq-server
discussion #18226). So the worker never requeues a task it did not run: a task handed back
unstarted (prefetched when SIGTERM or a stop message came, or interrupted at the end of the
grace period) is published again with its count so far in ``x-workstack-prior-attempts``, and
the original is acknowledged once the copy is confirmed. A failed attempt is rejected with
requeue (counted by every RabbitMQ version); a copy that reaches ``max_attempts`` failed
attempts is dead-lettered with its error. A task that crashes its worker is counted by
RabbitMQ's delivery limit.

Copies that may run twice. A redelivered task (``x-delivery-count`` > 0, or a copy the tasker
published again) may still be running elsewhere, e.g. on a worker that lost its connection
during a broker restart and finishes the task anyway. Such a copy, and every task running
longer than a few seconds, gets a marker ``running/<id>/<worker>-<n>.json`` in the storage,
refreshed every few seconds and removed when its outcome is recorded; the tasker does not
end a stage while a live marker of it exists (``tasker.py``).

Exit status: 0 after a stop message or ``idle_timeout``; 143 after SIGTERM and 130 after
SIGINT (the tasks in hand get ``grace`` seconds to finish, then they are handed back); 3 when
the broker stayed unreachable for ``give_up_after`` seconds.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop, PollEvents, SelectConnection

from workstack.sdk.queue.broker import (
    Backoff,
    connection_parameters,
    describe_error,
    fatal_error,
    topology_arguments,
)
from workstack.sdk.queue.config import QueueError, WorkerSpec, redact_url
from workstack.sdk.queue.execution import Outcome
from workstack.sdk.queue.executor import Executor
from workstack.sdk.queue.messages import (
    ATTEMPTS_HEADER,
    COPY_HEADER,
    ERROR_HEADER,
    PRIOR_HEADER,
    REASON_HEADER,
    WORKER_HEADER,
    Completion,
    MessageError,
    StopMessage,
    TaskMessage,
    decode_message,
    encode_results,
)
from workstack.sdk.storage import Storage, open_storage

__all__ = ["EXIT_DONE", "EXIT_SIGINT", "EXIT_SIGTERM", "EXIT_UNREACHABLE", "Worker"]

EXIT_DONE = 0
EXIT_UNREACHABLE = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

_LOG = logging.getLogger("workstack.queue.worker")
_TICK = 0.25  # signals, timeouts, idleness and markers are looked at this often
_NOTES_BATCH = 200
_KILL_WAIT = 5.0  # a stopped command gets this long between SIGTERM and SIGKILL
MARKER_REFRESH = 2.0
"""Seconds between refreshes of a running marker (the tasker's liveness check relies on it)."""
MARKER_AFTER = 3.0
"""A task running this long gets a running marker even if it is its first delivery."""
# Headers of a delivery that a republished copy must not carry.
_DELIVERY_HEADERS = ("x-delivery-count", "x-death", "x-first-death-exchange",
                     "x-first-death-queue", "x-first-death-reason")  # fmt: skip


class _Delivery:
    __slots__ = (
        "attempt",
        "body",
        "generation",
        "marker",
        "message",
        "prior",
        "properties",
        "seq",
        "started_at",
        "stop_reason",
        "suspect",
        "tag",
    )

    def __init__(
        self,
        seq: int,
        tag: int,
        generation: int,
        message: TaskMessage,
        attempt: int,
        body: bytes,
        properties: Any,
        suspect: bool,
    ) -> None:
        self.seq = seq
        self.tag = tag
        self.generation = generation
        self.message = message
        self.attempt = attempt
        self.prior = attempt - 1
        self.body = body
        self.properties = properties
        self.suspect = suspect
        self.started_at: float | None = None
        self.stop_reason: str | None = None  # "interrupt" or "timeout", when we stop it
        self.marker: str | None = None


class _Slot:
    """One executor and the deliveries sent to it, oldest (the running one) first."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.assigned: collections.deque[_Delivery] = collections.deque()
        self.kill_at: float | None = None
        self.outbox: list[tuple[int, int, bool, bytes]] = []


class _Markers:
    """Running markers in the storage, written and refreshed by a thread of their own.

    Storage calls can be slow (NFS, object stores); the event loop never waits for one, except
    to write the marker of a suspect copy before it starts (rare, and it must exist first).
    """

    def __init__(self, storage: Storage, worker: str) -> None:
        self._storage = storage
        self._worker = worker
        self._active: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._ops: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._serial = 0
        self._thread = threading.Thread(target=self._run, name="markers", daemon=True)
        self._thread.start()

    def key(self, delivery: _Delivery) -> str:
        self._serial += 1
        task = delivery.message.task.id
        return f"running/{task}/{self._worker}-{os.getpid()}-{self._serial}.json"

    def add(self, delivery: _Delivery, *, now: bool = False) -> None:
        if delivery.marker is not None:
            return
        key = self.key(delivery)
        delivery.marker = key
        content = {
            "task": delivery.message.task.id,
            "run": delivery.message.run,
            "worker": self._worker,
            "beat": 0,
        }
        with self._lock:
            self._active[key] = content
        if now:
            self._write(key)
        else:
            self._ops.put(("write", key))

    def remove(self, delivery: _Delivery) -> None:
        key, delivery.marker = delivery.marker, None
        if key is not None:
            with self._lock:
                self._active.pop(key, None)
            self._ops.put(("delete", key))

    def close(self) -> None:
        self._ops.put(None)
        self._thread.join(timeout=10)

    def _write(self, key: str) -> None:
        with self._lock:
            content = self._active.get(key)
            if content is None:
                return
            content["beat"] += 1
            text = json.dumps(content)
        try:
            self._storage.write_text(key, text)
        except Exception as error:  # best effort: the tasker falls back on notes
            _LOG.warning("cannot write the running marker %s: %s", key, error)

    def _run(self) -> None:
        next_refresh = time.monotonic() + MARKER_REFRESH
        while True:
            try:
                op = self._ops.get(timeout=max(0.0, next_refresh - time.monotonic()))
            except queue.Empty:
                op = ("refresh", "")
            if op is None:
                return
            kind, key = op
            if kind == "write":
                self._write(key)
            elif kind == "delete":
                with contextlib.suppress(Exception):
                    self._storage.delete(key)
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + MARKER_REFRESH
                with self._lock:
                    keys = list(self._active)
                for active in keys:
                    self._write(active)


class Worker:
    """Consumes the tasks of one queue set until told to stop.

    Args:
        spec: Settings; see :class:`WorkerSpec`.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._names = spec.names
        self._name = spec.name
        self._loop: Any = None
        self._connection: Any = None
        self._channel: Any = None
        self._confirm: Any = None
        self._consumer_tag: str | None = None
        self._generation = 0
        self._seq = 0
        self._slots: list[_Slot] = []
        self._waiting: collections.deque[_Delivery] = collections.deque()
        self._unsettled: dict[int, None] = {}  # deliveries of this channel not settled, by tag
        self._acks: list[int] = []
        self._flush_scheduled = False
        self._send_scheduled = False
        self._notes: list[Completion] = []
        self._notes_timer: Any = None
        self._published = 0  # publishes on the confirm channel of this connection
        self._pending: dict[int, tuple[str, int, int]] = {}  # seq -> (what, tag, generation)
        self._stop_tag: tuple[int, int] | None = None
        self._leaving = False  # idle exit: what still arrives is handed back
        self._signal: int | None = None
        self._terminating_since: float | None = None
        self._interrupted = False
        self._exit_code: int | None = None
        self._fatal: BaseException | None = None
        self._runs_seen: set[str] = set()
        self._finished_runs: set[str] = set()
        self._last_activity = time.monotonic()
        self._last_connected = time.monotonic()
        self._backoff = Backoff(spec.reconnect_delay, spec.reconnect_max_delay)
        self._was_open = False
        self._next_check = 0.0
        self._markers: _Markers | None = None
        self._storage: Storage | None = None
        self._work_dir = ""
        self.completed = 0
        """Tasks this worker ran to success (for logs and tests)."""

    # -- public ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Consume until a stop message, the idle timeout or a signal; return the exit status.

        Raises:
            QueueError: The storage URL is invalid, or the queues exist with other settings.
            BrokerError: The broker refused the credentials.
        """
        storage = open_storage(self.spec.storage_url)
        self._storage = storage
        self._work_dir = self.spec.work_folder
        os.makedirs(self._work_dir, exist_ok=True)
        if self.spec.run_id is None:
            self._finished_runs = _finished_runs(storage)
        self._loop = IOLoop()
        restore = self._install_signal_handlers()
        try:
            for _ in range(self.spec.concurrency):
                self._slots.append(self._spawn())
            self._markers = _Markers(storage, self._name)
            self._loop.call_later(_TICK, self._tick)
            self._connect()
            self._loop.start()
        finally:
            restore()
            for slot in self._slots:
                slot.executor.close(kill=bool(slot.assigned))
            if self._markers is not None:
                self._markers.close()
            with contextlib.suppress(Exception):
                self._loop.close()
        if self._fatal is not None:
            raise self._fatal
        assert self._exit_code is not None
        return self._exit_code

    def request_shutdown(self, signum: int = signal.SIGTERM) -> None:
        """Stop consuming and exit after the tasks in hand (what SIGTERM does)."""
        self._signal = signum

    # -- executors --------------------------------------------------------------------------

    def _window(self) -> int:
        # One executor: the whole prefetch window is piped to it, so it never waits for this
        # loop between tasks. Several: one running and one next each, so that no task waits
        # behind a long one while another executor is free.
        if self.spec.concurrency == 1:
            return self.spec.prefetch
        return 2

    def _spawn(self) -> _Slot:
        assert self._storage is not None
        executor = Executor(
            self._storage.url, self._work_dir, self._name, max(1, self._window() // 2)
        )
        slot = _Slot(executor)
        self._loop.add_handler(
            executor.fileno(), lambda _fd, _events: self._on_outcomes(slot), PollEvents.READ
        )
        return slot

    def _dispatch(self) -> None:
        window = self._window()
        while self._waiting:
            slot = min(self._slots, key=lambda s: len(s.assigned))
            if len(slot.assigned) >= window:
                return
            delivery = self._waiting.popleft()
            if delivery.suspect and self._markers is not None:
                self._markers.add(delivery, now=True)
            slot.assigned.append(delivery)
            if len(slot.assigned) == 1:
                delivery.started_at = time.monotonic()
            final = delivery.attempt >= self.spec.max_attempts
            slot.outbox.append((delivery.seq, delivery.attempt, final, delivery.body))
            # One write per executor for every delivery of this turn of the loop: fewer
            # wake-ups of the executor, which then finds several tasks at once.
            if not self._send_scheduled:
                self._send_scheduled = True
                self._loop.call_later(0, self._send)

    def _send(self) -> None:
        self._send_scheduled = False
        for slot in self._slots:
            if slot.outbox:
                tasks, slot.outbox = slot.outbox, []
                try:
                    slot.executor.send_many(tasks)
                except OSError:  # the executor died; its outcome pipe tells the rest
                    continue

    def _on_outcomes(self, slot: _Slot) -> None:
        for seq, outcome in slot.executor.outcomes():
            while slot.assigned and slot.assigned[0].seq != seq:
                # Outcomes come in order; anything before this one has been answered.
                slot.assigned.popleft()
            if not slot.assigned:
                continue
            delivery = slot.assigned.popleft()
            if slot.assigned and slot.assigned[0].started_at is None:
                slot.assigned[0].started_at = time.monotonic()
            self._outcome(delivery, outcome)
        if slot.executor.closed:
            self._executor_gone(slot)
        self._schedule_flush()
        self._dispatch()
        self._maybe_consume()
        self._maybe_finish()

    def _executor_gone(self, slot: _Slot) -> None:
        how = slot.executor.exit_description()
        self._loop.remove_handler(slot.executor.fileno())
        slot.executor.close(kill=True)
        assigned = list(slot.assigned)
        slot.assigned.clear()
        slot.outbox.clear()
        slot.kill_at = None
        index = self._slots.index(slot)
        if assigned:
            running, rest = assigned[0], assigned[1:]
            if running.stop_reason is None:
                _LOG.error(
                    "the process running task %s %s; counting it as a failed attempt",
                    running.message.task.id,
                    how,
                )
            self._outcome(
                running,
                Outcome("failed", f"the worker's process running the task {how}"),
            )
            for delivery in rest:
                self._outcome(delivery, Outcome("skipped"))
        if self._exit_code is None:
            self._slots[index] = self._spawn()

    def _outcome(self, delivery: _Delivery, outcome: Outcome) -> None:
        if self._markers is not None:
            self._markers.remove(delivery)
        if outcome.status in ("done", "cached"):
            if outcome.status == "done":
                self.completed += 1
        elif delivery.stop_reason == "interrupt":
            outcome = Outcome("interrupted")
        elif delivery.stop_reason == "timeout":
            timeout = delivery.message.task.timeout
            outcome = Outcome("failed", f"timed out after {timeout} s; the task was stopped")
        if delivery.generation != self._generation or self._channel is None:
            return  # its connection is gone, so the broker has requeued it
        message = delivery.message
        if outcome.status in ("done", "cached"):
            self._ack(delivery.tag)
            self._note(
                Completion(
                    id=message.task.id,
                    stage=message.stage,
                    run=message.run,
                    status="done",
                    attempt=delivery.attempt,
                    cached=outcome.status == "cached",
                    exit=outcome.exit,
                )
            )
            if outcome.exit:
                _LOG.warning(
                    "task %s exited with status %d; going on (on_error: continue)",
                    message.task.id,
                    outcome.exit,
                )
        elif outcome.status in ("interrupted", "skipped"):
            self._hand_back(delivery.tag, delivery.body, delivery.properties, delivery.prior)
        elif delivery.attempt >= self.spec.max_attempts:
            _LOG.error(
                "task %s failed on its last attempt (%d of %d); dead-lettering it: %s",
                message.task.id,
                delivery.attempt,
                self.spec.max_attempts,
                _last_line(outcome.error),
            )
            self._dead_letter(
                delivery.tag, delivery.body, delivery.properties, "failed", outcome.error,
                delivery.attempt,
            )  # fmt: skip
        else:
            _LOG.warning(
                "task %s failed (attempt %d of %d), requeued: %s",
                message.task.id,
                delivery.attempt,
                self.spec.max_attempts,
                _last_line(outcome.error),
            )
            self._settle(delivery.tag)
            self._channel.basic_reject(delivery.tag, requeue=True)

    def _busy(self) -> bool:
        return bool(self._waiting) or any(slot.assigned for slot in self._slots)

    def _orphans(self) -> bool:
        return any(d.generation != self._generation for slot in self._slots for d in slot.assigned)

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> None:
        parameters = connection_parameters(
            self.spec.broker, heartbeat=self.spec.heartbeat, name=f"workstack-worker-{self._name}"
        )
        self._was_open = False
        self._connection = SelectConnection(
            parameters,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
            custom_ioloop=self._loop,
        )

    def _on_open(self, connection: Any) -> None:
        self._was_open = True
        self._last_connected = time.monotonic()
        self._generation += 1
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_cancelled)
        names = self._names
        arguments = topology_arguments(names, self.spec.max_attempts)
        steps: list[Callable[[Callable[[Any], None]], None]] = [
            lambda done: channel.exchange_declare(
                names.dead_letter_exchange, exchange_type="fanout", durable=True, callback=done
            ),
            *(
                (
                    lambda done, q=q, a=a: channel.queue_declare(
                        q, durable=True, arguments=a, callback=done
                    )
                )
                for q, a in arguments.items()
            ),
            lambda done: channel.queue_bind(names.dead, names.dead_letter_exchange, callback=done),
            lambda done: channel.queue_bind(
                names.results, names.dead_letter_exchange, callback=done
            ),
            lambda done: channel.basic_qos(prefetch_count=self.spec.prefetch, callback=done),
        ]

        def step(_frame: Any = None) -> None:
            if steps:
                steps.pop(0)(step)
            else:
                self._channel = channel
                self._connection.channel(on_open_callback=self._on_confirm_channel)

        channel.declaring = True
        step()

    def _on_confirm_channel(self, channel: Any) -> None:
        channel.add_on_close_callback(self._on_channel_closed)

        def ready(_frame: Any) -> None:
            self._confirm = channel
            self._published = 0
            self._pending.clear()
            self._backoff.reset()
            _LOG.info(
                "worker %s connected to %s, queue %s",
                self._name,
                redact_url(self.spec.broker),
                self._names.tasks,
            )
            self._flush_notes()
            self._maybe_consume()

        channel.confirm_delivery(self._on_confirm, callback=ready)

    def _maybe_consume(self) -> None:
        """Start consuming once connected, unless leaving.

        Tasks still running from a lost connection finish first (their redeliveries then
        find them done).
        """
        if (
            self._consumer_tag is not None
            or self._confirm is None
            or self._channel is None
            or self._signal is not None
            or self._stop_tag is not None
            or self._leaving
            or self._exit_code is not None
            or self._orphans()
        ):
            return
        # No consumer arguments: a quorum queue takes only x-priority (broker.py,
        # QUORUM_CONSUMER_ARGUMENTS); the ack timeout is the broker's setting.
        self._consumer_tag = self._channel.basic_consume(self._names.tasks, self._on_message)
        self._last_activity = time.monotonic()

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        declaring = getattr(channel, "declaring", False) and channel is not self._channel
        if (
            declaring
            and isinstance(reason, pika.exceptions.ChannelClosedByBroker)
            and reason.reply_code == 406
        ):
            self._fatal = QueueError(
                f"a queue of {self._names.name!r} already exists with other settings "
                f"({reason.reply_text}); the tasker and every worker must use the same "
                f"max_attempts (here {self.spec.max_attempts}), or delete the old queues first"
            )
            self._finish(2)
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _on_cancelled(self, _frame: Any) -> None:
        _LOG.warning("the broker cancelled the consumer; reconnecting")
        self._consumer_tag = None
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _on_open_error(self, _connection: Any, error: BaseException) -> None:
        self._connection = None
        self._retry(error)

    def _on_closed(self, _connection: Any, reason: BaseException) -> None:
        self._connection = None
        self._lost_connection()
        if self._exit_code is not None:
            self._loop.stop()
            return
        self._retry(reason)

    def _lost_connection(self) -> None:
        # The broker requeues every delivery of the lost connection: tasks not started are
        # dropped here (their executors skip them); running ones finish and their outcome is
        # then ignored. They may run on while the broker gives a copy to another worker:
        # their markers tell the tasker.
        self._channel = self._confirm = None
        self._consumer_tag = None
        self._stop_tag = None
        self._unsettled.clear()
        self._acks.clear()
        self._pending.clear()
        self._waiting.clear()
        self._send()  # what is queued for executors goes first, then is skipped
        for slot in self._slots:
            slot.executor.cancel_pending()
            if slot.assigned and self._markers is not None:
                self._markers.add(slot.assigned[0])

    def _retry(self, error: BaseException) -> None:
        url = self.spec.broker
        if self._exit_code is not None:
            self._loop.stop()
            return
        fatal = fatal_error(error, url)
        if fatal is not None:
            self._fatal = fatal
            self._finish(3)
            self._loop.stop()
            return
        if self._signal is not None and not self._busy():
            # The broker requeues what we held when the connection dropped.
            self._finish(self._signal_exit_code())
            self._loop.stop()
            return
        if time.monotonic() - self._last_connected > self.spec.give_up_after:
            _LOG.error(
                "broker %s unreachable for %.0f s (%s); giving up",
                redact_url(url),
                self.spec.give_up_after,
                describe_error(error),
            )
            self._finish(EXIT_UNREACHABLE)
            self._loop.stop()
            return
        delay = self._backoff.next_delay()
        _LOG.warning(
            "%s %s (%s); retrying in %.1f s",
            "lost the connection to" if self._was_open else "cannot connect to",
            redact_url(url),
            describe_error(error),
            delay,
        )
        self._loop.call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        if self._exit_code is None:
            try:
                self._connect()
            except Exception as error:  # e.g. the host name does not resolve
                self._retry(error)

    # -- deliveries -------------------------------------------------------------------------------

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._last_activity = time.monotonic()
        tag = method.delivery_tag
        self._unsettled[tag] = None
        headers = properties.headers if isinstance(properties.headers, dict) else {}
        count = headers.get("x-delivery-count")
        returns = count if isinstance(count, int) and not isinstance(count, bool) else 0
        prior = headers.get(PRIOR_HEADER)
        prior = prior if isinstance(prior, int) and not isinstance(prior, bool) else 0
        attempt = max(0, prior) + max(0, returns) + 1
        try:
            message = decode_message(body)
        except MessageError as error:
            _LOG.warning("dead-lettering a malformed message: %s", error)
            self._dead_letter(tag, body, properties, "malformed", str(error), attempt)
            return
        if isinstance(message, StopMessage):
            self._on_stop(tag, body, properties, message)
            return
        if self._stop_tag is not None or self._signal is not None or self._leaving:
            self._hand_back(tag, body, properties, attempt - 1)
            return
        self._runs_seen.add(message.run)
        self._seq += 1
        suspect = returns > 0 or prior > 0 or bool(method.redelivered) or COPY_HEADER in headers
        self._waiting.append(
            _Delivery(self._seq, tag, self._generation, message, attempt, body, properties, suspect)
        )
        self._dispatch()

    def _on_stop(self, tag: int, body: bytes, properties: Any, message: StopMessage) -> None:
        if self.spec.run_id is not None:
            ours = message.run == self.spec.run_id
        else:
            # A stop of a run that had finished before this worker started is left over (its
            # worker had gone); any other may be for this worker, which may have had no task.
            ours = message.run in self._runs_seen or message.run not in self._finished_runs
        if not ours:
            _LOG.info("discarding a stop message of an earlier run (%s)", message.run)
            self._settle(tag)
            self._channel.basic_ack(tag)
            return
        if self._stop_tag is not None or self._signal is not None or self._leaving:
            self._hand_back(tag, body, properties, 0)  # one stop per worker: another's
            return
        _LOG.info("stop message received; finishing the tasks in hand")
        self._stop_tag = (tag, self._generation)
        self._stop_consuming()

    def _stop_consuming(self) -> None:
        """Cancel the consumer and hand back the deliveries not started yet."""
        if self._consumer_tag is not None and self._channel is not None:
            tag, self._consumer_tag = self._consumer_tag, None
            self._channel.basic_cancel(tag)
        waiting = list(self._waiting)
        self._waiting.clear()
        for delivery in waiting:
            self._outcome(delivery, Outcome("skipped"))
        self._send()  # what is queued for executors goes first, then is skipped
        for slot in self._slots:
            if len(slot.assigned) > 1:
                slot.executor.cancel_pending()

    # -- acknowledging, handing back, dead-lettering -----------------------------------------------

    def _settle(self, tag: int) -> None:
        self._unsettled.pop(tag, None)

    def _ack(self, tag: int) -> None:
        self._acks.append(tag)
        if self.spec.prefetch == 1:
            self._flush_acks()
        else:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._acks:
            self._flush_scheduled = True
            self._loop.call_later(0, self._flush_acks)

    def _flush_acks(self) -> None:
        """Acknowledge finished tasks.

        The longest run of them from the oldest unsettled delivery goes as one ``multiple``
        ack, the others one by one.
        """
        self._flush_scheduled = False
        if not self._acks or self._channel is None:
            self._acks.clear()
            return
        done = set(self._acks)
        self._acks.clear()
        prefix = 0
        highest = 0
        for tag in self._unsettled:
            if tag not in done:
                break
            prefix += 1
            highest = tag
        if prefix > 1:
            self._channel.basic_ack(highest, multiple=True)
            for tag in [tag for tag in self._unsettled if tag <= highest]:
                del self._unsettled[tag]
                done.discard(tag)
        for tag in sorted(done):
            self._settle(tag)
            self._channel.basic_ack(tag)
        self._maybe_finish()

    def _publish_then_ack(
        self, what: str, tag: int, exchange: str, body: bytes, properties: Any
    ) -> None:
        """Publish on the confirm channel; acknowledge delivery ``tag`` once confirmed."""
        if self._confirm is None or self._channel is None:
            return  # the connection is gone: the broker has requeued the delivery
        self._confirm.basic_publish(exchange, self._names.tasks, body, properties)
        self._published += 1
        self._pending[self._published] = (what, tag, self._generation)
        self._settle(tag)  # not part of a multiple ack: acked on its own after the confirm

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ack = isinstance(method, pika.spec.Basic.Ack)
        settled = [
            seq
            for seq in list(self._pending)
            if seq == method.delivery_tag or (method.multiple and seq <= method.delivery_tag)
        ]
        for seq in settled:
            what, tag, generation = self._pending.pop(seq)
            if generation != self._generation or self._channel is None:
                continue
            if ack:
                self._channel.basic_ack(tag)
            else:
                _LOG.error("the broker refused the %s of a message; requeueing it", what)
                self._channel.basic_nack(tag, requeue=True)
        self._maybe_finish()

    def _hand_back(self, tag: int, body: bytes, properties: Any, prior: int) -> None:
        """Give a delivery back without counting an attempt.

        A copy carrying the attempts so far is published, then the original acknowledged
        (see the module docstring).
        """
        headers = {
            key: value
            for key, value in (properties.headers or {}).items()
            if key not in _DELIVERY_HEADERS
        }
        headers[PRIOR_HEADER] = max(0, prior)
        copy = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type=properties.content_type,
            message_id=properties.message_id,
            headers=headers,
        )
        self._publish_then_ack("hand-back", tag, "", body, copy)

    def _dead_letter(
        self, tag: int, body: bytes, properties: Any, reason: str, error: str, attempt: int
    ) -> None:
        """Publish the message with its error to the dead-letter exchange, then ack it.

        The publish is confirmed before the ack, so the message is in the dead-letter queue
        before it leaves the tasks queue (a crash in between leaves a duplicate, never a gap).
        """
        headers = {
            key: value
            for key, value in (properties.headers or {}).items()
            if key not in _DELIVERY_HEADERS
        }
        headers.update(
            {
                REASON_HEADER: reason,
                ERROR_HEADER: error[-4000:],
                ATTEMPTS_HEADER: attempt,
                WORKER_HEADER: self._name,
            }
        )
        dead = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type=properties.content_type,
            message_id=properties.message_id,
            headers=headers,
        )
        self._publish_then_ack("dead-letter", tag, self._names.dead_letter_exchange, body, dead)

    # -- completion notes ---------------------------------------------------------------------

    def _note(self, completion: Completion) -> None:
        self._notes.append(completion)
        if len(self._notes) >= _NOTES_BATCH:
            self._flush_notes()
        elif self._notes_timer is None:
            self._notes_timer = self._loop.call_later(self.spec.notify_interval, self._flush_notes)

    def _flush_notes(self) -> None:
        """Send buffered completion notes as one message.

        Notes follow their acks: the result is already in the storage, which is the record of
        truth. The tasker checks the storage for tasks whose note never came.
        """
        if self._notes_timer is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_timeout(self._notes_timer)
            self._notes_timer = None
        if not self._notes or self._channel is None:
            return
        notes, self._notes = self._notes, []
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json"
        )
        self._channel.basic_publish(
            "", self._names.results, encode_results(self._name, notes), properties
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._exit_code is not None:
            return
        self._loop.call_later(_TICK, self._tick)
        now = time.monotonic()
        if self._channel is not None:
            self._last_connected = now
        self._watch_running(now)
        if self._signal is not None and self._terminating_since is None:
            self._terminating_since = now
            _LOG.info(
                "signal %d: not taking new tasks; the tasks in hand get %.0f s to finish",
                self._signal,
                self.spec.grace,
            )
            self._stop_consuming()
            if self._channel is None and not self._busy():
                self._finish(self._signal_exit_code())
                return
        if self._terminating_since is not None:
            if not self._interrupted and now - self._terminating_since > self.spec.grace:
                self._interrupted = True
                for slot in self._slots:
                    if slot.assigned:
                        running = slot.assigned[0]
                        _LOG.warning(
                            "grace period over: stopping task %s and handing it back",
                            running.message.task.id,
                        )
                        self._stop_running(slot, "interrupt", now)
            self._maybe_finish()
            return
        if self._stop_tag is not None:
            self._maybe_finish()
            return
        idle = self.spec.idle_timeout
        if (
            idle is not None
            and self._consumer_tag is not None
            and now - self._last_activity > idle
            and not self._busy()
        ):
            self._leaving = True
            self._stop_consuming()
            _LOG.info("no message for %.0f s; exiting", idle)
            self._flush_acks()
            self._flush_notes()
            self._finish(EXIT_DONE)

    def _watch_running(self, now: float) -> None:
        for slot in self._slots:
            if slot.kill_at is not None and now >= slot.kill_at:
                slot.kill_at = None
                slot.executor.signal_group(signal.SIGKILL)
            if not slot.assigned:
                continue
            running = slot.assigned[0]
            if running.started_at is None:
                continue
            elapsed = now - running.started_at
            if elapsed > MARKER_AFTER and running.marker is None and self._markers is not None:
                self._markers.add(running)
            timeout = running.message.task.timeout
            if timeout is not None and elapsed > timeout and running.stop_reason is None:
                _LOG.warning("task %s timed out after %s s; stopping it", running.message.task.id,
                             timeout)  # fmt: skip
                self._stop_running(slot, "timeout", now)

    def _stop_running(self, slot: _Slot, reason: str, now: float) -> None:
        running = slot.assigned[0]
        running.stop_reason = reason
        if running.message.task.command is not None:
            # SIGTERM reaches the command (the executor ignores it); SIGKILL after a while.
            slot.executor.signal_group(signal.SIGTERM)
            slot.kill_at = now + _KILL_WAIT
        else:
            # A Python call cannot be interrupted; its process can.
            slot.executor.signal_group(signal.SIGKILL)

    def _maybe_finish(self) -> None:
        if self._exit_code is not None or self._pending or self._busy():
            return
        if self._terminating_since is not None:
            self._flush_notes()
            self._finish(self._signal_exit_code())
        elif self._stop_tag is not None:
            tag, generation = self._stop_tag
            if self._acks:
                self._flush_acks()
            if generation == self._generation and self._channel is not None:
                self._settle(tag)
                self._channel.basic_ack(tag)
            self._flush_notes()
            _LOG.info("worker %s done: %d task(s) run; exiting", self._name, self.completed)
            self._finish(EXIT_DONE)

    def _finish(self, code: int) -> None:
        if self._exit_code is not None:
            return
        self._exit_code = code
        if self._connection is not None and self._connection.is_open:
            self._connection.close()  # on_closed stops the loop
        elif self._connection is None or self._connection.is_closed:
            self._loop.stop()
        else:
            self._loop.call_later(1.0, self._loop.stop)  # still opening: do not wait for it

    def _signal_exit_code(self) -> int:
        return EXIT_SIGINT if self._signal == signal.SIGINT else EXIT_SIGTERM

    def _install_signal_handlers(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, _frame: FrameType | None) -> None:
            # Only a flag: the loop looks at it every tick. Anything more (the connection)
            # could deadlock with the code the signal interrupted.
            self._signal = signum

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def _finished_runs(storage: Storage) -> set[str]:
    """Runs whose tasker had finished (sent its stop messages) when this worker started."""
    finished = set()
    try:
        keys = storage.list("runs")
    except Exception as error:
        _LOG.warning("cannot list runs in %s (%s)", storage.url, error)
        return set()
    for key in keys:
        if not key.endswith(".json"):
            continue
        try:
            record = json.loads(storage.read_text(key))
        except (OSError, ValueError):
            continue
        if (
            isinstance(record, dict)
            and record.get("finished")
            and isinstance(record.get("run"), str)
        ):
            finished.add(record["run"])
    return finished


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
