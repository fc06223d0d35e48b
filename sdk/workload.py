"""Workload folders: read and check ``workload.yaml`` and the workload's dependencies.

A workload is a folder of Python code with a ``workload.yaml`` that says what it is (see
docs/workloads.md)::

    name: csv-clean                 # DNS-1123 label
    pattern: job-per-file           # job-per-file | queue-workers | dask | pipeline | command
    entrypoint: csv_clean:process   # module:callable, imported with the folder on sys.path
    extras: []                      # workstack runtime extras: queue, dask, s3, gcs

or, for a script with a command line, ``command: python -m clc.preprocess {input} --out
{output}`` instead of ``entrypoint`` (job-per-file and command workloads); a pipeline's
entrypoint may also be a Ploomber ``pipeline.yaml`` in the folder.

and its dependencies in ``requirements.txt`` or, failing that, the ``[project] dependencies``
of a ``pyproject.toml``. :func:`load_workload` checks all of it before anything is built or
run: an unknown key, a bad value or a requirement that does not parse is a
:class:`WorkloadError` naming the file, the key (or line) and what is allowed.

This module is used in images at runtime (the in-pod entrypoint reads ``workload.yaml``), so it
needs only the core install.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from workstack.sdk.errors import WorkstackError

__all__ = [
    "COMMAND_PATTERNS",
    "EXTRAS",
    "PATTERNS",
    "PLACEHOLDERS",
    "WORKLOAD_FILE",
    "Workload",
    "WorkloadError",
    "WorkloadSpec",
    "load_entrypoint",
    "load_workload",
    "parse_requirements",
]

WORKLOAD_FILE = "workload.yaml"
PATTERNS = ("job-per-file", "queue-workers", "dask", "pipeline", "command")
COMMAND_PATTERNS = ("job-per-file", "command")
"""Patterns whose workload may be a command line instead of a ``module:callable``."""
PLACEHOLDERS = {
    "job-per-file": ("input", "output", "output_dir"),
    "command": ("inputs", "outputs"),
}
"""The placeholders a ``command`` may use, per pattern."""
EXTRAS = ("queue", "dask", "s3", "gcs")
REQUIREMENTS_FILE = "requirements.txt"
PYPROJECT_FILE = "pyproject.toml"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_ENTRYPOINT = re.compile(rf"^(?P<module>{_DOTTED}):(?P<attribute>{_DOTTED})$")
_SPEC_SUFFIXES = (".yaml", ".yml")
# pip's rule: '#' starts a comment at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s*=\s*|\s+)(?P<path>\S+)$")
_KEYS = ("name", "pattern", "entrypoint", "command", "extras")
_RUNTIME = "workstack"


def _show(value: object) -> str:
    """A value as written in workload.yaml: lists as ``['a', 'b']``, shortened when long."""
    text = (
        "[" + ", ".join(_show(v) for v in value) + "]"
        if isinstance(value, tuple | list)
        else repr(value)
    )
    return text if len(text) <= 200 else f"{text[:180]}... ({len(text)} characters)"


class WorkloadError(WorkstackError, ValueError):
    """A workload folder is not usable; the message names the file, the key and what is allowed.

    Attributes:
        key: The key of ``workload.yaml`` (or ``file:line`` of a requirement) that is wrong.
        value: The rejected value; None when it is missing.
        allowed: What is allowed, phrased for the user.
        source: The file (or folder) the problem is in, when known.
    """

    def __init__(self, key: str, value: object, allowed: str, source: Path | None = None) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.source = source
        shown = "(missing)" if value is None else _show(value)
        where = f"{source}: " if source is not None else ""
        super().__init__(f"{where}{key}: {shown} is not allowed; {allowed}")


@dataclass(kw_only=True, frozen=True)
class WorkloadSpec:
    """What ``workload.yaml`` declares.

    Attributes:
        name: DNS-1123 label; names the image and the Kubernetes objects.
        pattern: How the workload runs: ``job-per-file``, ``queue-workers``, ``dask``,
            ``pipeline`` or ``command``.
        entrypoint: ``module:callable``, imported with the workload folder on ``sys.path``;
            for a pipeline, also a Ploomber ``pipeline.yaml`` in the folder. Empty when the
            workload is a ``command``.
        command: A command line run with ``/bin/sh`` in the workload folder, instead of an
            entrypoint (job-per-file: ``{input}`` and ``{output}`` or ``{output_dir}``;
            command: ``{inputs}`` and ``{outputs}``, both optional).
        extras: workstack runtime extras the image installs (``queue``, ``dask``, ``s3``,
            ``gcs``), in the order given, without repeats.
    """

    name: str
    pattern: str
    entrypoint: str = ""
    command: str | None = None
    extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not _DNS1123_LABEL.match(self.name)
            or len(self.name) > 63
        ):
            raise WorkloadError(
                "name",
                self.name,
                "expected a DNS-1123 label: at most 63 characters of a-z, 0-9 and '-', "
                "starting and ending with a letter or digit",
            )
        if self.pattern not in PATTERNS:
            raise WorkloadError("pattern", self.pattern, "allowed: " + ", ".join(PATTERNS))
        self._check_entrypoint()
        if not isinstance(self.extras, tuple | list):
            raise WorkloadError("extras", self.extras, "expected a list of: " + ", ".join(EXTRAS))
        for extra in self.extras:
            if extra not in EXTRAS:
                raise WorkloadError("extras", extra, "allowed: " + ", ".join(EXTRAS))
        if len(set(self.extras)) != len(self.extras):
            raise WorkloadError("extras", list(self.extras), "list each extra once")
        object.__setattr__(self, "extras", tuple(self.extras))

    def _check_entrypoint(self) -> None:
        given_command = self.command is not None
        given_entrypoint = self.entrypoint not in ("", None)
        if given_command and self.pattern not in COMMAND_PATTERNS:
            raise WorkloadError(
                "command",
                self.command,
                f"a {self.pattern} workload needs an entrypoint (module:callable); command is "
                "for " + " and ".join(COMMAND_PATTERNS) + " workloads",
            )
        if given_command and given_entrypoint:
            raise WorkloadError("command", self.command, "give entrypoint or command, not both")
        if self.pattern == "command" and not given_command:
            raise WorkloadError(
                "command",
                None,
                "required for a command workload, e.g. 'python train.py --data {inputs} "
                "--out {outputs}'",
            )
        if given_command:
            _check_command(self.pattern, self.command)
            return
        if not given_entrypoint:
            allowed = "required: module:callable, such as csv_clean:process"
            if self.pattern == "job-per-file":
                allowed += ", or a command instead ('python -m pkg.script {input} --out {output}')"
            raise WorkloadError("entrypoint", None, allowed)
        if (
            self.pattern == "pipeline"
            and isinstance(self.entrypoint, str)
            and self.entrypoint.endswith(_SPEC_SUFFIXES)
        ):
            parts = Path(self.entrypoint).parts
            if Path(self.entrypoint).is_absolute() or ".." in parts:
                raise WorkloadError(
                    "entrypoint",
                    self.entrypoint,
                    "a pipeline spec must be a path inside the workload folder, such as "
                    "pipeline.yaml",
                )
            return
        if not isinstance(self.entrypoint, str) or not _ENTRYPOINT.match(self.entrypoint):
            allowed = "expected module:callable, such as csv_clean:process"
            if self.pattern == "pipeline":
                allowed += ", or a Ploomber pipeline.yaml in the workload folder"
            raise WorkloadError("entrypoint", self.entrypoint, allowed)

    @property
    def is_command(self) -> bool:
        """Whether the workload is a command line rather than a ``module:callable``."""
        return self.command is not None

    @property
    def is_pipeline_spec(self) -> bool:
        """Whether the entrypoint is a Ploomber ``pipeline.yaml`` rather than a builder."""
        return self.pattern == "pipeline" and self.entrypoint.endswith(_SPEC_SUFFIXES)

    @property
    def module(self) -> str:
        """The entrypoint's module, e.g. ``csv_clean``."""
        return self.entrypoint.split(":", 1)[0]

    @property
    def attribute(self) -> str:
        """The entrypoint's callable within its module, e.g. ``process``."""
        return self.entrypoint.split(":", 1)[1]


