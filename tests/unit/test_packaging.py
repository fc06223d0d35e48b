"""The distribution maps three source folders onto one import name; keep the list complete."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_core_install_has_no_pulumi() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [dep for dep in project["dependencies"] if "pulumi" in dep]
    deploy = {dep.split("==")[0] for dep in project["optional-dependencies"]["deploy"]}
    assert {
        "pulumi",
        "pulumi-kubernetes",
        "pulumi-gcp",
        "pulumi-aws",
        "pulumi-eks",
        "pulumi-docker-build",
        "pulumi-random",
    } <= deploy
