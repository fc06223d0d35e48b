"""Local mode on the example workload: `workstack run workloads/simulations --local`."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workstack.sdk.queue.localbroker import LocalBroker

from .conftest import ROOT

pytestmark = pytest.mark.integration


def _run(rabbitmq: LocalBroker, storage: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, WORKSTACK_BROKER_URL=rabbitmq.url)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "workstack",
            "run",
            str(ROOT / "workloads" / "simulations"),
            "--local",
            "--workers",
            "2",
            "--out",
            str(storage),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_simulations_workload_runs_locally_stage_by_stage(
    rabbitmq: LocalBroker, tmp_path: Path
) -> None:
    storage = tmp_path / "out"
    done = _run(rabbitmq, storage)
    assert done.returncode == 0, done.stderr
    assert rabbitmq.password not in done.stderr  # the password is never logged
    results = [json.loads(p.read_text()) for p in (storage / "results").glob("*.json")]
    assert len(results) == 14
    by_stage: dict[str, list[dict[str, float]]] = {}
    for result in results:
        by_stage.setdefault(str(result["stage"]), []).append(result)
    assert {stage: len(items) for stage, items in by_stage.items()} == {
        "prepare": 1,
        "simulate": 12,
        "summarize": 1,
    }
    # Each stage started after the one before had finished.
    order = ["prepare", "simulate", "summarize"]
    for before, after in itertools.pairwise(order):
        assert max(r["finished"] for r in by_stage[before]) <= min(
            r["started"] for r in by_stage[after]
        )
    summary = json.loads((storage / "outputs" / "summary" / "summary.json").read_text())
    assert summary["simulations"] == 12
    assert set(summary["wss_by_noise"]) == {"0.5", "1.0", "2.0"}
    # Less noise in the ranking saves more reading.
    wss = summary["wss_by_noise"]
    assert wss["0.5"]["mean"] > wss["2.0"]["mean"]

    again = _run(rabbitmq, storage)
    assert again.returncode == 0, again.stderr
    assert "1 of 1 task(s) already done in the storage" in again.stderr
    assert "12 of 12 task(s) already done in the storage" in again.stderr


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_do_not_outlive_a_killed_local_run(rabbitmq: LocalBroker, tmp_path: Path) -> None:
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "workload.yaml").write_text(
        "name: slow\npattern: queue-workers\nentrypoint: plan:stages\nextras: [queue]\n"
    )
    (folder / "plan.py").write_text("def stages():\n    return ['sleep 60', 'sleep 61']\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "workstack", "run", str(folder), "--local", "--out",
         str(tmp_path / "out"), "--no-progress"],
        env=dict(os.environ, WORKSTACK_BROKER_URL=rabbitmq.url),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert run.stderr is not None
    for line in run.stderr:
        if "worker process(es)" in line:
            break
    time.sleep(3)  # the tasker has published and each worker has taken its task
    workers = _children(run.pid)
    assert len(workers) == 2, workers
    run.kill()
    run.wait()
    deadline = time.monotonic() + 40  # a worker's grace (20 s) and the requeue
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "workers outlived the run that started them"


def test_a_local_run_without_a_broker_starts_its_own(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WORKSTACK_BROKER_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "workstack", "run", str(ROOT / "workloads" / "simulations"),
         "--local", "--workers", "1", "--out", str(tmp_path / "out"), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # A private node, unless a RabbitMQ already listens on 5672 here; never a pika traceback.
    assert (
        "starting a private RabbitMQ node on 127.0.0.1 for this run" in done.stderr
        or "using the RabbitMQ on 127.0.0.1:5672" in done.stderr
    ), done.stderr
    assert "Traceback" not in done.stderr
    assert "pika" not in done.stderr  # its INFO lines are hidden unless --verbose
