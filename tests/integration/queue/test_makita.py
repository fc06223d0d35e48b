"""asreview's makita flow (workloads/asreview-makita) locally, with jobs.sh as makita writes it.

It needs the example's own environment (asreview 2.2 needs pandas < 3): ``make examples``
makes ``.venv-asreview``, and ``make test`` does so before the tests. Without it the test is
skipped, saying how to get it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workstack.sdk.queue.localbroker import LocalBroker

from .conftest import ROOT

pytestmark = pytest.mark.integration

PYTHON = ROOT / ".venv-asreview" / "bin" / "python"
EXAMPLE = ROOT / "workloads" / "asreview-makita"


def _run(rabbitmq: LocalBroker, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "-m", "workstack", "run", str(EXAMPLE), "--local", "--workers", "2",
         "--out", str(out), "--no-progress"],
        env=dict(os.environ, WORKSTACK_BROKER_URL=rabbitmq.url),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip


@pytest.mark.skipif(not PYTHON.exists(), reason="needs the example's environment: make examples")
def test_makitas_jobs_sh_runs_unchanged_split_in_stages(
    rabbitmq: LocalBroker, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = _run(rabbitmq, out)
    assert done.returncode == 0, done.stderr
    work = out / "work"
    # jobs.sh is makita's, untouched: the parts hold its lines, and only its lines.
    jobs = (work / "jobs.sh").read_text().splitlines()
    commands = [line for line in jobs if line.strip() and not line.startswith("#")]
    parts = [(work / f"jobs.sh.part{n}").read_text().splitlines() for n in range(1, 5)]
    assert sorted(commands) == sorted(line for part in parts for line in part)
    assert "mkdir output" in parts[0]  # fails (makita made it), as bash would let it
    assert "cannot create directory" in done.stderr
    # Every simulation ran, then its metrics, then the tables that merge them.
    table = work / "output" / "tables" / "metrics" / "metrics_sim_toy.csv"
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["file_name"] for row in rows) == [
        "metrics_sim_toy_0.json",
        "metrics_sim_toy_1.json",
    ]
    assert (work / "output" / "figures" / "plot_recall_sim_toy.png").stat().st_size > 0
    results = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
    assert {r["stage"] for r in results} == {"jobs.sh.part2", "jobs.sh.part3", "jobs.sh.part4"}
    assert all(r["exit_code"] == 0 for r in results)
    assert "pika" not in done.stderr  # pika's INFO lines stay out of the run's output

    # The seed's tasker wipes its work folder before it starts: everything runs again.
    shutil.rmtree(work)
    again = _run(rabbitmq, out)
    assert again.returncode == 0, again.stderr
    assert "the work folder it ran in was wiped since: running it again" in again.stderr
    assert table.exists()
    assert (work / "output" / "tables" / "metrics_sim_all.csv").exists()


@pytest.mark.skipif(not PYTHON.exists(), reason="needs the example's environment: make examples")
def test_the_rendered_tasker_and_worker_jobs_run_it_with_a_read_only_app(
    rabbitmq: LocalBroker, tmp_path: Path
) -> None:
    """The container commands the stack renders for the example, run here as its pods would:
    the workload folder read-only (as /app is), the storage a writable folder (the NFS mount)."""
    from workstack.components.manifests.queue import (
        QueueSettings,
        QueueTarget,
        build_queue_workers,
    )
    from workstack.policy import pod_templates

    app = tmp_path / "app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("__pycache__"))
    storage = tmp_path / "data" / "asreview-makita"
    target = QueueTarget(
        name="asreview-makita",
        namespace="workstack",
        instance="asreview-makita",
        image="registry.example/asreview-makita:1",
        broker_secret="rabbitmq-default-user",
        storage_url=str(storage),
        tasks_from="makita_flow.plan:stages",
        queue="asreview-makita",
    )
    settings = QueueSettings(workers=2)
    jobs = {obj["metadata"]["name"]: obj for obj in build_queue_workers(target, settings)}

    def argv(job: str) -> list[str]:
        [template] = pod_templates(jobs[job])
        [container] = template.spec["containers"]
        assert container["command"] == ["workstack"]
        return [str(PYTHON), "-m", "workstack", *container["args"]]

    for path in [app, *app.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)  # read-only, as /app is in pods
    env = dict(os.environ, WORKSTACK_BROKER_URL=rabbitmq.url, PYTHONPATH=str(app))
    try:
        workers = [
            subprocess.Popen(
                [*argv("asreview-makita-workers"), "--worker-id", f"pod-{n}"],
                cwd=app,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"pod-{n}.log").open("w"),
            )
            for n in range(2)
        ]
        tasker = subprocess.run(
            argv("asreview-makita-tasker"), cwd=app, env=env, capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip
        codes = [worker.wait(timeout=120) for worker in workers]
    finally:
        for path in [app, *app.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    assert tasker.returncode == 0, tasker.stderr
    assert codes == [0, 0]
    assert not list(app.rglob("output"))  # nothing written where the image is
    table = storage / "work" / "output" / "tables" / "metrics" / "metrics_sim_toy.csv"
    with table.open() as handle:
        assert len(list(csv.DictReader(handle))) == 2
