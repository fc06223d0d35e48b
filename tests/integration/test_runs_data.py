"""workstack data push, pull and ls on a bucket stack, against the S3 server (moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.component.harness import deploy
from workstack.main import app
from workstack.offline import Secret
from workstack.project import PulumiProject

from .conftest import S3Server

pytestmark = pytest.mark.integration
runner = CliRunner()


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return _plain(value.value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@pytest.fixture(scope="module")
def bucket_outputs(project: PulumiProject) -> dict[str, Any]:
    """The eks stack set to bucket storage only (no NFS), as the offline engine gives it."""
    outputs = _plain(deploy(project, "eks", storage="bucket", aws__region="us-east-1").outputs)
    assert outputs["contract"]["nfs_claim"] is None
    return outputs


@pytest.fixture
def outputs(tmp_path: Path, bucket_outputs: dict[str, Any], s3_server: S3Server) -> Path:
    bucket = f"runs-{tmp_path.name[-8:].lower().replace('_', '-')}".strip("-")
    s3_server.create_bucket(bucket)
    data = json.loads(json.dumps(bucket_outputs))
    data["contract"]["bucket_url"] = f"s3://{bucket}"
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data))
    return path


def data(outputs: Path, *args: str) -> Any:
    return runner.invoke(app, ["data", *args, "--outputs", str(outputs)])


def test_push_ls_pull_and_resume_on_a_bucket(tmp_path: Path, outputs: Path) -> None:
    local = tmp_path / "in"
    (local / "sub").mkdir(parents=True)
    (local / "a.csv").write_text("a\n")
    (local / "sub/b.csv").write_text("b\n" * 100)
    pushed = data(outputs, "push", str(local), "csv-clean/inputs")
    assert pushed.exit_code == 0, pushed.output
    assert "2 file(s) transferred" in pushed.stdout
    (local / "c.csv").write_text("c\n")
    again = data(outputs, "push", str(local), "csv-clean/inputs")
    assert "1 file(s) transferred" in again.stdout
    assert "2 already there" in again.stdout
    listed = data(outputs, "ls", "csv-clean")
    assert [line.split()[-1] for line in listed.stdout.splitlines()] == [
        "inputs/a.csv",
        "inputs/c.csv",
        "inputs/sub/b.csv",
    ]
    back = tmp_path / "back"
    pulled = data(outputs, "pull", "csv-clean/inputs", str(back))
    assert pulled.exit_code == 0, pulled.output
    assert (back / "sub/b.csv").read_text() == "b\n" * 100
    assert "0 file(s) transferred" in data(outputs, "pull", "csv-clean/inputs", str(back)).stdout
    assert not list(back.rglob(".*"))


def test_bucket_errors_are_clear(tmp_path: Path, outputs: Path) -> None:
    missing = data(outputs, "pull", "nothing/here", str(tmp_path / "x"))
    assert missing.exit_code == 2
    assert "nothing is stored under s3://" in missing.stderr
    nfs = data(outputs, "ls", "--storage", "nfs")
    assert nfs.exit_code == 2
    assert "has no NFS storage" in nfs.stderr
    gone = tmp_path / "gone.json"
    payload = json.loads(outputs.read_text())
    payload["contract"]["bucket_url"] = "s3://no-such-bucket-here"
    gone.write_text(json.dumps(payload))
    result = data(gone, "push", str(outputs), "x")
    assert result.exit_code in (2, 4), result.output
    assert "no-such-bucket-here" in result.stderr


def test_no_contract_and_no_file(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"namespace": "workstack"}))
    result = data(old, "ls")
    assert result.exit_code == 2
    assert "have no contract: run `pulumi up` with this workstack" in result.stderr
    none = data(tmp_path / "missing.json", "ls")
    assert none.exit_code == 2
    assert "no such file; write it with `pulumi stack output --json --show-secrets" in none.stderr
