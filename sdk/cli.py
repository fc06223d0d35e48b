"""The runtime commands of ``workstack``: what runs inside images and in local mode.

:func:`register` adds them to the root command, which ``workstack.main`` owns with the
deploy-side commands (render, image, env, runs); in an image, which has no ``[deploy]`` extra,
only these runtime commands are usable.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from workstack.sdk.pipeline import Pipeline

from workstack.sdk.queue.cli import EXIT_BROKER, queue_app

__all__ = ["EXIT_USAGE", "data_app", "fail", "register"]

EXIT_USAGE = 2

files_app = typer.Typer(
    help="Job-per-file: run a workload's function over every input file, once.",
    no_args_is_help=True,
)


def fail(message: str) -> NoReturn:
    """Print ``message`` to stderr and exit with the bad-input (usage) status."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


_OPTIONS = {"broker_url": "--broker", "input_url": "--input"}


def _as_option(message: str) -> str:
    """A runtime's message about a field, naming the command-line option the user gave."""
    field, colon, rest = message.partition(": ")
    if colon and field in _OPTIONS:
        return f"{_OPTIONS[field]}: {rest}"
    return message


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)


InputOption = Annotated[str, typer.Option("--input", help="Input folder or s3:// / gs:// URL.")]
OutputOption = Annotated[str, typer.Option("--output", help="Output folder or URL.")]
FunctionOption = Annotated[
    str | None, typer.Option(help="The workload's module:function(input, output).")
]
CommandOption = Annotated[
    str | None,
    typer.Option(
        help="Instead of a function, the workload's command line, run with /bin/sh in the "
        "current folder for each file: {input} is the input file, and either {output} the one "
        "file to write or {output_dir} an empty folder for a script that names its own "
        "outputs (published as a folder named after the input). Exit status 65 means bad "
        "input.",
    ),
]
GlobOption = Annotated[str | None, typer.Option("--glob", help="Only inputs matching, e.g. *.csv.")]
SuffixOption = Annotated[
    str | None, typer.Option(help="Output extension replacing the input's, e.g. .parquet.")
]


@files_app.command("run")
def files_run(
    input_url: InputOption,
    output_url: OutputOption,
    shards: Annotated[int, typer.Option(help="Number of indexes the inputs are split over.")],
    function: FunctionOption = None,
    command: CommandOption = None,
    index: Annotated[
        int | None, typer.Option(help="This shard; default: $JOB_COMPLETION_INDEX.")
    ] = None,
    manifest: Annotated[
        str | None, typer.Option(help="Frozen list of input keys, instead of a listing.")
    ] = None,
    glob: GlobOption = None,
    suffix: SuffixOption = None,
) -> None:
    """Process one index's share of the inputs: what each pod of the Indexed Job runs.

    Each file goes through --function (called as function(input, output) with two paths) or
    --command. One file's failure, a sys.exit() included, never stops the others; a summary
    ends the run. Exits 0 when every file is done or was already done, 65 when an input is
    malformed (the index fails without retries), 1 on any other failure (the index is
    retried and redoes only what is missing), 2 for bad arguments.
    """
    from workstack.sdk.callables import CallableError
    from workstack.sdk.files import FileJob, JobError, completion_index, run_index
    from workstack.sdk.storage import StorageError

    _logging()
    try:
        job = FileJob(
            input_url=input_url,
            output_url=output_url,
            function=function,
            command=command,
            pattern=glob,
            suffix=suffix,
            manifest_url=manifest,
        )
        summary = run_index(
            job, index=completion_index() if index is None else index, shards=shards
        )
    except (JobError, StorageError, CallableError) as error:
        fail(str(error))
    raise typer.Exit(summary.exit_code)


@files_app.command("manifest")
def files_manifest(
    input_url: InputOption,
    output_url: OutputOption,
    to: Annotated[str, typer.Option("--to", help="Where to write the manifest (a file URL).")],
    glob: GlobOption = None,
) -> None:
    """Freeze the current input listing, so every index works from the same list."""
    from workstack.sdk.files import FileJob, JobError, write_manifest
    from workstack.sdk.storage import StorageError

    try:
        # The manifest lists inputs; the output location is checked now so a bad one fails early.
        job = FileJob(
            input_url=input_url,
            output_url=output_url,
            command="true {input} {output}",
            pattern=glob,
        )
        count = write_manifest(job, to)
    except (JobError, StorageError) as error:
        fail(str(error))
    typer.echo(f"{count} inputs written to {to}")


