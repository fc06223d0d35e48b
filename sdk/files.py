"""Job-per-file: run a workload's function over every input file, once, with atomic outputs.

One Kubernetes Indexed Job runs this for any number of files: the pod with
``JOB_COMPLETION_INDEX=i`` of ``S`` shards takes every ``S``-th file of the sorted listing,
starting at ``i`` (or of a frozen manifest). For each input it skips the file if its output
already exists, otherwise calls the workload's function (or runs its command) with a local
input path and a local output path (or an empty output folder), and publishes the output
atomically. A rerun, or a retried index, therefore does only what is missing. Locally the same
per-file step runs in a process pool.

One file's failure never stops the others, whatever it is: an exception, ``BadInput``, a
``sys.exit()`` (0 counts as success, :data:`EXIT_BAD_INPUT` as bad input, anything else as a
failure) or a command's exit status.

Exit codes: 0 when every file is done or skipped; :data:`EXIT_BAD_INPUT` when an input was
malformed (the Job's pod failure policy fails that index without retrying it); 1 for any
other failure (retried).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fnmatch
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from workstack.sdk.callables import load_callable
from workstack.sdk.commands import (
    EXIT_BAD_INPUT,
    CommandError,
    check_template,
    placeholders,
    render,
    run_command,
)
from workstack.sdk.errors import WorkstackError
from workstack.sdk.storage import Storage, StorageError, normalize_url, open_storage

__all__ = [
    "EXIT_BAD_INPUT",
    "BadInput",
    "FileJob",
    "JobError",
    "Outcome",
    "Status",
    "Summary",
    "check_locations",
    "write_manifest",
]

COMMAND_PLACEHOLDERS = ("input", "output", "output_dir")
"""What a job-per-file command may use: the input file, and the output file or folder."""

log = logging.getLogger("workstack.files")


class JobError(WorkstackError, ValueError):
    """A job-per-file run is set up wrong (arguments, locations); the message says how."""


class BadInput(Exception):  # noqa: N818 - a workload-facing name, read as "raise BadInput(...)"
    """Raise from a workload function when its input file is malformed.

    The file is reported with the message and the shard exits with :data:`EXIT_BAD_INPUT`,
    which fails its index without retries; other files still get processed.
    """


class Status(StrEnum):
    """What happened to one input file."""

    DONE = "done"
    SKIPPED = "skipped"
    BAD_INPUT = "bad-input"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """The result for one input file."""

    key: str
    status: Status
    seconds: float = 0.0
    message: str = ""


@dataclass
class Summary:
    """Counts over a run, and the exit code they mean."""

    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        """How many files ended with ``status``."""
        return sum(1 for outcome in self.outcomes if outcome.status is status)

    @property
    def exit_code(self) -> int:
        """1 if anything failed (worth a retry), else 65 for bad input, else 0."""
        if self.count(Status.FAILED):
            return 1
        if self.count(Status.BAD_INPUT):
            return EXIT_BAD_INPUT
        return 0

    def line(self) -> str:
        """One line of totals."""
        counts = ", ".join(f"{self.count(status)} {status.value}" for status in Status)
        return f"{len(self.outcomes)} files: {counts}"


@dataclass(kw_only=True, frozen=True)
class FileJob:
    """What to run over which files.

    Attributes:
        input_url: Root of the inputs (a folder, NFS path, ``s3://`` or ``gs://``).
        output_url: Root of the outputs; must not be, or lie inside, the input root.
        function: The workload's ``module:function``, called as ``function(input, output)``
            with two local :class:`~pathlib.Path` objects.
        command: Instead of a function, a shell command template with ``{input}`` and either
            ``{output}`` (the one file to write) or ``{output_dir}`` (an empty folder, for a
            script that names its own outputs; published as a folder named after the input
            without its extension); its exit code 65 means bad input.
        pattern: Glob on input keys (``*.csv``); None takes every file.
        suffix: Replaces the input's extension in the output key (``.parquet``).
        manifest_url: A frozen list of input keys (one per line) to use instead of listing.
        workdir: Folder commands run in: the workload's folder (``/app`` in images, the
            default there since it is the working directory).
    """

    input_url: str
    output_url: str
    function: str | None = None
    command: str | None = None
    pattern: str | None = None
    suffix: str | None = None
    manifest_url: str | None = None
    workdir: str | None = None

    def __post_init__(self) -> None:
        if (self.function is None) == (self.command is None):
            raise JobError("give exactly one of function (module:function) or command")
        if self.command is not None:
            try:
                check_template(
                    self.command,
                    key="command",
                    allowed=COMMAND_PLACEHOLDERS,
                    required=("input",),
                    one_of=("output", "output_dir"),
                )
            except CommandError as error:
                raise JobError(str(error)) from None
        if self.suffix is not None and not (self.suffix.startswith(".") and len(self.suffix) > 1):
            raise JobError(
                f"suffix {self.suffix!r} is not allowed; expected an extension such as .parquet"
            )
        if self.suffix is not None and self.writes_folder:
            raise JobError(
                f"suffix {self.suffix!r} is not allowed with {{output_dir}}: each input's "
                "outputs go into a folder named after it (a/b.csv -> a/b/)"
            )
        check_locations(self.input_url, self.output_url)

    @property
    def writes_folder(self) -> bool:
        """Whether each input's output is a folder (a command with ``{output_dir}``)."""
        return self.command is not None and "output_dir" in placeholders(self.command)

    def storages(self) -> tuple[Storage, Storage]:
        """The input and output storages."""
        return open_storage(self.input_url), open_storage(self.output_url)

    def output_key(self, key: str) -> str:
        """Where the output of input ``key`` goes (a folder for ``{output_dir}`` commands)."""
        if self.writes_folder:
            path = PurePosixPath(key)
            # A file without an extension cannot keep its own name: the folder would be it.
            return str(path.with_suffix("")) if path.suffix else f"{key}.out"
        if self.suffix is None:
            return key
        return str(PurePosixPath(key).with_suffix(self.suffix))

    def check_outputs_distinct(self, keys: list[str]) -> None:
        """Refuse inputs whose outputs would be the same: the second would be skipped as done.

        That happens to ``a.csv`` and ``a.json`` with ``--suffix`` or ``{output_dir}``.

        Raises:
            JobError: Naming two such inputs and their output.
        """
        seen: dict[str, str] = {}
        for key in keys:
            target = self.output_key(key)
            if target in seen:
                raise JobError(
                    f"inputs {seen[target]!r} and {key!r} would both write {target!r}; select "
                    "one with --glob, or keep each input's extension (no --suffix)"
                )
            seen[target] = key

    def inputs(self) -> list[str]:
        """Every input key, sorted: from the manifest if there is one, else from a listing."""
        inputs, _ = self.storages()
        if self.manifest_url is not None:
            folder, _, name = self.manifest_url.rpartition("/")
            text = open_storage(folder or ".").read_text(name)
            keys = [line.strip() for line in text.splitlines() if line.strip()]
        else:
            keys = inputs.list()
        if self.pattern is not None:
            keys = [k for k in keys if fnmatch.fnmatchcase(k, self.pattern)]
        return sorted(keys)

    def processor(self) -> Callable[[Path, Path], None]:
        """The per-file callable: the workload function, or the command run in a shell.

        Raises:
            CallableError: The function cannot be imported.
            JobError: The function cannot be called as ``function(input, output)``.
        """
        if self.function is not None:
            function = load_callable(self.function)
            _check_signature(self.function, function)
            return function
        assert self.command is not None
        template, workdir = self.command, self.workdir
        folder = self.writes_folder

        def run(source: Path, target: Path) -> None:
            values = {"input": str(source), "output": str(target), "output_dir": str(target)}
            result = run_command(render(template, values), cwd=Path(workdir) if workdir else None)
            if result.returncode == EXIT_BAD_INPUT:
                raise BadInput(result.output or f"command exited {EXIT_BAD_INPUT}")
            if result.returncode != 0:
                raise RuntimeError(f"command exited {result.returncode}: {result.output[-500:]}")
            if not folder and target.is_dir():
                raise RuntimeError(
                    "command wrote a folder at {output}; a script that writes several files "
                    "should be given {output_dir} instead"
                )

        return run


