"""Runs on a deployed stack: data in and out, submit, status with reasons, logs, cancel, launch.

Pulumi owns the platform; ``workstack`` owns runs. A stack's ``contract`` output says what runs
need (:mod:`workstack.runs.stack`); runs are built with the same pure builders and checked with
the same schemas as the platform (:mod:`workstack.runs.submit`), found again by their
``workstack.dev/run`` label (:mod:`workstack.runs.status`, :mod:`workstack.runs.logs`), and
data moves through :mod:`workstack.runs.transfer`. ``workstack.runs.command`` is the command
line over them. See docs/runs.md.
"""

from workstack.runs.errors import (
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    RunsError,
    UsageError,
)

__all__ = [
    "EXIT_DENIED",
    "EXIT_FAILED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "RunsError",
    "UsageError",
]
