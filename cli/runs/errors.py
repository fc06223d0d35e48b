"""What can go wrong with a run, and the exit status each failure gives.

Every failure the run commands report is a :class:`RunsError` whose message says what happened
in the user's terms and what to do; its ``exit_code`` is the command's exit status
(docs/runs.md lists them).
"""

from __future__ import annotations

from workstack.sdk.errors import WorkstackError

__all__ = [
    "EXIT_DENIED",
    "EXIT_FAILED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "ConflictError",
    "DeniedError",
    "NotFoundError",
    "RunsError",
    "UnreachableError",
    "UsageError",
]

EXIT_FAILED = 1
"""The run failed, or a transfer or an API call did."""
EXIT_USAGE = 2
"""Bad input: an unknown workload, option or run id, a missing folder, a stack not ready."""
EXIT_UNREACHABLE = 3
"""The cluster or the storage did not answer (refused, timed out)."""
EXIT_DENIED = 4
"""The cluster or the storage refused: permission denied."""


class RunsError(WorkstackError):
    """A run command cannot do what it was asked; the message says why and what to do."""

    exit_code = EXIT_FAILED


class UsageError(RunsError):
    """What was asked is not possible as given (exit 2)."""

    exit_code = EXIT_USAGE


class UnreachableError(RunsError):
    """The Kubernetes API or the storage did not answer (exit 3)."""

    exit_code = EXIT_UNREACHABLE


class DeniedError(RunsError):
    """Permission denied by the API server or the storage (exit 4)."""

    exit_code = EXIT_DENIED


class NotFoundError(RunsError):
    """An object the command needs does not exist (exit 1)."""


class ConflictError(RunsError):
    """An object with that name exists already (exit 1)."""
