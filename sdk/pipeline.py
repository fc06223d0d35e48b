"""Pipelines: a DAG of workload steps, run locally or exported to Argo Workflows.

A pipeline is declared in Python, in the workload's code::

    from workstack.sdk.pipeline import Pipeline, Step

    def build() -> Pipeline:
        return Pipeline(name="ml-basic", steps=(
            Step(name="get", function="tasks:get", outputs={"raw": "raw/iris.csv"}),
            Step(name="features", function="tasks:features",
                 inputs={"raw": "raw/iris.csv"}, outputs={"features": "features.csv"}),
        ))

and ``workload.yaml`` names the builder as its entrypoint (``ml:build``), or a Ploomber
``pipeline.yaml`` is read into the same model (:mod:`workstack.sdk.ploomber`). A step's
function is called as ``function(inputs, outputs)`` with two dicts of local paths, keyed by the
names the step declares. A step depends on the steps that write its inputs (and on any it
names in ``upstream``). Every step's outputs (files, or folders the step creates at their
path) are published atomically once the function returns.

Run locally, a step is skipped while all its outputs exist and are newer than all its inputs,
so a second run does nothing and touching one input reruns only what depends on it.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workstack.sdk.callables import load_callable
from workstack.sdk.commands import run_command
from workstack.sdk.errors import WorkstackError
from workstack.sdk.storage import Storage, open_storage

__all__ = [
    "Pipeline",
    "PipelineError",
    "RunReport",
    "Step",
    "StepError",
    "load_pipeline",
    "run_local",
    "run_step",
]

_STEP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Identifiers, and the dotted or dashed names Ploomber tasks and products may have.
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
CONVENTIONS = ("workstack", "ploomber")
SCRIPT_RUNNERS = ("python", "notebook")


class PipelineError(WorkstackError, ValueError):
    """A pipeline is declared wrong; the message names the steps involved."""


def _paths(step: str, kind: str, value: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise PipelineError(f"step {step!r}: {kind} must map names to paths, got {value!r}")
    for name, path in value.items():
        if not isinstance(name, str) or not _KEY.match(name):
            raise PipelineError(
                f"step {step!r}: {kind} name {name!r} must be an identifier (letters, digits, "
                "'_', '.' and '-')"
            )
        parts = Path(path).parts if isinstance(path, str) else ()
        if not parts or Path(path).is_absolute() or ".." in parts:
            raise PipelineError(
                f"step {step!r}: {kind}[{name!r}] = {path!r} must be a relative path without '..'"
            )
    return dict(value)


@dataclass(kw_only=True, frozen=True)
class Step:
    """One step of a pipeline.

    Attributes:
        name: Step name (DNS-1123 label: it names the Argo template and task).
        function: ``module:function`` called as ``function(inputs, outputs, **params)``.
        command: Or a shell command template, e.g. ``"fit {inputs[data]} {outputs[model]}"``,
            run with ``/bin/sh`` in the workload folder.
        script: Or a Python script (a path in the workload folder) run with its parameters
            cell filled in, as Ploomber runs scripts and notebooks.
        inputs: Name -> path (relative to the pipeline's data root) the step reads.
        outputs: Name -> path the step writes.
        upstream: Steps that must finish first besides those writing its inputs.
        params: Extra keyword arguments of the function (or parameters of the script).
        convention: How the function (or script) receives its paths: ``workstack``
            (``function(inputs, outputs)``) or ``ploomber`` (``function(product, upstream)``,
            ``product`` a path or a dict of paths, ``upstream`` a dict of the upstream tasks'
            products; see :mod:`workstack.sdk.ploomber`).
        runner: How a script runs: ``python`` (a plain script) or ``notebook`` (papermill,
            its executed copy written to the ``nb`` output).
        nbconvert: Options for converting the executed notebook (``exclude_input``).
        retries: Retries of a failing step on the cluster.
        cpu: CPU request of its pod.
        memory: Memory request (and limit) of its pod.
    """

    name: str
    function: str | None = None
    command: str | None = None
    script: str | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    upstream: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    convention: str = "workstack"
    runner: str = "python"
    nbconvert: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0
    cpu: str = "500m"
    memory: str = "1Gi"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _STEP_NAME.match(self.name) or len(self.name) > 63:
            raise PipelineError(
                f"step name {self.name!r} is not allowed; expected a DNS-1123 label "
                "(a-z, 0-9 and '-')"
            )
        given = [kind for kind in ("function", "command", "script") if getattr(self, kind)]
        if len(given) != 1:
            raise PipelineError(
                f"step {self.name!r}: give exactly one of function, command or script"
            )
        if self.convention not in CONVENTIONS:
            raise PipelineError(
                f"step {self.name!r}: convention {self.convention!r} is not allowed; "
                f"allowed: {', '.join(CONVENTIONS)}"
            )
        if self.runner not in SCRIPT_RUNNERS:
            raise PipelineError(
                f"step {self.name!r}: runner {self.runner!r} is not allowed; "
                f"allowed: {', '.join(SCRIPT_RUNNERS)}"
            )
        if self.runner == "notebook" and "nb" not in self.outputs:
            raise PipelineError(
                f"step {self.name!r}: a notebook step needs an 'nb' output for its executed "
                "copy (e.g. nb: output/report.html)"
            )
        if not isinstance(self.params, Mapping):
            raise PipelineError(f"step {self.name!r}: params {self.params!r} must be a mapping")
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "nbconvert", dict(self.nbconvert))
        object.__setattr__(self, "inputs", _paths(self.name, "inputs", self.inputs))
        object.__setattr__(self, "outputs", _paths(self.name, "outputs", self.outputs))
        object.__setattr__(self, "upstream", tuple(self.upstream))
        if (
            isinstance(self.retries, bool)
            or not isinstance(self.retries, int)
            or not 0 <= self.retries <= 20
        ):
            raise PipelineError(f"step {self.name!r}: retries {self.retries!r} must be 0 to 20")


@dataclass(kw_only=True, frozen=True)
class Pipeline:
    """A DAG of steps, checked when it is made.

    Raises:
        PipelineError: Two steps share a name or write the same output, a step depends on a
            step that does not exist, or the dependencies form a cycle.
    """

    name: str
    steps: tuple[Step, ...]
    root: str | None = field(default=None, compare=False)
    """Folder scripts are found in and run from (a Ploomber project's); None: the current."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _STEP_NAME.match(self.name):
            raise PipelineError(
                f"pipeline name {self.name!r} is not allowed; expected a DNS-1123 label"
            )
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps:
            raise PipelineError(f"pipeline {self.name!r} has no steps")
        names = [step.name for step in self.steps]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise PipelineError(f"steps {repeated} are declared more than once")
        writers: dict[str, str] = {}
        for step in self.steps:
            for path in step.outputs.values():
                if path in writers:
                    raise PipelineError(
                        f"steps {writers[path]!r} and {step.name!r} both write {path!r}; "
                        "each output must have one writer"
                    )
                writers[path] = step.name
        for step in self.steps:
            for other in step.upstream:
                if other not in names:
                    raise PipelineError(
                        f"step {step.name!r} depends on unknown step {other!r}; "
                        f"steps: {', '.join(names)}"
                    )
        self._check_acyclic()

    @property
    def writers(self) -> dict[str, str]:
        """Output path -> the step that writes it."""
        return {path: step.name for step in self.steps for path in step.outputs.values()}

    def dependencies(self, step: Step) -> tuple[str, ...]:
        """The steps ``step`` waits for, in declaration order."""
        writers = self.writers
        needed = {writers[p] for p in step.inputs.values() if p in writers} | set(step.upstream)
        return tuple(s.name for s in self.steps if s.name in needed)

    def step(self, name: str) -> Step:
        """The step called ``name``.

        Raises:
            PipelineError: No such step; the message lists the steps.
        """
        for step in self.steps:
            if step.name == name:
                return step
        raise PipelineError(
            f"pipeline {self.name!r} has no step {name!r}; steps: "
            + ", ".join(s.name for s in self.steps)
        )

    def _check_acyclic(self) -> None:
        state: dict[str, str] = {}
        path: list[str] = []

        def visit(name: str) -> None:
            state[name] = "visiting"
            path.append(name)
            for other in self.dependencies(self.step(name)):
                if state.get(other) == "visiting":
                    # Shown in data-flow order: each step feeds the next.
                    cycle = [other, *reversed(path[path.index(other) :])]
                    raise PipelineError(
                        "dependency cycle: " + " -> ".join(cycle) + " (each step feeds the next)"
                    )
                if other not in state:
                    visit(other)
            path.pop()
            state[name] = "done"

        for step in self.steps:
            if step.name not in state:
                visit(step.name)

    def order(self) -> list[Step]:
        """The steps in an order that runs every dependency first (stable otherwise)."""
        done: list[str] = []
        remaining = list(self.steps)
        while remaining:
            ready = next(s for s in remaining if set(self.dependencies(s)) <= set(done))
            done.append(ready.name)
            remaining.remove(ready)
        return [self.step(name) for name in done]


def load_pipeline(entrypoint: str, *, folder: str | Path | None = None) -> Pipeline:
    """Build the pipeline a workload's entrypoint names.

    Args:
        entrypoint: ``module:builder`` returning a :class:`Pipeline`, or a Ploomber
            ``pipeline.yaml``: a path relative to ``folder``, else to the first folder on
            ``sys.path`` that has it (where the workload is: ``/app`` in images), else to the
            current folder.
        folder: The workload folder.

    Raises:
        CallableError: The builder cannot be imported.
        PipelineError: It does not return a Pipeline, the spec cannot be read, or the pipeline
            is invalid.
    """
    if entrypoint.endswith((".yaml", ".yml")):
        from workstack.sdk.ploomber import read_pipeline_yaml

        return read_pipeline_yaml(_find_spec(entrypoint, folder))
    built = load_callable(entrypoint)()
    if not isinstance(built, Pipeline):
        raise PipelineError(f"{entrypoint} returned {type(built).__name__}; expected a Pipeline")
    return built


def _find_spec(entrypoint: str, folder: str | Path | None) -> Path:
    path = Path(entrypoint)
    if path.is_absolute():
        candidates = [path]
    else:
        # The workload's folder is put on sys.path by whoever loads it (PYTHONPATH=/app in
        # images, the stack program for its workloads); the working directory comes last.
        roots = [Path(folder)] if folder is not None else [*map(Path, sys.path), Path.cwd()]
        candidates = [root / path for root in roots if str(root)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise PipelineError(
        f"pipeline spec {entrypoint!r}: no such file (looked in "
        + ", ".join(str(c.parent) for c in candidates[:3])
        + ("..." if len(candidates) > 3 else "")
        + ")"
    )


Runner = Callable[[dict[str, Path], dict[str, Path]], Any]


def _runner(step: Step, root: Path | None, workdir: Path | None) -> Runner:
    if step.convention == "ploomber" or step.script is not None:
        from workstack.sdk.ploomber import runner as ploomber_runner

        return ploomber_runner(step, root, workdir)
    if step.function is not None:
        function = load_callable(step.function)
        params = dict(step.params)

        def call(inputs: dict[str, Path], outputs: dict[str, Path]) -> Any:
            return function(inputs, outputs, **params)

        return call
    template = step.command
    assert template is not None

    def run_command_step(inputs: dict[str, Path], outputs: dict[str, Path]) -> None:
        quoted_in = {k: shlex.quote(str(v)) for k, v in inputs.items()}
        quoted_out = {k: shlex.quote(str(v)) for k, v in outputs.items()}
        # The template is the pipeline author's own command line, run where the workload is.
        line = template.format(inputs=quoted_in, outputs=quoted_out)
        result = run_command(line, cwd=workdir)
        if result.returncode != 0:
            raise StepError(
                f"step {step.name!r}: command exited {result.returncode}: {result.output[-800:]}"
            )

    return run_command_step


class StepError(WorkstackError, RuntimeError):
    """A step's command or script failed; the message has its exit status and last output."""


def run_step(
    pipeline: Pipeline, name: str, data: Storage, *, workdir: str | Path | None = None
) -> None:
    """Run one step against the data root: what each Argo pod does.

    Inputs are read from ``data`` (downloaded first for object stores); outputs are staged
    and published only if the step succeeds, all of them together.

    Args:
        pipeline: The pipeline.
        name: The step.
        data: The data root.
        workdir: Where commands run: the workload folder (``/app``, the working directory,
            in images).

    Raises:
        PipelineError: The step does not exist.
        FileNotFoundError: An input is missing (its URL is named).
        StepError: A command or script exited with a failure status.
    """
    step = pipeline.step(name)
    root = Path(pipeline.root) if pipeline.root else None
    runner = _runner(step, root, Path(workdir) if workdir else root)
    with contextlib.ExitStack() as stack:
        inputs = {key: stack.enter_context(data.fetched(path)) for key, path in step.inputs.items()}
        outputs = {
            key: stack.enter_context(data.staged(path)) for key, path in step.outputs.items()
        }
        for path in outputs.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        runner(inputs, outputs)


@dataclass
class RunReport:
    """Which steps ran and which were up to date."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _times(path: Path) -> list[int]:
    """Modification times of a file, or of every file in a folder (none if it is empty)."""
    if path.is_file():
        return [path.stat().st_mtime_ns]
    return [p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()]


def _up_to_date(step: Step, root: Path) -> bool:
    outputs = [_times(root / p) for p in step.outputs.values()]
    if not outputs or not all(outputs):
        return False
    inputs = [_times(root / p) for p in step.inputs.values()]
    if not all(inputs):
        return False
    oldest_output = min(min(times) for times in outputs)
    return all(max(times) <= oldest_output for times in inputs)


def run_local(
    pipeline: Pipeline,
    data: Path,
    *,
    force: bool = False,
    on_step: Callable[[str, bool], None] | None = None,
    workdir: str | Path | None = None,
) -> RunReport:
    """Run the pipeline on local files under ``data``, in dependency order.

    A step is skipped when all its outputs exist and none is older than any of its inputs
    (unless ``force``). Steps run in this process, one after another.

    Args:
        pipeline: The pipeline.
        data: Root folder the steps' paths are relative to.
        force: Run every step.
        on_step: Called with each step's name and whether it ran.
        workdir: Where commands run: the workload folder (as ``/app`` is in images).
    """
    storage = open_storage(data)
    report = RunReport()
    for step in pipeline.order():
        if not force and _up_to_date(step, data):
            report.skipped.append(step.name)
            if on_step:
                on_step(step.name, False)
            continue
        run_step(pipeline, step.name, storage, workdir=workdir)
        report.ran.append(step.name)
        if on_step:
            on_step(step.name, True)
    return report
