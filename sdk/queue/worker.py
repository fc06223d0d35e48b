"""The worker: consumes tasks, runs each in a thread, and exits when the work is done.

The connection belongs to the main thread, which keeps heartbeats flowing while tasks run in
worker threads; a finished task is handed back with ``connection.add_callback_threadsafe``
and acknowledged there. A task is acknowledged only after its result is in the storage, so
a worker that dies mid-task loses nothing: RabbitMQ redelivers the task, and a redelivered
task whose result exists is not run again.

With a prefetch above 1, a task thread that has more work at hand does not wake the
connection thread for each finished task, but when it runs out of work or half the prefetch
window is done (or at the next event or tick); tasks that finished in order are then
acknowledged with one ``multiple`` ack, which RabbitMQ settles in one step.

Exit status: 0 after a stop message or ``idle_timeout``; 143 after SIGTERM and 130 after
SIGINT (the tasks in hand get ``grace`` seconds to finish, then they are requeued); 3 when
the broker stayed unreachable for ``give_up_after`` seconds.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pika
import pika.exceptions

from workstack.sdk.queue.broker import (
    RETRYABLE_ERRORS,
    Backoff,
    connection_parameters,
    declare_topology,
    describe_error,
    fatal_error,
)
from workstack.sdk.queue.config import WorkerSpec, redact_url
from workstack.sdk.queue.execution import Outcome, TaskRunner
from workstack.sdk.queue.messages import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    REASON_HEADER,
    WORKER_HEADER,
    Completion,
    MessageError,
    StopMessage,
    TaskMessage,
    decode_message,
    encode_results,
)
from workstack.sdk.storage import open_storage

__all__ = ["EXIT_DONE", "EXIT_SIGINT", "EXIT_SIGTERM", "EXIT_UNREACHABLE", "Worker"]

EXIT_DONE = 0
EXIT_UNREACHABLE = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

_LOG = logging.getLogger("workstack.queue.worker")
_TICK = 0.25  # the main loop looks at signals, idleness and deferred acks at least this often
_NOTES_BATCH = 200
_INTERRUPT_WAIT = 8.0  # after the grace period: time for stopped commands to report
# A stop message sent this long before the worker started may still be for it (clock skew).
_STOP_SKEW = 5.0


@dataclass(eq=False)
class _Delivery:
    tag: int
    generation: int
    message: TaskMessage
    attempt: int
    body: bytes
    properties: Any
    settled: bool = False


class _RestartError(Exception):
    """The consumer went away (cancelled by the broker); reconnect and consume again."""


class Worker:
    """Consumes the tasks of one queue set until told to stop.

    Args:
        spec: Settings; see :class:`WorkerSpec`.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._names = spec.names
        self._name = spec.name
        self._lock = threading.Condition()
        self._waiting: collections.deque[_Delivery] = collections.deque()
        self._running: set[_Delivery] = set()
        # Appends and pops of a deque are atomic: task threads hand outcomes to the main one.
        self._outcomes: collections.deque[tuple[_Delivery, Outcome]] = collections.deque()
        self._wake_pending = False
        self._wake_batch = max(1, spec.prefetch // 2)
        self._interrupt = threading.Event()
        # Deliveries of the current channel not settled yet, by tag (tags only grow).
        self._unsettled: dict[int, None] = {}
        self._acks: list[int] = []
        self._notes: list[Completion] = []
        self._notes_scheduled = False
        self._generation = 0
        self._connection: Any = None
        self._channel: Any = None
        self._dead_channel: Any = None
        self._consumer_tag: str | None = None
        self._stop_tag: tuple[int, int] | None = None
        self._signal: int | None = None
        self._terminating_since: float | None = None
        self._exit_code: int | None = None
        self._started_at = time.time()
        self._runs_seen: set[str] = set()
        self._last_activity = time.monotonic()
        self._last_connected = time.monotonic()
        self._next_check = 0.0
        self._connection_was_open = False
        self._runner: TaskRunner | None = None
        self.completed = 0
        """Tasks this worker ran to success (for logs and tests)."""

    # -- public -------------------------------------------------------------------------

    def run(self) -> int:
        """Consume until a stop message, the idle timeout or a signal; return the exit status.

        Raises:
            QueueError: The storage URL is invalid, or the queues exist with other settings.
            BrokerError: The broker refused the credentials.
        """
        storage = open_storage(self.spec.storage_url)
        self._runner = TaskRunner(storage, self._name)
        for index in range(self.spec.concurrency):
            threading.Thread(target=self._work, name=f"task-{index}", daemon=True).start()
        restore = self._install_signal_handlers()
        try:
            return self._loop()
        finally:
            restore()

    def request_shutdown(self, signum: int = signal.SIGTERM) -> None:
        """Stop consuming and exit after the tasks in hand (what SIGTERM does)."""
        self._signal = signum

    # -- main thread: connection ---------------------------------------------------------

    def _loop(self) -> int:
        url = self.spec.broker
        backoff = Backoff(self.spec.reconnect_delay, self.spec.reconnect_max_delay)
        self._last_connected = time.monotonic()
        while self._exit_code is None:
            self._connection_was_open = False
            try:
                self._session(url, backoff)
            except _RECONNECT_ON as error:
                fatal = fatal_error(error, url)
                if fatal is not None:
                    raise fatal from None
                self._lost_connection()
                if self._signal is not None:
                    # The broker requeues what we held when the connection dropped.
                    return self._signal_exit_code()
                if time.monotonic() - self._last_connected > self.spec.give_up_after:
                    _LOG.error(
                        "broker %s unreachable for %.0f s (%s); giving up",
                        redact_url(url),
                        self.spec.give_up_after,
                        describe_error(error),
                    )
                    return EXIT_UNREACHABLE
                delay = backoff.next_delay()
                _LOG.warning(
                    "%s %s (%s); retrying in %.1f s",
                    "lost the connection to" if self._connection_was_open else "cannot connect to",
                    redact_url(url),
                    describe_error(error),
                    delay,
                )
                self._pause(delay)
        return self._exit_code

    def _session(self, url: str, backoff: Backoff) -> None:
        parameters = connection_parameters(
            url, heartbeat=self.spec.heartbeat, name=f"workstack-worker-{self._name}"
        )
        connection = pika.BlockingConnection(parameters)
        self._connection_was_open = True
        self._last_connected = time.monotonic()
        self._generation += 1
        self._connection = connection
        try:
            channel = connection.channel()
            declare_topology(channel, self._names, self.spec.max_attempts)
            channel.basic_qos(prefetch_count=self.spec.prefetch)
            dead_channel = connection.channel()
            dead_channel.confirm_delivery()
            self._channel, self._dead_channel = channel, dead_channel
            backoff.reset()
            _LOG.info(
                "worker %s connected to %s, queue %s",
                self._name,
                redact_url(url),
                self._names.tasks,
            )
            # Tasks still running from a lost connection finish first: their results land in
            # the storage, so their redeliveries are skipped instead of run twice here.
            while self._busy() and self._signal is None:
                connection.process_data_events(time_limit=_TICK)
                self._drain_outcomes()
            self._flush_notes()
            if self._signal is None and self._stop_tag is None:
                arguments = {}
                if self.spec.consumer_timeout is not None:
                    arguments["x-consumer-timeout"] = int(self.spec.consumer_timeout * 1000)
                self._consumer_tag = channel.basic_consume(
                    self._names.tasks, self._on_message, arguments=arguments
                )
                self._last_activity = time.monotonic()
            self._arm_tick(connection)
            while True:
                # Returns after each batch of events (deliveries, finished tasks, the tick).
                connection.process_data_events(time_limit=None)
                self._drain_outcomes()
                if self._housekeeping():
                    break
        except BaseException:
            self._connection = None
            if connection.is_open:
                with contextlib.suppress(Exception):  # it is going away either way
                    connection.close()
            raise
        self._connection = None
        if connection.is_open:
            connection.close()

    def _arm_tick(self, connection: Any) -> None:
        def tick() -> None:
            if connection is self._connection and connection.is_open:
                self._last_connected = time.monotonic()
                connection.call_later(_TICK, tick)

        connection.call_later(_TICK, tick)

    def _lost_connection(self) -> None:
        # The broker has requeued every delivery of the lost connection: tasks not started
        # are dropped here, running ones finish and their outcome is then ignored. A stop
        # message is requeued too and will come again.
        with self._lock:
            self._waiting.clear()
        self._channel = self._dead_channel = None
        self._consumer_tag = None
        self._stop_tag = None
        self._unsettled.clear()
        self._acks.clear()

    def _pause(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while self._signal is None and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))
            self._drain_outcomes()

    # -- main thread: deliveries -----------------------------------------------------------

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._last_activity = time.monotonic()
        tag = method.delivery_tag
        self._unsettled[tag] = None
        attempt = _attempt(properties.headers, method.redelivered)
        try:
            message = decode_message(body)
        except MessageError as error:
            _LOG.warning("dead-lettering a malformed message: %s", error)
            self._dead_letter(tag, body, properties, "malformed", str(error), attempt)
            return
        if isinstance(message, StopMessage):
            self._on_stop(tag, message)
            return
        if self._stop_tag is not None or self._terminating_since is not None:
            self._nack(tag)
            return
        self._runs_seen.add(message.run)
        delivery = _Delivery(
            tag=tag,
            generation=self._generation,
            message=message,
            attempt=attempt,
            body=body,
            properties=properties,
        )
        with self._lock:
            self._waiting.append(delivery)
            self._lock.notify()

    def _on_stop(self, tag: int, message: StopMessage) -> None:
        ours = message.run in self._runs_seen or message.sent_at >= self._started_at - _STOP_SKEW
        if not ours:
            # Left over from an earlier run (its worker had gone): obeying it would end this
            # run's worker before its work.
            _LOG.info("discarding a stop message of an earlier run (%s)", message.run)
            self._ack_now(tag)
            return
        if self._stop_tag is not None:
            self._nack(tag)  # one stop per worker: this one is another worker's
            return
        _LOG.info("stop message received; finishing the tasks in hand")
        self._stop_tag = (tag, self._generation)
        self._stop_consuming()

    def _stop_consuming(self) -> None:
        """Cancel the consumer and give back the deliveries not started yet."""
        if self._consumer_tag is not None and self._channel is not None:
            tag, self._consumer_tag = self._consumer_tag, None
            self._channel.basic_cancel(tag)
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
        for delivery in waiting:
            self._settle(delivery, requeue=True)

    def _drain_outcomes(self) -> None:
        self._wake_pending = False
        while True:
            try:
                delivery, outcome = self._outcomes.popleft()
            except IndexError:
                break
            with self._lock:
                self._running.discard(delivery)
            if delivery.generation != self._generation or self._channel is None:
                continue  # its connection is gone, so the broker has requeued it
            self._finish(delivery, outcome)
        if self._acks and (not self._waiting or len(self._acks) >= max(1, self.spec.prefetch // 2)):
            self._flush_acks()

    def _finish(self, delivery: _Delivery, outcome: Outcome) -> None:
        if delivery.settled:
            return
        message = delivery.message
        if outcome.status in ("done", "cached"):
            delivery.settled = True
            self._acks.append(delivery.tag)
            if outcome.status == "done":
                self.completed += 1
            self._note(
                Completion(
                    id=message.task.id,
                    stage=message.stage,
                    run=message.run,
                    status="done",
                    attempt=delivery.attempt,
                    cached=outcome.status == "cached",
                )
            )
        elif outcome.status == "interrupted":
            self._settle(delivery, requeue=True)
        elif delivery.attempt >= self.spec.max_attempts:
            _LOG.error(
                "task %s failed on its last attempt (%d of %d); dead-lettering it: %s",
                message.task.id,
                delivery.attempt,
                self.spec.max_attempts,
                _last_line(outcome.error),
            )
            delivery.settled = True
            self._dead_letter(
                delivery.tag,
                delivery.body,
                delivery.properties,
                "failed",
                outcome.error,
                delivery.attempt,
            )
        else:
            _LOG.warning(
                "task %s failed (attempt %d of %d), requeued: %s",
                message.task.id,
                delivery.attempt,
                self.spec.max_attempts,
                _last_line(outcome.error),
            )
            self._settle(delivery, requeue=True)

    # -- main thread: acknowledgements -----------------------------------------------------

    def _flush_acks(self) -> None:
        """Acknowledge finished tasks.

        The longest run of them from the oldest unsettled delivery goes as one ``multiple``
        ack, the others one by one.
        """
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
            self._ack_now(tag)

    def _ack_now(self, tag: int) -> None:
        self._unsettled.pop(tag, None)
        self._channel.basic_ack(tag)

    def _nack(self, tag: int) -> None:
        self._unsettled.pop(tag, None)
        self._channel.basic_nack(tag, requeue=True)

    def _settle(self, delivery: _Delivery, *, requeue: bool) -> None:
        if delivery.settled:
            return
        delivery.settled = True
        if delivery.generation == self._generation and self._channel is not None:
            self._unsettled.pop(delivery.tag, None)
            self._channel.basic_nack(delivery.tag, requeue=requeue)

    def _dead_letter(
        self, tag: int, body: bytes, properties: Any, reason: str, error: str, attempt: int
    ) -> None:
        """Publish the message with its error to the dead-letter exchange, then ack it.

        The publish is confirmed before the ack, so the message is in the dead-letter queue
        before it leaves the tasks queue (a crash in between leaves a duplicate, never a gap).
        """
        headers = dict(properties.headers or {})
        headers.pop("x-delivery-count", None)
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
        try:
            self._dead_channel.basic_publish(
                self._names.dead_letter_exchange, self._names.tasks, body, dead, mandatory=True
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as failure:
            _LOG.error("could not dead-letter a message (%s); requeueing it", failure)
            self._nack(tag)
            return
        self._ack_now(tag)

    # -- main thread: completion notes ---------------------------------------------------

    def _note(self, completion: Completion) -> None:
        self._notes.append(completion)
        if len(self._notes) >= _NOTES_BATCH:
            self._flush_notes()
        elif not self._notes_scheduled and self._connection is not None:
            self._notes_scheduled = True
            self._connection.call_later(self.spec.notify_interval, self._flush_notes)

    def _flush_notes(self) -> None:
        """Send buffered completion notes as one message.

        Notes follow their acks: the result is already in the storage, which is the record of
        truth. The tasker checks the storage for tasks whose note never came.
        """
        self._notes_scheduled = False
        if not self._notes or self._channel is None:
            return
        notes, self._notes = self._notes, []
        body = encode_results(self._name, notes)
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json"
        )
        try:
            self._channel.basic_publish("", self._names.results, body, properties)
        except RETRYABLE_ERRORS:
            self._notes = notes + self._notes
            raise

    # -- main thread: lifecycle --------------------------------------------------------------

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._running or self._waiting)

    def _housekeeping(self) -> bool:
        """Act on signals, stop messages and idleness; True when the session should end."""
        now = time.monotonic()
        if self._signal is not None and self._terminating_since is None:
            self._terminating_since = now
            _LOG.info(
                "signal %d: not taking new tasks; the tasks in hand get %.0f s to finish",
                self._signal,
                self.spec.grace,
            )
            self._stop_consuming()
        if self._terminating_since is not None:
            if not self._busy():
                self._flush_acks()
                self._flush_notes()
                self._exit_code = self._signal_exit_code()
                return True
            if now - self._terminating_since > self.spec.grace:
                self._interrupt_running(now)
            return False
        if now > self._next_check:
            self._next_check = now + 1.0
            if self._consumer_tag is not None and (
                self._consumer_tag not in self._channel.consumer_tags
            ):
                raise _RestartError("the broker cancelled the consumer")
        if self._stop_tag is not None:
            if not self._busy():
                self._flush_acks()
                tag, generation = self._stop_tag
                if generation == self._generation:
                    self._ack_now(tag)
                self._flush_notes()
                _LOG.info("worker %s done: %d task(s) run; exiting", self._name, self.completed)
                self._exit_code = EXIT_DONE
                return True
            return False
        idle = self.spec.idle_timeout
        if idle is not None and now - self._last_activity > idle and not self._busy():
            self._stop_consuming()
            self._flush_acks()
            self._flush_notes()
            _LOG.info("no message for %.0f s; exiting", idle)
            self._exit_code = EXIT_DONE
            return True
        return False

    def _interrupt_running(self, now: float) -> None:
        with self._lock:
            running = list(self._running)
        if not self._interrupt.is_set():
            for delivery in running:
                _LOG.warning(
                    "grace period over: stopping task %s and requeueing it",
                    delivery.message.task.id,
                )
            self._interrupt.set()
        # Commands stop and report "interrupted"; a Python call cannot be stopped, so after a
        # while its delivery is requeued and the worker exits without it.
        assert self._terminating_since is not None
        if now - self._terminating_since > self.spec.grace + _INTERRUPT_WAIT:
            for delivery in running:
                self._settle(delivery, requeue=True)
            with self._lock:
                self._running.clear()

    def _signal_exit_code(self) -> int:
        return EXIT_SIGINT if self._signal == signal.SIGINT else EXIT_SIGTERM

    def _install_signal_handlers(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, _frame: FrameType | None) -> None:
            # Only a flag: the main loop looks at it every tick. Anything more (locks, the
            # connection) could deadlock with the code the signal interrupted.
            self._signal = signum

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    # -- task threads ------------------------------------------------------------------------

    def _work(self) -> None:
        assert self._runner is not None
        while True:
            with self._lock:
                while not self._waiting:
                    self._lock.wait()
                delivery = self._waiting.popleft()
                self._running.add(delivery)
            final = delivery.attempt >= self.spec.max_attempts
            try:
                outcome = self._runner.run(
                    delivery.message, attempt=delivery.attempt, final=final, cancel=self._interrupt
                )
            except Exception as error:  # e.g. the storage is unreachable
                outcome = Outcome("failed", f"worker error: {type(error).__name__}: {error}")
            self._outcomes.append((delivery, outcome))
            # Wake the connection thread only when it has to act: this thread is about to
            # wait for work, or half the prefetch window is finished (so more can come).
            # Otherwise it drains the outcomes on its next event (a delivery, or the tick).
            if self._wake_pending or (self._waiting and len(self._outcomes) < self._wake_batch):
                continue
            self._wake_pending = True
            connection = self._connection
            if connection is not None:
                # Closed in the meantime: the main loop drains the outcome anyway.
                with contextlib.suppress(Exception):
                    connection.add_callback_threadsafe(self._drain_outcomes)


_RECONNECT_ON: tuple[type[BaseException], ...] = (*RETRYABLE_ERRORS, _RestartError)


def _attempt(headers: dict[str, Any] | None, redelivered: bool) -> int:
    """1 for a first delivery; quorum queues count earlier deliveries in x-delivery-count."""
    count = headers.get("x-delivery-count") if headers else None
    if isinstance(count, int) and not isinstance(count, bool):
        return count + 1
    return 2 if redelivered else 1


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
