"""The runtime commands of ``workstack``: what runs inside images and in local mode.

``workstack.main`` adds the deploy-side commands (render, image, env) to this app, so one
``workstack`` command serves both; in an image, which has no ``[deploy]`` extra, only these
runtime commands are usable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workstack.sdk.queue.cli import EXIT_BAD_INPUT, EXIT_BROKER, queue_app

__all__ = ["app"]

app = typer.Typer(
    help="Data-science workloads on Kubernetes from Python, on Pulumi.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(queue_app, name="queue")


@app.command()
def run(
    workload_dir: Annotated[Path, typer.Argument(help="The workload folder (workload.yaml).")],
    local: Annotated[bool, typer.Option("--local", help="Run here, as local processes.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes (queue-workers).")] = 2,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            envvar="WORKSTACK_BROKER_URL",
            help="RabbitMQ URL; default amqp://127.0.0.1:5672.",
            show_default=False,
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Where results go; default out/<workload name>.", show_default=False),
    ] = None,
) -> None:
    """Run a workload with the same entrypoints as on the cluster (only --local here)."""
    if not local:
        typer.echo(
            "error: only `workstack run WORKLOAD_DIR --local` runs here; on a cluster, deploy "
            "the workload with `pulumi up` on a stack",
            err=True,
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    from workstack.sdk.queue.cli import configure_logging
    from workstack.sdk.queue.config import BrokerError
    from workstack.sdk.queue.local import run_local

    configure_logging()
    try:
        code = run_local(workload_dir, broker_url=broker, workers=workers, storage_url=storage)
    except BrokerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BROKER) from None
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    raise typer.Exit(code)
