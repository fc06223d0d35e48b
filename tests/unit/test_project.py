"""Pulumi.yaml and stack files, read the way the Pulumi CLI reads them."""

from pathlib import Path

import pytest

from workstack.project import PulumiProject, find_project, load_project

ROOT = Path(__file__).resolve().parents[2]


def test_project_file_is_a_python_project_with_stacks_folder(project: PulumiProject) -> None:
    assert project.name == "workstack"
    assert project.main == ROOT / "stacks"
    assert project.stack_config_dir == ROOT / "stacks"
    assert project.stacks() == ["eks", "gke", "minikube"]


def test_read_stack_applies_defaults_and_encodes_like_the_engine(project: PulumiProject) -> None:
    settings = project.read_stack("gke")
    assert settings.values["workstack:cloud"] == "gke"
    assert settings.values["workstack:nodeMax"] == "4"
    assert settings.values["workstack:nodeSpot"] == "true"
    assert settings.values["workstack:eksAdminArns"] == "[]"  # a default, JSON-encoded
    assert settings.values["gcp:project"] == "workstack-demo"


def test_secure_values_become_secret_placeholders(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: demo\nruntime: python\nconfig:\n  token:\n    type: string\n    default: ''\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  demo:token:\n    secure: AAABAFx==\n")
    settings = load_project(tmp_path).read_stack("dev")
    assert settings.values["demo:token"] == "[secret]"
    assert settings.secret_keys == ["demo:token"]


def test_missing_stack_names_the_known_ones(project: PulumiProject) -> None:
    with pytest.raises(FileNotFoundError, match="stacks: eks, gke, minikube"):
        project.read_stack("azure")


def test_find_project_walks_up(tmp_path: Path) -> None:
    assert find_project(ROOT / "components" / "manifests").root == ROOT
    with pytest.raises(FileNotFoundError, match=r"no Pulumi\.yaml"):
        find_project(tmp_path)