dask_app = typer.Typer(help="Dask: run a function on a cluster and save its DataFrame.")


@dask_app.command("run")
def dask_run(
    config: Annotated[str, typer.Argument(help="Run config (YAML or JSON) in the seed's shape.")],
    address: Annotated[
        str | None,
        typer.Option(help="Scheduler address; default: the config's, or a local cluster."),
    ] = None,
    output: Annotated[str | None, typer.Option(help="Override output.path.")] = None,
) -> None:
    """Run the config's function on a Dask cluster and write the DataFrame it returns.

    The config, the function, its arguments and the output location are checked before any
    cluster starts (exit 2). Exits 1 if the function failed, 74 if writing the result failed:
    the DataFrame is then kept in a local file (under $WORKSTACK_NFS_PATH/workstack-rescued/
    in a pod with NFS, else the current folder, else /tmp) and the message says where. This
    is what a stack's client Job runs, with --address set to the stack's scheduler.
    """
    import dataclasses
    from pathlib import Path

    import yaml

    from workstack.sdk.callables import CallableError
    from workstack.sdk.dask import (
        EXIT_OUTPUT_KEPT,
        DaskConfigError,
        OutputError,
        parse_config,
        run_function,
    )
    from workstack.sdk.storage import StorageError

    _logging()
    path = Path(config)
    if not path.is_file():
        fail(f"config {config!r} does not exist; expected a YAML or JSON file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        fail(f"config {config!r} is not valid YAML or JSON: {error}")
    try:
        parsed = parse_config(raw)
        frame = run_function(
            dataclasses.replace(
                parsed, address=address or parsed.address, output=output or parsed.output
            )
        )
    except (DaskConfigError, CallableError, StorageError) as error:
        fail(str(error))
    except OutputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_OUTPUT_KEPT) from None
    where = output or parsed.output
    typer.echo(f"{len(frame)} rows" + (f" written to {where}" if where else ""))


pipeline_app = typer.Typer(help="Pipelines: a DAG of workload steps, locally or on Argo.")
EntrypointOption = Annotated[
    str,
    typer.Option(
        help="The workload's module:builder returning its Pipeline, or a Ploomber pipeline.yaml "
        "(relative to a folder on PYTHONPATH, else to the current folder)."
    ),
]


def _pipeline(entrypoint: str) -> Pipeline:
    from workstack.sdk.callables import CallableError
    from workstack.sdk.pipeline import PipelineError, load_pipeline

    try:
        return load_pipeline(entrypoint)
    except (CallableError, PipelineError) as error:
        fail(str(error))


@pipeline_app.command("step")
def pipeline_step(
    entrypoint: EntrypointOption,
    step: Annotated[str, typer.Option(help="The step to run.")],
    data: Annotated[str, typer.Option(help="Data root: a folder, NFS path or bucket URL.")],
) -> None:
    """Run one step against the data root: what each Argo pod runs.

    Exits 0 when the step succeeded (its outputs published), 1 when it failed (nothing
    published; Argo retries it as declared), 2 for bad arguments or a missing input.
    """
    from workstack.sdk.pipeline import PipelineError, StepError, run_step
    from workstack.sdk.storage import StorageError, open_storage

    _logging()
    pipeline = _pipeline(entrypoint)
    try:
        run_step(pipeline, step, open_storage(data))
    except (PipelineError, StorageError, FileNotFoundError) as error:
        fail(str(error))
    except StepError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"step {step} done")


@pipeline_app.command("run")
def pipeline_run(
    entrypoint: EntrypointOption,
    data: Annotated[str, typer.Option(help="Local folder the steps' paths are relative to.")],
    force: Annotated[bool, typer.Option(help="Run every step, even if up to date.")] = False,
) -> None:
    """Run the pipeline locally in dependency order, skipping steps that are up to date."""
    from pathlib import Path

    from workstack.sdk.pipeline import StepError, run_local

    _logging()
    pipeline = _pipeline(entrypoint)

    def report(name: str, ran: bool) -> None:
        typer.echo(f"{'ran' if ran else 'up to date'}: {name}")

    try:
        result = run_local(pipeline, Path(data), force=force, on_step=report)
    except StepError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(result.ran)} ran, {len(result.skipped)} up to date")


