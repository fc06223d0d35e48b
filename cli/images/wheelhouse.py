"""Offline mode: the wheels an image installs, fetched on the host into the build context.

The build then installs with ``pip install --no-index --find-links``: it needs no package
index and no network, which is what air-gapped builds need, and what builds need on machines
whose containers cannot reach an index (a TLS-intercepting proxy whose CA only the host
trusts). The exact wheel files are part of the context, so the dependency hash pins them.

Two steps, each a plain ``pip wheel`` with this interpreter:

1. Fill the *wheelhouse* (a folder on the host that persists between builds): resolve the
   requirements against the configured package index, saving every wheel (sdists are built
   into wheels here). Skipped with ``download=False`` for a wheelhouse prepared elsewhere.
2. Resolve again with ``--no-index`` from the wheelhouse alone. That names exactly the set
   the image needs (the context gets copies of those files) and proves the build can do the
   same without a network.

A resolution is remembered in the wheelhouse (``.workstack-resolved/``), keyed by the
requirements and the interpreter and platform, so regenerating an unchanged context copies
the same wheels without running pip. Unpinned requirements therefore stay at what was
resolved first, like a lock; ``refresh=True`` resolves again.

Wheels are resolved for this interpreter and platform (``cp311``, ``manylinux_x86_64``...):
the base image must run the same Python minor version on the same architecture.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from workstack.sdk.errors import WorkstackError

__all__ = ["WheelhouseError", "default_wheelhouse", "resolve_wheels"]

_RESOLVED = ".workstack-resolved"


class WheelhouseError(WorkstackError, RuntimeError):
    """pip could not provide a wheel for every requirement; the message has pip's reason."""


def default_wheelhouse() -> Path:
    """``$XDG_CACHE_HOME/workstack/wheelhouse`` (``~/.cache/...`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "workstack" / "wheelhouse"


def _resolution_key(requirements: bytes) -> str:
    target = f"{sys.implementation.cache_tag}\0{sys.platform}\0{platform.machine()}\0"
    return hashlib.sha256(target.encode() + requirements).hexdigest()[:32]


def _pip(args: list[str], *, hermetic: bool) -> None:
    env = dict(os.environ)
    if hermetic:
        # Only the wheelhouse: no index, find-links or config from the user's pip setup.
        env = {key: value for key, value in env.items() if not key.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        errors = [line for line in detail if "ERROR" in line] or detail[-5:]
        raise WheelhouseError(
            "pip wheel failed for the workload's requirements:\n  " + "\n  ".join(errors)
        )


def resolve_wheels(
    requirements: bytes,
    *,
    wheelhouse: Path,
    download: bool = True,
    refresh: bool = False,
    resolve: bool = True,
) -> list[str] | None:
    """The wheel files in ``wheelhouse`` that an image with these requirements installs.

    Nothing is written into a build context: the context gets copies of these files when it
    is written (:meth:`workstack.images.ContextPlan.write`).

    Args:
        requirements: The context's requirements (one PEP 508 requirement per line).
        wheelhouse: Host folder that keeps wheels between builds (created when resolving).
        download: Fetch what is missing from the package index; False for air-gapped use
            of a wheelhouse prepared elsewhere.
        refresh: Resolve again even if this set of requirements was resolved before.
        resolve: False to only look up a remembered resolution (rendering: no pip, no
            writes); None is returned when there is none.

    Returns:
        The wheel file names, sorted; None when not resolved and ``resolve`` is False.

    Raises:
        WheelhouseError: A requirement cannot be satisfied from the index or the wheelhouse.
    """
    key = _resolution_key(requirements)
    remembered = wheelhouse / _RESOLVED / key
    if remembered.is_file() and not refresh:
        names = remembered.read_text().split()
        if all((wheelhouse / name).is_file() for name in names):
            return sorted(names)
    if not resolve:
        return None

    wheelhouse.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workstack-resolve-") as scratch:
        requirements_file = Path(scratch, "requirements.txt")
        requirements_file.write_bytes(requirements)
        if download:
            _pip(
                [
                    *("--wheel-dir", str(wheelhouse), "--find-links", str(wheelhouse)),
                    *("--requirement", str(requirements_file)),
                ],
                hermetic=False,
            )
        # Again from the wheelhouse alone: proves the build can install with no index.
        resolved = Path(scratch, "resolved")
        _pip(
            [
                *("--no-index", "--find-links", str(wheelhouse), "--wheel-dir", str(resolved)),
                *("--requirement", str(requirements_file)),
            ],
            hermetic=True,
        )
        names = sorted(path.name for path in resolved.glob("*.whl"))
    missing = [name for name in names if not (wheelhouse / name).is_file()]
    if missing:
        raise WheelhouseError(f"pip resolved wheels that are not in {wheelhouse}: {missing}")
    remembered.parent.mkdir(exist_ok=True)
    temporary = remembered.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text("".join(f"{name}\n" for name in names))
    temporary.replace(remembered)
    return names
