"""The workstack that goes into images: where it comes from, what identifies it, its wheel.

How workstack was installed on the machine that generates a context decides what the image
gets. pip records it in the distribution's ``direct_url.json`` (PEP 610; the format is
https://packaging.python.org/en/latest/specifications/direct-url-data-structure/):

- ``dir_info`` (``pip install -e .`` or ``pip install .``): a *source tree*. The image gets a
  wheel built from that tree by its own build backend (PEP 517, ``pip wheel --no-deps``),
  from a copy of exactly the files that are hashed, so nothing is written into the tree.
- ``archive_info`` naming a ``.whl`` file that still exists: that wheel.
- no ``direct_url.json`` (installed from an index): ``workstack==<version>`` from the index,
  or from the wheelhouse in offline mode.

The image tag needs an identity of this workstack that is the same on every machine, which
the bytes of a built wheel are not (zip timestamps, the zlib build). :attr:`WorkstackSource.
fingerprint` is a hash of what goes into the wheel instead: for a source tree, every file of
the packages ``[tool.setuptools]`` lists (as the backend selects them: ``*.py``, ``*.pyi`` and
``package-data``), the license files, and the parts of ``pyproject.toml`` that shape the
wheel (``[build-system]``, ``[project]``, ``[tool.setuptools]``); for an installed wheel,
the files and hashes its ``RECORD`` lists. The project's README is the long description of the
metadata: the copy that is built gets a fixed one-line stand-in, so editing the README
changes no image.

Built wheels are cached by fingerprint (``~/.cache/workstack/wheels``): an unchanged
workstack is built once per machine, and every context gets the same bytes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from workstack.sdk.errors import WorkstackError

__all__ = [
    "DISTRIBUTION",
    "IMAGE_EXTRAS_EXCLUDED",
    "SourceError",
    "WorkstackSource",
    "default_wheel_cache",
    "find_source",
]

DISTRIBUTION = "workstack"
IMAGE_EXTRAS_EXCLUDED = ("deploy", "dev")
"""Extras that never go into a workload image: Pulumi and the test tools."""

_SCHEME = b"workstack-source-v1\0"
# Wheels are zips; their entries carry this date (1980-01-01, the zip epoch) rather than the
# build's time, so one machine builds the same bytes twice (bdist_wheel reads the variable).
_SOURCE_DATE_EPOCH = "315532800"
_README_STANDIN = "workstack: see the project's README.\n"
# setuptools' default license-files globs (PEP 639), used when the project names none.
_LICENSE_GLOBS = ("LICEN[CS]E*", "COPYING*", "NOTICE*", "AUTHORS*")
# Tables of pyproject.toml that change the wheel; [tool.ruff], [tool.pytest]... do not.
_WHEEL_TABLES = ("build-system", "project")
_INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")


class SourceError(WorkstackError, RuntimeError):
    """workstack's own install cannot be put into an image; the message says why and what to do."""


