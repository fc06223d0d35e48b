"""A reproducible wheel of the workstack that is running, for the image's runtime layer.

The image gets exactly the workstack code the deployer runs, packed the same way every time:
the files of the installed ``workstack`` package (a regular install, or the strict editable
install ``make setup`` makes) and its installed metadata, in a zip whose entries are sorted,
dated 1980-01-01 (the zip epoch), ``0644`` and stored uncompressed. Uncompressed because
deflate output depends on the zlib build (zlib-ng differs from zlib), and the wheel's bytes
feed the image tag, which must be the same on every machine. No build backend runs, so this
takes milliseconds and needs no network.

The metadata's long description (the README) is dropped: it does not belong in an image, and
editing the README should not change every image tag.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import workstack

__all__ = [
    "DISTRIBUTION",
    "WheelError",
    "build_workstack_wheel",
    "provided_extras",
    "runtime_requirements",
]

DISTRIBUTION = "workstack"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16  # regular file, rw-r--r--
_SKIPPED_PARTS = {"__pycache__"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}
_DROPPED_HEADERS = {"description", "description-content-type"}


class WheelError(RuntimeError):
    """The running workstack cannot be packed (an install layout this module cannot read)."""


def _distribution() -> importlib.metadata.Distribution:
    """The installed workstack's metadata.

    A .dist-info (it has a WHEEL file) is preferred over an .egg-info that a source checkout
    may leave on ``sys.path``.
    """
    found = list(importlib.metadata.distributions(name=DISTRIBUTION))
    if not found:
        raise WheelError("workstack is not installed (no distribution metadata found)")
    for dist in found:
        if dist.read_text("WHEEL") is not None:
            return dist
    return found[0]


def _raw_metadata(dist: importlib.metadata.Distribution) -> str:
    raw = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if raw is None:
        raise WheelError("workstack's installed metadata has no METADATA or PKG-INFO file")
    return raw


def _package_root() -> Path:
    root = Path(workstack.__file__).parent
    if not (root / "sdk" / "__init__.py").is_file() or not (root / "main.py").is_file():
        raise WheelError(
            f"cannot find the workstack packages under {root}: a non-strict editable install "
            "maps folders at import time; reinstall with "
            "`pip install -e . --config-settings editable_mode=strict` (make setup) "
            "or a regular install"
        )
    return root


def _package_files(root: Path) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if _SKIPPED_PARTS.intersection(relative.parts) or path.suffix in _SKIPPED_SUFFIXES:
            continue
        if path.is_file():  # follows the editable install's symlinks to the sources
            files.append((f"workstack/{relative.as_posix()}", path.read_bytes()))
    return files


def _metadata_text(raw: str) -> str:
    """The installed METADATA (or PKG-INFO) headers, as written, minus the description."""
    headers = raw.split("\n\n", 1)[0]
    kept: list[str] = []
    dropping = False
    for line in headers.splitlines():
        if line[:1] in (" ", "\t"):  # a continuation of the header above
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(":", 1)[0].strip().lower() in _DROPPED_HEADERS
        if not dropping:
            kept.append(line)
    return "\n".join(kept) + "\n"


def _record_line(name: str, content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(content)}"


def build_workstack_wheel(dest: Path) -> Path:
    """Write ``workstack-<version>-py3-none-any.whl`` of the running workstack into ``dest``.

    The same workstack code and metadata give the same bytes, on any machine at any time.

    Returns:
        The wheel's path.

    Raises:
        WheelError: workstack's files or metadata cannot be found.
    """
    dist = _distribution()
    version = dist.version
    info = f"{DISTRIBUTION}-{version}.dist-info"
    entry_points = dist.read_text("entry_points.txt") or ""
    files = _package_files(_package_root())
    files += [
        (f"{info}/METADATA", _metadata_text(_raw_metadata(dist)).encode()),
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: workstack image context\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (f"{info}/entry_points.txt", entry_points.encode()),
        (f"{info}/top_level.txt", b"workstack\n"),
    ]
    files.sort()
    record = "\n".join(_record_line(name, content) for name, content in files)
    files.append((f"{info}/RECORD", f"{record}\n{info}/RECORD,,\n".encode()))

    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{DISTRIBUTION}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in files:
            entry = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            entry.external_attr = _FILE_MODE
            entry.create_system = 3  # Unix, so the mode above is honoured everywhere
            archive.writestr(entry, content)
    return path


def provided_extras() -> tuple[str, ...]:
    """The extras the running workstack declares (``s3``, ``gcs``, ...)."""
    return tuple(_distribution().metadata.get_all("Provides-Extra") or ())


def runtime_requirements(extras: Iterable[str]) -> tuple[str, ...]:
    """The requirements of workstack's core install plus ``extras``, never ``[deploy]``.

    Each ``Requires-Dist`` of the installed metadata is kept when its marker holds for no
    extra or one of ``extras``, and written without the marker. Markers are evaluated here, on
    the machine that generates the context; workstack's own markers name only extras.

    Raises:
        WheelError: An extra is asked for that this workstack does not declare.
    """
    wanted = tuple(dict.fromkeys(extras))
    declared = provided_extras()
    missing = [extra for extra in wanted if extra not in declared]
    if missing:
        raise WheelError(
            f"workstack {_distribution().version} does not provide the extra(s) "
            f"{', '.join(missing)}; it provides: {', '.join(declared) or 'none'}"
        )
    if "deploy" in wanted:
        raise WheelError("the [deploy] extra never goes into a workload image")
    return _requirements_for(wanted, seen=set())


def _requirements_for(extras: tuple[str, ...], seen: set[str]) -> tuple[str, ...]:
    selected: list[str] = []
    for line in _distribution().requires or ():
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
            selected.extend(_requirements_for(nested, seen))
            continue
        selected.append(str(requirement))
    return tuple(dict.fromkeys(selected))
