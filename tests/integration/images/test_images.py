"""Workload images built and run with a real Docker engine (BuildKit and the classic builder).

Every image is built from the debootstrap base through an offline wheelhouse (containers here
cannot reach a package index) and run as a restricted pod would run it: host network only,
read-only root file system with a /tmp tmpfs, user 10001. ``workstack pod``, the image's
entrypoint, comes with the workload patterns; until then the entrypoint callable is imported
and called directly, and ``workstack version`` is run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workstack.sdk.workload import load_workload

from .conftest import Builder, Engine, workload_folders
from .engine import executed_steps

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "workloads" / "word-count"

# Imports the entrypoint the way the in-pod runtime will (workload.yaml from the image's
# WORKSTACK_WORKLOAD, code on PYTHONPATH), then reports on the container and the call. A
# command workload's program must be found on PATH instead.
PROBE = """
import json, os, shlex, shutil, sys
from workstack.sdk.workload import load_entrypoint, load_workload
workload = load_workload(os.path.dirname(os.environ["WORKSTACK_WORKLOAD"]))
if workload.spec.is_command:  # a command line: its program must be on the image's PATH
    function = shutil.which(shlex.split(workload.spec.command)[0]) and (lambda *args: None)
else:
    function = load_entrypoint(workload)
try:
    open("/app/written", "w")
    app_writable = True
except OSError:
    app_writable = False
with open("/tmp/scratch", "w") as handle:
    handle.write("tmp is writable")
report = {
    "uid": os.getuid(),
    "cwd": os.getcwd(),
    "python": sys.executable,
    "files": sorted(os.listdir("/app")),
    "app_writable": app_writable,
    "callable": callable(function),
}
if len(sys.argv) > 1:
    report["result"] = function(sys.argv[1])