def default_wheel_cache() -> Path:
    """``$XDG_CACHE_HOME/workstack/wheels`` (``~/.cache/...`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "workstack" / "wheels"


@dataclass(frozen=True)
class WorkstackSource:
    """One workstack, as an image gets it.

    Attributes:
        kind: ``tree`` (built from a source tree), ``wheel`` (an installed wheel file) or
            ``index`` (``workstack==<version>`` from the package index).
        version: The version, normalised (PEP 440).
        fingerprint: Hash of the package files and the metadata that shape the wheel.
        location: The source tree or the wheel file; None for ``index``.
        provided_extras: The extras this workstack declares.
        requires: Its ``Requires-Dist`` lines (extras as ``extra == "..."`` markers).
    """

    kind: Literal["tree", "wheel", "index"]
    version: str
    fingerprint: str
    location: Path | None
    provided_extras: tuple[str, ...]
    requires: tuple[str, ...]
    # tree: the files the wheel is built from, as (relative path, bytes), read once.
    files: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)

    @property
    def wheel_name(self) -> str:
        """The wheel's file name; a source tree's is predicted, then checked after the build."""
        if self.kind == "wheel" and self.location is not None:
            return self.location.name
        return f"{DISTRIBUTION}-{self.version}-py3-none-any.whl"

    @property
    def requirement(self) -> str:
        """``workstack==<version>``: what an ``index`` image installs."""
        return f"{DISTRIBUTION}=={self.version}"

    def image_extras(self) -> tuple[str, ...]:
        """The extras an image may ask for: all but ``deploy`` and ``dev``."""
        return tuple(e for e in self.provided_extras if e not in IMAGE_EXTRAS_EXCLUDED)

    def runtime_requirements(self, extras: Iterable[str]) -> tuple[str, ...]:
        """Requirements of the core install plus ``extras``, markers evaluated and removed.

        Raises:
            SourceError: An extra this workstack does not provide, or one that never goes
                into an image; the message names it and the allowed ones.
        """
        wanted = tuple(dict.fromkeys(extras))
        allowed = self.image_extras()
        for extra in wanted:
            if extra not in allowed:
                raise SourceError(
                    f"extras: {extra!r} is not allowed; workstack {self.version} gives images "
                    f"these: {', '.join(allowed) or 'none'}"
                )
        return self._requirements_for(wanted, seen=set(wanted))

    def _requirements_for(self, extras: tuple[str, ...], seen: set[str]) -> tuple[str, ...]:
        selected: list[str] = []
        for line in self.requires:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({"extra": extra}) for extra in ("", *extras)
            ):
                continue
            requirement.marker = None
            if canonicalize_name(requirement.name) == DISTRIBUTION:
                # workstack[s3,gcs] inside an extra: expand it once.
                nested = tuple(sorted(requirement.extras - seen))
                seen.update(nested)
                selected.extend(self._requirements_for(nested, seen))
                continue
            selected.append(str(requirement))
        return tuple(dict.fromkeys(selected))

    def wheel(
        self,
        *,
        cache: Path | None = None,
        wheelhouse: Path | None = None,
        download: bool = True,
    ) -> Path | None:
        """The wheel an image installs; None for ``index`` online (the build fetches it).

        Args:
            cache: Where built wheels are kept, by fingerprint; default
                :func:`default_wheel_cache`.
            wheelhouse: Offline mode: the build backend (``[build-system] requires``) and an
                ``index`` workstack come from here, with no index; None is online.
            download: Offline mode: first fetch what is missing into the wheelhouse.

        Raises:
            SourceError: The build backend failed or a wheel is missing; pip's reason is in
                the message.
        """
        if self.kind == "wheel":
            assert self.location is not None
            return self.location
        if self.kind == "index":
            if wheelhouse is None:
                return None
            return _index_wheel(self, wheelhouse, download=download)
        target = (cache or default_wheel_cache()) / self.fingerprint / self.wheel_name
        if target.is_file():
            return target
        return _build_tree_wheel(self, target, wheelhouse=wheelhouse, download=download)


def _pip(args: list[str], *, hermetic: bool, what: str) -> None:
    env = dict(os.environ)
    if hermetic:
        env = {key: value for key, value in env.items() if not key.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["SOURCE_DATE_EPOCH"] = _SOURCE_DATE_EPOCH
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        errors = [line for line in detail if "ERROR" in line or "rror:" in line] or detail[-8:]
        raise SourceError(f"{what} failed:\n  " + "\n  ".join(errors))


def _build_tree_wheel(
    source: WorkstackSource, target: Path, *, wheelhouse: Path | None, download: bool
) -> Path:
    """Build the wheel with the tree's own backend from a copy of the hashed files."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workstack-wheel-") as scratch:
        tree = Path(scratch, "src")
        for relative, content in source.files:
            path = tree / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        out = Path(scratch, "out")
        options: list[str] = []
        if wheelhouse is not None:
            wheelhouse.mkdir(parents=True, exist_ok=True)
            if download:
                build_requires = _build_requires(source.files)
                if build_requires:
                    _pip(
                        [
                            "--wheel-dir",
                            str(wheelhouse),
                            "--find-links",
                            str(wheelhouse),
                            *build_requires,
                        ],
                        hermetic=False,
                        what="fetching workstack's build backend into the wheelhouse",
                    )
            options = ["--no-index", "--find-links", str(wheelhouse)]
        _pip(
            ["--no-deps", *options, "--wheel-dir", str(out), str(tree)],
            hermetic=wheelhouse is not None,
            what=f"building workstack's wheel from {source.location}",
        )
        built = sorted(out.glob("*.whl"))
        if [path.name for path in built] != [source.wheel_name]:
            raise SourceError(
                f"building workstack's wheel from {source.location} gave "
                f"{[path.name for path in built]}, expected {source.wheel_name}"
            )
        staged = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copyfile(built[0], staged)
        staged.replace(target)
    return target


