"""The runtime commands of ``workstack``: what runs inside images and in local mode.

``workstack.main`` adds the deploy-side commands (render, image, env) to this app, so one
``workstack`` command serves both; in an image, which has no ``[deploy]`` extra, only these
runtime commands are usable.
"""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    help="Data-science workloads on Kubernetes from Python, on Pulumi.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
