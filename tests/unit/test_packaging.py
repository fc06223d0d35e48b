"""The distribution maps three source folders onto one import name; keep the list complete."""

import json
import os
import subprocess
import sys
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


def test_source_view_lays_every_module_out_by_import_name(tmp_path: Path) -> None:
    """mypy and lint-imports read build/src (scripts/source-view): grimp, which lint-imports
    uses, must find every module of every source folder there, under its import name."""
    view = tmp_path / "src"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "source-view"), "--out", str(view)], check=True
    )
    probe = "import grimp, json; print(json.dumps(sorted(grimp.build_graph('workstack').modules)))"
    found = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(view)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set(json.loads(found.stdout))
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    expected = set()
    for package, folder in config["package-dir"].items():
        for source in (ROOT / folder).rglob("*.py"):
            parts = source.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            expected.add(".".join([package, *parts]))
    assert expected <= modules, sorted(expected - modules)
    # Links, not copies: an edit to a source file is what the tools read.
    main = view / "workstack" / "main.py"
    assert main.is_symlink()
    assert main.resolve() == (ROOT / "cli" / "main.py").resolve()
