"""checkov, a widely used Kubernetes scanner, over every render: a new failing check fails.

Every stack, the off-defaults fixtures, the stack with its own operators, and a run of every
workload (``build_run`` from each stack's contract) are written to one folder, one file per
object, and checkov runs once over it (seconds, not minutes). Failures must be listed in
checkov_skips.yaml with a reason; a listed skip that no longer fires must go.

checkov is pinned in pyproject.toml ([tool.workstack] checkov) and installed by ``make setup``
into .venv/checkov: its own pins exclude the project's (packaging<24).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.security.test_network_policies import render
from workstack.render import write_objects

ROOT = Path(__file__).resolve().parents[2]
SKIPS = Path(__file__).with_name("checkov_skips.yaml")
RENDERS = (
    "minikube",
    "gke",
    "eks",
    "offdefaults-minikube",
    "offdefaults-gke",
    "offdefaults-eks",
    "gke-operators",
)


@dataclass(frozen=True)
class Failure:
    check: str
    name: str
    render: str
    resource: str

    def __str__(self) -> str:
        return f"{self.check} ({self.name}) on {self.resource} in {self.render}"


def _checkov() -> Path:
    pin = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["workstack"]["checkov"]
    binary = Path(
        os.environ.get("WORKSTACK_CHECKOV", ROOT / ".venv" / "checkov" / "bin" / "checkov")
    )
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: `make setup` installs {pin} there")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == pin.split("==")[1], f"{binary} is not {pin}: run make setup"
    return binary


@cache
def scan(root: str) -> tuple[dict[str, int], tuple[Failure, ...]]:
    folder = Path(root)
    for name in RENDERS:
        write_objects(list(render(name)), folder / name)
    result = subprocess.run(
        [
            _checkov(),
            "-d",
            folder,
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summary: dict[str, int] = {"passed": 0, "failed": 0, "resource_count": 0, "parsing_errors": 0}
    failures = []
    for report in reports:
        for key in summary:
            summary[key] += int(report["summary"].get(key, 0))
        for item in report["results"]["failed_checks"]:
            render_name = Path(item["file_path"]).parts[1]
            failures.append(
                Failure(item["check_id"], item["check_name"], render_name, item["resource"])
            )
    return summary, tuple(failures)


def _skips() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = yaml.safe_load(SKIPS.read_text())
    return entries


def _skipped(failure: Failure, entry: dict[str, Any]) -> bool:
    renders = entry["renders"]
    return (
        entry["check"] == failure.check
        and (renders == "*" or failure.render in renders)
        and re.search(entry["resources"], failure.resource) is not None
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], tuple[Failure, ...]]:
    return scan(str(tmp_path_factory.mktemp("renders")))


def test_every_skip_has_a_reason_and_a_place() -> None:
    for entry in _skips():
        assert set(entry) == {"check", "renders", "resources", "reason"}, entry
        assert re.fullmatch(r"CKV2?_K8S_\d+", entry["check"]), entry
        assert len(entry["reason"].split()) >= 12, f"say why: {entry}"


def test_checkov_finds_nothing_new(results: tuple[dict[str, int], tuple[Failure, ...]]) -> None:
    summary, failures = results
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] > 200, summary
    new = [f for f in failures if not any(_skipped(f, entry) for entry in _skips())]
    assert not new, "new checkov failures:\n" + "\n".join(sorted(map(str, new)))


def test_every_skip_still_fires(results: tuple[dict[str, int], tuple[Failure, ...]]) -> None:
    _, failures = results
    stale = [e["check"] for e in _skips() if not any(_skipped(f, e) for f in failures)]
    assert not stale, f"these checks pass now; remove them from {SKIPS.name}: {stale}"
