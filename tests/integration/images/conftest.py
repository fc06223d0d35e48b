"""A real Docker engine for the image tests, set up by the test run itself.

The engine is started by ``scripts/docker/start-dockerd`` the way this kind of machine allows
(no bridge, no iptables, its own data root and socket; see ../shared/design.md), or reused if
that script started it before. The base image is made once with debootstrap
(``scripts/docker/base-image``) and kept in the engine. If the engine cannot be started the
tests fail: CI installs Docker (``scripts/deps/docker.sh``), so a missing engine is a broken
setup, not a reason to skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workstack.images import BuildContext, BuildResult, Docker, build_image, generate_context

from .engine import ROOT, EngineError, start_engine

FIXTURE_WORKLOADS = ROOT / "tests" / "fixtures" / "workloads"
EXAMPLE_WORKLOADS = ROOT / "workloads"


def workload_folders() -> list[Path]:
    """The test workload(s) and every example workload in workloads/ (others add them)."""
    folders = sorted(p for p in FIXTURE_WORKLOADS.iterdir() if p.is_dir())
    if EXAMPLE_WORKLOADS.is_dir():
        folders += sorted(p for p in EXAMPLE_WORKLOADS.iterdir() if p.is_dir())
    return folders


@dataclass
class Engine:
    """The running engine, the base image and a BuildKit docker client."""

    host: str
    base_image: str
    docker: Docker
    wheelhouse: Path
    repository_prefix: str
    created: list[str] = field(default_factory=list)

    def legacy(self) -> Docker:
        """The same engine through the classic builder (what `docker build` is without
        buildx on a Docker 23+ client)."""
        return Docker(
            executable=self.docker.executable,
            env={"DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"},
        )

    def _options(
        self,
        entrypoint: str | None,
        volumes: dict[Path, str] | None,
        env: dict[str, str] | None,
    ) -> list[str]:
        """Options that run a container the way a restricted pod runs: host network only,
        read-only root, a /tmp tmpfs, user 10001, ``volumes`` mounted (host folder ->
        container path), ``env`` set."""
        options = ["--network", "host", "--read-only", "--tmpfs", "/tmp", "--user", "10001"]
        for host, container in (volumes or {}).items():
            options += ["--volume", f"{host}:{container}"]
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        if entrypoint is not None:
            options += ["--entrypoint", entrypoint]
        return options

    def run(
        self,
        ref: str,
        *args: str,
        entrypoint: str | None = None,
        volumes: dict[Path, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Run ``ref`` as a restricted pod would (see ``_options``) and wait for it.
        Returns stdout; fails the test on a non-zero exit."""
        command = ["run", "--rm", *self._options(entrypoint, volumes, env)]
        result = self.docker.run([*command, ref, *args], timeout=300)
        assert result.returncode == 0, f"{ref} {args}: {result.stderr}"
        return result.stdout

    def start(
        self,
        ref: str,
        *args: str,
        volumes: dict[Path, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Start ``ref`` in the background like :meth:`run`; returns the container id."""
        command = ["run", "--detach", *self._options(None, volumes, env)]
        result = self.docker.run([*command, ref, *args], timeout=120)
        assert result.returncode == 0, f"{ref} {args}: {result.stderr}"
        return result.stdout.strip()

    def wait(self, container: str, timeout: float = 300) -> tuple[int, str]:
        """Wait for a started container; its exit status and logs. The container is removed."""
        try:
            waited = self.docker.run(["wait", container], timeout=timeout)
            logs = self.docker.run(["logs", container], timeout=60)
            return int(waited.stdout.strip() or -1), logs.stdout + logs.stderr
        finally:
            self.docker.run(["rm", "--force", container], timeout=60)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    try:
        setup = start_engine()
    except EngineError as error:
        pytest.fail(str(error))
    docker = Docker(
        executable=setup.client, env={"DOCKER_HOST": setup.host, "DOCKER_BUILDKIT": "1"}
    )
    started = Engine(
        host=setup.host,
        base_image=setup.base_image,
        docker=docker,
        wheelhouse=tmp_path_factory.mktemp("wheelhouse"),
        # Images of this run get their own names: an engine kept from an earlier run (or
        # shared with a concurrent one) never makes a build here look already done.
        repository_prefix=f"workstack-test-{uuid.uuid4().hex[:8]}",
    )
    yield started
    if started.created:
        docker.run(["image", "rm", "--force", *sorted(set(started.created))])


Builder = Callable[..., tuple[BuildContext, BuildResult]]


@pytest.fixture(scope="session")
def build(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Builder:
    """Generate an offline context of a workload folder and build it on the engine."""

    def run(
        folder: Path, *, docker: Docker | None = None, repository: str | None = None
    ) -> tuple[BuildContext, BuildResult]:
        context = generate_context(
            folder,
            tmp_path_factory.mktemp("context"),
            base_image=engine.base_image,
            offline=True,
            wheelhouse=engine.wheelhouse,
        )
        name = repository or f"{engine.repository_prefix}/{context.name}"
        result = build_image(context, docker or engine.docker, repository=name)
        engine.created.append(result.ref)
        return context, result

    return run
