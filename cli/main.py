"""The ``workstack`` command: the root app, owned here.

It holds the deploy-side commands defined here and in :mod:`workstack.images.command` and
:mod:`workstack.runs.command`, and the runtime commands :mod:`workstack.sdk.cli` registers.
Deploy-side commands import Pulumi only when they run, so the same command works in workload
images, which install workstack without the ``[deploy]`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

import workstack
from workstack.images.command import image_app
from workstack.options import BackendOption, ProjectOption, StackOption
from workstack.runs.command import register as register_run_commands
from workstack.sdk.cli import fail
from workstack.sdk.cli import register as register_runtime_commands

if TYPE_CHECKING:
    from workstack.env import AutomationBackend
    from workstack.project import PulumiProject

__all__ = ["app", "main"]


def _require_deploy_extra() -> None:
    try:
        import pulumi  # noqa: F401
    except ModuleNotFoundError:
        fail("this command needs the deploy tools: pip install 'workstack[deploy]'")


app = typer.Typer(
    help="Data-science workloads on Kubernetes from Python, on Pulumi.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown reflows docstring paragraphs (rich mode keeps their line breaks) and leaves
    # square brackets alone (rich mode swallows "[secret]" as markup).
    rich_markup_mode="markdown",
)
# What images run: files, dask, pipeline, command, queue, data (in-pod side), pod, run.
register_runtime_commands(app)
# Deploy-side but Pulumi-free: builds need only the core install and docker.
app.add_typer(image_app, name="image")
# Runs on a deployed stack: data, submit, runs, status, logs, cancel, launch (docs/runs.md).
register_run_commands(app)


@app.command()
def version() -> None:
    """Print the workstack version."""
    typer.echo(workstack.__version__)


@app.command()
def render(
    stack: StackOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Write one YAML file per object into this folder.")
    ] = None,
    project_dir: ProjectOption = Path(),
    validate: Annotated[
        bool, typer.Option(help="Check every object against the Kubernetes schemas and CRDs.")
    ] = False,
    crds: Annotated[
        list[Path] | None,
        typer.Option(
            "--crds",
            help="A folder of CustomResourceDefinition YAML files to check custom resources "
            "against (repeatable), e.g. the CRDs of the charts the stack installs.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print every Kubernetes object a stack would create, offline.

    The stack program runs under Pulumi's mock runtime: no Pulumi CLI, cloud account or
    cluster is needed. Objects are printed as multi-document YAML, followed (as YAML
    comments) by the cloud resources, Helm charts and stack outputs. Secrets show as
    [secret].

    With --validate, built-in kinds are checked against the Kubernetes schemas, custom
    resources against the CRDs found (--crds, the folders in $WORKSTACK_CRD_DIRS, the
    dask-kubernetes package), Argo objects without a CRD against hera's Argo models; what is
    left is listed as not checked, with how to check it.
    """
    _require_deploy_extra()
    for folder in crds or []:
        if not folder.is_dir():
            fail(f"--crds {folder}: no such folder; expected a folder of CRD YAML files")
    import pulumi

    from workstack.offline import ProgramError, run_program
    from workstack.project import (
        ConfigError,
        ProjectError,
        StackConfigError,
        YamlFileError,
        find_project,
    )
    from workstack.render import (
        duplicate_names,
        rendered_objects,
        summary_lines,
        to_yaml,
        write_objects,
    )

    try:
        project = find_project(project_dir)
        if stack is None:
            fail(f"--stack is not given; name one of {', '.join(project.stacks())}")
        # The Pulumi CLI's own config checks come first: `pulumi up` stops there too.
        deployment = run_program(project, stack)
    except (FileNotFoundError, ConfigError, ProjectError, StackConfigError, YamlFileError) as error:
        fail(str(error))
    except ProgramError as failure:
        # Bad input (config, arguments) is reported as a message; anything else is a bug
        # and keeps its traceback.
        if not isinstance(failure.error, ValueError | pulumi.RunError):
            raise
        fail(str(failure.error))

    if out is not None and out.exists() and not out.is_dir():
        fail(f"--out: {str(out)!r} is not allowed; expected a folder (it is a file)")
    objects = rendered_objects(deployment)
    # Objects that overwrite each other fail on the cluster; --validate reports them with
    # the schema errors, and without it they are reported here.
    duplicates = duplicate_names(objects)
    for message in [] if validate else duplicates:
        typer.echo(f"# INVALID {message}", err=True)
    if out is None:
        typer.echo(to_yaml(objects), nl=False)
    else:
        for path in write_objects(objects, out):
            typer.echo(f"# wrote {path}")
    for line in summary_lines(deployment):
        typer.echo(f"# {line}")

    if validate:
        from workstack.proof import StackContext, check_deployment
        from workstack.schemas import CrdCatalog, default_crd_dirs, validate_objects

        catalog = CrdCatalog([*default_crd_dirs(), *(crds or [])])
        check = validate_objects(objects, catalog)
        for message in check.errors:
            typer.echo(f"# INVALID {message}", err=True)
        for label in check.by_models:
            typer.echo(f"# checked against hera's Argo models (no CRD found): {label}", err=True)
        for label in check.unchecked:
            typer.echo(f"# NOT CHECKED (no CRD found): {label}", err=True)
        typer.echo(
            f"# schema check: {check.checked} objects, {len(check.errors)} errors, "
            f"{len(check.unchecked)} not checked",
            err=True,
        )
        if check.unchecked:
            typer.echo(
                "# to check those: --crds DIR with the CRDs of the charts that define them, or "
                f"on your cluster: workstack render --stack {stack} --out DIR && kubectl apply "
                "--dry-run=server -R -f DIR",
                err=True,
            )
        # What the engine, the charts and the clouds would refuse (docs/deploying.md).
        context = StackContext.of(stack, deployment, project.read_stack(stack).values)
        findings = check_deployment(deployment, context)
        errors = [f for f in findings if f.severity == "error"]
        for finding in findings:
            mark = "INVALID" if finding.severity == "error" else "WARNING"
            typer.echo(f"# {mark} {finding}", err=True)
        typer.echo(
            f"# offline proof: {len(errors)} errors, {len(findings) - len(errors)} warnings",
            err=True,
        )
        if check.errors or errors:
            raise typer.Exit(1)
    if duplicates:
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Outputs go to OUT/<workload name>.")] = Path("out"),
    workers: Annotated[int, typer.Option(help="Processes per workload.")] = 2,
    broker: Annotated[
        str | None,
        typer.Option(
            envvar="WORKSTACK_BROKER_URL",
            help="RabbitMQ for the queue example; default one on 127.0.0.1:5672, else a "
            "private node started for the demo.",
            show_default=False,
        ),
    ] = None,
    stack: Annotated[str, typer.Option(help="Stack rendered offline at the end.")] = "minikube",
    project_dir: ProjectOption = Path(),
    everything: Annotated[
        bool,
        typer.Option(
            "--all", help="Run your own workloads under workloads/ too, not only the examples."
        ),
    ] = False,
) -> None:
    """Run the example workloads locally, then render a stack offline: no cloud, no cluster.

    Each example under workloads/ runs with `workstack run --local` (the entrypoints its pods
    use); other folders there (your own workloads) are listed and left alone unless --all.
    Then the stack's program runs under Pulumi's mocks and every object it would create is
    checked against the Kubernetes schemas and CRDs. Exits 1 if anything that ran failed;
    each failure says why.
    """
    import logging

    from rich.console import Console
    from rich.markup import escape

    from workstack.demo import DemoStep, local_broker, render_check, run_examples
    from workstack.project import find_project

    logging.getLogger("distributed").setLevel(logging.WARNING)
    console = Console()
    try:
        project = find_project(project_dir)
    except FileNotFoundError as error:
        fail(str(error))

    def report(step: DemoStep) -> None:
        if step.skipped:
            console.print(f"[yellow]skipped[/] {step.name}: {escape(step.summary)}", soft_wrap=True)
            return
        mark = "[green]ok[/]" if step.ok else "[red]FAILED[/]"
        console.print(
            f"{mark} {step.name} ({step.pattern}, {step.seconds:.1f} s): {escape(step.summary)}",
            soft_wrap=True,
        )
        if step.output:
            console.print(f"   output: {step.output}", soft_wrap=True)

    console.print(f"[bold]Running the example workloads locally[/] (outputs in {out}/)")
    steps = run_examples(
        project.root / "workloads",
        out.resolve(),
        workers=workers,
        broker_url=lambda: local_broker(broker, console.print),
        on_step=report,
        everything=everything,
    )

    ok = all(step.ok for step in steps)
    if _deploy_extra_installed():
        console.print(f"[bold]Rendering stack {stack!r} offline[/] (Pulumi mocks, no cluster)")
        check = render_check(project, stack)
        kinds = ", ".join(f"{count} {kind}" for kind, count in check.kinds.items())
        console.print(f"{check.objects} Kubernetes objects: {kinds}")
        for message in check.errors:
            console.print(f"[red]INVALID[/] {message}", soft_wrap=True)
        console.print(
            f"schema check: {len(check.errors)} errors, {len(check.unchecked)} objects not "
            "checked" + (f" (no CRD here: {', '.join(check.unchecked)})" if check.unchecked else "")
        )
        for finding in check.proof:
            mark = "[red]INVALID[/]" if finding.severity == "error" else "[yellow]WARNING[/]"
            console.print(f"{mark} {finding}", soft_wrap=True, markup=True)
        console.print(f"offline proof: {len(check.proof_errors)} errors")
        console.print(f"see them all: workstack render --stack {stack} --validate")
        if check.unchecked:
            console.print(
                "check those with --crds DIR (the charts' CRDs) or `kubectl apply "
                "--dry-run=server` on your cluster"
            )
        ok = ok and not check.errors and not check.proof_errors
    if not ok:
        raise typer.Exit(1)