def _build_requires(files: Iterable[tuple[str, bytes]]) -> list[str]:
    for relative, content in files:
        if relative == "pyproject.toml":
            build_system = tomllib.loads(content.decode()).get("build-system", {})
            return [str(r) for r in build_system.get("requires", [])]
    return []


def _index_wheel(source: WorkstackSource, wheelhouse: Path, *, download: bool) -> Path:
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pattern = f"{DISTRIBUTION}-{source.version}-*.whl"
    if download and not list(wheelhouse.glob(pattern)):
        _pip(
            ["--no-deps", "--wheel-dir", str(wheelhouse), source.requirement],
            hermetic=False,
            what=f"fetching {source.requirement} into the wheelhouse",
        )
    found = sorted(wheelhouse.glob(pattern))
    if not found:
        raise SourceError(
            f"{source.requirement} is not in the wheelhouse {wheelhouse}; "
            "fetch it there, or generate the context once without --no-download"
        )
    return found[0]


def _distribution() -> importlib.metadata.Distribution:
    """The installed workstack; a .dist-info (with a WHEEL file) before a stray .egg-info."""
    found = list(importlib.metadata.distributions(name=DISTRIBUTION))
    if not found:
        raise SourceError("workstack is not installed (no distribution metadata found)")
    for dist in found:
        if dist.read_text("WHEEL") is not None:
            return dist
    return found[0]


def find_source(distribution: importlib.metadata.Distribution | None = None) -> WorkstackSource:
    """How the running workstack (or ``distribution``) goes into images.

    Raises:
        SourceError: The install points at a source tree or wheel that is gone, or was made
            from version control or an sdist, which images cannot reproduce.
    """
    dist = distribution or _distribution()
    raw = dist.read_text("direct_url.json")
    if raw is None:
        return _installed(dist, "index", None)
    direct = json.loads(raw)
    url = str(direct.get("url", ""))
    parsed = urlparse(url)
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else None
    if "dir_info" in direct and path is not None:
        return _tree(path)
    if "archive_info" in direct and path is not None and path.suffix == ".whl":
        if path.is_file():
            return _installed(dist, "wheel", path)
        raise SourceError(
            f"workstack was installed from {path}, which is gone; images install that wheel: "
            "put it back, or reinstall workstack from a source tree or an index"
        )
    raise SourceError(
        f"workstack was installed from {url or 'an unknown place'}; images can be made only "
        "from a source tree (pip install [-e] DIR), a wheel file, or a package index"
    )


def _installed(
    dist: importlib.metadata.Distribution, kind: Literal["wheel", "index"], wheel: Path | None
) -> WorkstackSource:
    """Identify an installed wheel by the files and hashes its RECORD lists."""
    digest = hashlib.sha256(_SCHEME + kind.encode() + b"\0")
    record = dist.read_text("RECORD") or ""
    lines = []
    for line in record.splitlines():
        path, _, rest = line.partition(",")
        hashed = rest.split(",", 1)[0]
        name = path.rsplit("/", 1)[-1]
        # Installer-made files (scripts in ../bin, bytecode, pip's own records) differ
        # between installs of the same wheel.
        if not hashed or path.startswith("..") or "__pycache__" in path:
            continue
        if ".dist-info/" in path and name in _INSTALLER_FILES:
            continue
        lines.append(f"{path},{hashed}")
    for line in sorted(lines):
        digest.update(line.encode() + b"\n")
    metadata = dist.metadata
    return WorkstackSource(
        kind=kind,
        version=str(Version(dist.version)),
        fingerprint=digest.hexdigest(),
        location=wheel,
        provided_extras=tuple(metadata.get_all("Provides-Extra") or ()),
        requires=tuple(dist.requires or ()),
    )


