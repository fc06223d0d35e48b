"""The tasker: publishes tasks stage by stage, waits for their results, then stops the workers.

Publishing is asynchronous (pika's ``SelectConnection``): up to ``window`` persistent,
``mandatory`` messages are in flight, and RabbitMQ's publisher confirms (often one for many
messages) settle them; a task counts as published only once confirmed. Completion is read from
the results queue; a stage starts when every task of the previous one is done. A task whose
result is already in the storage (an earlier run did it) is not published again.

If the connection drops, the tasker reconnects with capped, jittered backoff and publishes
again what was not confirmed (marked with ``x-workstack-copy``); workers skip a task that is
done, so a message published twice does no work twice. When the same failure ends every
session without progress, the tasker gives up instead of reconnecting forever.

A stage ends when every task of it is done (or failed for good) *and* no copy of its tasks
still runs: workers leave a marker in the storage while a copy that may run twice (a
redelivery) or a long task runs (see ``worker.py``), and the tasker waits while a marker of
the stage is live (refreshed within ``_MARKER_STALE`` seconds as the tasker sees it).

While tasks are outstanding, the tasker watches the tasks queue's consumers: when none is
left for ``no_worker_timeout`` seconds, the run fails with an error saying so.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection

from workstack.sdk.queue import broker
from workstack.sdk.queue.config import BrokerError, QueueError, TaskerSpec, redact_url
from workstack.sdk.queue.execution import done_ids, error_key, stored_ids, work_identity
from workstack.sdk.queue.messages import (
    COPY_HEADER,
    ERROR_HEADER,
    REASON_HEADER,
    Completion,
    Stage,
    Task,
    check_unique_ids,
    decode_note,
    encode_stop,
    encode_task,
    is_dead_letter,
)
from workstack.sdk.queue.progress import ProgressView, make_progress
from workstack.sdk.queue.taskfile import to_task
from workstack.sdk.queue.worker import MARKER_REFRESH
from workstack.sdk.storage import Storage, open_storage

__all__ = ["DEFAULT_STAGE", "StageReport", "Tasker", "TaskerReport", "as_stages"]

DEFAULT_STAGE = "main"
_LOG = logging.getLogger("workstack.queue.tasker")
_TIMER = 0.5
_RESULTS_PREFETCH = 1000
_STOP = "<stop>"
_CONSUMER_CHECK = 2.0  # seconds between looks at the tasks queue's consumers
_MARKER_STALE = 5 * MARKER_REFRESH  # a running marker unchanged this long is a dead worker's
_SAME_FAILURE_LIMIT = 5


@dataclass
class StageReport:
    """What happened to one stage."""

    name: str
    total: int
    done: int = 0
    failed: int = 0
    already_done: int = 0
    """Tasks whose result was in the storage before this run: not published."""
    started: bool = False


@dataclass
class TaskerReport:
    """The outcome of a tasker run."""

    run: str
    stages: list[StageReport]
    errors: dict[str, str] = field(default_factory=dict)
    """Task id -> error, for every task that failed for good (it was dead-lettered)."""
    duplicates: int = 0
    """Completion notes for tasks already finished (redeliveries, republished tasks)."""
    unexpected: int = 0
    """Notes that are not about this run's tasks (leftovers, malformed dead letters)."""
    stop_messages: int = 0
    aborted: str | None = None
    """Why the run stopped before its end (no worker left), if it did."""
    continued: dict[str, int] = field(default_factory=dict)
    """Task id -> non-zero exit status of ``on_error: continue`` commands (done anyway)."""
    rerun: dict[str, str] = field(default_factory=dict)
    """Task id -> why a task with a result record from before was run again (outputs gone)."""
    dead_lettered: int = 0
    """Messages on the results queue that could not be decoded, moved to the dead queue."""

    @property
    def ok(self) -> bool:
        """Every task of every stage is done."""
        return self.aborted is None and all(
            stage.started and stage.done == stage.total for stage in self.stages
        )

    @property
    def done(self) -> int:
        """Tasks done, over all stages."""
        return sum(stage.done for stage in self.stages)

    @property
    def failed(self) -> int:
        """Tasks failed for good, over all stages."""
        return sum(stage.failed for stage in self.stages)