def _check_signature(path: str, function: Callable[..., Any]) -> None:
    """Refuse, before any file, a function that cannot take ``(input, output)``."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    try:
        signature.bind(Path("input"), Path("output"))
    except TypeError:
        raise JobError(
            f"function {path}{signature} cannot be called as function(input, output) with "
            "two paths, which is how job-per-file calls it. For a script with a command line "
            "(argparse, click), declare `command: python -m <module> {input} --out {output}` "
            "in workload.yaml (or pass --command) instead of the function"
        ) from None


class _ExitError(RuntimeError):
    """The workload function called ``sys.exit()`` with a failure status."""


def _call(processor: Callable[[Path, Path], None], source: Path, target: Path) -> None:
    """Run the processor on one file, turning ``sys.exit()`` into that file's outcome."""
    try:
        processor(source, target)
    except SystemExit as stop:
        code = stop.code
        if code is None or code == 0:
            return  # an argparse-style main() that ends with sys.exit(0) succeeded
        if code == EXIT_BAD_INPUT:
            raise BadInput(f"sys.exit({EXIT_BAD_INPUT})") from None
        raise _ExitError(f"sys.exit({code!r})") from None


def check_locations(input_url: str, output_url: str) -> None:
    """Refuse an output location that is, or lies inside, the input location.

    Outputs there would be listed as inputs by the next run. Only the URLs are compared;
    nothing is opened.

    Raises:
        StorageError: A URL has an unsupported scheme or names no bucket.
        JobError: The locations overlap.
    """
    inputs, outputs = normalize_url(input_url), normalize_url(output_url)
    if inputs == outputs:
        raise JobError(
            f"output {output_url!r} is the input location; outputs would be read as inputs "
            "on the next run: give a separate folder or prefix"
        )
    if outputs.startswith(inputs + "/"):
        raise JobError(
            f"output {output_url!r} lies inside the input {input_url!r}; outputs would be read "
            "as inputs on the next run: give a separate folder or prefix"
        )


