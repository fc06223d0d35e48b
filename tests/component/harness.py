"""Helpers to run the stack program offline with a stack file, optionally changed."""

from __future__ import annotations

from workstack.offline import Deployment, run_program
from workstack.project import PulumiProject, StackSettings

REMOVE = object()


def deploy(project: PulumiProject, stack: str, **changes: object) -> Deployment:
    """Run the program for ``stack`` with config keys changed (``gcp__project`` means
    ``gcp:project``; a bare name means ``workstack:<name>``); ``REMOVE`` deletes a key."""
    base = project.read_stack(stack)
    values = dict(base.values)
    for name, value in changes.items():
        key = name.replace("__", ":") if "__" in name else f"workstack:{name}"
        if value is REMOVE:
            values.pop(key, None)
        else:
            values[key] = value if isinstance(value, str) else str(value).lower()
    return run_program(project, stack, StackSettings(values, base.secret_keys))