def as_stages(
    source: Sequence[Stage] | Iterable[Task | str | Mapping[str, Any]],
) -> list[Stage]:
    """Stages from a list of stages, or one stage (``main``) from an iterable of tasks.

    A task may be a :class:`Task`, a shell command string or a mapping of task fields.

    Raises:
        QueueError: A task is invalid or two tasks share an id.
    """
    items = list(source)
    if items and all(isinstance(item, Stage) for item in items):
        stages = [item for item in items if isinstance(item, Stage)]
    elif any(isinstance(item, Stage) for item in items):
        raise QueueError("tasks: mix of Stage and tasks is not allowed; pass stages or tasks")
    else:
        tasks = []
        for index, item in enumerate(items, start=1):
            try:
                tasks.append(to_task(item))  # type: ignore[arg-type]
            except QueueError as error:
                raise QueueError(f"task {index}: {error}") from None
        stages = [Stage(name=DEFAULT_STAGE, tasks=tasks)]
    check_unique_ids(stages)
    return stages


_Status = Literal["waiting", "published", "done", "failed"]


class _RunState:
    """Where the run stands; survives reconnections."""

    def __init__(
        self,
        stages: list[Stage],
        run: str,
        workers: int,
        storage: Storage,
        work_dir: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.stages = stages
        self.run = run
        self.storage = storage
        self.work_dir = work_dir
        self.env = dict(env or {})
        self.progress_mark = 0  # grows with every confirm and every task finished
        self.markers_seen: dict[str, tuple[str, float]] = {}
        self.no_consumer_since: float | None = None
        self.report = TaskerReport(
            run=run, stages=[StageReport(name=s.name, total=len(s.tasks)) for s in stages]
        )
        self.stage_of: dict[str, int] = {}
        self.bodies: dict[str, bytes] = {}
        for index, stage in enumerate(stages):
            for task in stage.tasks:
                self.stage_of[task.id] = index
        self.status: dict[str, _Status] = dict.fromkeys(self.stage_of, "waiting")
        self.current = -1
        self.to_publish: collections.deque[str] = collections.deque()
        self.published = 0
        self.phase: Literal["tasks", "stopping", "finished"] = "tasks"
        self.stops_to_send = 0
        self.workers = workers
        self.last_news = time.monotonic()
        self.fatal: BaseException | None = None
        self.progress: ProgressView | None = None

    # -- stages -------------------------------------------------------------------------------

    def next_stage(self) -> None:
        """Start the next stage (skipping tasks done before), or the stopping phase."""
        while True:
            if self.current >= 0 and self.report.stages[self.current].failed:
                later = len(self.stages) - self.current - 1
                _LOG.error(
                    "stage %s: %d task(s) failed%s",
                    self.stages[self.current].name,
                    self.report.stages[self.current].failed,
                    f"; the {later} later stage(s) are not started" if later else "",
                )
                self._start_stopping()
                return
            self.current += 1
            if self.current >= len(self.stages):
                self._start_stopping()
                return
            stage = self.stages[self.current]
            report = self.report.stages[self.current]
            report.started = True
            stored = self._stored_results([task.id for task in stage.tasks])
            self.published = 0
            for task in stage.tasks:
                if self.status[task.id] == "done":
                    continue
                if task.id in stored:
                    self.status[task.id] = "done"
                    report.done += 1
                    report.already_done += 1
                else:
                    self.to_publish.append(task.id)
                    self.bodies[task.id] = encode_task(
                        task, stage=stage.name, run=self.run, env=self.env
                    )
            if self.progress is not None:
                self.progress.stage(stage.name, report.total)
                self.progress.update(self.published, report.done, report.failed)
            if report.already_done:
                _LOG.info(
                    "stage %s: %d of %d task(s) already done in the storage",
                    stage.name,
                    report.already_done,
                    report.total,
                )
            if not self.stage_complete():
                self.last_news = time.monotonic()
                return

    def is_finished(self) -> bool:
        """Every stop message is confirmed (or none was needed): the run is over."""
        return self.phase == "finished"

    def _start_stopping(self) -> None:
        self.phase = "stopping"
        self.stops_to_send = self.workers
        if self.workers == 0:
            self.phase = "finished"

    def stage_complete(self) -> bool:
        """Every task of the current stage is done or failed (copies may still run)."""
        report = self.report.stages[self.current]
        return report.done + report.failed == report.total

    def copies_running(self) -> list[str]:
        """Ids of the current stage's tasks with a live running marker.

        A marker is live until its content stays the same for _MARKER_STALE seconds of this
        process's clock, which no worker's clock can skew (see the module docstring).
        """
        ids = {task.id for task in self.stages[self.current].tasks}
        try:
            keys = [k for k in self.storage.list("running") if k.split("/")[1] in ids]
        except Exception as error:
            _LOG.warning("cannot list running markers in %s (%s)", self.storage.url, error)
            return []
        now = time.monotonic()
        live = []
        for key in keys:
            try:
                content = self.storage.read_text(key)
            except OSError:
                continue  # removed meanwhile: that copy is finished
            seen = self.markers_seen.get(key)
            if seen is None or seen[0] != content:
                self.markers_seen[key] = (content, now)
                live.append(key.split("/")[1])
            elif now - seen[1] < _MARKER_STALE:
                live.append(key.split("/")[1])
        return sorted(set(live))

    def _stored_results(self, ids: list[str]) -> set[str]:
        # Only an optimization (skip finished work) and a fallback (lost notes): if the
        # storage cannot be listed, publish anyway; workers skip what is done.
        try:
            done, stale = done_ids(self.storage, self.work_dir, ids)
        except Exception as error:
            _LOG.warning("cannot list results in %s (%s)", self.storage.url, error)
            return set()
        for task_id, why in sorted(stale.items()):
            if task_id not in self.report.rerun:
                self.report.rerun[task_id] = why
                _LOG.warning("task %s has a result record but %s: running it again", task_id, why)
        return done

    # -- news -----------------------------------------------------------------------------

    def record(self, completion: Completion) -> None:
        """Take in what a note or a dead letter says about a task."""
        status = self.status.get(completion.id)
        if status is None or (completion.status == "failed" and completion.run != self.run):
            self.report.unexpected += 1
            return
        if status in ("done", "failed"):
            self.report.duplicates += 1
            return
        stage = self.report.stages[self.stage_of[completion.id]]
        self.status[completion.id] = completion.status
        self.progress_mark += 1
        if completion.status == "done":
            stage.done += 1
            if completion.exit:
                self.report.continued[completion.id] = completion.exit
        else:
            stage.failed += 1
            self.report.errors[completion.id] = completion.error
            lines = completion.error.strip().splitlines()
            _LOG.error("task %s failed for good: %s", completion.id, lines[-1] if lines else "")
        self.last_news = time.monotonic()
        self.show()

    def reconcile(self) -> None:
        """Look in the storage for tasks finished without a note reaching us."""
        self.last_news = time.monotonic()
        if self.phase != "tasks":
            return
        outstanding = [
            task.id
            for task in self.stages[self.current].tasks
            if self.status[task.id] not in ("done", "failed")
        ]
        if not outstanding:
            return
        stored = self._stored_results(outstanding)
        try:
            failed = stored_ids(self.storage, "errors")
        except Exception as problem:
            _LOG.warning("cannot list errors in %s (%s)", self.storage.url, problem)
            failed = set()
        found = 0
        for task_id in outstanding:
            if task_id in stored:
                self.record(Completion(id=task_id, stage="", run=self.run, status="done"))
                found += 1
            elif task_id in failed:
                record = _read_json(self.storage, error_key(task_id))
                if record.get("run") == self.run:
                    error = str(record.get("error", "failed"))
                    self.record(
                        Completion(id=task_id, stage="", run=self.run, status="failed", error=error)
                    )
                    found += 1
        if found:
            _LOG.warning("found %d finished task(s) in the storage without a note", found)

    def show(self) -> None:
        """Refresh the progress view."""
        if self.progress is not None and 0 <= self.current < len(self.stages):
            report = self.report.stages[self.current]
            self.progress.update(self.published + report.already_done, report.done, report.failed)


def _write_run(storage: Storage, run: str, *, finished: bool) -> None:
    """The run's record (``runs/<run>.json``): workers use it to tell leftover stops."""
    record = {"run": run, "finished": finished, "at": time.time()}
    try:
        storage.write_text(f"runs/{run}.json", json.dumps(record))
    except Exception as error:
        _LOG.warning("cannot write the run record in %s (%s)", storage.url, error)


def _read_json(storage: Storage, key: str) -> dict[str, Any]:
    try:
        data = json.loads(storage.read_text(key))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class _Session:
    """One connection's worth of publishing and reading results (callbacks on one ioloop)."""

    def __init__(self, state: _RunState, spec: TaskerSpec, parameters: pika.URLParameters) -> None:
        self.state = state
        self.spec = spec
        self.names = spec.names
        self.unconfirmed: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self.returned: set[str] = set()
        self.next_tag = 1
        self.channel: Any = None
        self.error: BaseException | None = None
        self.opened = False
        self.republish: set[str] = set()  # unconfirmed before: another copy may exist
        self.next_consumer_check = 0.0
        self.connection = SelectConnection(
            parameters,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )

    def run(self) -> None:
        self.connection.ioloop.start()

    # -- connection and channel -----------------------------------------------------------

    def _on_open(self, connection: Any) -> None:
        self.opened = True
        connection.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, _connection: Any, error: BaseException) -> None:
        self.error = error
        self.connection.ioloop.stop()

    def _on_closed(self, _connection: Any, reason: BaseException) -> None:
        if self.state.phase != "finished" and self.error is None:
            self.error = reason
        self.connection.ioloop.stop()

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        if self.connection.is_open:
            if self.state.phase != "finished" and self.error is None:
                self.error = reason
            self.connection.close()

    def _on_confirm_mode(self, _frame: Any) -> None:
        self.channel.basic_qos(prefetch_count=_RESULTS_PREFETCH, callback=self._on_qos)

    def _on_qos(self, _frame: Any) -> None:
        self.channel.basic_consume(self.names.results, self._on_result)
        self.connection.ioloop.call_later(_TIMER, self._on_timer)
        self._pump()

    def _close(self) -> None:
        if self.connection.is_open:
            self.connection.close()

    # -- publishing -------------------------------------------------------------------------

    def _pump(self) -> None:
        state = self.state
        window = self.spec.window
        channel = self.channel
        if channel is None or not channel.is_open:
            return
        persistent = pika.DeliveryMode.Persistent
        if state.phase == "tasks":
            while state.to_publish and len(self.unconfirmed) < window:
                task_id = state.to_publish.popleft()
                if state.status[task_id] != "waiting":
                    continue
                properties = pika.BasicProperties(
                    delivery_mode=persistent,
                    content_type="application/json",
                    message_id=task_id,
                    headers={COPY_HEADER: 1} if task_id in self.republish else None,
                )
                channel.basic_publish(
                    "", self.names.tasks, state.bodies[task_id], properties, mandatory=True
                )
                self.unconfirmed[self.next_tag] = task_id
                self.next_tag += 1
        elif state.phase == "stopping":
            while state.stops_to_send > 0 and len(self.unconfirmed) < window:
                body = encode_stop(run=state.run, sent_at=time.time())
                properties = pika.BasicProperties(
                    delivery_mode=persistent, content_type="application/json", message_id=_STOP
                )
                channel.basic_publish("", self.names.tasks, body, properties, mandatory=True)
                state.stops_to_send -= 1
                self.unconfirmed[self.next_tag] = _STOP
                self.next_tag += 1
            if state.stops_to_send == 0 and not self.unconfirmed:
                state.phase = "finished"
        if state.phase == "finished":
            self._close()

    def _on_return(self, _channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
        # Comes before the confirm of the same message.
        self.returned.add(properties.message_id)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ack = isinstance(method, pika.spec.Basic.Ack)
        settled = []
        while self.unconfirmed:
            tag = next(iter(self.unconfirmed))
            if tag > method.delivery_tag or (not method.multiple and tag != method.delivery_tag):
                break
            settled.append(self.unconfirmed.popitem(last=False)[1])
        state = self.state
        state.progress_mark += 1
        for item in settled:
            if isinstance(item, tuple):  # a results message moved to the dead queue
                if ack:
                    self.channel.basic_ack(item[1])
                    state.report.dead_lettered += 1
                else:
                    self.channel.basic_nack(item[1], requeue=True)
                continue
            if item in self.returned:
                self.returned.discard(item)
                state.fatal = QueueError(
                    f"the broker could not route {item!r} to {self.names.tasks!r} (was the queue "
                    "deleted?); nothing more is published"
                )
                self._close()
                return
            if item == _STOP:
                if ack:
                    state.report.stop_messages += 1
                else:
                    state.stops_to_send += 1
            elif ack:
                if state.status[item] == "waiting":
                    state.status[item] = "published"
                    state.published += 1
            else:
                state.to_publish.appendleft(item)
        if not ack:
            _LOG.warning("the broker refused %d message(s); publishing them again", len(settled))
        state.show()
        self._pump()

    def requeue_unconfirmed(self) -> None:
        """After losing the connection: what was not confirmed is published again."""
        state = self.state
        for item in reversed(self.unconfirmed.values()):
            if isinstance(item, tuple):
                continue  # its results message was not acked: it comes again
            if item == _STOP:
                state.stops_to_send += 1
            else:
                state.to_publish.appendleft(item)
                self.republish.add(item)
        self.unconfirmed.clear()
        if state.phase == "finished" and state.stops_to_send:
            state.phase = "stopping"

    # -- results ------------------------------------------------------------------------------

    def _on_result(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        state = self.state
        try:
            completions = decode_note(body, properties.headers)
        except Exception as error:  # decode_note raises only MessageError; be sure anyway
            if is_dead_letter(properties.headers):
                # A dead letter whose body is not a task: the copy in the dead queue (the
                # dead-letter exchange fans out to both) keeps it.
                _LOG.warning("a dead letter on %s is not a task: %s", self.names.results, error)
                state.report.unexpected += 1
                channel.basic_ack(method.delivery_tag)
                self._advance()
                return
            self._dead_letter(method.delivery_tag, body, properties, str(error))
            return
        for completion in completions:
            state.record(completion)
        channel.basic_ack(method.delivery_tag)
        self._advance()

    def _dead_letter(self, tag: int, body: bytes, properties: Any, error: str) -> None:
        """Move an undecodable results message to the dead queue, with its reason.

        Straight to the queue: through the dead-letter exchange it would come back here too.
        """
        _LOG.warning("dead-lettering a malformed message on %s: %s", self.names.results, error)
        headers = dict(properties.headers) if isinstance(properties.headers, dict) else {}
        headers.update(
            {
                REASON_HEADER: "malformed",
                ERROR_HEADER: f"on {self.names.results}: {error}"[-4000:],
            }
        )
        dead = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, headers=headers)
        self.channel.basic_publish("", self.names.dead, body, dead)
        self.unconfirmed[self.next_tag] = ("results", tag)
        self.next_tag += 1

    def _advance(self) -> None:
        state = self.state
        if state.phase == "tasks" and state.stage_complete():
            running = state.copies_running()
            if running:
                if not state.report.stages[state.current].failed:
                    _LOG.info(
                        "stage %s: every task is done; waiting for %d copy(ies) still running (%s)",
                        state.stages[state.current].name,
                        len(running),
                        ", ".join(running[:3]),
                    )
                return
            state.next_stage()
            self._pump()

    def _on_timer(self) -> None:
        state = self.state
        if not self.connection.is_open or state.phase == "finished":
            return
        state.show()
        now = time.monotonic()
        if state.phase == "tasks":
            if not state.to_publish and now - state.last_news > self.spec.reconcile_interval:
                state.reconcile()
            self._advance()
            if now >= self.next_consumer_check and self.channel is not None:
                self.next_consumer_check = now + _CONSUMER_CHECK
                self.channel.queue_declare(
                    self.names.tasks, passive=True, callback=self._on_consumers
                )
        self.connection.ioloop.call_later(_TIMER, self._on_timer)

    def _on_consumers(self, frame: Any) -> None:
        """Fail the run when no worker has consumed the tasks queue for a while."""
        state = self.state
        timeout = self.spec.no_worker_timeout
        if state.phase != "tasks" or timeout is None:
            return
        if frame.method.consumer_count > 0 or state.stage_complete():
            state.no_consumer_since = None
            return
        now = time.monotonic()
        if state.no_consumer_since is None:
            state.no_consumer_since = now
        elif now - state.no_consumer_since >= timeout:
            outstanding = sum(1 for s in state.status.values() if s in ("waiting", "published"))
            state.report.aborted = (
                f"no worker consumes {self.names.tasks} (none for {timeout:.0f} s) while "
                f"{outstanding} task(s) are not done: the workers exited (idle timeout, stop "
                "messages of another run) or never started; start workers "
                f"(workstack queue worker --queue {self.spec.queue}) and run the tasker again"
            )
            _LOG.error("%s", state.report.aborted)
            state.phase = "finished"
            self._close()


class Tasker:
    """Publishes stages of tasks to a queue set and waits until they are done.

    Args:
        spec: Settings; see :class:`TaskerSpec`.
    """

    def __init__(self, spec: TaskerSpec) -> None:
        self.spec = spec

    def run(
        self,
        tasks: Sequence[Stage] | Iterable[Task | str | Mapping[str, Any]],
        *,
        progress: bool | ProgressView | None = None,
    ) -> TaskerReport:
        """Publish every stage in turn, wait for its results, then send the stop messages.

        Args:
            tasks: Stages, or tasks (``Task``, command strings, mappings) for a single stage.
            progress: True for a progress bar, False for nothing, None for a bar on a
                terminal and log lines otherwise, or a :class:`ProgressView` of your own.

        Returns:
            The report; ``report.ok`` says whether every task is done.

        Raises:
            QueueError: Bad tasks or settings (before anything is published).
            BrokerError: The broker refused the credentials, or it stayed unreachable for
                ``give_up_after`` seconds.
        """
        stages = as_stages(tasks)
        storage = open_storage(self.spec.storage_url)
        run = self.spec.run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        work_dir = self.spec.work_folder
        if storage.protocol == "file":
            os.makedirs(work_dir, exist_ok=True)
            work_identity(work_dir, create=True)
        state = _RunState(stages, run, self.spec.workers, storage, work_dir, self.spec.env)
        _write_run(storage, run, finished=False)
        view = make_progress(progress)
        state.progress = view
        _LOG.info(
            "run %s: %d stage(s), %d task(s), queue %s",
            run,
            len(stages),
            len(state.stage_of),
            self.spec.names.tasks,
        )
        try:
            state.next_stage()
            self._loop(state)
        finally:
            view.close()
        report = state.report
        if report.aborted is None:
            # Workers started from now on know this run's stop messages are left over.
            _write_run(storage, run, finished=True)
        _LOG.info(
            "run %s %s: %d done, %d failed, %d stop message(s) sent",
            run,
            "succeeded" if report.ok else "failed",
            report.done,
            report.failed,
            report.stop_messages,
        )
        return report

    def _loop(self, state: _RunState) -> None:
        spec = self.spec
        url = spec.broker
        backoff = broker.Backoff(spec.reconnect_delay, spec.reconnect_max_delay)
        last_connected = time.monotonic()
        name = f"workstack-tasker-{state.run}"
        # The last failure, how often in a row, and the progress mark when it came.
        same: tuple[str, int, int] = ("", 0, -1)
        while not state.is_finished():
            session: _Session | None = None
            error: BaseException | None
            try:
                broker.declare(
                    url, spec.names, spec.max_attempts, heartbeat=spec.heartbeat, name=name
                )
                parameters = broker.connection_parameters(url, heartbeat=spec.heartbeat, name=name)
                session = _Session(state, spec, parameters)
                session.run()
                error = session.error
                if session.opened:
                    last_connected = time.monotonic()
                    backoff.reset()
            except broker.RETRYABLE_ERRORS as failure:
                error = failure
            if state.fatal is not None:
                raise state.fatal
            if session is not None:
                session.requeue_unconfirmed()
            if state.is_finished():
                return
            fatal = broker.fatal_error(error, url) if error is not None else None
            if fatal is not None:
                raise fatal
            described = broker.describe_error(error) if error else "closed"
            if described == same[0] and state.progress_mark == same[2]:
                same = (described, same[1] + 1, state.progress_mark)
            else:
                same = (described, 1, state.progress_mark)
            if same[1] >= _SAME_FAILURE_LIMIT:
                raise BrokerError(
                    f"the same failure ended {same[1]} connections in a row without progress "
                    f"({described}); giving up: it will not go away by reconnecting"
                )
            if time.monotonic() - last_connected > spec.give_up_after:
                raise BrokerError(
                    f"broker {redact_url(url)} unreachable for {spec.give_up_after:.0f} s "
                    f"({broker.describe_error(error) if error else 'closed'}); giving up"
                )
            delay = backoff.next_delay()
            _LOG.warning(
                "%s %s (%s); retrying in %.1f s",
                "lost the connection to" if session and session.opened else "cannot connect to",
                redact_url(url),
                broker.describe_error(error) if error else "closed",
                delay,
            )
            time.sleep(delay)
