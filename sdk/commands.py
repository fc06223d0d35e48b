"""Command templates: a workload's own command line, with workstack's placeholders filled in.

A workload whose code is a script (``python -m clc.preprocess FILE --out OUT``) declares a
``command`` in ``workload.yaml`` instead of a ``module:function`` entrypoint. workstack fills in
its placeholders (``{input}``, ``{output}``, ``{output_dir}``, ``{inputs}``, ``{outputs}``,
each shell-quoted) and runs it with ``/bin/sh -c``, as a pod runs it: in the workload's folder
(``/app`` in the image), with the workload's interpreter first on ``PATH``, so ``python`` is the
one that has the workload's dependencies.

Exit status: 0 is success; :data:`EXIT_BAD_INPUT` (65, ``EX_DATAERR``) is a malformed input;
anything else is a failure.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from workstack.sdk.errors import WorkstackError

__all__ = [
    "EXIT_BAD_INPUT",
    "ONCE_PLACEHOLDERS",
    "CommandError",
    "CommandResult",
    "OnceResult",
    "OnceRun",
    "check_template",
    "command_env",
    "placeholders",
    "render",
    "run_command",
    "run_once",
]

EXIT_BAD_INPUT = 65
"""A command's exit status for a malformed input (``EX_DATAERR`` in sysexits.h)."""

# ``{name}``, but not ``${name}`` (a shell variable) and not ``{{name}}`` (an escaped brace).
_PLACEHOLDER = re.compile(r"(?<![$\{])\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
_TAIL = 2000


class CommandError(WorkstackError, ValueError):
    """A command template is not usable; the message names the key, the value and what fits.

    Attributes:
        key: Where the template was given (``command``, ``--command``).
        value: The template.
        rule: What is allowed, phrased for the user.
    """

    def __init__(self, key: str, value: object, rule: str) -> None:
        self.key, self.value, self.rule = key, value, rule
        super().__init__(f"{key}: {value!r} is not allowed; {rule}")


@dataclass(frozen=True)
class CommandResult:
    """How a command ended.

    Attributes:
        returncode: Its exit status (negative: killed by that signal).
        output: The last part of what it printed (stdout and stderr, interleaved).
    """

    returncode: int
    output: str


def placeholders(template: str) -> set[str]:
    """The placeholder names in ``template`` (``{input}`` gives ``input``)."""
    return set(_PLACEHOLDER.findall(template))


def check_template(
    template: object,
    *,
    key: str,
    allowed: Collection[str],
    required: Collection[str] = (),
    one_of: Collection[str] = (),
) -> str:
    """Check a command template before anything runs.

    Args:
        template: The value given (from workload.yaml or a command-line option).
        key: What it was given as, for the message (``command``, ``--command``).
        allowed: Placeholder names it may use.
        required: Placeholder names it must use.
        one_of: It must use exactly one of these.

    Returns:
        The template.

    Raises:
        CommandError: Not a non-empty string, an unknown placeholder, or a required one missing.
    """
    shown = ", ".join(f"{{{name}}}" for name in allowed)
    if not isinstance(template, str) or not template.strip():
        raise CommandError(
            key, template, "expected a command line such as 'python -m pkg.script {input}'"
        )
    used = placeholders(template)
    unknown = sorted(used - set(allowed))
    if unknown:
        raise CommandError(
            key,
            template,
            f"{{{unknown[0]}}} is not a placeholder; allowed: {shown} (write ${{name}} for a "
            "shell variable)",
        )
    for name in required:
        if name not in used:
            raise CommandError(key, template, f"it must contain {{{name}}}")
    if one_of and len(used & set(one_of)) != 1:
        choices = " or ".join(f"{{{name}}}" for name in one_of)
        raise CommandError(
            key,
            template,
            f"it must contain exactly one of {choices}: {{output}} is the one file to write, "
            "{output_dir} an empty folder for a script that names its own outputs",
        )
    return template


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each placeholder replaced by its value, shell-quoted."""

    def replace(match: re.Match[str]) -> str:
        return shlex.quote(values[match.group(1)])

    return _PLACEHOLDER.sub(replace, template)


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment with the running interpreter's folder first on ``PATH``.

    In an image that is ``/opt/venv/bin`` (already first); locally it is the virtualenv that
    runs workstack, which has the workload's dependencies, rather than the system Python.
    """
    env = dict(os.environ)
    interpreter = str(Path(sys.executable).parent)
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != interpreter]
    env["PATH"] = os.pathsep.join([interpreter, *rest])
    env.update(extra or {})
    return env


