"""`workstack image`: prints the tag; bad input exits 2 before anything is built."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workstack.images import generate_context
from workstack.main import app

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "workloads" / "word-count"
runner = CliRunner()


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in docker CLI that only records that it was called: bad input must not reach
    it. (Builds with the real engine are in tests/integration/images.)"""
    calls = tmp_path / "docker-calls"
    script = tmp_path / "docker"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 1\n')
    script.chmod(0o755)
    monkeypatch.setenv("WORKSTACK_DOCKER", str(script))
    return calls


def test_context_prints_the_tag(tmp_path: Path) -> None:
    result = runner.invoke(app, ["image", "context", str(FIXTURE), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    expected = generate_context(FIXTURE, tmp_path / "again")
    assert result.stdout.strip() == expected.tag
    assert "dependency hash" in result.stderr
    assert (tmp_path / "c" / "Dockerfile").is_file()


def broken(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / "broken"
    if kind == "missing-folder":
        return folder
    shutil.copytree(FIXTURE, folder)
    if kind == "no-workload-yaml":
        (folder / "workload.yaml").unlink()
    elif kind == "no-entrypoint":
        text = (folder / "workload.yaml").read_text()
        (folder / "workload.yaml").write_text(text.replace("entrypoint:", "# entrypoint:"))
    elif kind == "entrypoint-module-missing":
        (folder / "word_count.py").unlink()
    elif kind == "bad-requirement":
        (folder / "requirements.txt").write_text("more-itertools>=10\npandas=>2\n")
    return folder


CASES = [
    ("missing-folder", "expected an existing folder"),
    ("no-workload-yaml", "workload.yaml: (missing)"),
    ("no-entrypoint", "entrypoint: (missing) is not allowed; required"),
    ("entrypoint-module-missing", "module word_count is not in the workload folder"),
    ("bad-requirement", "requirements.txt:2: 'pandas=>2' is not allowed"),
]


@pytest.mark.parametrize(("kind", "message"), CASES)
def test_context_bad_input_exits_2(tmp_path: Path, kind: str, message: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["image", "context", str(broken(tmp_path, kind)), "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(("kind", "message"), CASES)
def test_build_bad_input_exits_2_before_docker_runs(
    tmp_path: Path, kind: str, message: str, fake_docker: Path
) -> None:
    result = runner.invoke(app, ["image", "build", str(broken(tmp_path, kind))])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not fake_docker.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--wheelhouse", "/tmp/wh"], "need --offline"),
        (["--base-image", "NOT VALID"], "base_image: 'NOT VALID' is not allowed"),
        (["--platform", "linux/386"], "platform: 'linux/386' is not allowed; one of linux/amd64"),
        (["--extra", "deploy"], "extras: 'deploy' is not allowed"),
        (["--tag", "Bad Tag"], "is not an image reference"),
        (["--repository", "team/app:1.0"], "must not have a tag"),
    ],
)
def test_build_bad_options_exit_2(
    tmp_path: Path, args: list[str], message: str, fake_docker: Path
) -> None:
    result = runner.invoke(app, ["image", "build", str(FIXTURE), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not fake_docker.exists()


def test_a_failing_build_exits_1_with_dockers_output(fake_docker: Path) -> None:
    result = runner.invoke(app, ["image", "build", str(FIXTURE)])
    assert result.exit_code == 1
    assert "error: docker build of workstack/word-count:" in result.stderr
    # It asked for the image first, then tried to build it.
    calls = fake_docker.read_text().splitlines()
    assert calls[0].startswith("image inspect workstack/word-count:")
    assert calls[1].startswith("build --build-arg BASE_IMAGE=python:3.11-slim-bookworm --tag")
    assert " --platform linux/amd64 " in calls[1]


def test_build_targets_the_platform_asked_for(fake_docker: Path) -> None:
    """Before: images were built for the machine running the build, whatever the nodes ran."""
    result = runner.invoke(app, ["image", "build", str(FIXTURE), "--platform", "linux/arm64"])
    assert result.exit_code == 1
    build = fake_docker.read_text().splitlines()[1]
    assert " --platform linux/arm64 " in build
    amd = runner.invoke(app, ["image", "context", str(FIXTURE), "--list"]).stdout.splitlines()
    arm = runner.invoke(
        app, ["image", "context", str(FIXTURE), "--list", "--platform", "linux/arm64"]
    ).stdout.splitlines()
    assert amd[-1] != arm[-1]  # the platform is part of the tag
    assert arm[-1] in build


def test_context_needs_out_or_list(tmp_path: Path) -> None:
    result = runner.invoke(app, ["image", "context", str(FIXTURE)])
    assert result.exit_code == 2
    assert "--out is not given" in result.stderr


def test_bad_input_is_reported_even_without_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSTACK_DOCKER", "")
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker anywhere
    result = runner.invoke(app, ["image", "build", str(broken(tmp_path, "no-entrypoint"))])
    assert result.exit_code == 2
    assert "entrypoint: (missing)" in result.stderr
    result = runner.invoke(app, ["image", "build", str(FIXTURE)])
    assert result.exit_code == 1
    assert "the docker CLI is not installed" in result.stderr
