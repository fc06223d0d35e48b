"""Build a generated context with the local Docker engine, through the ``docker`` CLI.

The CLI is used rather than an API client so that builds behave exactly as the user's own
``docker build`` does: the same daemon (``DOCKER_HOST``, contexts), the same builder (BuildKit
through buildx, or the classic builder; the generated Dockerfile works with both) and the same
credentials. ``WORKSTACK_DOCKER`` names another ``docker`` executable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workstack.images.context import BuildContext
from workstack.sdk.errors import WorkstackError

__all__ = ["BuildResult", "Docker", "DockerError", "build_image"]


class DockerError(WorkstackError, RuntimeError):
    """The docker CLI is missing, the daemon does not answer, or a build failed."""


@dataclass(frozen=True)
class Docker:
    """A ``docker`` executable and the environment it runs with.

    Attributes:
        executable: Path of the docker CLI.
        env: Extra environment (e.g. ``DOCKER_HOST``, ``DOCKER_BUILDKIT``) over the process's.
    """

    executable: str
    env: Mapping[str, str] | None = None

    @classmethod
    def find(cls, env: Mapping[str, str] | None = None) -> Docker:
        """The docker CLI named by ``WORKSTACK_DOCKER``, else ``docker`` on ``PATH``.

        Raises:
            DockerError: There is none.
        """
        named = (env or {}).get("WORKSTACK_DOCKER") or os.environ.get("WORKSTACK_DOCKER")
        executable = named or shutil.which("docker")
        if not executable:
            raise DockerError("the docker CLI is not installed (or set WORKSTACK_DOCKER)")
        return cls(executable=executable, env=env)

    def run(
        self, args: Sequence[str], *, capture: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker <args>``; the result is returned whatever the exit status."""
        environment = {**os.environ, **(self.env or {})}
        return subprocess.run(
            [self.executable, *args],
            env=environment,
            capture_output=capture,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, args: Sequence[str], *, timeout: float | None = None) -> str:
        """Run ``docker <args>`` and return its stdout.

        Raises:
            DockerError: With docker's stderr, if it fails.
        """
        result = self.run(args, timeout=timeout)
        if result.returncode != 0:
            raise DockerError(
                f"docker {' '.join(args[:2])} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result.stdout

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        """``docker image inspect`` of ``ref``, or None when the engine has no such image."""
        result = self.run(["image", "inspect", ref])
        if result.returncode != 0:
            return None
        found: list[dict[str, Any]] = json.loads(result.stdout)
        return found[0] if found else None

    def image_exists(self, ref: str) -> bool:
        """Whether the engine holds an image named ``ref``."""
        return self.inspect_image(ref) is not None


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_image` did.

    Attributes:
        ref: The image reference, ``<repository>:<content hash>``.
        built: False when an image with that reference existed, so nothing was built.
        seconds: Wall time of the docker build (0 when nothing was built).
        output: The builder's output (empty when nothing was built).
    """

    ref: str
    built: bool
    seconds: float
    output: str = ""


def build_image(
    context: BuildContext,
    docker: Docker,
    *,
    repository: str | None = None,
    extra_tags: Sequence[str] = (),
    no_cache: bool = False,
    force: bool = False,
) -> BuildResult:
    """Build ``context`` as ``<repository>:<tag>`` unless the engine already has that image.

    The tag is the context's content hash, so an existing image with that name was built from
    exactly this context: building again would give the same image, and is skipped.

    Args:
        context: A generated build context.
        docker: The docker CLI to build with.
        repository: Image name without tag; default ``workstack/<workload name>``.
        extra_tags: Further references to give the image (built or not).
        no_cache: Build every step again (``--no-cache``); implies ``force``.
        force: Build even if the image exists.

    Raises:
        DockerError: The build failed.
    """
    ref = context.image_ref(repository)
    if not (force or no_cache) and docker.image_exists(ref):
        for extra in extra_tags:
            docker.check(["tag", ref, extra])
        return BuildResult(ref=ref, built=False, seconds=0.0)
    args = ["build", "--build-arg", f"BASE_IMAGE={context.base_image}", "--tag", ref]
    # The nodes' platform, not this machine's: an image for linux/amd64 nodes built on an
    # arm64 laptop would fail there with "exec format error".
    args += ["--platform", context.platform]
    for extra in extra_tags:
        args += ["--tag", extra]
    if context.network:
        args += ["--network", context.network]
    if no_cache:
        args.append("--no-cache")
    args += ["--file", str(context.dockerfile), str(context.path)]
    started = time.monotonic()
    result = docker.run(args)
    seconds = time.monotonic() - started
    output = (result.stdout or "") + (result.stderr or "")
    if result.returncode != 0:
        raise DockerError(f"docker build of {ref} failed:\n{output.strip()[-4000:]}")
    return BuildResult(ref=ref, built=True, seconds=seconds, output=output)
