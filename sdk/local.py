"""``workstack run WORKLOAD_DIR --local``: a workload on this machine, with its pods' entrypoints.

Each pattern runs the way its pods would, scaled down to local processes:

- job-per-file: every input through the entrypoint function (or the workload's command),
  ``workers`` processes at once, skipping inputs whose output exists (what each index of the
  Indexed Job does);
- queue-workers: the tasker here and ``workers`` worker processes on a RabbitMQ;
- dask: the entrypoint (or a run config) on a local cluster of ``workers`` processes, its
  DataFrame written to the output folder;
- pipeline: the steps in dependency order, skipping those that are up to date;
- command: the command once, its output folder published whole.

Commands run in the workload's folder with this interpreter first on ``PATH`` (as pods run
them in ``/app`` with the image's virtualenv). Everything lands under one output folder,
``out/<workload name>`` by default.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from workstack.sdk.errors import WorkstackError
from workstack.sdk.workload import Workload

__all__ = ["LocalResult", "LocalRun", "LocalRunError", "default_out", "run_workload"]

DEFAULT_WORKERS = 2


class LocalRunError(WorkstackError, ValueError):
    """A local run's options do not fit the workload; the message names the option."""


@dataclass(kw_only=True, frozen=True)
class LocalRun:
    """How to run a workload here.

    Attributes:
        out: Folder every output goes under.
        workers: Processes: the file pool, Dask workers or queue workers.
        input_url: job-per-file and command: the inputs; default the workload's ``data/``
            folder.
        config: dask: a run config file (YAML or JSON); default the entrypoint with its
            default arguments.
        force: pipeline: run every step, even those up to date; command: run again, replacing
            an earlier run's outputs.
        broker_url: queue-workers: the RabbitMQ URL; default ``$WORKSTACK_BROKER_URL``, else
            ``amqp://127.0.0.1:5672``.
        glob: job-per-file: only inputs whose key matches (``*.csv``).
        suffix: job-per-file: the output's extension, replacing the input's (``.parquet``).
        progress: A progress bar (rich) on stderr; None: when stderr is a terminal.
    """

    out: Path
    workers: int = DEFAULT_WORKERS
    input_url: str | None = None
    config: Path | None = None
    force: bool = False
    broker_url: str | None = None
    progress: bool | None = None
    glob: str | None = None
    suffix: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or not 1 <= self.workers <= 256:
            raise LocalRunError(f"workers: {self.workers!r} is not allowed; expected 1 to 256")
        if self.out.exists() and not self.out.is_dir():
            raise LocalRunError(
                f"--out: {str(self.out)!r} is not allowed; expected a folder (it is a file)"
            )


@dataclass(frozen=True)
class LocalResult:
    """What a local run did.

    Attributes:
        exit_code: 0 when everything succeeded; the pattern's command's status otherwise.
        summary: One line: what ran and what failed.
        output: Where the results are.
    """

    exit_code: int
    summary: str
    output: str


def default_out(workload: Workload) -> Path:
    """``out/<workload name>`` under the current folder."""
    return Path.cwd() / "out" / workload.spec.name


def run_workload(workload: Workload, run: LocalRun) -> LocalResult:
    """Run ``workload`` here in its pattern (see the module docstring).

    Raises:
        LocalRunError: An option does not fit the workload's pattern.
        ValueError: Bad input the pattern's runtime reports (its message says what).
        workstack.sdk.queue.BrokerError: queue-workers: the broker is unreachable.
    """
    pattern = workload.spec.pattern
    _refuse_foreign_options(pattern, run)
    runners: dict[str, Callable[[Workload, LocalRun], LocalResult]] = {
        "job-per-file": _run_files,
        "queue-workers": _run_queue,
        "dask": _run_dask,
        "pipeline": _run_pipeline,
        "command": _run_command,
    }
    with _importable(workload.folder):
        return runners[pattern](workload, run)


_OPTIONS = {
    "input_url": ("--input", ("job-per-file", "command")),
    "config": ("--config", ("dask",)),
    "force": ("--force", ("pipeline", "command")),
    "glob": ("--glob", ("job-per-file",)),
    "suffix": ("--suffix", ("job-per-file",)),
}


def _refuse_foreign_options(pattern: str, run: LocalRun) -> None:
    for name, (option, owners) in _OPTIONS.items():
        if getattr(run, name) not in (None, False) and pattern not in owners:
            raise LocalRunError(
                f"{option} is for {' and '.join(owners)} workloads; this workload's pattern "
                f"is {pattern}"
            )
    # A missing input folder would be listed as empty: "0 files", exit 0.
    if run.input_url is not None and "://" not in run.input_url:
        folder = Path(run.input_url)
        if not folder.is_dir():
            what = "it is a file" if folder.exists() else "no such folder"
            raise LocalRunError(
                f"--input: {run.input_url!r} is not allowed; expected an existing folder "
                f"or a storage URL ({what})"
            )


