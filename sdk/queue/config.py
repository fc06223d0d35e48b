"""Settings of the tasker and the worker, their defaults, and the names of a queue set.

Every default of the queue runtime lives here (``tests/unit/queue/test_config.py`` pins them).
Specs validate on construction and name the offending field in the error.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from workstack.sdk import env
from workstack.sdk.errors import WorkstackError

__all__ = [
    "BROKER_URL_ENV",
    "DEFAULT_BROKER_URL",
    "EXIT_BAD_INPUT",
    "EXIT_BROKER",
    "EXIT_FAILED",
    "QUEUE_ENV",
    "RUN_ID_ENV",
    "STORAGE_URL_ENV",
    "WORK_DIR_ENV",
    "BrokerError",
    "QueueError",
    "QueueNames",
    "QueueSpec",
    "TaskerSpec",
    "WorkerSpec",
    "check_run_id",
    "redact_url",
    "resolve_broker_url",
    "resolve_work_dir",
]

BROKER_URL_ENV = env.BROKER_URL
STORAGE_URL_ENV = env.STORAGE_URL
WORK_DIR_ENV = "WORKSTACK_WORK_DIR"
"""The folder commands run in (tasker and workers read it; commands see it)."""
RUN_ID_ENV = env.RUN_ID
"""A run id given to the tasker and its workers, which then obey only that run's stops."""
QUEUE_ENV = "WORKSTACK_QUEUE"
"""The queue-set name, for tasker and workers."""

EXIT_FAILED = 1
"""Tasker: some task failed for good (it is in the dead-letter queue with its error)."""
EXIT_BAD_INPUT = 2
"""Bad input: an option, a task file, the storage URL, queues declared with other settings."""
EXIT_BROKER = 3
"""The broker refused the connection or stayed unreachable."""
# Local mode: a broker on this machine. Without credentials pika uses guest/guest, which
# RabbitMQ only accepts from localhost; deployed brokers get generated credentials.
DEFAULT_BROKER_URL = "amqp://127.0.0.1:5672"

_QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class QueueError(WorkstackError, ValueError):
    """Bad input to the queue runtime (a setting, a task, a message or a task file).

    The message names what is wrong and what is allowed.
    """


class BrokerError(WorkstackError):
    """The broker refused the connection (credentials, permissions) or stayed unreachable."""


def _invalid(field: str, value: object, allowed: str) -> QueueError:
    return QueueError(f"{field}: {value!r} is not allowed; {allowed}")


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def resolve_broker_url(url: str | None) -> str:
    """The broker URL to use: ``url``, else ``$WORKSTACK_BROKER_URL``, else the local default."""
    return url or os.environ.get(BROKER_URL_ENV) or DEFAULT_BROKER_URL


def check_run_id(value: object) -> str:
    """``value`` if it is a valid run id, else a :class:`QueueError` saying what is allowed."""
    if not isinstance(value, str) or not _RUN_ID.match(value):
        raise _invalid(
            "run_id",
            value,
            "expected 1-128 of letters, digits, '.', '_', '-', starting with a letter or digit",
        )
    return value


def resolve_work_dir(storage_url: str, work_dir: str | None) -> str:
    """The folder commands run in.

    ``work_dir`` if given, else ``$WORKSTACK_WORK_DIR``, else ``<storage>/work`` when the
    storage is a folder (a local path or an NFS mount, shared by the tasker and every worker),
    else a folder of this machine's temporary directory (object storage has no shared folder:
    commands there should write their files to ``$WORKSTACK_OUTPUT_DIR``).
    """
    chosen = work_dir or os.environ.get(WORK_DIR_ENV)
    if chosen:
        return os.path.abspath(chosen)
    scheme, separator, rest = storage_url.partition("://")
    if not separator:
        return os.path.join(os.path.abspath(storage_url), "work")
    if scheme == "file":
        return os.path.join(os.path.abspath(rest), "work")
    import tempfile

    return os.path.join(tempfile.gettempdir(), "workstack-work")


