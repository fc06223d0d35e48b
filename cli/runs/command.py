"""The run commands: data push, pull and ls, submit, runs, status, logs, cancel and launch.

Thin: each reads its options, calls :mod:`workstack.runs` and maps failures to exit statuses
(docs/runs.md lists them).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from workstack.options import BackendOption, ProjectOption, StackOption
from workstack.runs.errors import EXIT_FAILED, EXIT_USAGE, RunsError, UsageError
from workstack.sdk.cli import data_app

if TYPE_CHECKING:
    from workstack.runs.status import LogTail

__all__ = ["EXIT_RUNNING", "EXIT_STUCK", "register"]

EXIT_RUNNING = 0
EXIT_STUCK = 5
T = TypeVar("T")

OutputsOption = Annotated[
    Path | None,
    typer.Option(
        "--outputs",
        help="Read the stack's outputs from this file (`pulumi stack output --json "
        "--show-secrets -s STACK > FILE`) instead of through Pulumi.",
        show_default=False,
    ),
]
KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        help="A kubeconfig to use instead of the stack's (minikube: your own).",
        show_default=False,
    ),
]
ContextOption = Annotated[
    str | None,
    typer.Option(help="The kubeconfig context; default the stack's.", show_default=False),
]
RunArgument = Annotated[str, typer.Argument(help="The run id (`workstack runs` lists them).")]


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _guard(action: Callable[[], T]) -> T:
    """Run ``action``; a failure is printed as one line and exits with its status."""
    from workstack.env import EnvError

    try:
        return action()
    except RunsError as error:
        _fail(str(error), error.exit_code)
    except EnvError as error:
        _fail(str(error), EXIT_USAGE)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _project(project_dir: Path) -> Any:
    from workstack.project import ProjectError, find_project

    try:
        return find_project(project_dir)
    except (FileNotFoundError, ProjectError) as error:
        raise UsageError(str(error)) from None


def _stack(stack: str | None, outputs: Path | None, project_dir: Path, backend: str) -> Any:
    from workstack.runs.stack import load_stack, read_outputs_file, read_outputs_pulumi

    if outputs is not None:
        data = read_outputs_file(outputs)
        return load_stack(data, name=stack or "", source=f"the outputs in {outputs}")
    if stack is None:
        raise UsageError("--stack is not given; name the deployed stack, e.g. --stack minikube")
    if shutil.which("pulumi") is None:
        raise UsageError(
            "the pulumi CLI is not on PATH; pass --outputs FILE, written where the CLI is with "
            f"`pulumi stack output --json --show-secrets -s {stack} > FILE`"
        )
    from workstack.env import AutomationBackend

    reader = AutomationBackend(
        _project(project_dir), backend_url=None if backend == "current" else backend
    )
    return load_stack(
        read_outputs_pulumi(reader, stack), name=stack, source=f"the outputs of stack {stack}"
    )


class _Bar:
    """A rich progress bar in bytes, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
        )
        self._task: Any = None

    def begin(self, label: str, total: int, files: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(f"{label} ({files} files)", total=total)

    def advance(self, count: int) -> None:
        self._progress.advance(self._task, count)

    def end(self) -> None:
        self._progress.stop()


def _progress() -> Any:
    return _Bar() if sys.stderr.isatty() else None


class _Context:
    """What every stack command opens: the stack, its cluster client, its storage."""

    def __init__(
        self,
        stack: str | None,
        outputs: Path | None,
        project_dir: Path,
        backend: str,
        kubeconfig: Path | None,
        context: str | None,
    ) -> None:
        self.stack = _stack(stack, outputs, project_dir, backend)
        self._kubeconfig = kubeconfig
        self._context = context
        self._kube: Any = None
        self.project_dir = project_dir

    @property
    def kube(self) -> Any:
        if self._kube is None:
            self._kube = self.stack.kube(kubeconfig=self._kubeconfig, context=self._context)
        return self._kube

    def needs_cluster(self, storage: str) -> bool:
        contract = self.stack.contract
        return contract.nfs_claim is not None and storage in ("auto", "nfs")

    @contextlib.contextmanager
    def folder(self, storage: str = "auto") -> Iterator[Any]:
        from workstack.runs.data import open_folder

        kube = self.kube if self.needs_cluster(storage) else None
        with open_folder(self.stack.contract, kube, storage=storage) as folder:
            yield folder


StorageOption = Annotated[
    str,
    typer.Option(help="auto (what workloads use: NFS if the stack has it), nfs or bucket."),
]


def _remote_default(local: Path) -> str:
    return local.resolve().name


def data_push(
    local: Annotated[Path, typer.Argument(help="A local folder or file.")],
    remote: Annotated[
        str | None,
        typer.Argument(
            help="Where on the stack's storage, relative to its root (/data, or the bucket), "
            "e.g. csv-clean/inputs; default LOCAL's name.",
            show_default=False,
        ),
    ] = None,
    stack: StackOption = None,
    outputs: OutputsOption = None,
    storage: StorageOption = "auto",
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "current",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Copy LOCAL to the stack's storage, skipping files already there; resumable.

    Files with the same size and checksum are skipped, so running it again resumes an
    interrupted push.
    NFS is reached through a short-lived pod that mounts the claim, a bucket with your own
    credentials. Exits 0, 1 (disk full, an interrupted stream: run it again), 2 (bad input,
    no such stack or storage), 3 (cluster or storage unreachable), 4 (permission denied).
    """

    def run() -> None:
        from workstack.runs.data import relative_to_root

        if not local.exists():
            raise UsageError(f"local path {str(local)!r} does not exist; expected a folder or file")
        ctx = _Context(stack, outputs, project_dir, backend, kubeconfig, context)
        target = relative_to_root(ctx.stack.contract, remote or _remote_default(local))
        with ctx.folder(storage) as folder:
            result = folder.push(local, target, _progress())
            typer.echo(f"{folder.url}/{target}: {result.line()}")

    _guard(run)


def data_pull(
    remote: Annotated[str, typer.Argument(help="A folder on the stack's storage.")],
    local: Annotated[Path, typer.Argument(help="The local folder to copy it into.")],
    stack: StackOption = None,
    outputs: OutputsOption = None,
    storage: StorageOption = "auto",
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "current",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Copy REMOTE from the stack's storage into LOCAL; files already here are skipped.

    Exit statuses as for push; 2 also when nothing is stored at REMOTE.
    """

    def run() -> None:
        from workstack.runs.data import relative_to_root

        ctx = _Context(stack, outputs, project_dir, backend, kubeconfig, context)
        source = relative_to_root(ctx.stack.contract, remote)
        with ctx.folder(storage) as folder:
            result = folder.pull(source, local, _progress())
            typer.echo(f"{local}: {result.line()}")

    _guard(run)


def data_ls(
    remote: Annotated[str, typer.Argument(help="A folder on the stack's storage.")] = "",
    stack: StackOption = None,
    outputs: OutputsOption = None,
    storage: StorageOption = "auto",
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "current",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """List the files under REMOTE on the stack's storage: size and path.

    Exit statuses as for push.
    """

    def run() -> None:
        from workstack.runs.data import relative_to_root

        ctx = _Context(stack, outputs, project_dir, backend, kubeconfig, context)
        source = relative_to_root(ctx.stack.contract, remote)
        with ctx.folder(storage) as folder:
            entries = folder.list(source)
        for entry in entries:
            typer.echo(f"{entry.size:>12}  {entry.path}")
        typer.echo(f"{len(entries)} file(s) under {folder.url}/{source}", err=True)

    _guard(run)


def submit_command(
    workload: Annotated[str, typer.Argument(help="The workload, as the stack names it.")],
    stack: StackOption = None,
    outputs: OutputsOption = None,
    input_url: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="job-per-file, command: inputs on the stack's storage (relative to its root); "
            "default <workload>/inputs.",
            show_default=False,
        ),
    ] = None,
    from_local: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="job-per-file, command: push this local folder to the inputs first; a "
            "job-per-file run then takes exactly its files.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            help="Outputs on the stack's storage; default <workload>/outputs.", show_default=False
        ),
    ] = None,
    glob: Annotated[
        str | None, typer.Option(help="job-per-file: only inputs matching.", show_default=False)
    ] = None,
    suffix: Annotated[
        str | None,
        typer.Option(help="job-per-file: output extension, e.g. .parquet.", show_default=False),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(help="job-per-file: indexes the files are split over.", show_default=False),
    ] = None,
    parallelism: Annotated[
        int | None, typer.Option(help="job-per-file: pods at once.", show_default=False)
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="queue-workers: worker pods.", show_default=False)
    ] = None,
    cpu: Annotated[
        str | None, typer.Option(help="CPU each pod requests, e.g. 500m.", show_default=False)
    ] = None,
    memory: Annotated[
        str | None, typer.Option(help="Memory each pod requests, e.g. 1Gi.", show_default=False)
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="dask: the run config (YAML).", show_default=False)
    ] = None,
    force: Annotated[bool, typer.Option(help="command: run even if outputs exist.")] = False,
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--setting",
            help="A setting of the pattern for this run, KEY=VALUE by field name (repeatable), "
            "e.g. retries_per_index=3.",
            show_default=False,
        ),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            help="The run's id; default a new one (YYMMDD-HHMMSS-xx).", show_default=False
        ),
    ] = None,
    watch: Annotated[bool, typer.Option(help="Follow the run until it ends.")] = False,
    build: Annotated[
        bool, typer.Option(help="Build the image first if the folder changed since the deploy.")
    ] = False,
    use_deployed_image: Annotated[
        bool, typer.Option(help="Run the deployed image even if the folder changed.")
    ] = False,
    local: Annotated[
        bool, typer.Option("--local", help="Run here instead (as `workstack run --local`).")
    ] = False,
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "current",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Start a run of WORKLOAD on a deployed stack and print its id.

    job-per-file: one Indexed Job over the input files listed now (a run is defined by what was
    there when it was submitted); queue-workers: a tasker and a worker Job; dask: a client
    Job running --config against the stack's scheduler; pipeline: an Argo Workflow from its
    template; command: one Job. Options a pattern does not take are refused. Exits 0 (with
    --watch: the run succeeded), 1 (it failed, or the cluster refused), 2 (bad input: unknown
    workload, option, run id or folder; a changed workload without --build), 3 unreachable,
    4 permission denied.
    """
    from workstack.runs.submit import SubmitOptions, follow, submit

    options = SubmitOptions(
        run_id=run_id,
        input=input_url,
        from_local=from_local,
        output=output,
        glob=glob,
        suffix=suffix,
        shards=shards,
        parallelism=parallelism,
        workers=workers,
        cpu=cpu,
        memory=memory,
        config=config,
        force=force,
        settings=tuple(setting or ()),
    )
    if local:
        _submit_local(workload, options, project_dir)
        return

    def run() -> int:
        ctx = _Context(stack, outputs, project_dir, backend, kubeconfig, context)
        try:
            project_root = _project(project_dir).root
        except UsageError:  # outputs from a file, no project here: no folder to compare
            project_root = project_dir.resolve()
        submission = submit(
            ctx.stack.contract,
            ctx.kube,
            workload,
            options,
            folder=ctx.folder,
            project_root=project_root,
            build=build,
            use_deployed_image=use_deployed_image,
            progress=_progress(),
        )
        for note in submission.notes:
            typer.echo(note, err=True)
        count = f", {submission.files} input file(s)" if submission.files is not None else ""
        typer.echo(
            f"submitted run {submission.run_id} of {workload}{count}; outputs: "
            f"{submission.output_url}",
            err=True,
        )
        typer.echo(submission.run_id)
        if not watch:
            return 0
        status = follow(
            ctx.kube, ctx.stack.contract, submission.run_id, on_status=_show, logs=_tail(ctx.kube)
        )
        return 0 if status.state == "succeeded" else EXIT_FAILED

    code = _guard(run)
    if code:
        raise typer.Exit(code)


def _submit_local(workload: str, options: Any, project_dir: Path) -> None:
    from workstack.sdk.cli import run as run_local

    allowed = {"input", "output", "glob", "suffix", "config", "force"}
    for attribute in (
        "from_local",
        "shards",
        "parallelism",
        "workers",
        "cpu",
        "memory",
        "settings",
        "run_id",
    ):
        if getattr(options, attribute) not in (None, False, ()):
            _fail(
                f"option --{attribute.replace('_', '-')} is not allowed with --local; it takes "
                + ", ".join(f"--{a}" for a in sorted(allowed))
            )
    try:
        project = _project(project_dir)
    except UsageError as error:
        _fail(str(error))
    folder = project.root / "workloads" / workload
    if not (folder / "workload.yaml").is_file():
        known = sorted(p.parent.name for p in (project.root / "workloads").glob("*/workload.yaml"))
        _fail(f"workload {workload!r} is not allowed; workloads/ has: {', '.join(known) or 'none'}")
    run_local(
        workload_dir=folder,
        local=True,
        out=Path(options.output) if options.output else None,
        input_url=options.input,
        config=options.config,
        force=options.force,
        glob=options.glob,
        suffix=options.suffix,
    )


def _tail(kube: Any) -> LogTail:
    def tail(pod: str, container: str | None, previous: bool) -> list[str]:
        try:
            return list(kube.logs(pod, container=container, tail_lines=20, previous=previous))
        except RunsError:
            return []

    return tail


def _show(status: Any) -> None:
    typer.echo(f"run {status.run_id} ({status.workload}, {status.pattern}): {status.state}")
    for line in status.progress:
        typer.echo(f"  {line}")
    for problem in status.problems:
        for line in problem.lines():
            typer.echo(f"  {line}")


def runs_command(
    stack: StackOption = None,
    outputs: OutputsOption = None,
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "current",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """List the stack's runs (by their workstack.dev/run label): id, workload, pattern, state.

    Exits 0, 2 (bad input), 3 (unreachable), 4 (permission denied).
    """
    from workstack.runs.status import list_runs

    def run() -> None:
        ctx = _Context(stack, outputs, project_dir, backend, kubeconfig, context)
        rows = list_runs(ctx.kube)
        typer.echo(f"{'RUN':<20} {'WORKLOAD':<20} {'PATTERN':<14} {'STATE':<10} CREATED")
        for row in rows:
            typer.echo(
                f"{row['run']:<20} {row['workload']:<20} {row['pattern']:<14} "
                f"{row['state']:<10} {row['created']}"
            )
        if not rows:
            typer.echo(f"no runs in namespace {ctx.kube.namespace}", err=True)

    _guard(run)


def status_command(
    run_id: RunArgument,
    stack: StackOption = None,
    outputs: OutputsOption = None,
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "current",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Show RUN's progress in its pattern's terms and, when it is stuck, why and what to change.

    Exits 0 when it succeeded or runs without a problem, 1 when it failed, 5 when it is
    stuck (the problems say why), 2 for an unknown run, 3 unreachable, 4 permission denied.
    """
    from workstack.runs.status import collect, summarize

    def run() -> int:
        ctx = _Context(stack, outputs, project_dir, backend, kubeconfig, context)
        objects = collect(ctx.kube, run_id)
        if objects.empty:
            raise UsageError(
                f"run {run_id!r} has no objects in namespace {ctx.kube.namespace}: never "
                "submitted, cancelled, or past its TTL; `workstack runs` lists the runs there"
            )
        status = summarize(objects, ctx.stack.contract, logs=_tail(ctx.kube))
        _show(status)
        if status.state == "failed":
            return EXIT_FAILED
        return EXIT_STUCK if status.stuck else 0

    code = _guard(run)
    if code:
        raise typer.Exit(code)


