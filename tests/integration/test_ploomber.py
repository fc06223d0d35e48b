"""Ploomber projects, unchanged, run by workstack and checked against the real Ploomber 0.23."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from workstack.sdk.pipeline import PipelineError, load_pipeline
from workstack.sdk.storage import open_storage

from .conftest import S3Server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "workloads" / "ml-ploomber"
BIN = Path(sys.executable).parent
QUIET = {"PLOOMBER_STATS_ENABLED": "false"}  # no telemetry: this machine reaches no analytics


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env={**os.environ, **QUIET, **(env or {})},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


def ploomber_build(project: Path) -> None:
    done = run(BIN / "ploomber", "build", "--force", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_gives_what_ploomber_build_gives(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(EXAMPLE, reference)
    ploomber_build(reference)
    done = run(
        BIN / "workstack", "run", EXAMPLE, "--local", "--out", tmp_path / "out", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 step(s) ran, 0 up to date" in done.stdout
    ours, theirs = tmp_path / "out" / "output", reference / "output"
    for name in ("get.parquet", "features.parquet", "join.parquet"):
        assert pd.read_parquet(ours / name).equals(pd.read_parquet(theirs / name)), name
    model, expected = (pickle.loads((d / "model.pickle").read_bytes()) for d in (ours, theirs))
    assert model["accuracy"] == expected["accuracy"] >= 0.75
    report = (ours / "nb.html").read_text()
    assert "accuracy: " in report, "the executed notebook's output"
    assert "read_parquet" not in report, "nbconvert_export_kwargs: exclude_input"
    assert not list(EXAMPLE.rglob("output")), "products go to the data root, not the project"


DAG_OF = """
import json
from ploomber.spec import DAGSpec
dag = DAGSpec("pipeline.yaml", lazy_import=True).to_dag()
print(json.dumps({name: sorted(dag[name].upstream) for name in dag}))
"""


def test_the_dag_is_the_one_ploomber_builds() -> None:
    # In a fresh interpreter: another test's `tasks` module must not stand in for this one's.
    done = run(sys.executable, "-c", DAG_OF, cwd=EXAMPLE, env={"PYTHONPATH": str(EXAMPLE)})
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    pipeline = load_pipeline("pipeline.yaml", folder=EXAMPLE)
    ours = {step.name: sorted(pipeline.dependencies(step)) for step in pipeline.steps}
    assert ours == theirs == {
        "get": [], "features": ["get"], "join": ["features", "get"], "fit": ["join"],
    }  # fmt: skip


SCRIPT_PROJECT: dict[str, str] = {
    "pipeline.yaml": """
meta:
  extract_upstream: false
tasks:
  - source: steps.load_rows
    name: load_rows
    product: {data: raw/rows.csv, count: raw/count.txt}
    params: {rows: 6}
  - source: steps.double
    product: doubled.csv
    upstream: [load_rows]
  - source: summarize.py
    class: ScriptRunner
    upstream: [double, load_rows]
    product: summary/total.txt
    params: {label: total}
""",
    "steps.py": """
from pathlib import Path


def load_rows(product, rows):
    Path(product["data"]).parent.mkdir(parents=True, exist_ok=True)
    Path(product["data"]).write_text("".join(f"{n}\\n" for n in range(rows)))
    Path(product["count"]).write_text(str(rows))


def double(upstream, product):
    numbers = Path(upstream["load_rows"]["data"]).read_text().split()
    Path(product).write_text("".join(f"{int(n) * 2}\\n" for n in numbers))
""",
    "summarize.py": """# %%
from pathlib import Path

# %% tags=["parameters"]
upstream = ["double", "load_rows"]
product = None
label = None

