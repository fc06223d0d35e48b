"""Command-line options that several ``workstack`` commands share, declared once.

Each command gives its own default (``env`` keeps previews in the project's ``local`` backend,
the run commands read the stack from the ``current`` one), so a shared option says what the
choices mean without fixing one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["BackendOption", "ProjectOption", "StackOption"]

ProjectOption = Annotated[
    Path, typer.Option("--project", help="Folder of Pulumi.yaml (or one below it).")
]
"""The Pulumi project: ``Pulumi.yaml`` in this folder or the nearest one above it."""

StackOption = Annotated[
    str | None,
    typer.Option("--stack", "-s", help="The stack, e.g. minikube.", show_default=False),
]
"""A stack of the project; commands that cannot do without one say so when it is missing."""

BackendOption = Annotated[
    str,
    typer.Option(
        help="Where the stack's state lives: 'current' (the backend you are logged in to), "
        "'local' (a file backend under the project, passphrase secrets, as `workstack env` "
        "uses by default) or a backend URL."
    ),
]
"""The Pulumi backend a command reads or writes stacks in."""