def run_command(
    line: str,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stream: bool = False,
) -> CommandResult:
    """Run ``line`` with ``/bin/sh -c`` in ``cwd``, with :func:`command_env`.

    Args:
        line: The rendered command line (the workload author's own, run as typed).
        cwd: Working directory; the workload folder (``/app`` in images).
        env: Extra environment variables.
        stream: Let the command print straight to this process's stdout and stderr (one long
            command, e.g. an experiment) instead of keeping the tail of its output (many short
            ones, whose output would interleave).
    """
    if stream:
        # The author's own command line, run as typed.
        streamed = subprocess.run(line, shell=True, cwd=cwd, env=command_env(env), check=False)
        return CommandResult(streamed.returncode, "")
    completed = subprocess.run(
        line,
        shell=True,
        cwd=cwd,
        env=command_env(env),
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    return CommandResult(completed.returncode, completed.stdout.strip()[-_TAIL:])


# --- the command pattern: one command, run once, its output folder published whole ---------

ONCE_PLACEHOLDERS = ("inputs", "outputs")
"""What a command workload's command may use: its input folder and its output folder."""


@dataclass(kw_only=True, frozen=True)
class OnceRun:
    """One run of a command workload.

    Attributes:
        command: The command template (``{inputs}``, ``{outputs}``, both optional).
        outputs_url: The output folder (a path, NFS path, ``s3://`` or ``gs://`` URL); the
            command writes into an empty staging folder that is published here whole when it
            exits 0.
        inputs_url: The input folder; a bucket prefix is downloaded first. None: no inputs.
        workdir: Where the command runs: the workload folder (``/app`` in images, the
            working directory there).
        force: Run even if the output folder already holds a finished run's outputs (which
            are then replaced).
    """

    command: str
    outputs_url: str
    inputs_url: str | None = None
    workdir: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        check_template(self.command, key="command", allowed=ONCE_PLACEHOLDERS)
        if "{inputs}" in self.command and self.inputs_url is None:
            raise CommandError(
                "command", self.command, "it uses {inputs}, so an input folder must be given"
            )


@dataclass(frozen=True)
class OnceResult:
    """How a command run ended.

    Attributes:
        status: ``done``, ``skipped`` (outputs already there), ``bad-input`` or ``failed``.
        exit_code: 0 (done, skipped), 65 (bad input) or the command's own failure status.
        message: One line for people.
    """

    status: str
    exit_code: int
    message: str


class _UnpublishedError(Exception):
    """Leaves the staging block without publishing anything, with the run's result."""

    def __init__(self, result: OnceResult) -> None:
        super().__init__(result.message)
        self.result = result


def run_once(run: OnceRun) -> OnceResult:
    """Run a command workload's command once (what its pod, or ``workstack run``, does).

    Raises:
        CommandError: The command template does not fit.
        StorageError: A location is not usable (bad URL, no folder above the outputs, no
            such input folder).
    """
    import contextlib
    import tempfile

    from workstack.sdk.storage import StorageError, normalize_url, open_storage

    outputs = normalize_url(run.outputs_url)
    parent, _, name = outputs.rpartition("/")
    if not name or parent in ("", "s3:/", "gs:/"):
        raise StorageError(
            f"outputs {run.outputs_url!r} is not allowed; expected a folder inside a folder or "
            "bucket, such as /data/experiment/outputs or s3://bucket/experiment/outputs"
        )
    if run.inputs_url is not None:
        inputs = normalize_url(run.inputs_url)
        if outputs == inputs or outputs.startswith(inputs + "/"):
            raise StorageError(
                f"outputs {run.outputs_url!r} is, or lies inside, the inputs "
                f"{run.inputs_url!r}: give a separate folder"
            )
        if inputs.startswith(outputs + "/"):
            raise StorageError(
                f"outputs {run.outputs_url!r} holds the inputs {run.inputs_url!r}; publishing "
                "the outputs would replace them: give a separate folder"
            )
    storage = open_storage(parent)
    if storage.has(name) and not run.force:
        return OnceResult(
            "skipped",
            0,
            f"outputs of an earlier run are at {outputs}; pass --force to run again and "
            "replace them",
        )
    with contextlib.ExitStack() as stack:
        values = {}
        if run.inputs_url is not None:
            source = open_storage(run.inputs_url)
            if source.protocol == "file":
                if not Path(source.url).is_dir():
                    raise StorageError(f"inputs {run.inputs_url!r} is not allowed; no such folder")
                values["inputs"] = source.url
            else:
                local = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                for key in source.list():
                    with source.fetched(key) as fetched:
                        (local / key).parent.mkdir(parents=True, exist_ok=True)
                        (local / key).write_bytes(fetched.read_bytes())
                values["inputs"] = str(local)
        try:
            with storage.staged(name, folder=True) as staging:
                values["outputs"] = str(staging)
                extra = {f"WORKSTACK_{key.upper()}": value for key, value in values.items()}
                result = run_command(
                    render(run.command, values),
                    cwd=Path(run.workdir) if run.workdir else None,
                    env=extra,
                    stream=True,
                )
                if result.returncode != 0:
                    code = result.returncode if result.returncode > 0 else 128 - result.returncode
                    status = "bad-input" if code == EXIT_BAD_INPUT else "failed"
                    message = f"command exited {code}; no outputs were published"
                    raise _UnpublishedError(OnceResult(status, code, message))
                if not any(p.is_file() for p in staging.rglob("*")):
                    message = "command succeeded and wrote nothing to its outputs folder"
                    raise _UnpublishedError(OnceResult("done", 0, message))
        except _UnpublishedError as unpublished:
            return unpublished.result
    return OnceResult("done", 0, f"outputs published to {outputs}")