def shard(keys: list[str], index: int, shards: int) -> list[str]:
    """The keys index ``index`` of ``shards`` takes: every ``shards``-th, from ``index``.

    Striding, rather than cutting the list in blocks, spreads neighbouring (often similarly
    sized) files over all pods.
    """
    if shards < 1:
        raise JobError(f"shards {shards} is not allowed; expected 1 or more")
    if not 0 <= index < shards:
        raise JobError(f"index {index} is not allowed; expected 0 to {shards - 1}")
    return keys[index::shards]


def process_file(
    job: FileJob,
    processor: Callable[[Path, Path], None],
    key: str,
    storages: tuple[Storage, Storage] | None = None,
) -> Outcome:
    """Run the workload on one input, unless its output already exists."""
    inputs, outputs = storages or job.storages()
    target = job.output_key(key)
    if outputs.has(target):
        return Outcome(key, Status.SKIPPED)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            source = stack.enter_context(inputs.fetched(key))
        except (FileNotFoundError, StorageError) as error:
            # Listed (or in the manifest) but gone, or a link out of the input root: no retry
            # will bring it back.
            return Outcome(key, Status.BAD_INPUT, 0.0, str(error))
        try:
            with outputs.staged(target, folder=job.writes_folder) as staged:
                _call(processor, source, staged)
        except BadInput as error:
            return Outcome(key, Status.BAD_INPUT, time.perf_counter() - started, str(error))
        except _ExitError as error:
            return Outcome(key, Status.FAILED, time.perf_counter() - started, f"called {error}")
        except Exception as error:  # one file's failure must not stop the others
            message = f"{type(error).__name__}: {error}"
            return Outcome(key, Status.FAILED, time.perf_counter() - started, message)
    return Outcome(key, Status.DONE, time.perf_counter() - started)


