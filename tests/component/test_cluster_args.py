"""Invalid component arguments fail on construction, before a resource exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workstack.components import (
    EksClusterArgs,
    GkeCluster,
    GkeClusterArgs,
    MinikubeClusterArgs,
    SpecError,
)
from workstack.offline import ProgramError, run_function

GKE = {"project": "my-project", "location": "us-east1", "cluster_name": "ml"}


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"project": "P"}, "project", "Google Cloud project id"),
        ({"location": "mars"}, "location", "a region such as europe-west1"),
        ({"min_nodes": -1}, "min_nodes", "integer between 0 and 1000"),
        ({"min_nodes": 4, "max_nodes": 2}, "min_nodes", "must not exceed max_nodes (2)"),
        ({"release_channel": "beta"}, "release_channel", "allowed: RAPID, REGULAR"),
        ({"namespace": "kube_system"}, "namespace", "DNS-1123 label"),
        ({"machine_type": " "}, "machine_type", "expected a non-empty string"),
    ],
)
def test_gke_args(changes: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(SpecError) as caught:
        GkeClusterArgs(**(GKE | changes))
    assert caught.value.field == field
    assert allowed in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cluster_name": "-bad"}, "cluster_name"),
        ({"instance_types": ()}, "instance_types"),
        ({"identity": "keys"}, "identity"),
        ({"admin_principal_arns": ("arn:aws:s3:::bucket",)}, "admin_principal_arns"),
        ({"subnet_ids": ("subnet-1",)}, "subnet_ids"),
    ],
)
def test_eks_args(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        EksClusterArgs(**({"cluster_name": "ml"} | changes))
    assert caught.value.field == field


def test_minikube_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError, match="kubeconfig_path"):
        MinikubeClusterArgs(kubeconfig_path="")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "k.yaml").write_text("apiVersion: v1\nkind: Config\n")
    assert (
        MinikubeClusterArgs(kubeconfig_path="~/k.yaml")
        .resolved_kubeconfig_path()
        .endswith("/k.yaml")
    )


def test_an_explicit_kubeconfig_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file") as caught:
        MinikubeClusterArgs(kubeconfig_path=str(tmp_path / "missing.yaml"))
    assert caught.value.field == "kubeconfig_path"
    assert MinikubeClusterArgs().kubeconfig_path is None, "the default need not exist"


def test_minikube_kubeconfig_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/a/one.yaml:/b/two.yaml")
    assert MinikubeClusterArgs().resolved_kubeconfig_path() == "/a/one.yaml"


def test_bad_arguments_in_a_users_program_register_nothing() -> None:
    def program() -> None:
        GkeCluster("ml", GkeClusterArgs(**(GKE | {"max_nodes": 0})))

    with pytest.raises(ProgramError) as caught:
        run_function(program)
    assert isinstance(caught.value.error, SpecError)
    assert caught.value.deployment.resources == []


def test_gke_component_in_a_users_program() -> None:
    def program() -> None:
        GkeCluster("ml", GkeClusterArgs(**GKE))

    deployment = run_function(program)
    types = [r.type for r in deployment.resources]
    assert types[0] == "workstack:cluster:GkeCluster"
    names = [r.name for r in deployment.resources]
    assert all(name == "ml" or name.startswith("ml-") for name in names), names
