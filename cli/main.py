"""The ``workstack`` command.

It is the runtime commands of :mod:`workstack.sdk.cli` plus the deploy-side ones defined here.

Deploy-side commands import Pulumi only when they run, so the same command works in workload
images, which install workstack without the ``[deploy]`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

import workstack
from workstack.images.command import image_app
from workstack.sdk.cli import app

__all__ = ["app", "main"]

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    """Print ``message`` to stderr and exit with the bad-input status."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _require_deploy_extra() -> None:
    try:
        import pulumi  # noqa: F401
    except ModuleNotFoundError:
        fail("this command needs the deploy tools: pip install 'workstack[deploy]'")


# Deploy-side but Pulumi-free: builds need only the core install and docker.
app.add_typer(image_app, name="image")


@app.command()
def version() -> None:
    """Print the workstack version."""
    typer.echo(workstack.__version__)


@app.command()
def render(
    stack: Annotated[str, typer.Option("--stack", "-s", help="Stack to render, e.g. minikube.")],
    out: Annotated[
        Path | None, typer.Option(help="Write one YAML file per object into this folder.")
    ] = None,
    project_dir: Annotated[
        Path, typer.Option("--project", help="Folder of Pulumi.yaml (or one below it).")
    ] = Path(),
    validate: Annotated[
        bool, typer.Option(help="Check every object against the Kubernetes schemas and CRDs.")
    ] = False,
) -> None:
    """Print every Kubernetes object a stack would create, offline.

    The stack program runs under Pulumi's mock runtime: no Pulumi CLI, cloud account or
    cluster is needed. Objects are printed as multi-document YAML, followed (as YAML
    comments) by the cloud resources, Helm charts and stack outputs. Secrets show as
    [secret].
    """
    _require_deploy_extra()
    import pulumi

    from workstack.offline import ProgramError, run_program
    from workstack.project import ConfigError, find_project
    from workstack.render import rendered_objects, summary_lines, to_yaml, write_objects

    try:
        project = find_project(project_dir)
        deployment = run_program(project, stack)
    except (FileNotFoundError, ConfigError) as error:
        fail(str(error))
    except ProgramError as failure:
        # Bad input (config, arguments) is reported as a message; anything else is a bug
        # and keeps its traceback.
        if not isinstance(failure.error, ValueError | pulumi.RunError):
            raise
        fail(str(failure.error))

    objects = rendered_objects(deployment)
    if out is None:
        typer.echo(to_yaml(objects), nl=False)
    else:
        for path in write_objects(objects, out):
            typer.echo(f"# wrote {path}")
    for line in summary_lines(deployment):
        typer.echo(f"# {line}")

    if validate:
        from workstack.schemas import CrdCatalog, default_crd_dirs, validate_objects

        check = validate_objects(objects, CrdCatalog(default_crd_dirs(project.root)))
        for message in check.errors:
            typer.echo(f"# INVALID {message}", err=True)
        for label in check.unchecked:
            typer.echo(f"# unchecked (no CRD found): {label}", err=True)
        typer.echo(f"# schema check: {check.checked} objects, {len(check.errors)} errors", err=True)
        if check.errors:
            raise typer.Exit(1)


def main() -> None:
    """Console entry point."""
    app()
