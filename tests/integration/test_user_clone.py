"""What a user sees in their own clone, without ../shared beside it: help, render, demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workstack.schemas import CRD_DIRS_ENV

from .clone import user_clone

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORKSTACK = str(Path(sys.executable).parent / "workstack")
SHARED_CRDS = ROOT.parent / "shared" / "crds"


def workstack(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``workstack`` as a user would: without the CRD folders tests/conftest.py adds."""
    env = {name: value for name, value in os.environ.items() if name != CRD_DIRS_ENV}
    return subprocess.run(
        [WORKSTACK, *args],
        cwd=cwd,
        env={**env, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's tracked files, in a folder with no shared/ beside it."""
    return user_clone(tmp_path_factory.mktemp("user") / "workstack")


def test_render_says_what_it_did_not_check_and_how_to(clone: Path, tmp_path: Path) -> None:
    done = workstack("render", "--stack", "minikube", "--validate", "--project", str(clone),
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "# checked against hera's Argo models (no CRD found): WorkflowTemplate/ml-basic" in (
        done.stderr
    )
    assert "# NOT CHECKED (no CRD found): RabbitmqCluster/rabbitmq" in done.stderr
    assert "0 errors, 1 not checked" in done.stderr
    assert "kubectl apply --dry-run=server" in done.stderr
    if SHARED_CRDS.is_dir():
        given = workstack("render", "--stack", "minikube", "--validate", "--project", str(clone),
                          "--crds", str(SHARED_CRDS), cwd=tmp_path)  # fmt: skip
        assert given.returncode == 0, given.stderr
        assert "0 errors, 0 not checked" in given.stderr
    missing = workstack("render", "--stack", "minikube", "--validate", "--project", str(clone),
                        "--crds", str(tmp_path / "nope"), cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 2
    assert "no such folder; expected a folder of CRD YAML files" in missing.stderr
    assert missing.stdout == "", "nothing is rendered for a bad option"


def flat(text: str) -> str:
    return re.sub(r"[\s│]+", " ", text)


def test_help_texts_keep_their_words_and_flow(tmp_path: Path) -> None:
    render = workstack("render", "--help", cwd=tmp_path).stdout
    assert "Secrets show as [secret]." in flat(render)
    assert not re.search(r"account or\s*\n\s*cluster", render), "no break where the source had one"
    pod = workstack("pod", "--help", cwd=tmp_path).stdout
    assert "Usage: workstack pod [OPTIONS] ARGS..." in flat(pod) or (
        "Usage: workstack pod [OPTIONS] [ARGS]..." in flat(pod)
    )
    files = flat(workstack("files", "run", "--help", cwd=tmp_path).stdout)
    assert "{output_dir} an empty folder for a script that names its own outputs" in files