print(json.dumps(report))
"""

# Inputs and expected results for workloads whose calling convention the test knows.
# Example workloads are called by `workstack pod` once the patterns exist; until then their
# entrypoint is imported and checked to be callable.
SMOKE = {
    "word-count": (
        "The cat and the hat and THE bat",
        {"words": 8, "top": ["the", "and", "cat"]},
    ),
}


def probe(engine: Engine, ref: str, *args: str) -> dict[str, Any]:
    output = engine.run(ref, "-c", PROBE, *args, entrypoint="python")
    report: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("folder", workload_folders(), ids=lambda p: p.name)
def test_every_workload_image_runs_its_entrypoint(
    engine: Engine, build: Builder, folder: Path
) -> None:
    context, result = build(folder)
    name = context.name
    smoke = SMOKE.get(name)
    report = probe(engine, result.ref, *([smoke[0]] if smoke else []))
    assert report["uid"] == 10001
    assert report["cwd"] == "/app"
    assert report["python"].startswith("/opt/venv/")
    assert report["app_writable"] is False
    assert report["callable"] is True
    assert "workload.yaml" in report["files"]
    assert "data" not in report["files"]
    if smoke:
        assert report["result"] == smoke[1]
    version = engine.run(result.ref, "version", entrypoint="workstack")
    assert version.strip() == "0.1.0"


def test_image_config(engine: Engine, build: Builder) -> None:
    context, result = build(FIXTURE)
    image = engine.docker.inspect_image(result.ref)
    assert image is not None
    config = image["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["workstack", "pod"]
    assert config["WorkingDir"] == "/app"
    assert "WORKSTACK_WORKLOAD=/app/workload.yaml" in config["Env"]
    assert config["Labels"]["dev.workstack.workload"] == "word-count"
    assert config["Labels"]["dev.workstack.dependency-hash"] == context.dependency_hash
    # Built for the platform asked for (the nodes'), and says so.
    assert config["Labels"]["dev.workstack.platform"] == context.platform == "linux/amd64"
    assert (image["Os"], image["Architecture"]) == ("linux", "amd64")
    # The extras of workload.yaml and the core, never [deploy]: no Pulumi in the image.
    listing = engine.run(result.ref, "-m", "pip", "list", "--format=json", entrypoint="python")
    installed = {item["name"].lower() for item in json.loads(listing)}
    assert {"workstack", "typer", "pyyaml", "fsspec", "more-itertools"} <= installed
    assert not [name for name in installed if name.startswith("pulumi")]
    notes = engine.run(
        result.ref, "-c", "import os; print(os.path.exists('/app/notes'))", entrypoint="python"
    )
    assert notes.strip() == "False"
    # workstack in the image is the wheel its build backend made from this checkout.
    wheel = engine.run(
        result.ref,
        "-c",
        "import importlib.metadata as m; d = m.distribution('workstack'); "
        "print(d.read_text('WHEEL').split('Generator: ')[1].split()[0], d.version)",
        entrypoint="python",
    )
    assert wheel.split() == ["setuptools", "0.1.0"]


def test_unchanged_workload_is_not_built_again(build: Builder, tmp_path: Path) -> None:
    first_context, first = build(FIXTURE)
    # A copy elsewhere is the same workload: same tag, nothing to build.
    copy = tmp_path / "copy" / "word-count"
    shutil.copytree(FIXTURE, copy)
    second_context, second = build(copy)
    assert second_context.tag == first_context.tag
    assert second.ref == first.ref
    assert second.built is False
    assert second.seconds == 0.0


def layers(engine: Engine, ref: str) -> list[str]:
    image = engine.docker.inspect_image(ref)
    assert image is not None
    found: list[str] = image["RootFS"]["Layers"]
    return found


def test_code_change_reuses_the_dependency_layer(
    engine: Engine, build: Builder, tmp_path: Path
) -> None:
    folder = tmp_path / "word-count"
    shutil.copytree(FIXTURE, folder)
    before_context, before = build(folder)
    rules = folder / "text_rules.py"
    rules.write_text(rules.read_text().replace("word.lower()", "word.casefold()"))
    after_context, after = build(folder)
    assert after_context.tag != before_context.tag
    assert after_context.dependency_hash == before_context.dependency_hash
    assert after.built is True
    # Nothing but the code step ran (it too is cached if an earlier run built this change);
    # the virtualenv and workstack came from the cache.
    assert "RUN python3 -m venv /opt/venv" in after.output
    assert set(executed_steps(after.output)) <= {"COPY app/ /app/"}
    old, new = layers(engine, before.ref), layers(engine, after.ref)
    assert len(new) == len(old)
    assert new[0] == old[0]
    assert new[-1] != old[-1]
    assert probe(engine, after.ref, "Straße STRASSE")["result"]["top"] == ["strasse"]


def test_dependency_change_rebuilds_the_dependency_layer(
    engine: Engine, build: Builder, tmp_path: Path
) -> None:
    folder = tmp_path / "word-count"
    shutil.copytree(FIXTURE, folder)
    before_context, before = build(folder)
    (folder / "requirements.txt").write_text("more-itertools==10.5.0\n")
    after_context, after = build(folder)
    assert after_context.dependency_hash != before_context.dependency_hash
    old, new = layers(engine, before.ref), layers(engine, after.ref)
    assert new[0] == old[0]  # the base image
    assert new[1] != old[1]  # the virtualenv
    version = engine.run(
        after.ref,
        "-c",
        "import more_itertools; print(more_itertools.__version__)",
        entrypoint="python",
    )
    assert version.strip() == "10.5.0"


def test_classic_builder_builds_the_same_dockerfile(engine: Engine, build: Builder) -> None:
    _, result = build(
        FIXTURE,
        docker=engine.legacy(),
        repository=f"{engine.repository_prefix}/word-count-classic",
    )
    assert result.built is True
    report = probe(engine, result.ref, "a b a")
    assert report["result"] == {"words": 3, "top": ["a", "b"]}
    assert report["uid"] == 10001


def test_cli_build_prints_the_reference_and_skips_an_unchanged_image(
    engine: Engine, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DOCKER_HOST": engine.host,
        "DOCKER_BUILDKIT": "1",
        "WORKSTACK_DOCKER": engine.docker.executable,
    }
    repository = f"{engine.repository_prefix}/word-count-cli"
    command = [
        sys.executable,
        "-m",
        "workstack",
        "image",
        "build",
        str(FIXTURE),
        "--offline",
        "--wheelhouse",
        str(engine.wheelhouse),
        "--base-image",
        engine.base_image,
        "--repository",
        repository,
    ]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    ref = first.stdout.strip()
    engine.created.append(ref)
    assert ref.startswith(f"{repository}:")
    assert "built" in first.stderr
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == ref
    assert "up to date: nothing to build" in second.stderr
    assert load_workload(FIXTURE).spec.name == "word-count"