def _deploy_extra_installed() -> bool:
    try:
        import pulumi  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def main() -> None:
    """Console entry point."""
    app()


env_app = typer.Typer(
    help="Preview environments: a copy of a stack per branch, destroyed when done or expired.",
    no_args_is_help=True,
)
app.add_typer(env_app, name="env")


def _env_backend(project_dir: Path, backend: str) -> tuple[PulumiProject, AutomationBackend]:
    _require_deploy_extra()
    from workstack.env import AutomationBackend, EnvError
    from workstack.project import find_project

    try:
        project = find_project(project_dir)
        return project, AutomationBackend(
            project, backend_url=None if backend == "current" else backend
        )
    except (FileNotFoundError, EnvError) as error:
        fail(str(error))


@env_app.command("up")
def env_up(
    branch: Annotated[str, typer.Option(help="Branch (or pull request) the preview is for.")],
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 24h, 90m, 7d.")] = "24h",
    from_stack: Annotated[
        str, typer.Option("--from-stack", help="Template stack: minikube, gke or eks.")
    ] = "minikube",
    owner: Annotated[str | None, typer.Option(help="Default: $GITHUB_ACTOR or $USER.")] = None,
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "local",
) -> None:
    """Create or update the preview for BRANCH and run `pulumi up` on it.

    The stack copies the template's config, is forced ephemeral (no deletion protection,
    registries and buckets deleted with their contents) and records branch, owner and
    expiry. Before anything is created, the stack is evaluated offline and refused if any
    resource would block or survive `pulumi destroy`.
    """
    from workstack.env import EnvError, default_owner, plan_preview, start_preview, utc_now
    from workstack.offline import ProgramError, run_program
    from workstack.project import StackSettings, find_project
    from workstack.teardown import blockers

    try:
        # Bad input fails here, before the Pulumi CLI or any backend is touched.
        plan_preview(
            find_project(project_dir),
            branch=branch,
            template=from_stack,
            ttl=ttl,
            owner=owner or default_owner(),
            now=utc_now(),
        )
    except (FileNotFoundError, EnvError) as error:
        fail(str(error))
    project, automation = _env_backend(project_dir, backend)

    def check(stack: str, config: dict[str, str]) -> list[str]:
        try:
            return blockers(run_program(project, stack, StackSettings(config)))
        except ProgramError as failure:
            raise EnvError(str(failure.error)) from None

    try:
        preview = start_preview(
            automation,
            project,
            branch=branch,
            template=from_stack,
            ttl=ttl,
            owner=owner or default_owner(),
            now=utc_now(),
            output=lambda line: typer.echo(line, nl=False),
            check=check,
        )
    except EnvError as error:
        fail(str(error))
    typer.echo(f"preview {preview.stack} is up; expires {preview.expires:%Y-%m-%d %H:%M} UTC")


