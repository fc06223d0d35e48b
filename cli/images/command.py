"""``workstack image``: generate a workload's build context, or build its image locally.

Needs only the core install and, for ``build``, the docker CLI: no Pulumi.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from workstack.images.context import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_PLATFORM,
    PLATFORMS,
    BuildContext,
    ContextError,
    ContextPlan,
    is_image_reference,
    plan_context,
)
from workstack.images.docker import Docker, DockerError, build_image
from workstack.images.source import SourceError
from workstack.images.wheelhouse import WheelhouseError
from workstack.sdk.workload import WorkloadError, load_workload

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "image_app"]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

image_app = typer.Typer(
    help="Build workload images: a content-hashed build context, then a local Docker build.",
    no_args_is_help=True,
)

WorkloadDir = Annotated[
    Path, typer.Argument(help="The workload folder (holding workload.yaml).", show_default=False)
]
BaseImage = Annotated[
    str, typer.Option("--base-image", help="Image the Dockerfile builds on (ARG BASE_IMAGE).")
]
Offline = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="Install dependencies from wheels fetched on this machine into the context, "
        "with no index or network during the build.",
    ),
]
Wheelhouse = Annotated[
    Path | None,
    typer.Option(
        help="Folder that keeps wheels between builds (offline mode); "
        "default ~/.cache/workstack/wheelhouse."
    ),
]
NoDownload = Annotated[
    bool,
    typer.Option(
        "--no-download",
        help="Offline mode: use only wheels already in the wheelhouse (air-gapped).",
    ),
]
Refresh = Annotated[
    bool,
    typer.Option("--refresh", help="Offline mode: resolve requirements again."),
]
Platform = Annotated[
    str,
    typer.Option(
        "--platform",
        help=f"Platform of the nodes that run the image: {', '.join(PLATFORMS)}.",
    ),
]
Extras = Annotated[
    list[str] | None,
    typer.Option(
        "--extra",
        help="A workstack extra the image needs beyond the workload's own, e.g. s3 or gcs "
        "for bucket storage (repeatable).",
    ),
]


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _plan(
    workload_dir: Path,
    *,
    base_image: str,
    platform: str,
    extras: list[str] | None,
    offline: bool,
    wheelhouse: Path | None,
    no_download: bool,
    refresh: bool,
) -> ContextPlan:
    """Check every input and compute the context; bad input exits 2 before anything is built."""
    if (wheelhouse is not None or no_download or refresh) and not offline:
        _fail("--wheelhouse, --no-download and --refresh need --offline")
    try:
        return plan_context(
            load_workload(workload_dir),
            base_image=base_image,
            platform=platform,
            extras=tuple(extras or ()),
            offline=offline,
            wheelhouse=wheelhouse,
            download=not no_download,
            refresh=refresh,
        )
    except (WorkloadError, ContextError) as error:
        _fail(str(error))
    except WheelhouseError as error:
        _fail(str(error), EXIT_FAILED)


def _write(plan: ContextPlan, out: Path) -> BuildContext:
    try:
        return plan.write(out)
    except ContextError as error:
        _fail(str(error))
    except (SourceError, WheelhouseError) as error:
        _fail(str(error), EXIT_FAILED)


@image_app.command("context")
def context_command(
    workload_dir: WorkloadDir,
    out: Annotated[
        Path | None, typer.Option(help="Folder to write the build context into.")
    ] = None,
    list_files: Annotated[
        bool,
        typer.Option(
            "--list",
            help="Show what goes into the context (+) and what is left out (-) and by which "
            "rule; writes nothing unless --out is given too.",
        ),
    ] = False,
    base_image: BaseImage = DEFAULT_BASE_IMAGE,
    platform: Platform = DEFAULT_PLATFORM,
    extra: Extras = None,
    offline: Offline = False,
    wheelhouse: Wheelhouse = None,
    no_download: NoDownload = False,
    refresh: Refresh = False,
) -> None:
    """Write a workload's build context (or list it) and print its tag (the content hash).

    The same workload, workstack and options give the same tag on every machine. With
    --list, each file that goes in is printed as "+ path", each one left out as
    "- path (rule: where the rule is written)", then the tag.
    """
    if out is None and not list_files:
        _fail("--out is not given; give the folder to write the context into, or --list")
    plan = _plan(
        workload_dir,
        base_image=base_image,
        platform=platform,
        extras=extra,
        offline=offline,
        wheelhouse=wheelhouse,
        no_download=no_download,
        refresh=refresh,
    )
    if list_files:
        for line in plan.listing():
            typer.echo(line)
    if out is not None:
        context = _write(plan, out)
        typer.echo(
            f"wrote {context.path} (workload {context.name}, {context.platform}, "
            f"dependency hash {context.dependency_hash})",
            err=True,
        )
    typer.echo(plan.tag)


@image_app.command("build")
def build_command(
    workload_dir: WorkloadDir,
    base_image: BaseImage = DEFAULT_BASE_IMAGE,
    repository: Annotated[
        str | None,
        typer.Option(help="Image name without tag; default workstack/<workload name>."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", help="Also name the image this (repeatable)."),
    ] = None,
    platform: Platform = DEFAULT_PLATFORM,
    extra: Extras = None,
    offline: Offline = False,
    wheelhouse: Wheelhouse = None,
    no_download: NoDownload = False,
    refresh: Refresh = False,
    context_dir: Annotated[
        Path | None,
        typer.Option("--context", help="Keep the build context in this folder."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build every step again.")] = False,
) -> None:
    """Build a workload's image with the local Docker engine and print its reference.

    The image is named <repository>:<content hash>. If the engine already holds that image,
    nothing is built: it was built from exactly the same context.
    """
    for reference in [*(tag or []), *([repository] if repository else [])]:
        if not is_image_reference(reference):
            _fail(f"{reference!r} is not an image reference ([registry/]repository[:tag])")
    if repository is not None and ":" in repository.rsplit("/", 1)[-1]:
        _fail(f"--repository {repository!r} must not have a tag: the tag is the content hash")
    try:
        load_workload(workload_dir)  # bad input is reported before a missing docker is
    except WorkloadError as error:
        _fail(str(error))
    try:
        docker = Docker.find()
    except DockerError as error:
        _fail(str(error), EXIT_FAILED)
    plan = _plan(
        workload_dir,
        base_image=base_image,
        platform=platform,
        extras=extra,
        offline=offline,
        wheelhouse=wheelhouse,
        no_download=no_download,
        refresh=refresh,
    )
    with tempfile.TemporaryDirectory(prefix="workstack-context-") as scratch:
        out = context_dir if context_dir is not None else Path(scratch) / "context"
        context = _write(plan, out)
        try:
            result = build_image(
                context, docker, repository=repository, extra_tags=tag or (), no_cache=no_cache
            )
        except DockerError as error:
            _fail(str(error), EXIT_FAILED)
    if result.built:
        typer.echo(f"built {result.ref} in {result.seconds:.1f}s", err=True)
    else:
        typer.echo(f"{result.ref} is up to date: nothing to build", err=True)
    typer.echo(result.ref)
