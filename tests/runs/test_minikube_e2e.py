"""From `pulumi up -s minikube` to results with workstack commands only, then nothing left.

Needs the pulumi CLI and a running minikube (`minikube start --cpus 4 --memory 10g`, and
`pulumi config set workstack:dockerHost ...` as README says): skipped on machines without
them. It uses a throwaway local backend and passphrase, so the user's own stacks are not
touched, and destroys the stack whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKSTACK = [sys.executable, "-m", "workstack"]


def run(
    args: list[str], env: dict[str, str], timeout: int = 1800
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.pulumi_cli
@pytest.mark.cluster
def test_up_push_submit_status_pull_cancel_destroy(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{tmp_path}",
        "PULUMI_CONFIG_PASSPHRASE": "workstack-tests",
    }
    stack = ["--stack", "minikube", "--backend", "current"]
    assert run(["pulumi", "stack", "init", "minikube", "--non-interactive"], env).returncode == 0
    up = run(["pulumi", "up", "--yes", "-s", "minikube", "--non-interactive"], env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        inputs = ROOT / "workloads/csv-clean/data"
        push = run([*WORKSTACK, "data", "push", str(inputs), "csv-clean/inputs", *stack], env)
        assert push.returncode == 0, push.stderr
        submit = run([*WORKSTACK, "submit", "csv-clean", "--run-id", "e2e", "--watch", *stack], env)
        assert submit.returncode == 0, submit.stdout + submit.stderr
        status = run([*WORKSTACK, "status", "e2e", *stack], env)
        assert status.returncode == 0, status.stdout
        assert "succeeded" in status.stdout, status.stdout
        pull = run(
            [*WORKSTACK, "data", "pull", "csv-clean/outputs", str(tmp_path / "out"), *stack], env
        )
        assert pull.returncode == 0, pull.stderr
        expected = sorted(p.name for p in inputs.iterdir())
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == expected
        # A second run, cancelled while it runs: its objects go, the outputs stay.
        again = run([*WORKSTACK, "submit", "csv-clean", "--run-id", "e2e-2", *stack], env)
        assert again.returncode == 0, again.stderr
        cancel = run([*WORKSTACK, "cancel", "e2e-2", *stack], env)
        assert cancel.returncode == 0, cancel.stderr
        time.sleep(5)
        left = run(
            [
                "kubectl",
                "--context",
                "minikube",
                "-n",
                "workstack",
                "get",
                "jobs,pods",
                "-l",
                "workstack.dev/run=e2e-2",
                "-o",
                "json",
            ],
            env,
        )
        assert json.loads(left.stdout)["items"] == []
        runs = run([*WORKSTACK, "runs", *stack], env)
        assert "e2e " in runs.stdout
        assert "e2e-2" not in runs.stdout
    finally:
        down = run(["pulumi", "destroy", "--yes", "-s", "minikube", "--non-interactive"], env)
        assert down.returncode == 0, down.stdout + down.stderr
        namespaces = run(
            [
                "kubectl",
                "--context",
                "minikube",
                "get",
                "ns",
                "workstack",
                "--ignore-not-found",
                "-o",
                "name",
            ],
            env,
        )
        assert namespaces.stdout.strip() == ""
        run(["pulumi", "stack", "rm", "minikube", "--yes", "--non-interactive"], env)


def test_without_the_pulumi_cli_the_commands_say_to_use_outputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from workstack.main import app

    monkeypatch.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(app, ["runs", "--stack", "minikube"])
    assert result.exit_code == 2
    assert "the pulumi CLI is not on PATH; pass --outputs FILE" in result.stderr
    assert "pulumi stack output --json --show-secrets -s minikube > FILE" in result.stderr
    missing = CliRunner().invoke(app, ["runs"])
    assert missing.exit_code == 2
    assert "--stack is not given" in missing.stderr
