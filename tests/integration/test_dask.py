"""workstack.sdk.dask on a real distributed scheduler and workers, started as processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from workstack.sdk.dask import run_function
from workstack.sdk.storage import open_storage

from .conftest import S3Server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "workloads" / "dask-bench"
BIN = Path(sys.executable).parent


@dataclass
class DaskProcesses:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=60)


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[DaskProcesses]:
    """A scheduler and two single-threaded workers, each its own process, as pods would be."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(BENCH)}
    scheduler = subprocess.Popen(
        [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = [
        subprocess.Popen(
            [
                BIN / "dask",
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-dashboard",
                "--local-directory",
                str(tmp_path / f"worker-{n}"),
                "--name",
                f"worker-{n}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(2)
    ]
    try:
        _wait_for_workers(address, 2)
        yield DaskProcesses(address, scheduler, workers)
    finally:
        for process in [*workers, scheduler]:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(autouse=True)
def _benchmark_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


def config(address: str, output: str, **args: object) -> dict[str, object]:
    return {
        "run": {"function": "bench:run_benchmark", "args": {"datasets": 3, **args}},
        "dask_cluster": {"address": address},
        "output": {"path": output},
    }


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["seconds"]).sort_values(["dataset", "model"]).reset_index(drop=True)


def test_benchmark_lands_on_local_disk_and_in_s3(
    dask_processes: DaskProcesses, s3_server: S3Server, tmp_path: Path
) -> None:
    local = run_function(config(dask_processes.address, str(tmp_path / "out" / "results.csv")))
    assert len(local) == 12, "3 datasets x 4 models"
    assert comparable(pd.read_csv(tmp_path / "out" / "results.csv")).equals(comparable(local))

    bucket = f"dask-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    remote = run_function(config(dask_processes.address, f"s3://{bucket}/runs/results.parquet"))
    with open_storage(f"s3://{bucket}/runs").fetched("results.parquet") as path:
        stored = pd.read_parquet(path)
    assert comparable(stored).equals(comparable(remote))
    assert comparable(remote).equals(comparable(local)), "deterministic for a seed"


def test_a_worker_killed_mid_run_still_yields_the_full_result(
    dask_processes: DaskProcesses, tmp_path: Path
) -> None:
    from distributed import Client

    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["frame"] = run_function(
                config(dask_processes.address, str(tmp_path / "results.csv"), datasets=6, delay=0.4)
            )
        except Exception as error:  # handed to the test thread
            outcome["error"] = error

    runner = threading.Thread(target=run)
    runner.start()
    with Client(dask_processes.address) as observer:
        deadline = time.monotonic() + 60
        while not any(observer.processing().values()):
            assert time.monotonic() < deadline, "no task ever started"
            time.sleep(0.05)
        victim = dask_processes.workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    runner.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    frame = outcome["frame"]
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 24, "6 datasets x 4 models, none lost with the worker"
    assert frame[["dataset", "model"]].drop_duplicates().shape[0] == 24


def test_the_command_runs_a_local_cluster_when_no_scheduler_is_given(tmp_path: Path) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "run: {function: 'bench:run_benchmark', args: {datasets: 2, models: [mean, drift]}}\n"
        "dask_cluster: {workers: 2}\n"
        f"output: {{path: '{tmp_path / 'out.csv'}'}}\n"
    )
    completed = subprocess.run(
        [BIN / "workstack", "dask", "run", str(config_file)],
        env={**os.environ, "PYTHONPATH": str(BENCH)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "4 rows written to" in completed.stdout
    assert len(pd.read_csv(tmp_path / "out.csv")) == 4


def test_the_command_refuses_credentials_with_exit_2(tmp_path: Path) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "run: {function: 'bench:run_benchmark'}\n"
        "output: {path: r.csv, bucket: b, key: K, secret_key: S}\n"
    )
    completed = subprocess.run(
        [BIN / "workstack", "dask", "run", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "output.key: credentials are refused" in completed.stderr


SEED = ROOT / "workloads" / "dask-bench" / "deepecho.yaml"


def dask_run(config_file: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "workstack", "dask", "run", str(config_file), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(BENCH)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_seeds_config_runs_locally_as_it_is(tmp_path: Path) -> None:
    done = subprocess.run(
        [BIN / "workstack", "run", str(BENCH), "--local", "--config", str(SEED)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    frame = pd.read_csv(tmp_path / "out" / "dask-bench" / "deepecho-bench.csv")
    assert len(frame) == 8, "4 datasets x the 2 models of the config"
    assert "ran no task" not in done.stderr, "the benchmark computes on the cluster"


def test_a_typo_in_args_is_refused_before_any_cluster(tmp_path: Path) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "run: {function: bench.run_benchmark, args: {datasets: 2, moels: [mean]}}\n"
        "dask_cluster: {workers: 4}\n"
    )
    # Nothing listens on the address: reaching for a scheduler would fail differently.
    done = dask_run(config_file, "--address", f"tcp://127.0.0.1:{_free_port()}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "run.args.moels: ['mean'] is not allowed; bench.run_benchmark(" in done.stderr
    assert "takes: datasets, models, rows, seed, delay" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_failed_write_keeps_the_dataframe_and_says_where(
    s3_server: S3Server, tmp_path: Path
) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "run: {function: bench.run_benchmark, args: {datasets: 2, models: [mean]}}\n"
        "dask_cluster: {workers: 1}\n"
        f"output: {{path: results/r.csv, bucket: missing-{uuid.uuid4().hex[:8]}}}\n"
    )
    done = dask_run(config_file, cwd=tmp_path)
    assert done.returncode == 74, done.stdout + done.stderr
    kept = list((tmp_path / "workstack-rescued").glob("r-*.csv"))
    assert len(kept) == 1
    assert f"the DataFrame (2 rows) is kept at {kept[0]}" in done.stderr
    assert len(pd.read_csv(kept[0])) == 2


def test_a_cluster_the_function_does_not_use_is_pointed_out(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text(
        "import pandas as pd\n\ndef table(rows=3):\n    return pd.DataFrame({'n': range(rows)})\n"
    )
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "run: {function: 'plain:table'}\ndask_cluster: {workers: 2}\n"
        f"output: {{path: '{tmp_path / 'out.csv'}'}}\n"
    )
    done = subprocess.run(
        [BIN / "workstack", "dask", "run", str(config_file)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "plain:table ran no task on it: it computed in the client process" in done.stderr
    assert len(pd.read_csv(tmp_path / "out.csv")) == 3


def test_too_few_workers_on_a_scheduler_are_reported(
    dask_processes: DaskProcesses, tmp_path: Path
) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "run: {function: bench.run_benchmark, args: {datasets: 1, models: [mean]}}\n"
        f"dask_cluster: {{workers: 4, address: '{dask_processes.address}'}}\n"
    )
    done = dask_run(config_file, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "dask_cluster.workers asks for 4 workers; the scheduler has 2" in done.stderr