def _tree(root: Path) -> WorkstackSource:
    pyproject_path = root / "pyproject.toml"
    if not pyproject_path.is_file():
        raise SourceError(
            f"workstack was installed from {root}, which holds no pyproject.toml any more; "
            "reinstall workstack (pip install -e DIR) from its source tree"
        )
    raw = pyproject_path.read_bytes()
    pyproject = tomllib.loads(raw.decode())
    project: dict[str, Any] = pyproject.get("project", {})
    if canonicalize_name(str(project.get("name", ""))) != DISTRIBUTION:
        raise SourceError(
            f"{pyproject_path}: [project] name is {project.get('name')!r}, not workstack; "
            "reinstall workstack from its source tree"
        )
    dynamic = project.get("dynamic", [])
    if dynamic:
        raise SourceError(
            f"{pyproject_path}: [project] dynamic: {dynamic!r} is not allowed; images hash "
            "static metadata, so declare version, dependencies and extras in [project]"
        )
    try:
        version = str(Version(str(project.get("version"))))
    except InvalidVersion:
        raise SourceError(
            f"{pyproject_path}: [project] version: {project.get('version')!r} is not allowed; "
            "a PEP 440 version"
        ) from None
    setuptools = pyproject.get("tool", {}).get("setuptools", {})
    files: list[tuple[str, bytes]] = [("pyproject.toml", raw)]
    files += _readme_standin(project)
    files += _license_files(root, project, setuptools)
    files += _package_files(root, setuptools)
    files.sort()

    digest = hashlib.sha256(_SCHEME + b"tree\0")
    shaping = {table: pyproject.get(table, {}) for table in _WHEEL_TABLES}
    shaping["tool.setuptools"] = setuptools
    digest.update(json.dumps(shaping, sort_keys=True, separators=(",", ":")).encode() + b"\0")
    for relative, content in files:
        if relative == "pyproject.toml":
            continue  # hashed above, by the tables that shape the wheel
        digest.update(f"file\0{relative}\0{len(content)}\0".encode())
        digest.update(content)

    optional: Mapping[str, list[str]] = project.get("optional-dependencies", {})
    requires = [str(r) for r in project.get("dependencies", [])]
    for extra, lines in optional.items():
        for line in lines:
            requirement = Requirement(line)
            condition = f'extra == "{extra}"'
            if requirement.marker is not None:
                condition = f"({requirement.marker}) and {condition}"
            requirement.marker = None
            requires.append(f"{requirement}; {condition}")
    return WorkstackSource(
        kind="tree",
        version=version,
        fingerprint=digest.hexdigest(),
        location=root,
        provided_extras=tuple(optional),
        requires=tuple(requires),
        files=tuple(files),
    )


def _readme_standin(project: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    readme = project.get("readme")
    name = readme.get("file") if isinstance(readme, dict) else readme
    return [(str(name), _README_STANDIN.encode())] if isinstance(name, str) else []


def _license_files(
    root: Path, project: Mapping[str, Any], setuptools: Mapping[str, Any]
) -> list[tuple[str, bytes]]:
    globs = project.get("license-files") or setuptools.get("license-files") or _LICENSE_GLOBS
    found: dict[str, bytes] = {}
    for pattern in globs:
        for path in sorted(root.glob(pattern)):
            if path.is_file():
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return sorted(found.items())


def _package_folders(root: Path, setuptools: Mapping[str, Any]) -> dict[str, Path]:
    """Each listed package and its folder, resolved the way setuptools resolves package-dir."""
    mapping: Mapping[str, str] = setuptools.get("package-dir", {})
    packages = setuptools.get("packages")
    if not isinstance(packages, list):
        raise SourceError(
            f"{root / 'pyproject.toml'}: [tool.setuptools] packages: {packages!r} is not "
            "allowed; an explicit list of packages (images hash exactly those)"
        )
    folders: dict[str, Path] = {}
    for package in packages:
        parts = str(package).split(".")
        for cut in range(len(parts), -1, -1):
            prefix = ".".join(parts[:cut])
            if prefix in mapping:
                folders[package] = root.joinpath(mapping[prefix], *parts[cut:])
                break
        else:
            folders[package] = root.joinpath(*parts)
    return folders


def _package_files(root: Path, setuptools: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """The files the backend puts into the wheel: modules and the declared package data."""
    data: Mapping[str, list[str]] = setuptools.get("package-data", {})
    files: list[tuple[str, bytes]] = []
    for package, folder in sorted(_package_folders(root, setuptools).items()):
        if not (folder / "__init__.py").is_file():
            raise SourceError(f"{folder}: package {package} has no __init__.py")
        patterns = [*data.get("", []), *data.get("*", []), *data.get(package, [])]
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            name = path.name
            if path.suffix in (".py", ".pyi") or any(fnmatch.fnmatch(name, p) for p in patterns):
                files.append((path.relative_to(root).as_posix(), path.read_bytes()))
    return files
