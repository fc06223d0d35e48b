"""`workstack run WORKLOAD --local` for each pattern, and `workstack demo`, as a user runs them."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workstack.sdk.queue.localbroker import LocalBroker

from .clone import user_clone

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = ROOT / "workloads"
WORKSTACK = str(Path(sys.executable).parent / "workstack")


def workstack(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WORKSTACK, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_job_per_file_defaults_to_the_sample_data_and_skips_done_outputs(tmp_path: Path) -> None:
    first = workstack("run", str(WORKLOADS / "csv-clean"), "--local", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out" / "csv-clean"
    assert sorted(p.name for p in out.iterdir()) == ["sales-2024-01.csv", "sales-2024-02.csv"]
    assert "2 files: 2 done" in first.stdout
    again = workstack("run", str(WORKLOADS / "csv-clean"), "--local", cwd=tmp_path)
    assert "2 files: 0 done, 2 skipped" in again.stdout


def test_job_per_file_reports_a_malformed_input_with_its_exit_code(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "good.csv").write_text("Order ID,Customer Name\n1,ada\n")
    (inputs / "bad.csv").write_text("Order ID,Customer Name\n1,ada,extra,fields\n")
    done = workstack(
        "run", str(WORKLOADS / "csv-clean"), "--local", "--input", str(inputs), "--out",
        str(tmp_path / "clean"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 65, done.stdout + done.stderr
    assert "1 done" in done.stdout
    assert "1 bad-input" in done.stdout
    assert (tmp_path / "clean" / "good.csv").exists()
    assert not (tmp_path / "clean" / "bad.csv").exists()


def test_dask_runs_the_entrypoint_or_a_config_on_a_local_cluster(tmp_path: Path) -> None:
    done = workstack(
        "run", str(WORKLOADS / "dask-bench"), "--local", "--workers", "2", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "dask-bench" / "dask-bench.csv").open()))
    assert len(rows) == 16, "4 datasets x 4 models, the function's defaults"

    config = tmp_path / "run.yaml"
    config.write_text(
        "run: {function: 'bench:run_benchmark', args: {datasets: 2, rows: 500}}\n"
        "dask_cluster: {workers: 1}\n"
        "output: {path: s3://not-used-locally/small.parquet}\n"
    )
    done = workstack(
        "run", str(WORKLOADS / "dask-bench"), "--local", "--config", str(config), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "dask-bench" / "small.parquet").is_file(), "named after output"


def test_pipeline_runs_what_is_out_of_date(tmp_path: Path) -> None:
    folder = str(WORKLOADS / "ml-basic")
    first = workstack("run", folder, "--local", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "4 step(s) ran, 0 up to date" in first.stdout
    metrics = json.loads((tmp_path / "out" / "ml-basic" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.8
    assert "0 step(s) ran, 4 up to date" in workstack("run", folder, "--local", cwd=tmp_path).stdout
    assert "4 step(s) ran" in workstack("run", folder, "--local", "--force", cwd=tmp_path).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["workloads/dask-bench", "--local", "--input", "x"],
            "--input is for job-per-file and command workloads",
        ),
        (
            ["workloads/csv-clean", "--local", "--force"],
            "--force is for pipeline and command workloads",
        ),
        (["workloads/csv-clean"], "only `workstack run WORKLOAD_DIR --local` runs here"),
        (
            ["workloads/nothing-here", "--local"],
            "expected an existing folder holding workload.yaml",
        ),
        (["workloads/csv-clean", "--local", "--workers", "0"], "workers: 0 is not allowed"),
        (
            ["workloads/dask-bench", "--local", "--config", "missing.yaml"],
            "--config missing.yaml: no such file",
        ),
    ],
)
def test_bad_options_are_named(args: list[str], message: str) -> None:
    done = workstack("run", *args, cwd=ROOT)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr


def test_an_unreachable_broker_fails_with_its_own_status(tmp_path: Path) -> None:
    done = workstack(
        "run", str(WORKLOADS / "simulations"), "--local", cwd=tmp_path,
        env={"WORKSTACK_BROKER_URL": "amqp://127.0.0.1:9"},
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "127.0.0.1:9" in done.stderr


def test_the_demo_runs_every_example_leaves_the_users_own_and_checks_the_stack(
    rabbitmq: LocalBroker, tmp_path: Path
) -> None:
    clone = user_clone(tmp_path / "clone")
    (clone / "workloads" / "mine").mkdir()
    (clone / "workloads" / "mine" / "workload.yaml").write_text("name: Mine\npattern: cron\n")
    done = workstack(
        "demo",
        "--out",
        "demo-out",
        "--project",
        str(clone),
        cwd=tmp_path,
        env={"WORKSTACK_BROKER_URL": rabbitmq.url},
    )
    # Exit 1 exactly when the offline proof finds errors in the stack (issue 12's list while it
    # is open; tests/component/test_render.py, test_the_demo_render_check_passes_for_minikube).
    proof_ok = "offline proof: 0 errors" in done.stdout
    assert done.returncode == (0 if proof_ok else 1), done.stdout + done.stderr
    for name, pattern in [
        ("clc-preprocess", "job-per-file"),
        ("csv-clean", "job-per-file"),
        ("dask-bench", "dask"),
        ("experiment", "command"),
        ("ml-basic", "pipeline"),
        ("ml-ploomber", "pipeline"),
        ("simulations", "queue-workers"),
    ]:
        assert f"ok {name} ({pattern}," in done.stdout
        assert (tmp_path / "demo-out" / name).is_dir()
    assert "skipped mine: not one of workstack's examples" in done.stdout
    assert "schema check: 0 errors" in done.stdout
    summary = tmp_path / "demo-out" / "simulations" / "outputs" / "summary" / "summary.json"
    assert json.loads(summary.read_text())["simulations"] == 12
    assert (tmp_path / "demo-out" / "ml-ploomber" / "output" / "nb.html").is_file()
    assert json.loads((tmp_path / "demo-out" / "experiment" / "metrics.json").read_text()) == {
        "series": 2,
        "mean_slope": 1.265,
    }


def test_with_all_the_users_workloads_run_and_each_failure_says_why(tmp_path: Path) -> None:
    from contextlib import nullcontext

    from workstack.demo import DemoStep, run_examples

    workloads = tmp_path / "workloads"
    (workloads / "broken").mkdir(parents=True)
    (workloads / "broken" / "workload.yaml").write_text("name: broken\npattern: cron\n")
    (workloads / "fails").mkdir()
    (workloads / "fails" / "workload.yaml").write_text(
        "name: fails\npattern: command\ncommand: python -c 'raise SystemExit(3)'\n"
    )
    seen: list[DemoStep] = []
    quiet = run_examples(
        workloads, tmp_path / "out", workers=1, broker_url=lambda: nullcontext(""),
        on_step=seen.append,
    )  # fmt: skip
    assert [(s.name, s.skipped, s.ok) for s in quiet] == [
        ("broken", True, True),
        ("fails", True, True),
    ]
    loud = run_examples(
        workloads, tmp_path / "out", workers=1, broker_url=lambda: nullcontext(""),
        on_step=seen.append, everything=True,
    )  # fmt: skip
    assert [(s.name, s.ok) for s in loud] == [("broken", False), ("fails", False)]
    assert "pattern: 'cron' is not allowed; allowed: job-per-file" in loud[0].summary
    assert loud[1].summary == "failed: command exited 3; no outputs were published"
