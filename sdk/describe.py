"""Read a pipeline workload's DAG in a child process, the way its pods would import it.

The deploy side needs a pipeline's steps (to build its Argo WorkflowTemplate) but must not
import workload code into its own process: ``sys.path`` would change, and two workloads
that both have a ``tasks.py`` would share one cached module, so the second would get the
first one's steps. A child process imports the workload with its folder first on
``sys.path`` (as ``/app`` is in images) and prints the pipeline as JSON.

    python -m workstack.sdk.describe WORKLOAD_DIR ENTRYPOINT
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from workstack.sdk.callables import CallableError
from workstack.sdk.pipeline import Pipeline, PipelineError, Step, load_pipeline

__all__ = ["describe_pipeline", "main", "pipeline_from_json", "pipeline_to_json"]

_BAD_INPUT = 2


def pipeline_to_json(pipeline: Pipeline) -> str:
    """The pipeline as JSON (its name and steps, every field)."""
    return json.dumps(dataclasses.asdict(pipeline), sort_keys=True)


def pipeline_from_json(text: str) -> Pipeline:
    """The pipeline :func:`pipeline_to_json` wrote, checked again as it is rebuilt.

    Raises:
        PipelineError: The text is not a pipeline.
    """
    try:
        data: dict[str, Any] = json.loads(text)
        steps = tuple(
            Step(**{**step, "upstream": tuple(step.get("upstream", ()))}) for step in data["steps"]
        )
        return Pipeline(name=data["name"], steps=steps)
    except (ValueError, KeyError, TypeError) as error:
        if isinstance(error, PipelineError):
            raise
        raise PipelineError(f"not a pipeline description: {error}") from None


_DESCRIBED: dict[tuple[str, str, tuple[tuple[str, int], ...]], Pipeline] = {}


def _fingerprint(folder: Path) -> tuple[tuple[str, int], ...]:
    """The workload folder's files and their modification times: a change describes again."""
    return tuple(
        sorted(
            (str(path.relative_to(folder)), path.stat().st_mtime_ns)
            for path in folder.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
    )


def describe_pipeline(folder: Path, entrypoint: str, *, timeout: float = 120.0) -> Pipeline:
    """The pipeline ``entrypoint`` builds, imported from ``folder`` in a child process.

    The stack's config check and the pipeline component both ask; the answer for an unchanged
    folder is kept, so the child runs once.

    Raises:
        PipelineError: The entrypoint cannot be imported, raises, or returns no valid
            pipeline; the message carries the child's explanation.
    """
    key = (str(Path(folder).resolve()), entrypoint, _fingerprint(Path(folder)))
    if key not in _DESCRIBED:
        _DESCRIBED[key] = _describe(folder, entrypoint, timeout)
    return _DESCRIBED[key]


def _describe(folder: Path, entrypoint: str, timeout: float) -> Pipeline:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the workload's folder is the only extra import root
    try:
        child = subprocess.run(
            [sys.executable, "-m", "workstack.sdk.describe", str(folder), entrypoint],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PipelineError(
            f"{entrypoint} in {folder} did not return its pipeline within {timeout:.0f} s"
        ) from None
    if child.returncode != 0:
        detail = child.stderr.strip().splitlines()
        shown = "\n".join(detail[-12:]) or f"exit code {child.returncode}"
        raise PipelineError(f"{entrypoint} in {folder}: {shown}")
    return pipeline_from_json(child.stdout)


def main(argv: list[str]) -> int:
    """The child's side: import the entrypoint from the folder, print its pipeline."""
    if len(argv) != 2:
        print("usage: python -m workstack.sdk.describe WORKLOAD_DIR ENTRYPOINT", file=sys.stderr)
        return _BAD_INPUT
    folder, entrypoint = Path(argv[0]).resolve(), argv[1]
    sys.path.insert(0, str(folder))
    os.chdir(folder)
    try:
        pipeline = load_pipeline(entrypoint, folder=folder)
    except (CallableError, PipelineError) as error:
        print(str(error), file=sys.stderr)
        return _BAD_INPUT
    except SystemExit as stop:
        print(
            f"the workload's code called sys.exit({stop.code!r}) while it was imported",
            file=sys.stderr,
        )
        return _BAD_INPUT
    sys.stdout.write(pipeline_to_json(pipeline))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
