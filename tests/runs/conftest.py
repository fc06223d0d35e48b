"""Fixtures of the run tests: the minikube stack's outputs (offline engine) and a fake API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.component.harness import deploy
from workstack.offline import Secret
from workstack.project import PulumiProject

from .kubeapi import ApiServer, api_server


def plain(value: Any) -> Any:
    """Outputs as `pulumi stack output --json --show-secrets` prints them."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


@pytest.fixture(scope="session")
def minikube_outputs(project: PulumiProject) -> dict[str, Any]:
    """The minikube stack's outputs, from its program run by the offline engine."""
    return plain(deploy(project, "minikube").outputs)


@pytest.fixture
def outputs_file(tmp_path: Path, minikube_outputs: dict[str, Any]) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(minikube_outputs))
    return path


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """The NFS claim's content: the transfer pod's /data, here."""
    root = tmp_path / "volume"
    root.mkdir()
    return root


@pytest.fixture
def api(volume: Path) -> Iterator[ApiServer]:
    with api_server(volume) as server:
        yield server


@pytest.fixture
def kubeconfig(api: ApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path / "kubeconfig")
