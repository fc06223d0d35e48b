"""Fixtures shared by every test: the project, schema checks and golden files."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from workstack.project import PulumiProject, load_project
from workstack.schemas import (
    CRD_DIRS_ENV,
    CrdCatalog,
    SchemaCheck,
    default_crd_dirs,
    validate_objects,
)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED_CRDS = ROOT.parent / "shared" / "crds"
# The operators' published CRDs kept beside the project on the development machines: every
# check in the tests (the fixtures, `render --validate`, `submit`, their subprocesses) uses them.
if SHARED_CRDS.is_dir():
    os.environ[CRD_DIRS_ENV] = os.pathsep.join(
        [str(SHARED_CRDS), *filter(None, os.environ.get(CRD_DIRS_ENV, "").split(os.pathsep))]
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite tests/golden/*.yaml from what the builders produce now.",
    )


@pytest.fixture(scope="session")
def project() -> PulumiProject:
    return load_project(ROOT)


@pytest.fixture(scope="session")
def crd_catalog() -> CrdCatalog:
    return CrdCatalog(default_crd_dirs())


@pytest.fixture(scope="session")
def assert_schema_valid(crd_catalog: CrdCatalog) -> Callable[[list[dict[str, Any]]], SchemaCheck]:
    """Fail the test if any object is invalid for its schema; custom resources whose CRD is
    not on this machine are skipped only when ../shared/crds is absent."""

    def check(objects: list[dict[str, Any]]) -> SchemaCheck:
        result = validate_objects(objects, crd_catalog)
        assert not result.errors, "\n".join(result.errors)
        if SHARED_CRDS.is_dir():
            assert not result.unchecked, f"no CRD found for {result.unchecked}"
        return result

    return check


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """Compare a value with tests/golden/<name>.yaml; --update-golden rewrites the file."""
    update = bool(request.config.getoption("--update-golden"))

    def compare(name: str, value: Any) -> None:
        path = GOLDEN / f"{name}.yaml"
        text = (
            value
            if isinstance(value, str)
            else yaml.safe_dump_all(
                value if isinstance(value, list) else [value], sort_keys=True, explicit_start=True
            )
        )
        if update or not path.exists():
            if not update:
                pytest.fail(f"{path} is missing; run pytest --update-golden to create it")
            path.write_text(text)
            return
        assert text == path.read_text(), f"{name} differs from {path}; if intended, --update-golden"

    return compare


def _cluster_reachable() -> bool:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return False
    probe = subprocess.run(
        [kubectl, "--context", "minikube", "get", "--raw", "/readyz"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    return probe.returncode == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests that need the Pulumi CLI or a cluster when this machine has neither."""
    no_cli = shutil.which("pulumi") is None
    needs_cluster = [item for item in items if "cluster" in item.keywords]
    no_cluster = bool(needs_cluster) and not _cluster_reachable()
    for item in items:
        if "pulumi_cli" in item.keywords and no_cli:
            item.add_marker(pytest.mark.skip(reason="the pulumi CLI is not on PATH"))
        if "cluster" in item.keywords and no_cluster:
            item.add_marker(
                pytest.mark.skip(reason="no reachable cluster (kubectl context minikube)")
            )
