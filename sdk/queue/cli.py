"""``workstack queue tasker|worker``: the queue-workers roles as commands.

Exit statuses: 0 success; 1 some task failed for good (tasker); 2 bad input (an option, a task
file, the storage URL, queues declared with other settings); 3 the broker refused the
connection or stayed unreachable; 130/143 a worker stopped by SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from workstack.sdk.queue.config import (
    BROKER_URL_ENV,
    EXIT_BAD_INPUT,
    EXIT_BROKER,
    EXIT_FAILED,
    QUEUE_ENV,
    RUN_ID_ENV,
    STORAGE_URL_ENV,
    WORK_DIR_ENV,
    BrokerError,
    QueueError,
    TaskerSpec,
    WorkerSpec,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_BROKER", "EXIT_FAILED", "configure_logging", "queue_app"]


queue_app = typer.Typer(
    help="Queue workers on RabbitMQ: a tasker publishes tasks, workers run them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_QueueOption = Annotated[
    str, typer.Option("--queue", "-q", envvar=QUEUE_ENV, help="Name of the queue set.")
]
_WorkDirOption = Annotated[
    str | None,
    typer.Option(
        "--work-dir",
        envvar=WORK_DIR_ENV,
        help="Folder commands run in; default <storage>/work for a folder storage.",
        show_default=False,
    ),
]
_RunOption = Annotated[
    str | None,
    typer.Option(
        "--run-id",
        envvar=RUN_ID_ENV,
        help="The run: the tasker's run id; a worker given it obeys only that run's stop "
        "messages. Default: the tasker makes one up.",
        show_default=False,
    ),
]
_VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Debug logging, and pika's own INFO lines (hidden otherwise)."
    ),
]
_BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        envvar=BROKER_URL_ENV,
        help="amqp://user:password@host:port/vhost. Prefer the environment variable: a command "
        "line is visible to other users. Default: amqp://127.0.0.1:5672.",
        show_default=False,
    ),
]
_StorageOption = Annotated[
    str,
    typer.Option(
        "--storage",
        envvar=STORAGE_URL_ENV,
        help="Where results go: a folder, s3://bucket/prefix or gs://bucket/prefix.",
    ),
]
_AttemptsOption = Annotated[
    int, typer.Option(help="Deliveries a task gets before it is dead-lettered; same everywhere.")
]
_HeartbeatOption = Annotated[int, typer.Option(help="AMQP heartbeat interval, seconds.")]
_ReconnectOption = Annotated[
    float, typer.Option(help="Cap of the wait between reconnection attempts, seconds.")
]
_GiveUpOption = Annotated[
    float, typer.Option(help="Fail after this many seconds without a broker connection.")
]


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes to whatever ``sys.stderr`` is now, so log lines go above a rich progress bar."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: int = logging.INFO, *, verbose: bool | None = None) -> None:
    """Log workstack's queue events to stderr, unless the application configured logging.

    pika logs every connection step at INFO (two thirds of a run's output); it is kept at
    WARNING unless ``verbose`` (or ``WORKSTACK_VERBOSE=1``) asks for it.
    """
    if verbose is None:
        verbose = os.environ.get("WORKSTACK_VERBOSE", "") not in ("", "0")
    logging.getLogger("pika").setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:
        level = logging.DEBUG
    root = logging.getLogger()
    if root.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("workstack")
    logger.addHandler(handler)
    logger.setLevel(level)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _need_pika() -> None:
    try:
        import pika  # noqa: F401
    except ModuleNotFoundError:
        _fail("the queue commands need pika: pip install 'workstack[queue]'")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _parse_env(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise QueueError(f"--env: {pair!r} is not allowed; expected NAME=value")
        found[name] = value
    return found


@queue_app.command()
def tasker(
    storage: _StorageOption,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            "-f",
            help="Task file (one task per line, '@stage NAME' lines; see docs/queue.md). "
            "Repeat for several files: their stages run in the order given.",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from", help="'module:callable' returning stages or tasks, instead of --file."
        ),
    ] = None,
    queue: _QueueOption = "workstack",
    broker: _BrokerOption = None,
    workers: Annotated[int, typer.Option(help="Stop messages to send at the end.")] = 1,
    max_attempts: _AttemptsOption = 3,
    window: Annotated[int, typer.Option(help="Published messages awaiting confirms.")] = 1024,
    heartbeat: _HeartbeatOption = 30,
    reconnect_max_delay: _ReconnectOption = 30.0,
    give_up_after: _GiveUpOption = 600.0,
    work_dir: _WorkDirOption = None,
    run_id: _RunOption = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            "-e",
            help="NAME=value added to the environment of every command of the run; repeat "
            "for several.",
        ),
    ] = None,
    no_worker_timeout: Annotated[
        float,
        typer.Option(
            help="Fail when no worker consumes the tasks for this many seconds while tasks "
            "are outstanding; 0: wait forever."
        ),
    ] = 300.0,
    verbose: _VerboseOption = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar; default: on a terminal, log lines otherwise.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Publish tasks stage by stage, wait for their results, then stop the workers.

    Exits 0 when every task is done, 1 when some failed for good (they are in the
    dead-letter queue <queue>.dead with their error).
    """
    _need_pika()
    configure_logging(verbose=verbose or None)
    from workstack.sdk.queue.local import load_stages_from
    from workstack.sdk.queue.tasker import Tasker
    from workstack.sdk.queue.taskfile import load_task_files

    if bool(files) == bool(source):
        _fail("give either --file (one or more task files) or --from module:callable")
    try:
        spec = TaskerSpec(
            queue=queue,
            storage_url=storage,
            broker_url=broker,
            workers=workers,
            max_attempts=max_attempts,
            window=window,
            heartbeat=heartbeat,
            reconnect_max_delay=reconnect_max_delay,
            give_up_after=give_up_after,
            work_dir=work_dir,
            run_id=run_id,
            env=_parse_env(env or []),
            no_worker_timeout=no_worker_timeout or None,
        )
        # The entrypoint (and the commands it may run itself, like makita's part 1) sees the
        # work folder the workers use; only while it runs (this may be a test's process).
        with _environment({WORK_DIR_ENV: spec.work_folder, STORAGE_URL_ENV: storage}):
            stages = load_task_files(files) if files else load_stages_from(str(source))
        report = Tasker(spec).run(stages, progress=progress)
    except BrokerError as error:
        _fail(str(error), EXIT_BROKER)
    except ValueError as error:  # QueueError, StorageError
        _fail(str(error))
    if report.aborted:
        _fail(report.aborted, EXIT_FAILED)
    if not report.ok:
        for task_id, message in sorted(report.errors.items()):
            last = message.strip().splitlines()[-1] if message.strip() else "failed"
            typer.echo(f"failed: {task_id}: {last}", err=True)
        raise typer.Exit(EXIT_FAILED)


@queue_app.command()
def worker(
    storage: _StorageOption,
    queue: _QueueOption = "workstack",
    broker: _BrokerOption = None,
    prefetch: Annotated[int, typer.Option(help="Unacknowledged tasks held at once.")] = 1,
    concurrency: Annotated[
        int, typer.Option(help="Tasks run at once, each in a thread; at most --prefetch.")
    ] = 1,
    max_attempts: _AttemptsOption = 3,
    idle_timeout: Annotated[
        float, typer.Option(help="Exit 0 after this many seconds without a message; 0: never.")
    ] = 900.0,
    grace: Annotated[
        float,
        typer.Option(help="On SIGTERM, seconds the tasks in hand get before being requeued."),
    ] = 20.0,
    heartbeat: _HeartbeatOption = 30,
    reconnect_max_delay: _ReconnectOption = 30.0,
    give_up_after: _GiveUpOption = 600.0,
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="Name in logs and results; default <hostname>-<pid>.", show_default=False
        ),
    ] = None,
    work_dir: _WorkDirOption = None,
    run_id: _RunOption = None,
    verbose: _VerboseOption = False,
) -> None:
    """Run tasks until a stop message or the idle timeout (exit 0), or a signal.

    A failed task is retried until --max-attempts deliveries, then dead-lettered with its
    error. On SIGTERM the worker takes no new task and gives the tasks in hand --grace
    seconds to finish (they are acknowledged); what is still running then is requeued.
    """
    _need_pika()
    configure_logging(verbose=verbose or None)
    from workstack.sdk.queue.worker import Worker

    try:
        spec = WorkerSpec(
            queue=queue,
            storage_url=storage,
            broker_url=broker,
            prefetch=prefetch,
            concurrency=concurrency,
            max_attempts=max_attempts,
            idle_timeout=idle_timeout or None,
            grace=grace,
            heartbeat=heartbeat,
            reconnect_max_delay=reconnect_max_delay,
            give_up_after=give_up_after,
            worker_id=worker_id,
            work_dir=work_dir,
            run_id=run_id,
        )
        code = Worker(spec).run()
    except BrokerError as error:
        _fail(str(error), EXIT_BROKER)
    except ValueError as error:
        _fail(str(error))
    raise typer.Exit(code)