def _check_broker_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as error:
        raise _invalid(
            "broker_url",
            redact_url(url),
            f"expected amqp://[user:password@]host[:port][/vhost] ({error})",
        ) from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise _invalid(
            "broker_url",
            redact_url(url),
            "expected amqp://[user:password@]host[:port][/vhost] or amqps://...",
        )


@dataclass(frozen=True)
class QueueNames:
    """The RabbitMQ objects of one queue set, all derived from its name."""

    name: str

    @property
    def tasks(self) -> str:
        """Quorum queue the tasker publishes tasks (and stop messages) to."""
        return f"{self.name}.tasks"

    @property
    def results(self) -> str:
        """Quorum queue of completion notes (and copies of dead letters) for the tasker."""
        return f"{self.name}.results"

    @property
    def dead(self) -> str:
        """Quorum queue that keeps dead-lettered tasks, with their error, for inspection."""
        return f"{self.name}.dead"

    @property
    def dead_letter_exchange(self) -> str:
        """Fanout exchange dead letters go through, to ``dead`` and ``results``."""
        return f"{self.name}.dlx"


@dataclass(kw_only=True, frozen=True)
class QueueSpec:
    """What the tasker and the workers of one queue set must agree on.

    Attributes:
        queue: Name of the queue set: queues and exchange names derive from it.
        storage_url: Where results, logs and outputs go (see :mod:`workstack.sdk.storage`);
            results are keyed by task id, which makes redelivered tasks idempotent.
        broker_url: ``amqp://user:password@host:port/vhost``; ``None`` reads
            ``$WORKSTACK_BROKER_URL``, else the local default. Never logged with its password.
        max_attempts: Deliveries a task gets before it is dead-lettered. Every delivery
            counts, including one ended by a worker crash or a requeue on shutdown.
        heartbeat: AMQP heartbeat interval in seconds.
        reconnect_delay: First wait before reconnecting, in seconds; doubles each attempt.
        reconnect_max_delay: Cap of the wait before reconnecting, in seconds.
        give_up_after: Seconds without any successful connection after which the process
            stops trying and fails.
        work_dir: The folder commands run in; ``None``: ``$WORKSTACK_WORK_DIR``, else
            ``<storage>/work`` for a folder storage (see :func:`resolve_work_dir`).
        run_id: The run: the tasker names its run so, and a worker given it obeys only that
            run's stop messages. ``None``: the tasker makes one up, and a worker tells an
            earlier run's leftover stop messages by the run records in the storage.
    """

    queue: str = "workstack"
    storage_url: str
    broker_url: str | None = None
    max_attempts: int = 3
    heartbeat: int = 30
    reconnect_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    give_up_after: float = 600.0
    work_dir: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.queue, str) or not _QUEUE_NAME.match(self.queue):
            raise _invalid(
                "queue",
                self.queue,
                "expected 1-100 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
            )
        if not isinstance(self.storage_url, str) or not self.storage_url.strip():
            raise _invalid(
                "storage_url",
                self.storage_url,
                "expected a storage URL or path (s3://, gs://, a folder)",
            )
        _check_broker_url(self.broker)
        _check_int("max_attempts", self.max_attempts, 1, 1000)
        _check_int("heartbeat", self.heartbeat, 1, 3600)
        _check_positive("reconnect_delay", self.reconnect_delay)
        _check_positive("reconnect_max_delay", self.reconnect_max_delay)
        if self.reconnect_max_delay < self.reconnect_delay:
            raise _invalid(
                "reconnect_max_delay",
                self.reconnect_max_delay,
                f"expected at least reconnect_delay ({self.reconnect_delay})",
            )
        _check_positive("give_up_after", self.give_up_after)
        if self.work_dir is not None and (
            not isinstance(self.work_dir, str) or not self.work_dir.strip()
        ):
            raise _invalid("work_dir", self.work_dir, "expected a folder path")
        if self.run_id is not None:
            check_run_id(self.run_id)

    @property
    def work_folder(self) -> str:
        """The folder commands run in (see ``work_dir``)."""
        return resolve_work_dir(self.storage_url, self.work_dir)

    @property
    def broker(self) -> str:
        """The broker URL in use (see ``broker_url``)."""
        return resolve_broker_url(self.broker_url)

    @property
    def names(self) -> QueueNames:
        """Names of the queues and exchange of this queue set."""
        return QueueNames(self.queue)


