"""launch: a preview stack (offline engine), push, submit, follow, pull and destroy.

The preview's `pulumi up` is the stack program run by the offline engine with the preview's
config; its cluster is the fake API, whose "kubelet" runs the Job's pods' command
(`workstack files run ...`) locally on the folder standing for the NFS claim.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from workstack.env import collect_garbage, list_previews
from workstack.offline import Deployment, run_program
from workstack.project import PulumiProject, StackSettings
from workstack.runs.data import open_folder
from workstack.runs.errors import RunsError
from workstack.runs.kube import Kube
from workstack.runs.launch import launch
from workstack.runs.stack import Stack

from .conftest import plain
from .kubeapi import ApiServer

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


class OfflineBackend:
    """Preview stacks whose `pulumi up` is the offline engine."""

    def __init__(self, project: PulumiProject) -> None:
        self.project = project
        self.configs: dict[str, dict[str, str]] = {}
        self.deployed: dict[str, Deployment] = {}
        self.destroyed: list[str] = []

    def stacks(self) -> list[str]:
        return sorted(self.configs)

    def config(self, stack: str) -> dict[str, str]:
        return self.configs[stack]

    def prepare(self, stack: str, config: dict[str, str]) -> None:
        self.configs[stack] = dict(config)

    def up(self, stack: str, output: Any) -> None:
        self.deployed[stack] = run_program(self.project, stack, StackSettings(self.configs[stack]))
        output(f"offline up of {stack}\n")

    def outputs(self, stack: str) -> dict[str, Any]:
        return dict(plain(self.deployed[stack].outputs))

    def destroy(self, stack: str, output: Any) -> None:
        self.destroyed.append(stack)
        self.configs.pop(stack)
        self.deployed.pop(stack, None)


def kubelet(api: ApiServer, volume: Path, root: Path, fail: bool = False) -> threading.Thread:
    """Runs the first Job's pods' command locally per index, then marks the Job complete."""

    def work() -> None:
        deadline = time.monotonic() + 60
        while not api.stored("jobs") and time.monotonic() < deadline:
            time.sleep(0.1)
        job = api.stored("jobs")[0]
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        manifest = volume.parent / "manifest.txt"
        manifest.write_text(api.stored("configmaps")[0]["data"]["inputs.txt"])
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        args = [str(volume) + a[5:] if a.startswith("/data/") else a for a in args]
        args = [str(manifest) if a.startswith("/etc/workstack/manifest") else a for a in args]
        shards = int(job["spec"]["completions"])
        done = []
        for index in range(shards):
            run = subprocess.run(
                [sys.executable, "-m", "workstack", *args, "--index", str(index)],
                cwd=root / "workloads/csv-clean",
                env={**os.environ, "PYTHONPATH": str(root / "workloads/csv-clean")},
                capture_output=True,
                check=False,
            )
            if run.returncode == 0 and not fail:
                done.append(index)
        condition = "Complete" if len(done) == shards else "Failed"
        api.patch(
            "jobs",
            name,
            {
                "status": {
                    "active": 0,
                    "completedIndexes": ",".join(map(str, done)),
                    "failedIndexes": ",".join(str(i) for i in range(shards) if i not in done),
                    "conditions": [{"type": condition, "status": "True"}],
                }
            },
            namespace,
        )

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def sales(tmp_path: Path) -> Path:
    folder = tmp_path / "sales"
    folder.mkdir()
    for month in ("01", "02", "03"):
        (folder / f"sales-2024-{month}.csv").write_text(
            "date,region,amount\n2024-01-05, north ,10\n2024-01-06,south,\n"
        )
    return folder


def do_launch(
    project: PulumiProject, backend: OfflineBackend, kubeconfig: Path, tmp_path: Path, **kwargs: Any
) -> Any:
    def connect(stack: Stack) -> Kube:
        return stack.kube(kubeconfig=kubeconfig, context="minikube")

    return launch(
        backend,
        project,
        "csv-clean",
        template="minikube",
        branch="feature/sales",
        owner="dev",
        now=NOW,
        from_local=sales(tmp_path),
        pull_to=tmp_path / "results",
        connect=connect,
        folder=lambda stack, kube: open_folder(stack.contract, kube),
        give_up_stuck_after=60,
        **kwargs,
    )


def test_launch_runs_on_a_preview_pulls_the_results_and_destroys_it(
    project: PulumiProject, api: ApiServer, volume: Path, kubeconfig: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(project)
    worker = kubelet(api, volume, project.root)
    seen: list[str] = []
    result = do_launch(
        project, backend, kubeconfig, tmp_path, down=True, on_status=lambda s: seen.append(s.state)
    )
    worker.join()
    assert result.ok
    assert result.destroyed
    assert backend.destroyed == [result.preview.stack]
    assert backend.stacks() == []
    # The preview ran in its own namespace on the shared minikube cluster.
    job = api.stored("jobs")[0]
    assert job["metadata"]["namespace"] == result.preview.stack
    assert seen[-1] == "succeeded"
    pulled = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert pulled == ["sales-2024-01.csv", "sales-2024-02.csv", "sales-2024-03.csv"]
    assert "north" in (tmp_path / "results/sales-2024-01.csv").read_text()
    assert result.pulled.sent == 3


def test_a_failed_run_still_destroys_the_preview(
    project: PulumiProject, api: ApiServer, volume: Path, kubeconfig: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(project)
    worker = kubelet(api, volume, project.root, fail=True)
    result = do_launch(project, backend, kubeconfig, tmp_path, down=True)
    worker.join()
    assert not result.ok
    assert result.status.state == "failed"
    assert result.destroyed
    assert backend.stacks() == []


def test_an_interrupted_launch_leaves_a_preview_that_env_gc_removes_once_expired(
    project: PulumiProject, api: ApiServer, volume: Path, kubeconfig: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(project)

    def interrupt(_status: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        do_launch(project, backend, kubeconfig, tmp_path, down=False, on_status=interrupt)
    [preview] = list_previews(backend)
    assert preview.expires == NOW + timedelta(hours=6)
    assert collect_garbage(backend, now=NOW + timedelta(hours=5), output=print) == []
    assert [
        p.stack for p in collect_garbage(backend, now=NOW + timedelta(hours=7), output=print)
    ] == [preview.stack]
    assert backend.stacks() == []


def test_an_interrupted_launch_with_down_destroys_the_preview_at_once(
    project: PulumiProject, api: ApiServer, volume: Path, kubeconfig: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(project)

    def interrupt(_status: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        do_launch(project, backend, kubeconfig, tmp_path, down=True, on_status=interrupt)
    assert backend.stacks() == []
    assert len(backend.destroyed) == 1


def test_launch_refuses_missing_inputs_before_any_stack(
    project: PulumiProject, tmp_path: Path, kubeconfig: Path
) -> None:
    backend = OfflineBackend(project)
    with pytest.raises(RunsError, match="no such folder"):
        launch(
            backend,
            project,
            "csv-clean",
            template="minikube",
            branch="b",
            owner="o",
            now=NOW,
            from_local=tmp_path / "nope",
            pull_to=tmp_path / "r",
            down=True,
            connect=lambda stack: stack.kube(kubeconfig=kubeconfig),
            folder=lambda s, k: None,
        )
    assert backend.configs == {}