command_app = typer.Typer(
    help="Command workloads: one command line, run once, its output folder published whole.",
    no_args_is_help=True,
)


@command_app.command("run")
def command_run(
    command: Annotated[
        str,
        typer.Option(
            help="The command line, run with /bin/sh in the current folder: {inputs} is the "
            "input folder, {outputs} an empty folder published to --outputs when it exits 0 "
            "(also as $WORKSTACK_INPUTS and $WORKSTACK_OUTPUTS)."
        ),
    ],
    outputs: Annotated[
        str, typer.Option(help="Where the output folder is published: a path or URL.")
    ],
    inputs: Annotated[
        str | None,
        typer.Option(help="Input folder or URL; a bucket prefix is downloaded first."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Run again even if --outputs holds an earlier run's outputs.")
    ] = False,
) -> None:
    """Run a command workload's command once: what its Job's pod runs.

    The outputs appear all at once when the command exits 0, and are skipped (exit 0) when an
    earlier run's are already there, unless --force. Exits with the command's own status
    otherwise (65: bad input; no outputs are published), 2 for bad arguments.
    """
    from workstack.sdk.commands import CommandError, OnceRun, run_once
    from workstack.sdk.storage import StorageError

    try:
        run = OnceRun(command=command, outputs_url=outputs, inputs_url=inputs, force=force)
        result = run_once(run)
    except (CommandError, StorageError) as error:
        fail(str(error))
    typer.echo(f"{result.status}: {result.message}", err=result.exit_code != 0)
    raise typer.Exit(result.exit_code)


def pod(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="Passed to the pattern's command after the workload's entrypoint or command, "
            "e.g. --shards 4 (job-per-file), worker (queue-workers), run.yaml (dask), --step "
            "fit --data /data/x (pipeline), --inputs ... --outputs ... (command).",
            metavar="ARGS",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run this image's workload with ARGS: the images' entrypoint (see workstack.sdk.pod).

    It reads $WORKSTACK_WORKLOAD (/app/workload.yaml) and replaces itself with the command of
    the workload's pattern: files run, queue, dask run, pipeline step or command run.
    """
    from workstack.sdk.pod import run
    from workstack.sdk.workload import WorkloadError

    try:
        run(args or [])
    except WorkloadError as error:
        fail(str(error))


data_app = typer.Typer(
    help="Data: files in and out of a stack's storage (push, pull, ls), and the in-pod side of "
    "those transfers (manifest, receive, send, hold).",
    no_args_is_help=True,
)
RootArgument = Annotated[Path, typer.Argument(help="The folder on the storage, e.g. /data/x.")]


def _data_exit(error: Exception) -> NoReturn:
    from workstack.sdk.datasync import DataError

    code = error.exit_code if isinstance(error, DataError) else 74
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(code)


@data_app.command("manifest", hidden=True)
def data_manifest(
    root: RootArgument,
    prefix: Annotated[str, typer.Option(help="Only files under this relative folder.")] = "",
) -> None:
    """Print one JSON line per file under ROOT: path, size and sha256 (in-pod side of ls).

    Exits 0, 2 for a bad prefix, 73 when a file cannot be read (permission denied), 74 on
    another I/O error.
    """
    from workstack.sdk.datasync import DataError, scan

    try:
        for entry in scan(root, prefix):
            sys.stdout.write(entry.to_json() + "\n")
    except DataError as error:
        _data_exit(error)


@data_app.command("receive", hidden=True)
def data_receive(
    root: RootArgument,
    files: Annotated[
        int | None, typer.Option(min=0, help="Files the sender sends; fewer is an interruption.")
    ] = None,
) -> None:
    """Read a tar stream on stdin and write its files atomically under ROOT (push's pod side).

    Prints a JSON summary. Exits 0, 2 for a path that leaves ROOT, 65 when the stream ended
    early (files received so far are complete), 73 permission denied, 74 disk full.
    """
    from workstack.sdk.datasync import DataError, receive

    try:
        summary = receive(root, sys.stdin.buffer, count=files)
    except DataError as error:
        _data_exit(error)
    sys.stdout.write(summary.to_json() + "\n")


@data_app.command("send", hidden=True)
def data_send(root: RootArgument) -> None:
    """Read a JSON list of paths on stdin's first line; write them from ROOT as tar on stdout.

    The pod side of pull. Exits 0, 2 for a bad path, 73 permission denied, 74 an I/O error
    (a file listed but gone included).
    """
    from workstack.sdk.datasync import DataError, FileEntry, read_request, write_tar

    try:
        paths = read_request(sys.stdin.buffer.readline())
        write_tar(root, [FileEntry(path, 0) for path in paths], sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except DataError as error:
        _data_exit(error)


@data_app.command("hold", hidden=True)
def data_hold(
    seconds: Annotated[int, typer.Option(min=1, help="How long to keep the pod up.")] = 3600,
) -> None:
    """Sleep, so a transfer pod stays up for the transfers exec'd into it, then exit 0."""
    import time

    time.sleep(seconds)


def run(
    workload_dir: Annotated[Path, typer.Argument(help="The workload folder (workload.yaml).")],
    local: Annotated[bool, typer.Option("--local", help="Run here, as local processes.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Where outputs go; default out/<workload name>.", show_default=False),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Processes: file pool, Dask workers or queue workers.")
    ] = 2,
    input_url: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="job-per-file and command: input folder or URL; default the workload's data/.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="dask: a run config (its dask_cluster sets the workers); default the "
            "entrypoint with its default arguments on --workers workers.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="pipeline: run steps that are up to date; command: run again, replacing the "
            "outputs of an earlier run."
        ),
    ] = False,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            envvar="WORKSTACK_BROKER_URL",
            help="queue-workers: RabbitMQ URL; default a RabbitMQ on 127.0.0.1:5672, else a "
            "private node started for the run.",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar; default: on a terminal.",
            show_default=False,
        ),
    ] = None,
    glob: Annotated[
        str | None,
        typer.Option(help="job-per-file: only inputs matching, e.g. '*.csv'.", show_default=False),
    ] = None,
    suffix: Annotated[
        str | None,
        typer.Option(
            help="job-per-file: output extension replacing the input's, e.g. .parquet.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a workload here with the entrypoints its pods use, in its pattern's local mode.

    job-per-file: every input through the function or command, skipping finished outputs;
    queue-workers: the tasker and --workers worker processes on RabbitMQ; dask: a local
    cluster; pipeline: the steps in order, skipping those up to date; command: the command
    once. Commands run in the workload's folder with this Python first on PATH. Exits 0 on
    success, 2 on bad input, 3 when the broker is unreachable, else the pattern's failure
    status (65: a malformed input).
    """
    if not local:
        fail(
            "only `workstack run WORKLOAD_DIR --local` runs here; on a cluster, deploy the "
            "workload with `pulumi up` on a stack"
        )
    from workstack.sdk.local import LocalRun, default_out, run_workload
    from workstack.sdk.queue.cli import configure_logging
    from workstack.sdk.queue.config import BrokerError
    from workstack.sdk.queue.localbroker import BrokerUnavailableError
    from workstack.sdk.workload import load_workload

    _logging()
    configure_logging()
    logging.getLogger("distributed").setLevel(logging.WARNING)  # a local cluster's chatter
    try:
        workload = load_workload(workload_dir)
        result = run_workload(
            workload,
            LocalRun(
                out=(out or default_out(workload)).resolve(),
                workers=workers,
                input_url=input_url,
                config=config,
                force=force,
                broker_url=broker,
                progress=progress,
                glob=glob,
                suffix=suffix,
            ),
        )
    except (BrokerError, BrokerUnavailableError) as error:
        # No --broker and nothing on 127.0.0.1:5672: a private node was to be started.
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BROKER) from None
    except ValueError as error:
        fail(_as_option(str(error)))
    typer.echo(f"{workload.spec.name}: {result.summary}; output: {result.output}")
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add the runtime commands, the ones workload images run, to the root command ``app``.

    The root command is :mod:`workstack.main`'s; the runtime adds its groups and its two
    top-level commands (``pod``, the images' entrypoint, and ``run``) to it.
    """
    app.add_typer(files_app, name="files")
    app.add_typer(dask_app, name="dask")
    app.add_typer(pipeline_app, name="pipeline")
    app.add_typer(command_app, name="command")
    app.add_typer(queue_app, name="queue")
    app.add_typer(data_app, name="data")
    app.command("pod", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        pod
    )
    app.command()(run)