# %%
total = sum(int(n) for n in Path(upstream["double"]).read_text().split())
count = Path(upstream["load_rows"]["count"]).read_text()
Path(product).parent.mkdir(parents=True, exist_ok=True)
Path(product).write_text(f"{label}={total} of {count}")
""",
    "workload.yaml": "name: scripts\npattern: pipeline\nentrypoint: pipeline.yaml\n",
}


def write_project(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text.lstrip("\n"))
    return folder


def touch(path: Path) -> None:
    time.sleep(0.01)
    os.utime(path)


def test_scripts_params_dict_products_and_declared_upstream_as_ploomber_runs_them(
    tmp_path: Path,
) -> None:
    reference = write_project(tmp_path / "reference", SCRIPT_PROJECT)
    ploomber_build(reference)
    project = write_project(tmp_path / "scripts", SCRIPT_PROJECT)
    out = tmp_path / "out"
    done = run(BIN / "workstack", "run", project, "--local", "--out", out, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("raw/rows.csv", "raw/count.txt", "doubled.csv", "summary/total.txt"):
        assert (out / name).read_text() == (reference / name).read_text(), name
    assert (out / "summary" / "total.txt").read_text() == "total=30 of 6"

    again = run(BIN / "workstack", "run", project, "--local", "--out", out, cwd=tmp_path)
    assert "0 step(s) ran, 3 up to date" in again.stdout
    touch(out / "doubled.csv")
    after = run(BIN / "workstack", "run", project, "--local", "--out", out, cwd=tmp_path)
    assert "1 step(s) ran, 2 up to date" in after.stdout, "only summarize depends on it"


def test_steps_run_one_pod_each_against_a_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    project = write_project(tmp_path / "scripts", SCRIPT_PROJECT)
    bucket = f"ploomber-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    data = f"s3://{bucket}/scripts"
    for step in ("load-rows", "double", "summarize"):
        done = run(
            BIN / "workstack", "pipeline", "step", "--entrypoint", "pipeline.yaml", "--step", step,
            "--data", data, cwd=project,  # the image's working directory, /app
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    stored = open_storage(data)
    assert stored.list() == ["doubled.csv", "raw/count.txt", "raw/rows.csv", "summary/total.txt"]
    assert stored.read_text("summary/total.txt") == "total=30 of 6"


def test_a_failing_script_fails_its_step_with_its_error_and_publishes_nothing(
    tmp_path: Path,
) -> None:
    files = dict(SCRIPT_PROJECT)
    files["summarize.py"] = files["summarize.py"].replace("total = sum(", "total = 1 / 0 + sum(")
    project = write_project(tmp_path / "scripts", files)
    out = tmp_path / "out"
    done = run(BIN / "workstack", "run", project, "--local", "--out", out, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "2 step(s) ran, 0 up to date, then step 'summarize': summarize.py exited 1" in done.stdout
    )
    assert "ZeroDivisionError" in done.stdout
    assert not [p for p in out.rglob("*") if p.is_file() and "summary" in p.parts]


BAD_SPECS = [
    (
        "tasks:\n  - source: tasks.get\n    product: out.csv\n    grid: {a: [1, 2]}\n",
        "tasks[0].grid: {'a': [1, 2]} is not allowed; allowed keys: source, product",
    ),
    (
        "tasks:\n  - source: tasks.get\n    product: '{{root}}/out.csv'\n",
        "env.yaml placeholders are not supported",
    ),
    (
        "tasks:\n  - source: fit.py\n    product: report.html\n",
        "a script run as a notebook needs a mapping with an 'nb' key",
    ),
    (
        "tasks:\n  - source: query.sql\n    product: out.csv\n",
        "scripts must be .py or .ipynb (SQL, shell and R tasks are not supported)",
    ),
    (
        "tasks:\n  - source: tasks.get\n    product: /abs/out.csv\n",
        "expected a relative path without '..'",
    ),
    (
        "clients: {File: clients.get}\ntasks:\n  - source: tasks.get\n    product: o.csv\n",
        "clients: {'File': 'clients.get'} is not allowed; allowed keys: tasks, meta, executor",
    ),
    (
        "meta: {extract_upstream: false}\ntasks:\n  - source: tasks.get\n    product: o.csv\n"
        "    upstream: [nothing]\n",
        "upstream: 'nothing' is not allowed; expected the name of a task: get",
    ),
    ("tasks:\n  - source: tasks.missing\n    product: o.csv\n", "has no missing"),
    (
        "tasks:\n  - source: tasks.get\n    product: o.csv\n    upstream: [other]\n",
        "not allowed while meta.extract_upstream is true",
    ),
    (
        "tasks:\n  - source: plain.py\n    class: ScriptRunner\n    product: o.csv\n",
        "a script needs a cell tagged parameters",
    ),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_a_spec_using_what_is_not_supported_is_refused_by_key(
    tmp_path: Path, spec: str, message: str
) -> None:
    project = write_project(
        tmp_path / "bad",
        {
            "pipeline.yaml": spec,
            "tasks.py": "def get(product):\n    pass\n",
            "fit.py": "# %% tags=['parameters']\nupstream = None\nproduct = None\n",
            "plain.py": "print('no parameters cell')\n",
            "workload.yaml": "name: bad\npattern: pipeline\nentrypoint: pipeline.yaml\n",
        },
    )
    with pytest.raises(PipelineError) as caught:
        load_pipeline("pipeline.yaml", folder=project)
    assert message in str(caught.value)
    done = run(BIN / "workstack", "run", project, "--local", "--out", tmp_path / "o", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_the_export_is_an_argo_workflow_of_the_projects_tasks(
    tmp_path: Path, assert_schema_valid: Any
) -> None:
    out = tmp_path / "argo.yaml"
    done = run(
        BIN / "workstack", "export", "argo", EXAMPLE, "--image", "registry.example/ml:1",
        "--out", out, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    workflow = yaml.safe_load(out.read_text())
    assert_schema_valid([workflow])
    dag = next(t for t in workflow["spec"]["templates"] if t["name"] == "pipeline")["dag"]
    assert {t["name"]: sorted(t.get("dependencies", [])) for t in dag["tasks"]} == {
        "get": [], "features": ["get"], "join": ["features", "get"], "fit": ["join"],
    }  # fmt: skip
    fit = next(t for t in workflow["spec"]["templates"] if t["name"] == "fit")
    assert fit["container"]["args"] == [
        "pipeline", "step", "--entrypoint", "pipeline.yaml", "--step", "fit", "--data",
        "/data/ml-ploomber",
    ]  # fmt: skip
    assert fit["container"]["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A core install (what images and most users have) of this checkout, in its own venv."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = run(venv / "bin" / "pip", "install", "--quiet", ROOT, cwd=venv.parent)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv


def test_a_notebook_task_without_papermill_says_what_to_install(
    core_venv: Path, tmp_path: Path
) -> None:
    project = write_project(
        tmp_path / "nb",
        {
            "pipeline.yaml": "tasks:\n  - source: report.py\n    product: {nb: report.ipynb}\n",
            "report.py": "# %% tags=['parameters']\nupstream = None\nproduct = None\n",
            "workload.yaml": "name: nb\npattern: pipeline\nentrypoint: pipeline.yaml\n",
        },
    )
    done = run(core_venv / "bin" / "workstack", "run", project, "--local", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "runs report.py as a notebook, which needs papermill" in done.stdout
    assert "or declare `class: ScriptRunner`" in done.stdout


def test_a_notebook_source_runs_through_papermill_as_ploomber_runs_it(tmp_path: Path) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "upstream = None\nproduct = None\nrows = 2", metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell(
            "from pathlib import Path\n"
            "Path(product['data']).write_text(','.join(str(n * n) for n in range(rows)))\n"
            "print('squares written')"
        ),
    ]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "language": "python",
        "display_name": "Python 3",
    }
    files = {
        "pipeline.yaml": "tasks:\n  - source: squares.ipynb\n"
        "    product: {nb: squares-run.ipynb, data: squares.txt}\n    params: {rows: 5}\n",
        "squares.ipynb": nbformat.writes(notebook),
        "workload.yaml": "name: nbs\npattern: pipeline\nentrypoint: pipeline.yaml\n",
    }
    reference = write_project(tmp_path / "reference", files)
    ploomber_build(reference)
    project = write_project(tmp_path / "nbs", files)
    done = run(
        BIN / "workstack", "run", project, "--local", "--out", tmp_path / "out", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "squares.txt").read_text() == "0,1,4,9,16"
    assert (reference / "squares.txt").read_text() == "0,1,4,9,16"
    executed = nbformat.read(tmp_path / "out" / "squares-run.ipynb", as_version=4)
    outputs = [o for cell in executed.cells for o in cell.get("outputs", [])]
    assert any("squares written" in o.get("text", "") for o in outputs)


def test_export_without_the_deploy_tools_says_what_to_install(
    core_venv: Path, tmp_path: Path
) -> None:
    venv = core_venv
    done = run(
        venv / "bin" / "workstack", "export", "argo", EXAMPLE, "--image", "registry.example/ml:1",
        "--out", tmp_path / "argo.yaml", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pulumi is not installed: pip install 'workstack[deploy]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "argo.yaml").exists()
