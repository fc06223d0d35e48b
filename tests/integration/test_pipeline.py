"""The example pipeline on real files: incremental local runs, atomic steps, S3 data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from workstack.sdk.pipeline import Pipeline, Step, load_pipeline, run_local, run_step
from workstack.sdk.storage import open_storage

from .conftest import S3Server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ML_BASIC = ROOT / "workloads" / "ml-basic"
WORKSTACK = str(Path(sys.executable).parent / "workstack")


@pytest.fixture(autouse=True)
def _workload_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ML_BASIC))


def touch(path: Path) -> None:
    time.sleep(0.01)  # so the new time is strictly later than any output written before
    os.utime(path)


def test_first_run_runs_all_second_runs_nothing_touching_reruns_downstream(tmp_path: Path) -> None:
    pipeline = load_pipeline("ml:build")
    assert run_local(pipeline, tmp_path).ran == ["get", "features", "join", "fit"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.8
    assert run_local(pipeline, tmp_path).ran == [], "nothing changed, nothing runs"

    touch(tmp_path / "features.csv")
    report = run_local(pipeline, tmp_path)
    assert report.ran == ["join", "fit"], "only what depends on features.csv"
    assert report.skipped == ["get", "features"]

    touch(tmp_path / "raw" / "iris.csv")
    assert run_local(pipeline, tmp_path).ran == ["features", "join", "fit"]
    (tmp_path / "model.json").unlink()
    assert run_local(pipeline, tmp_path).ran == ["fit"], "a missing output reruns its step"


def test_a_failing_step_publishes_none_of_its_outputs(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "half.py").write_text(
        "def write_then_fail(inputs, outputs):\n"
        "    outputs['a'].write_text('complete')\n"
        "    outputs['b'].write_text('half')\n"
        "    raise RuntimeError('failed after writing')\n"
    )
    sys.path.insert(0, str(tmp_path / "code"))
    try:
        pipeline = Pipeline(
            name="p",
            steps=(
                Step(
                    name="two",
                    function="half:write_then_fail",
                    outputs={"a": "a.txt", "b": "b.txt"},
                ),
            ),
        )
        with pytest.raises(RuntimeError, match="failed after writing"):
            run_local(pipeline, tmp_path / "data")
    finally:
        sys.path.remove(str(tmp_path / "code"))
    visible = [p.name for p in (tmp_path / "data").iterdir() if not p.name.startswith(".")]
    assert visible == []


def test_steps_run_as_pods_would_against_a_bucket(s3_server: S3Server) -> None:
    bucket = f"pipeline-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    data = f"s3://{bucket}/ml-basic"
    for step in ("get", "features", "join", "fit"):
        completed = subprocess.run(
            [
                WORKSTACK,
                "pipeline",
                "step",
                "--entrypoint",
                "ml:build",
                "--step",
                step,
                "--data",
                data,
            ],
            env={**os.environ, "PYTHONPATH": str(ML_BASIC)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
    stored = open_storage(data)
    assert stored.list() == [
        "features.csv",
        "join.csv",
        "metrics.json",
        "model.json",
        "raw/iris.csv",
    ]
    assert json.loads(stored.read_text("metrics.json"))["test_rows"] == 75


def test_a_step_whose_input_is_missing_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"raw/iris\.csv: no such file"):
        run_step(load_pipeline("ml:build"), "features", open_storage(tmp_path))


def test_command_line_reports_unknown_steps_with_exit_2(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            WORKSTACK,
            "pipeline",
            "step",
            "--entrypoint",
            "ml:build",
            "--step",
            "train",
            "--data",
            str(tmp_path),
        ],
        env={**os.environ, "PYTHONPATH": str(ML_BASIC)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "has no step 'train'; steps: get, features, join, fit" in completed.stderr