@env_app.command("down")
def env_down(
    branch: Annotated[str, typer.Option(help="Branch whose preview to destroy.")],
    project_dir: ProjectOption = Path(),
    backend: BackendOption = "local",
) -> None:
    """Destroy the preview of BRANCH and remove its stack."""
    from workstack.env import EnvError, destroy_preview

    _, automation = _env_backend(project_dir, backend)
    try:
        stack = destroy_preview(
            automation,
            branch=branch,
            output=lambda line: typer.echo(line, nl=False),
        )
    except EnvError as error:
        fail(str(error))
    typer.echo(f"preview {stack} destroyed and removed")


@env_app.command("list")
def env_list(project_dir: ProjectOption = Path(), backend: BackendOption = "local") -> None:
    """Show the preview stacks, their branch, owner and expiry."""
    from rich.console import Console
    from rich.table import Table

    from workstack.env import EnvError, list_previews, utc_now

    _, automation = _env_backend(project_dir, backend)
    try:
        previews = list_previews(automation)
    except EnvError as error:
        fail(str(error))
    now = utc_now()
    table = Table("stack", "branch", "owner", "expires (UTC)", "state")
    for preview in previews:
        state = "expired" if preview.expired(now) else "live"
        table.add_row(
            preview.stack, preview.branch, preview.owner, f"{preview.expires:%Y-%m-%d %H:%M}", state
        )
    Console().print(table)


