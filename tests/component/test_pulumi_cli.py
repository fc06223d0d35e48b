"""With the real Pulumi CLI (skipped here: no CLI, no cluster on this machine).

A user with `pulumi` and minikube runs these; they use a throwaway local backend and
passphrase, so nothing touches the user's own stacks.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pulumi(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pulumi", *args, "--non-interactive"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture
def local_backend(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{tmp_path}",
        "PULUMI_CONFIG_PASSPHRASE": "workstack-tests",
    }


@pytest.mark.pulumi_cli
def test_cli_rejects_an_invalid_stack_config_before_creating_anything(
    local_backend: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_text("config:\n  workstack:cloud: azure\n")
    assert pulumi(["stack", "init", "broken"], local_backend).returncode == 0
    preview = pulumi(["preview", "-s", "broken", "--config-file", str(broken)], local_backend)
    assert preview.returncode != 0
    assert "workstack:cloud: 'azure' is not allowed" in preview.stdout + preview.stderr


@pytest.mark.pulumi_cli
@pytest.mark.cluster
def test_minikube_stack_up_and_destroy(local_backend: dict[str, str]) -> None:
    assert pulumi(["stack", "init", "minikube"], local_backend).returncode == 0
    up = pulumi(["up", "--yes", "-s", "minikube"], local_backend)
    try:
        assert up.returncode == 0, up.stderr
        namespace = pulumi(["stack", "output", "namespace", "-s", "minikube"], local_backend)
        assert namespace.stdout.strip() == "workstack"
    finally:
        down = pulumi(["destroy", "--yes", "-s", "minikube"], local_backend)
        assert down.returncode == 0, down.stderr
