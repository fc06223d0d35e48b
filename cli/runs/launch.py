"""One command from a folder to results: a preview stack, push, submit, follow, pull, destroy.

``workstack launch`` creates a preview of a template stack (``workstack env up``), pushes the
inputs, submits the run, follows it, pulls its outputs and, with ``down``, destroys the
preview whether the run succeeded, failed or was interrupted. A preview records its expiry in
its config before anything is created, so one whose launch was killed outright is destroyed
by ``workstack env gc`` once it expires (launch previews live 6 hours by default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from workstack.env import Backend, EnvError, Preview, destroy_preview, start_preview
from workstack.project import PulumiProject
from workstack.runs.data import relative_to_root
from workstack.runs.errors import RunsError, UsageError
from workstack.runs.kube import Kube
from workstack.runs.stack import Stack, load_stack
from workstack.runs.status import RunStatus
from workstack.runs.submit import Submission, SubmitOptions, follow, submit
from workstack.runs.transfer import Progress, TransferResult

__all__ = ["LAUNCH_TTL", "LaunchBackend", "Launched", "launch"]

LAUNCH_TTL = "6h"


class LaunchBackend(Backend, Protocol):
    """Preview stacks, and their outputs."""

    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's outputs, secrets shown."""
        ...


@dataclass
class Launched:
    """What a launch did.

    Attributes:
        preview: The preview stack.
        submission: The run, once submitted.
        status: Its last status, once followed.
        pulled: What was pulled, once pulled.
        destroyed: Whether the preview was destroyed.
    """

    preview: Preview | None = None
    submission: Submission | None = None
    status: RunStatus | None = None
    pulled: TransferResult | None = None
    destroyed: bool = False

    @property
    def ok(self) -> bool:
        """Whether the run succeeded."""
        return self.status is not None and self.status.state == "succeeded"


def launch(
    backend: LaunchBackend,
    project: PulumiProject,
    workload: str,
    *,
    template: str,
    branch: str,
    owner: str,
    now: datetime,
    from_local: Path,
    pull_to: Path,
    down: bool,
    connect: Callable[[Stack], Kube],
    folder: Callable[[Stack, Kube], Any],
    options: SubmitOptions | None = None,
    ttl: str = LAUNCH_TTL,
    output: Callable[[str], None] = lambda _line: None,
    on_status: Callable[[RunStatus], None] = lambda _status: None,
    check: Callable[[str, dict[str, str]], list[str]] | None = None,
    progress: Progress | None = None,
    give_up_stuck_after: float | None = 1800.0,
    build: bool = False,
) -> Launched:
    """Launch ``workload`` on a new preview of ``template``; see the module's docstring.

    Args:
        backend: Where the preview stack lives.
        project: The Pulumi project.
        workload: The workload to run.
        template: The stack the preview copies (minikube, gke, eks).
        branch: What the preview is named after.
        owner: Who asked.
        now: The current time (UTC).
        from_local: The inputs, pushed before the run.
        pull_to: Where the outputs are pulled.
        down: Destroy the preview at the end, whatever happened.
        connect: A Kubernetes client for the preview's stack.
        folder: Opens its storage (a context manager yielding a RemoteFolder).
        options: The run's other options.
        ttl: How long the preview lives if nothing destroys it.
        output: Where ``pulumi up`` and ``destroy`` stream their output.
        on_status: Gets each new status of the run.
        check: The offline check of the preview (``env up``'s).
        progress: Where transfers report their bytes.
        give_up_stuck_after: Seconds a stuck run is followed before the launch gives up.
        build: Build the image if the folder changed since the template was deployed.

    Raises:
        UsageError: Bad input, before any stack is created.
        RunsError, EnvError: What failed after; the preview is destroyed first with ``down``.
    """
    if not from_local.exists():
        raise UsageError(f"--from {str(from_local)!r}: no such folder or file")
    done = Launched()
    try:
        done.preview = start_preview(
            backend,
            project,
            branch=branch,
            template=template,
            ttl=ttl,
            owner=owner,
            now=now,
            output=output,
            check=check,
        )
        stack = load_stack(
            backend.outputs(done.preview.stack),
            name=done.preview.stack,
            source=f"the outputs of stack {done.preview.stack}",
        )
        kube = connect(stack)
        run_options = replace(options or SubmitOptions(), from_local=from_local)
        done.submission = submit(
            stack.contract,
            kube,
            workload,
            run_options,
            folder=lambda: folder(stack, kube),
            project_root=project.root,
            build=build,
            progress=progress,
        )
        done.status = follow(
            kube,
            stack.contract,
            done.submission.run_id,
            on_status=on_status,
            give_up_stuck_after=give_up_stuck_after,
        )
        output_url = done.submission.output_url
        if output_url is not None:
            with folder(stack, kube) as remote:
                relative = relative_to_root(stack.contract, output_url)
                with contextlib.suppress(UsageError):  # a failed run may have no outputs
                    done.pulled = remote.pull(relative, pull_to, progress)
    finally:
        if down and done.preview is not None:
            try:
                destroy_preview(backend, branch=branch, output=output)
                done.destroyed = True
            except EnvError as error:
                raise RunsError(
                    f"destroying preview {done.preview.stack} failed: {error}; `workstack env "
                    f"down --branch {branch}` retries, `workstack env gc` removes it once it "
                    "expires"
                ) from None
    return done