@env_app.command("gc")
def env_gc(project_dir: ProjectOption = Path(), backend: BackendOption = "local") -> None:
    """Destroy every expired preview and report what was removed."""
    from workstack.env import EnvError, collect_garbage, utc_now

    _, automation = _env_backend(project_dir, backend)
    try:
        removed = collect_garbage(
            automation,
            now=utc_now(),
            output=lambda line: typer.echo(line, nl=False),
        )
    except EnvError as error:
        fail(str(error))
    typer.echo(
        f"removed {len(removed)} expired previews"
        + "".join(f"\n  {p.stack} ({p.branch})" for p in removed)
    )


export_app = typer.Typer(help="Export workloads for other tools.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("argo")
def export_argo(
    workload_dir: Annotated[Path, typer.Argument(help="A pipeline workload folder.")],
    image: Annotated[str, typer.Option(help="The workload's image reference.")],
    out: Annotated[Path, typer.Option(help="File to write, e.g. argo.yaml.")],
    namespace: Annotated[str, typer.Option(help="Namespace Argo runs it in.")] = "workstack",
    data: Annotated[
        str | None,
        typer.Option(help="Data root of the steps; default /data/<workload> on the NFS claim."),
    ] = None,
    nfs_claim: Annotated[
        str, typer.Option(help="PersistentVolumeClaim mounted at /data.")
    ] = "shared-data",
    kind: Annotated[str, typer.Option(help="Workflow or WorkflowTemplate.")] = "Workflow",
) -> None:
    """Write the pipeline as an Argo Workflow that `argo submit` accepts.

    The workload's entrypoint is a pipeline builder (module:builder) or a Ploomber
    pipeline.yaml. Needs the deploy tools (hera's Argo models): pip install
    'workstack[deploy]'.
    """
    import yaml

    try:
        from workstack.components.manifests import SpecError
        from workstack.components.manifests.argo import ArgoExportSpec, build_argo_workflow
        from workstack.components.manifests.storage import nfs_pod_storage
    except ModuleNotFoundError as error:
        fail(
            f"export argo builds the Workflow from hera's Argo models with the deploy tools, and "
            f"{error.name} is not installed: pip install 'workstack[deploy]'"
        )
    from workstack.images import is_image_reference
    from workstack.sdk.describe import describe_pipeline
    from workstack.sdk.pipeline import PipelineError
    from workstack.sdk.workload import WorkloadError, load_workload

    try:
        workload = load_workload(workload_dir)
        if workload.spec.pattern != "pipeline":
            pattern = workload.spec.pattern
            fail(f"{workload_dir} is a {pattern} workload; export argo needs a pipeline")
        if not is_image_reference(image):
            fail(f"image {image!r} is not an image reference such as registry/repo/name:tag")
        data_url = data or f"/data/{workload.spec.name}"
        storage = (nfs_pod_storage(nfs_claim),) if data_url.startswith("/data") else ()
        document = build_argo_workflow(
            ArgoExportSpec(
                pipeline=describe_pipeline(workload.folder, workload.spec.entrypoint),
                entrypoint=workload.spec.entrypoint,
                image=image,
                namespace=namespace,
                data_url=data_url,
                kind=kind,
                storage=storage,
            )
        )
    except (WorkloadError, PipelineError, SpecError) as error:
        fail(str(error))
    out.write_text(yaml.safe_dump(document, sort_keys=False))
    typer.echo(
        f"wrote {out}: {kind} {workload.spec.name}, {len(document['spec']['templates']) - 1} steps"
    )
