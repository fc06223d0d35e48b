"""Start the test Docker engine and find a BuildKit client: shared by the image tests and the
image benchmark (tests/bench/bench_images.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = ROOT / "scripts" / "docker"


class EngineError(RuntimeError):
    """Docker could not be started or has no usable client."""


@dataclass(frozen=True)
class EngineSetup:
    """A running engine: its ``DOCKER_HOST``, the local base image and a BuildKit client."""

    host: str
    base_image: str
    client: str


def _script(name: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(SCRIPTS / name)], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise EngineError(
            f"scripts/docker/{name} failed ({result.returncode}); Docker must work for the "
            f"image tests (install it with scripts/deps/docker.sh):\n{result.stderr.strip()}"
        )
    return result.stdout.strip().splitlines()[-1]


def buildkit_client(env: dict[str, str]) -> str:
    """A docker CLI that builds with BuildKit, as pulumi_docker_build does: one with buildx,
    or a client older than 23 (Debian's docker.io), which has BuildKit built in."""
    candidates = [os.environ.get("WORKSTACK_DOCKER"), shutil.which("docker"), "/usr/bin/docker"]
    for executable in dict.fromkeys(c for c in candidates if c and Path(c).is_file()):
        probe = subprocess.run(
            [executable, "buildx", "version"], env=env, capture_output=True, check=False
        )
        if probe.returncode == 0:
            return executable
        version = subprocess.run(
            [executable, "version", "--format", "{{.Client.Version}}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if version and int(version.split(".")[0]) < 23:
            return executable
    raise EngineError("no docker CLI with BuildKit (buildx, or a client older than 23) found")


def start_engine() -> EngineSetup:
    """Start (or reuse) the test engine and make sure the base image exists."""
    env = dict(os.environ)
    host = _script("start-dockerd", env)
    env["DOCKER_HOST"] = host
    base_image = _script("base-image", env)
    return EngineSetup(host=host, base_image=base_image, client=buildkit_client(env))


_STEP = re.compile(r"^#(?P<id>\d+) \[(?P<stage>[^\]]+)\] (?P<instruction>.+)$")


def executed_steps(output: str) -> list[str]:
    """The Dockerfile instructions (FROM aside) a BuildKit build ran, not took from its cache.

    Read from BuildKit's plain progress output: a step is announced as ``#7 [deps 3/3] RUN ...``
    and ends with ``#7 CACHED`` when its result came from the cache. Equivalent cache records
    (a ``--no-cache`` build adds one) may hold different but equal layers, so whether a step
    ran, not which layer it produced, is what shows the cache was used.
    """
    steps: dict[str, str] = {}
    cached: set[str] = set()
    for line in output.splitlines():
        match = _STEP.match(line)
        # FROM only resolves the base image; it is never "CACHED".
        if match and match["stage"] != "internal" and not match["instruction"].startswith("FROM"):
            steps.setdefault(match["id"], " ".join(match["instruction"].split()))
        elif line.startswith("#") and line.rstrip().endswith(" CACHED"):
            cached.add(line.split()[0][1:])
    return [instruction for step, instruction in steps.items() if step not in cached]