def logs_command(
    run_id: RunArgument,
    stack: StackOption = None,
    outputs: OutputsOption = None,
    follow_logs: Annotated[bool, typer.Option("--follow", "-f", help="Keep reading.")] = False,
    index: Annotated[
        int | None, typer.Option(help="job-per-file: only this index's pods.", show_default=False)
    ] = None,
    worker: Annotated[
        int | None,
        typer.Option(help="queue-workers: only the Nth worker (from 0).", show_default=False),
    ] = None,
    tail: Annotated[
        int | None, typer.Option(help="Only the last N lines of each pod.", show_default=False)
    ] = None,
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "current",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Print RUN's logs (finished pods' too, until the Job's TTL removes them).

    For a queue run, says where failed tasks left their errors on the storage. Exits 0, 2 (no
    such run, index or worker), 3 unreachable, 4 permission denied.
    """
    from workstack.runs.data import storage_root
    from workstack.runs.manage import log_lines, queue_errors_hint, select_pods

    if index is not None and worker is not None:
        _fail("--index and --worker are not allowed together; give one")

    def run() -> None:
        ctx = _Context(stack, outputs, project_dir, backend, kubeconfig, context)
        pods = select_pods(ctx.kube, run_id, index=index, worker=worker)
        for line in log_lines(ctx.kube, pods, follow=follow_logs, tail=tail):
            typer.echo(line)
        hint = queue_errors_hint(ctx.kube, run_id, ctx.stack.name, storage_root(ctx.stack.contract))
        if hint:
            typer.echo(hint, err=True)

    _guard(run)


def cancel_command(
    run_id: RunArgument,
    stack: StackOption = None,
    outputs: OutputsOption = None,
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "current",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Stop RUN: delete its Jobs, Workflow and ConfigMaps (pods first); outputs stay.

    Exits 0, 2 (no such run), 3 unreachable, 4 permission denied.
    """
    from workstack.runs.manage import cancel_run

    def run() -> None:
        ctx = _Context(stack, outputs, project_dir, backend, kubeconfig, context)
        count = cancel_run(ctx.kube, run_id, on_deleted=lambda name: typer.echo(f"deleted {name}"))
        typer.echo(f"run {run_id} cancelled ({count} object(s)); finished outputs are kept")

    _guard(run)


def launch_command(
    workload: Annotated[str, typer.Argument(help="The workload, as the template stack names it.")],
    from_stack: Annotated[
        str, typer.Option("--from-stack", help="Template stack: minikube, gke or eks.")
    ],
    from_local: Annotated[Path, typer.Option("--from", help="The local inputs.")],
    pull: Annotated[Path, typer.Option("--pull", help="Where the outputs are pulled.")],
    down: Annotated[
        bool, typer.Option(help="Destroy the preview at the end, whether the run succeeded or not.")
    ] = False,
    branch: Annotated[
        str | None,
        typer.Option(
            help="Names the preview; default launch/<workload>/<time>.", show_default=False
        ),
    ] = None,
    ttl: Annotated[str, typer.Option(help="Expiry if nothing destroys it (env gc).")] = "6h",
    build: Annotated[bool, typer.Option(help="Build the image if the folder changed.")] = False,
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "local",
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """From a folder to results on a preview stack, with nothing left running (--down).

    Creates a preview of --from-stack, pushes --from, submits, follows, pulls to --pull.
    Exits 0 when the run succeeded and its outputs are pulled, 1 when it failed (outputs that
    exist are pulled), 2 bad input, 3 unreachable, 4 permission denied.
    """
    from workstack.env import AutomationBackend, default_owner, utc_now
    from workstack.offline import ProgramError, run_program
    from workstack.project import StackSettings
    from workstack.runs.data import open_folder
    from workstack.runs.launch import launch
    from workstack.teardown import blockers

    if not from_local.exists():
        _fail(f"--from {str(from_local)!r}: no such folder or file")

    def run() -> int:
        project = _project(project_dir)
        now = utc_now()
        name = branch or f"launch/{workload}/{now:%Y%m%d-%H%M%S}"

        def check(stack: str, config: dict[str, str]) -> list[str]:
            try:
                return blockers(run_program(project, stack, StackSettings(config)))
            except ProgramError as failure:
                raise UsageError(str(failure.error)) from None

        result = launch(
            AutomationBackend(project, backend_url=None if backend == "current" else backend),
            project,
            workload,
            template=from_stack,
            branch=name,
            owner=default_owner(),
            now=now,
            from_local=from_local,
            pull_to=pull,
            down=down,
            connect=lambda stack: stack.kube(kubeconfig=kubeconfig, context=context),
            folder=lambda stack, kube: open_folder(stack.contract, kube),
            ttl=ttl,
            output=lambda line: typer.echo(line, nl=False, err=True),
            on_status=_show,
            check=check,
            progress=_progress(),
            build=build,
        )
        if result.pulled is not None:
            typer.echo(f"outputs in {pull}: {result.pulled.line()}")
        if result.destroyed:
            typer.echo(f"preview {result.preview.stack if result.preview else ''} destroyed")
        return 0 if result.ok else EXIT_FAILED

    code = _guard(run)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the run commands to the root command ``app`` (and push, pull, ls to ``data``)."""
    data_app.command("push")(data_push)
    data_app.command("pull")(data_pull)
    data_app.command("ls")(data_ls)
    app.command("submit")(submit_command)
    app.command("runs")(runs_command)
    app.command("status")(status_command)
    app.command("logs")(logs_command)
    app.command("cancel")(cancel_command)
    app.command("launch")(launch_command)
