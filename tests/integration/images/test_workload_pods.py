"""Each example workload's image, run through its entrypoint (`workstack pod`) on a small input.

The containers run as restricted pods would (user 10001, read-only root, /tmp only) with the
host folders they read and write mounted, as NFS storage is mounted at /data in a pod.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from workstack.sdk.queue.localbroker import LocalBroker

from .conftest import EXAMPLE_WORKLOADS, Builder, Engine

pytestmark = pytest.mark.integration


def shared(folder: Path) -> Path:
    """A host folder the container's user 10001 may write to (as the NFS export is)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o777)
    return folder


def test_csv_clean_cleans_files_as_one_index_of_the_job(
    engine: Engine, build: Builder, tmp_path: Path
) -> None:
    _, image = build(EXAMPLE_WORKLOADS / "csv-clean")
    out = shared(tmp_path / "out")
    engine.run(
        image.ref,
        "--input",
        "/in",
        "--output",
        "/out",
        "--shards",
        "1",
        "--index",
        "0",
        volumes={EXAMPLE_WORKLOADS / "csv-clean" / "data": "/in:ro", out: "/out"},
    )
    assert sorted(p.name for p in out.iterdir()) == ["sales-2024-01.csv", "sales-2024-02.csv"]
    rows = list(csv.reader((out / "sales-2024-01.csv").open()))
    assert rows[0] == ["order_id", "customer_name", "unit_price_eur", "quantity"]
    assert rows[1] == ["1001", "Ada Lovelace", "1234.50", "2"]


def test_dask_bench_runs_its_config_on_a_local_cluster(
    engine: Engine, build: Builder, tmp_path: Path
) -> None:
    _, image = build(EXAMPLE_WORKLOADS / "dask-bench")
    config = shared(tmp_path / "config")
    out = shared(tmp_path / "out")
    (config / "run.yaml").write_text(
        "run: {function: 'bench:run_benchmark', args: {datasets: 2, rows: 2000}}\n"
        "dask_cluster: {workers: 2}\n"
        "output: {path: /out/results.csv}\n"
    )
    engine.run(image.ref, "/config/run.yaml", volumes={config: "/config:ro", out: "/out"})
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 8, "2 datasets x 4 models"
    assert {row["model"] for row in rows} == {"mean", "last", "drift", "seasonal"}


def test_ml_basic_runs_its_steps_one_pod_each(
    engine: Engine, build: Builder, tmp_path: Path
) -> None:
    _, image = build(EXAMPLE_WORKLOADS / "ml-basic")
    data = shared(tmp_path / "data")
    for step in ("get", "features", "join", "fit"):
        engine.run(image.ref, "--step", step, "--data", "/data", volumes={data: "/data"})
    metrics = json.loads((data / "metrics.json").read_text())
    assert metrics["test_rows"] == 75
    assert metrics["accuracy"] > 0.8


def test_simulations_run_as_a_tasker_pod_and_worker_pods(
    engine: Engine, build: Builder, rabbitmq: LocalBroker, tmp_path: Path
) -> None:
    """The QueueWorkers pods: workers started first (as the worker Job's pods may be), the
    tasker publishing the entrypoint's stages, each worker exiting 0 on its stop message."""
    _, image = build(EXAMPLE_WORKLOADS / "simulations")
    results = shared(tmp_path / "results")
    env = {"WORKSTACK_BROKER_URL": rabbitmq.url}
    queue = f"pods-{tmp_path.name[-20:].lower().replace('_', '-')}"
    worker = ["worker", "--queue", queue, "--storage", "/results", "--idle-timeout", "120"]
    workers = [
        engine.start(image.ref, *worker, volumes={results: "/results"}, env=env) for _ in range(2)
    ]
    engine.run(
        image.ref,
        *("tasker", "--queue", queue, "--storage", "/results", "--workers", "2", "--no-progress"),
        volumes={results: "/results"},
        env=env,
    )
    for container in workers:
        status, logs = engine.wait(container)
        assert status == 0, logs
    summary = json.loads((results / "outputs" / "summary" / "summary.json").read_text())
    assert summary["simulations"] == 12
    assert len(list((results / "results").glob("*.json"))) == 14, "prepare, 12 runs, summary"


def test_clc_preprocess_runs_its_command_per_file_in_one_index(
    engine: Engine, build: Builder, tmp_path: Path
) -> None:
    """The interface a job-per-file command workload's pods need: `workstack pod` with the
    Indexed Job's arguments; the command comes from the image's workload.yaml."""
    _, image = build(EXAMPLE_WORKLOADS / "clc-preprocess")
    out = shared(tmp_path / "out")
    data = EXAMPLE_WORKLOADS / "clc-preprocess" / "data"
    engine.run(
        image.ref,
        *("--input", "/in", "--output", "/out", "--shards", "1", "--index", "0"),
        volumes={data: "/in:ro", out: "/out"},
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "station-a.csv",
        "station-b.csv",
        "station-c.csv",
    ]
    rows = list(csv.reader((out / "station-a.csv").open()))
    assert rows == [
        ["station", "temperature", "humidity"],
        ["A1", "21.5", "40"],
        ["B2", "19.0", "55"],
    ]


def test_experiment_runs_once_with_its_inputs_and_outputs_on_the_storage(
    engine: Engine, build: Builder, tmp_path: Path
) -> None:
    """The interface of a command workload's Job: `workstack pod --inputs DIR --outputs DIR`
    with the storage mounted (read-only /app, writes only to the outputs folder)."""
    _, image = build(EXAMPLE_WORKLOADS / "experiment")
    storage = shared(tmp_path / "data")
    (storage / "experiment").mkdir()
    (storage / "experiment").chmod(0o777)
    shutil.copytree(EXAMPLE_WORKLOADS / "experiment" / "data", storage / "experiment" / "inputs")
    engine.run(
        image.ref,
        *("--inputs", "/data/experiment/inputs", "--outputs", "/data/experiment/outputs"),
        volumes={storage: "/data"},
    )
    outputs = storage / "experiment" / "outputs"
    assert json.loads((outputs / "metrics.json").read_text()) == {"series": 2, "mean_slope": 1.265}
    assert sorted(p.name for p in (outputs / "fits").iterdir()) == [
        "series-1.json",
        "series-2.json",
    ]


def test_ml_ploomber_runs_its_tasks_one_pod_each(
    engine: Engine, build: Builder, tmp_path: Path
) -> None:
    """A Ploomber project in an image: each Argo step's pod reads pipeline.yaml from /app."""
    _, image = build(EXAMPLE_WORKLOADS / "ml-ploomber")
    data = shared(tmp_path / "data")
    for step in ("get", "features", "join", "fit"):
        engine.run(image.ref, "--step", step, "--data", "/data", volumes={data: "/data"})
    assert sorted(p.name for p in (data / "output").iterdir()) == [
        "features.parquet",
        "get.parquet",
        "join.parquet",
        "model.pickle",
        "nb.html",
    ]
    assert "accuracy: " in (data / "output" / "nb.html").read_text()