@dataclass(frozen=True)
class Workload:
    """A checked workload folder.

    Attributes:
        folder: The folder, absolute.
        spec: What ``workload.yaml`` declares.
        dependency_file: ``requirements.txt`` or ``pyproject.toml``; None when the workload
            has neither (it needs only the standard library and workstack).
        requirements: The workload's requirements in file order, each a normalised PEP 508
            string (``pandas>=2.1``).
    """

    folder: Path
    spec: WorkloadSpec
    dependency_file: Path | None
    requirements: tuple[str, ...]


def load_workload(folder: str | Path) -> Workload:
    """Read and check a workload folder.

    Args:
        folder: The workload folder (holding ``workload.yaml``).

    Raises:
        WorkloadError: The folder or ``workload.yaml`` is missing, a key is unknown or has a
            value that is not allowed, the entrypoint's module is not in the folder, or a
            requirement does not parse. Nothing has been built or run.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise WorkloadError(
            "folder", str(folder), "expected an existing folder holding workload.yaml"
        )
    root = root.resolve()
    spec = _read_spec(root / WORKLOAD_FILE)
    _check_module_exists(root, spec)
    dependency_file, requirements = _read_dependencies(root)
    return Workload(
        folder=root, spec=spec, dependency_file=dependency_file, requirements=requirements
    )


def _read_spec(path: Path) -> WorkloadSpec:
    if not path.is_file():
        raise WorkloadError(
            WORKLOAD_FILE, None, "every workload folder needs one (see docs/workloads.md)", path
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise WorkloadError(
            WORKLOAD_FILE, None, f"expected valid YAML ({_first_line(error)})", path
        ) from error
    if not isinstance(document, dict):
        raise WorkloadError(
            WORKLOAD_FILE, document, "expected a mapping of " + ", ".join(_KEYS), path
        )
    for key in document:
        if key not in _KEYS:
            raise WorkloadError(str(key), document[key], "allowed keys: " + ", ".join(_KEYS), path)
    for key in ("name", "pattern"):
        if document.get(key) is None:
            raise WorkloadError(key, None, "required", path)
    extras = document.get("extras")
    entrypoint = document.get("entrypoint")
    try:
        return WorkloadSpec(
            name=document["name"],
            pattern=document["pattern"],
            entrypoint="" if entrypoint is None else entrypoint,
            command=document.get("command"),
            extras=() if extras is None else extras,
        )
    except WorkloadError as error:
        raise WorkloadError(error.key, error.value, error.allowed, path) from None


def _check_command(pattern: str, command: object) -> None:
    from workstack.sdk.commands import CommandError, check_template

    allowed = PLACEHOLDERS[pattern]
    try:
        if pattern == "job-per-file":
            check_template(
                command,
                key="command",
                allowed=allowed,
                required=("input",),
                one_of=("output", "output_dir"),
            )
        else:
            check_template(command, key="command", allowed=allowed)
    except CommandError as error:
        raise WorkloadError("command", command, error.rule) from None


def _check_module_exists(root: Path, spec: WorkloadSpec) -> None:
    if spec.is_command:
        return
    if spec.is_pipeline_spec:
        if not (root / spec.entrypoint).is_file():
            raise WorkloadError(
                "entrypoint",
                spec.entrypoint,
                f"no such file in the workload folder ({root / spec.entrypoint})",
                root / WORKLOAD_FILE,
            )
        return
    relative = Path(*spec.module.split("."))
    candidates = (root / f"{relative}.py", root / relative / "__init__.py")
    # A folder without __init__.py is a namespace package; that imports too.
    if not any(path.is_file() for path in candidates) and not (root / relative).is_dir():
        raise WorkloadError(
            "entrypoint",
            spec.entrypoint,
            f"module {spec.module} is not in the workload folder "
            f"(expected {relative}.py or {relative}/__init__.py)",
            root / WORKLOAD_FILE,
        )


def _read_dependencies(root: Path) -> tuple[Path | None, tuple[str, ...]]:
    requirements_file = root / REQUIREMENTS_FILE
    if requirements_file.is_file():
        return requirements_file, _requirements_file(requirements_file, root, ())
    pyproject = root / PYPROJECT_FILE
    if pyproject.is_file():
        return pyproject, _pyproject_dependencies(pyproject)
    return None, ()


def parse_requirements(text: str, source: Path) -> tuple[str, ...]:
    """Parse requirements-file text whose lines are PEP 508 requirements.

    Comments (``#`` at the start of a line or after whitespace), blank lines and
    backslash line continuations are handled as pip handles them. Any pip option,
    ``-r`` included, is rejected here (:func:`load_workload` follows ``-r`` includes of files
    in the workload folder); index and install options belong to the image build.

    Returns:
        The requirements, normalised (``Pandas >= 2.1`` becomes ``Pandas>=2.1``).

    Raises:
        WorkloadError: Naming ``file:line`` of the first line that is not allowed.
    """
    return tuple(
        _requirement(line, f"{source.name}:{number}", source)
        for number, line in _logical_lines(text)
    )


def _requirements_file(path: Path, root: Path, seen: tuple[Path, ...]) -> tuple[str, ...]:
    """Read a requirements file, following ``-r`` includes that stay inside the folder."""
    resolved = path.resolve()
    if resolved in seen:
        raise WorkloadError("-r", path.name, "includes must not form a cycle", seen[-1])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise WorkloadError(path.name, None, "expected UTF-8 text", path) from error
    requirements: list[str] = []
    for number, line in _logical_lines(text):
        include = _INCLUDE.match(line)
        if include is None:
            requirements.append(_requirement(line, f"{path.name}:{number}", path))
            continue
        target = (path.parent / include["path"]).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise WorkloadError(
                f"{path.name}:{number}",
                line,
                "-r must name a requirements file inside the workload folder",
                path,
            )
        requirements.extend(_requirements_file(target, root, (*seen, resolved)))
    return tuple(requirements)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(first line number, line)`` with comments stripped and continuations joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = _COMMENT.sub("", raw).rstrip()
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = " ".join(part.strip() for part in pending).strip()
        pending = []
        if joined:
            yield start, joined
    if pending:
        joined = " ".join(part.strip() for part in pending).strip()
        if joined:
            yield start, joined


def _requirement(line: str, key: str, source: Path) -> str:
    if line.startswith("-") or " --" in line:
        raise WorkloadError(
            key,
            line,
            "pip options are not supported; list one requirement per line "
            "(-r includes of files in the workload folder are allowed)",
            source,
        )
    try:
        requirement = Requirement(line)
    except InvalidRequirement as error:
        raise WorkloadError(
            key,
            line,
            f"expected a PEP 508 requirement such as 'pandas>=2.1' ({_first_line(error)})",
            source,
        ) from None
    if canonicalize_name(requirement.name) == _RUNTIME:
        raise WorkloadError(
            key,
            line,
            "workstack is installed in every image; ask for its extras in workload.yaml",
            source,
        )
    if requirement.url is not None and requirement.url.startswith("file:"):
        raise WorkloadError(
            key,
            line,
            "local paths do not exist where the image is built; put the code in the "
            "workload folder or publish the package",
            source,
        )
    return str(requirement)


def _pyproject_dependencies(path: Path) -> tuple[str, ...]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise WorkloadError(
            PYPROJECT_FILE, None, f"expected valid TOML ({_first_line(error)})", path
        ) from error
    project: Any = document.get("project", {})
    if not isinstance(project, dict):
        raise WorkloadError("project", project, "expected a [project] table", path)
    if "dependencies" in project.get("dynamic", []):
        raise WorkloadError(
            "project.dynamic",
            project["dynamic"],
            "dependencies must be listed in [project] dependencies, not dynamic",
            path,
        )
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise WorkloadError(
            "project.dependencies", dependencies, "expected a list of requirement strings", path
        )
    return tuple(
        _requirement(dependency, f"project.dependencies[{index}]", path)
        for index, dependency in enumerate(dependencies)
    )


def load_entrypoint(workload: Workload) -> Callable[..., Any]:
    """Import the workload's entrypoint callable, with the workload folder on ``sys.path``.

    For a Ploomber ``pipeline.yaml`` it is the callable that reads it into a Pipeline.

    Raises:
        WorkloadError: The attribute is missing or is not callable, or the workload is a
            command (it has no callable: its command line is run).
        ImportError: The module (or one of its imports) cannot be imported.
    """
    if workload.spec.is_command:
        raise WorkloadError(
            "entrypoint",
            None,
            f"{workload.spec.name} is a command workload: its command is run, not imported",
            workload.folder / WORKLOAD_FILE,
        )
    if workload.spec.is_pipeline_spec:
        import functools

        from workstack.sdk.pipeline import load_pipeline

        return functools.partial(load_pipeline, workload.spec.entrypoint, folder=workload.folder)
    folder = str(workload.folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from workstack.sdk.callables import CallableError, import_workload_module

    try:
        target: Any = import_workload_module(workload.spec.module)
    except CallableError as error:
        raise WorkloadError(
            "entrypoint", workload.spec.entrypoint, str(error), workload.folder / WORKLOAD_FILE
        ) from None
    for part in workload.spec.attribute.split("."):
        if not hasattr(target, part):
            raise WorkloadError(
                "entrypoint",
                workload.spec.entrypoint,
                f"module {workload.spec.module} has no attribute {workload.spec.attribute}",
                workload.folder / WORKLOAD_FILE,
            )
        target = getattr(target, part)
    if not callable(target):
        raise WorkloadError(
            "entrypoint",
            workload.spec.entrypoint,
            "expected a callable (a function or class)",
            workload.folder / WORKLOAD_FILE,
        )
    return target  # type: ignore[no-any-return]


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
