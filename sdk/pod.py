"""``workstack pod``: the image's entrypoint, running the workload's pattern with its arguments.

Every workload image has ``ENTRYPOINT ["workstack", "pod"]``, so ``docker run IMAGE ARGS``
(or a pod's ``args``) runs the workload the way its pattern does, with the entrypoint from
``workload.yaml`` filled in:

- job-per-file: ``workstack files run --function <entrypoint> ARGS`` (or ``--command
  <command>`` when the workload is a command line);
- queue-workers: ``workstack queue ARGS`` (``worker ...`` or ``tasker ...``; a tasker given
  neither ``--file`` nor ``--from`` publishes what the entrypoint returns);
- dask: ``workstack dask run ARGS`` (a run config);
- pipeline: ``workstack pipeline step --entrypoint <entrypoint> ARGS`` (the entrypoint may be
  a Ploomber ``pipeline.yaml``);
- command: ``workstack command run --command <command> ARGS`` (``--inputs``, ``--outputs``).

It replaces itself with that command, so signals (SIGTERM from Kubernetes) reach the
workload directly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from workstack.sdk import env
from workstack.sdk.workload import WorkloadError, WorkloadSpec, load_workload

__all__ = ["command_for", "workload_here"]


def workload_here() -> WorkloadSpec:
    """The image's workload, from ``$WORKSTACK_WORKLOAD`` (``/app/workload.yaml``).

    Raises:
        WorkloadError: The variable is unset or the file is missing or invalid.
    """
    path = os.environ.get(env.WORKLOAD_FILE)
    if not path:
        raise WorkloadError(
            env.WORKLOAD_FILE, None, "set it to the image's workload.yaml (the image does)"
        )
    return load_workload(Path(path).parent).spec


def command_for(spec: WorkloadSpec, args: Sequence[str]) -> list[str]:
    """The ``workstack`` arguments that run ``spec``'s pattern with ``args``."""
    if spec.pattern == "job-per-file":
        if spec.command is not None:
            return ["files", "run", "--command", spec.command, *args]
        return ["files", "run", "--function", spec.entrypoint, *args]
    if spec.pattern == "command":
        assert spec.command is not None  # WorkloadSpec requires it
        return ["command", "run", "--command", spec.command, *args]
    if spec.pattern == "queue-workers":
        given = {arg.split("=", 1)[0] for arg in args}
        if args[:1] == ["tasker"] and not given & {"--from", "--file", "-f"}:
            return ["queue", "tasker", "--from", spec.entrypoint, *args[1:]]
        return ["queue", *args]
    if spec.pattern == "dask":
        return ["dask", "run", *args]
    return ["pipeline", "step", "--entrypoint", spec.entrypoint, *args]


def run(args: Sequence[str]) -> None:
    """Replace this process with the workload's command."""
    argv = [sys.executable, "-m", "workstack", *command_for(workload_here(), args)]
    os.execv(sys.executable, argv)