@dataclass(kw_only=True, frozen=True)
class TaskerSpec(QueueSpec):
    """How the tasker publishes and waits.

    Attributes:
        workers: Stop messages to send at the end, one per worker.
        window: Published tasks that may await their publisher confirm at once.
        reconcile_interval: Seconds without news after which the tasker checks the storage
            for results whose completion note it has not seen (a worker killed right after
            finishing a task can take its last notes with it).
        no_worker_timeout: While tasks are outstanding and no worker consumes the tasks
            queue for this many seconds (workers exited, or never started), the run fails
            with an error saying so; ``None`` waits however long it takes.
        env: Environment variables added to every command of the run.
    """

    workers: int = 1
    window: int = 1024
    reconcile_interval: float = 10.0
    no_worker_timeout: float | None = 300.0
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("workers", self.workers, 0, 100_000)
        _check_int("window", self.window, 1, 65_535)
        _check_positive("reconcile_interval", self.reconcile_interval)
        if self.no_worker_timeout is not None:
            _check_positive("no_worker_timeout", self.no_worker_timeout)
        if not isinstance(self.env, Mapping) or not all(
            isinstance(key, str)
            and re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", key)
            and not key.startswith("WORKSTACK_")
            and isinstance(value, str)
            for key, value in self.env.items()
        ):
            raise _invalid(
                "env",
                dict(self.env) if isinstance(self.env, Mapping) else self.env,
                "expected NAME=value pairs: names of letters, digits and '_' (not WORKSTACK_*), "
                "string values",
            )


@dataclass(kw_only=True, frozen=True)
class WorkerSpec(QueueSpec):
    """How a worker consumes.

    Attributes:
        prefetch: Unacknowledged tasks the broker may hand this worker (AMQP prefetch).
        concurrency: Tasks run at once, each in its own thread; at most ``prefetch``.
        idle_timeout: Exit 0 after this many seconds without a message; ``None`` waits for a
            stop message however long it takes.
        grace: On SIGTERM, seconds the tasks in hand get to finish before they are requeued.
        notify_interval: Completion notes are sent in batches at most this many seconds
            after a task finished.
        worker_id: Name in logs and result records; defaults to ``<hostname>-<pid>``.
    """

    prefetch: int = 1
    concurrency: int = 1
    idle_timeout: float | None = 900.0
    grace: float = 20.0
    notify_interval: float = 0.05
    worker_id: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("prefetch", self.prefetch, 1, 65_535)
        _check_int("concurrency", self.concurrency, 1, 1024)
        if self.concurrency > self.prefetch:
            raise _invalid(
                "concurrency", self.concurrency, f"expected at most prefetch ({self.prefetch})"
            )
        if self.idle_timeout is not None:
            _check_positive("idle_timeout", self.idle_timeout)
        if not isinstance(self.grace, int | float) or self.grace < 0:
            raise _invalid("grace", self.grace, "expected seconds, 0 or more")
        _check_positive("notify_interval", self.notify_interval)
        if self.worker_id is not None and not re.match(r"^[\w.-]{1,100}$", self.worker_id):
            raise _invalid(
                "worker_id", self.worker_id, "expected 1-100 of letters, digits, '.', '_', '-'"
            )

    @property
    def name(self) -> str:
        """The worker's name (``worker_id`` or ``<hostname>-<pid>``)."""
        return self.worker_id or f"{socket.gethostname()}-{os.getpid()}"


def _check_int(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(field, value, f"expected an integer from {low} to {high}")


def _check_positive(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _invalid(field, value, "expected a number of seconds above 0")