def _report(outcome: Outcome, job: FileJob) -> None:
    where = f"{outcome.key} -> {job.output_key(outcome.key)}"
    if outcome.status in (Status.DONE, Status.SKIPPED):
        log.info("%-9s %s (%.2fs)", outcome.status.value, where, outcome.seconds)
    else:
        source = f"{job.input_url.rstrip('/')}/{outcome.key}"
        log.error("%-9s %s: %s", outcome.status.value, source, outcome.message)


def run_index(job: FileJob, *, index: int, shards: int) -> Summary:
    """Process this index's share of the inputs (what one pod of the Indexed Job does)."""
    every = job.inputs()
    job.check_outputs_distinct(every)
    keys = shard(every, index, shards)
    log.info("index %d of %d: %d files", index, shards, len(keys))
    processor, storages = job.processor(), job.storages()
    summary = Summary()
    for key in keys:
        outcome = process_file(job, processor, key, storages)
        _report(outcome, job)
        summary.outcomes.append(outcome)
    log.info("index %d: %s", index, summary.line())
    return summary


# --- local runner: the same per-file step, in a pool of processes ---------------------------

_WORKER: dict[str, Any] = {}


def _start_worker(job: FileJob, paths: list[str]) -> None:
    sys.path[:0] = [p for p in paths if p not in sys.path]
    _WORKER["job"] = job
    _WORKER["processor"] = job.processor()
    _WORKER["storages"] = job.storages()


def _work(key: str) -> Outcome:
    return process_file(_WORKER["job"], _WORKER["processor"], key, _WORKER["storages"])


def run_local(
    job: FileJob,
    *,
    jobs: int,
    import_paths: Iterable[str] = (),
    progress: Callable[[Outcome, int], None] | None = None,
) -> Summary:
    """Process every input with ``jobs`` worker processes.

    Each worker imports the workload once and then takes files one at a time, so a pool is
    much cheaper than a process per file.

    Args:
        job: What to run.
        jobs: Number of worker processes.
        import_paths: Folders to put on ``sys.path`` in the workers (the workload folder).
        progress: Called after each file with its outcome and the total number of files.
    """
    if jobs < 1:
        raise JobError(f"jobs {jobs} is not allowed; expected 1 or more")
    keys = job.inputs()
    job.check_outputs_distinct(keys)
    paths = list(import_paths)
    # Import once here too, so a bad function path fails before any worker starts.
    sys.path[:0] = [p for p in paths if p not in sys.path]
    job.processor()
    summary = Summary()

    def record(outcome: Outcome) -> None:
        summary.outcomes.append(outcome)
        if outcome.status in (Status.BAD_INPUT, Status.FAILED):
            _report(outcome, job)
        if progress is not None:
            progress(outcome, len(keys))

    context = concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, initializer=_start_worker, initargs=(job, paths)
    )
    with context as pool:
        try:
            for outcome in pool.map(_work, keys, chunksize=max(1, len(keys) // (jobs * 8))):
                record(outcome)
        except BrokenProcessPool:
            # A worker died without a Python exception (os._exit, a crash, the OOM killer):
            # the files not reported are failures; a rerun does them again.
            done = {outcome.key for outcome in summary.outcomes}
            for key in keys:
                if key not in done:
                    record(
                        Outcome(
                            key,
                            Status.FAILED,
                            message="a worker process died (os._exit, a crash or out of "
                            "memory) while this file was queued or running",
                        )
                    )
    return summary


def write_manifest(job: FileJob, manifest_url: str) -> int:
    """Freeze the current input listing into ``manifest_url``; returns the number of keys."""
    keys = job.inputs()
    folder, _, name = manifest_url.rpartition("/")
    open_storage(folder or ".").write_text(name, "".join(f"{key}\n" for key in keys))
    return len(keys)


def completion_index() -> int:
    """This pod's index from ``JOB_COMPLETION_INDEX`` (set by Kubernetes in Indexed Jobs).

    Raises:
        StorageError: The variable is missing or not an integer.
    """
    raw = os.environ.get("JOB_COMPLETION_INDEX")
    if raw is None or not raw.isdigit():
        raise JobError(
            f"JOB_COMPLETION_INDEX is {raw!r}; run inside an Indexed Job or pass --index"
        )
    return int(raw)