@contextmanager
def _importable(folder: Path) -> Iterator[None]:
    """Put the workload folder on ``sys.path`` and ``PYTHONPATH``, as ``/app`` is in images.

    ``PYTHONPATH`` reaches the child processes (file pool, Dask workers, queue workers). The
    workload's modules are forgotten afterwards, so the next workload run in this process
    (``workstack demo``) imports its own ``tasks.py``, not a namesake's.
    """
    entry = str(folder)
    saved_path, saved_env = list(sys.path), os.environ.get("PYTHONPATH")
    sys.path.insert(0, entry)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (entry, saved_env) if p)
    try:
        yield
    finally:
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if path and Path(path).resolve().is_relative_to(folder):
                del sys.modules[name]
        sys.path[:] = saved_path
        if saved_env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_env


def _use_progress(choice: bool | None) -> bool:
    return sys.stderr.isatty() if choice is None else choice


def _run_files(workload: Workload, run: LocalRun) -> LocalResult:
    from workstack.sdk.files import FileJob, Outcome, run_local

    input_url = run.input_url or str(workload.folder / "data")
    if run.input_url is None and not (workload.folder / "data").is_dir():
        raise LocalRunError(
            f"--input is needed: {workload.spec.name} has no data/ folder of sample inputs"
        )
    spec = workload.spec
    job = FileJob(
        input_url=input_url,
        output_url=str(run.out),
        function=None if spec.is_command else spec.entrypoint,
        command=spec.command,
        workdir=str(workload.folder),
        pattern=run.glob,
        suffix=run.suffix,
    )
    if not _use_progress(run.progress):
        summary = run_local(job, jobs=run.workers)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(workload.spec.name, total=None)

            def advance(_outcome: Outcome, total: int) -> None:
                bar.update(task, total=total, advance=1)

            summary = run_local(job, jobs=run.workers, progress=advance)
    return LocalResult(summary.exit_code, summary.line(), str(run.out))


def _run_queue(workload: Workload, run: LocalRun) -> LocalResult:
    from workstack.sdk.queue.local import run_local

    code = run_local(
        workload,
        storage_url=str(run.out),
        broker_url=run.broker_url,
        workers=run.workers,
        progress=_use_progress(run.progress),
    )
    done = "every task done" if code == 0 else "some tasks failed (see <out>/errors/)"
    return LocalResult(code, f"{done}; results in results/, outputs in outputs/", str(run.out))


def _run_dask(workload: Workload, run: LocalRun) -> LocalResult:
    import dataclasses

    from workstack.sdk.dask import (
        EXIT_OUTPUT_KEPT,
        DaskConfigError,
        OutputError,
        parse_config,
        run_function,
    )

    raw: dict[str, Any] = {
        "run": {"function": workload.spec.entrypoint},
        "dask_cluster": {"workers": run.workers},
    }
    if run.config is not None:
        raw = _read_config(run.config)
    parsed = parse_config(raw)
    if parsed.address is not None:
        raise DaskConfigError(
            f"{run.config}: dask_cluster.address is not used locally; remove it (a local "
            "cluster is started)"
        )
    name = PurePosixPath(parsed.output).name if parsed.output else f"{workload.spec.name}.csv"
    target = run.out / name
    try:
        frame = run_function(dataclasses.replace(parsed, output=str(target)))
    except OutputError as error:
        return LocalResult(EXIT_OUTPUT_KEPT, str(error), error.kept)
    return LocalResult(0, f"{len(frame)} rows from {parsed.function}", str(target))


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise LocalRunError(f"--config {path}: no such file; expected a YAML or JSON run config")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise LocalRunError(f"--config {path}: not valid YAML or JSON ({error})") from None
    if not isinstance(loaded, dict):
        raise LocalRunError(f"--config {path}: expected a mapping with run, dask_cluster, output")
    return loaded


def _run_pipeline(workload: Workload, run: LocalRun) -> LocalResult:
    from workstack.sdk.pipeline import RunReport, StepError, load_pipeline, run_local

    pipeline = load_pipeline(workload.spec.entrypoint, folder=workload.folder)
    run.out.mkdir(parents=True, exist_ok=True)
    report = RunReport()

    def note(name: str, ran: bool) -> None:
        (report.ran if ran else report.skipped).append(name)

    try:
        run_local(pipeline, run.out, force=run.force, workdir=workload.folder, on_step=note)
    except StepError as error:
        line = f"{len(report.ran)} step(s) ran, {len(report.skipped)} up to date, then {error}"
        return LocalResult(1, line, str(run.out))
    line = f"{len(report.ran)} step(s) ran, {len(report.skipped)} up to date"
    return LocalResult(0, line, str(run.out))


def _run_command(workload: Workload, run: LocalRun) -> LocalResult:
    from workstack.sdk.commands import OnceRun, run_once

    command = workload.spec.command
    assert command is not None  # a command workload has one
    input_url = run.input_url
    if input_url is None and (workload.folder / "data").is_dir():
        input_url = str(workload.folder / "data")
    if input_url is None and "{inputs}" in command:
        raise LocalRunError(
            f"--input is needed: the command uses {{inputs}} and {workload.spec.name} has no "
            "data/ folder of sample inputs"
        )
    result = run_once(
        OnceRun(
            command=command,
            outputs_url=str(run.out),
            inputs_url=input_url,
            workdir=str(workload.folder),
            force=run.force,
        )
    )
    return LocalResult(result.exit_code, f"{result.status}: {result.message}", str(run.out))
