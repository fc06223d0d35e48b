"""submit, runs, cancel and the data commands over HTTP against a Kubernetes API mock server.

The objects the commands send are checked against the Kubernetes schemas; NFS transfers go
through a transfer pod's exec stream, whose commands the fake server runs locally on a folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from workstack.main import app

from .kubeapi import ApiServer

runner = CliRunner()


def cli(outputs: Path, kubeconfig: Path, *args: str) -> Any:
    common = ["--outputs", str(outputs), "--kubeconfig", str(kubeconfig)]
    return runner.invoke(app, [*args, *common])


def inputs(tmp_path: Path, count: int = 3) -> Path:
    folder = tmp_path / "sales"
    folder.mkdir()
    for i in range(count):
        (folder / f"sales-{i}.csv").write_text(f"region,amount\nnorth,{i}\n")
    return folder


def test_submit_from_a_folder_pushes_freezes_and_creates_a_valid_run(
    tmp_path: Path,
    outputs_file: Path,
    kubeconfig: Path,
    api: ApiServer,
    volume: Path,
    assert_schema_valid: Any,
) -> None:
    local = inputs(tmp_path)
    result = cli(
        outputs_file,
        kubeconfig,
        "submit",
        "csv-clean",
        "--from",
        str(local),
        "--run-id",
        "r1",
        "--parallelism",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "r1"
    # The inputs went through the transfer pod onto the claim, which is gone again.
    assert sorted(p.name for p in (volume / "csv-clean/inputs").iterdir()) == [
        "sales-0.csv",
        "sales-1.csv",
        "sales-2.csv",
    ]
    assert api.stored("pods") == []
    sent = [r.data for r in api.requests("POST")]
    transfer = next(o for o in sent if o["kind"] == "Pod")
    assert transfer["spec"]["volumes"][1]["persistentVolumeClaim"]["claimName"] == "shared-data"
    assert transfer["spec"]["securityContext"]["runAsNonRoot"] is True
    run = [o for o in sent if o["kind"] != "Pod"]
    assert [o["kind"] for o in run] == ["ConfigMap", "Job"]
    assert_schema_valid(sent)
    config_map, job = run
    assert config_map["data"]["inputs.txt"] == "sales-0.csv\nsales-1.csv\nsales-2.csv\n"
    assert job["metadata"]["labels"]["workstack.dev/run"] == "r1"
    assert job["spec"]["parallelism"] == 3
    assert job["metadata"]["name"] == "csv-clean-r1"
    # The exec'd commands were workstack's own, on /data.
    assert api.cluster.exec_commands[0][:3] == ["workstack", "data", "manifest"]


def test_a_job_per_file_run_lists_the_inputs_there_at_submit_time(
    tmp_path: Path, outputs_file: Path, kubeconfig: Path, api: ApiServer, volume: Path
) -> None:
    (volume / "csv-clean/inputs/2024").mkdir(parents=True)
    for name in ("2024/a.csv", "2024/b.csv", "notes.txt"):
        (volume / "csv-clean/inputs" / name).write_text("x\n")
    result = cli(
        outputs_file, kubeconfig, "submit", "csv-clean", "--glob", "*.csv", "--run-id", "r2"
    )
    assert result.exit_code == 0, result.output
    config_map = next(o for o in api.stored("configmaps"))
    assert config_map["data"]["inputs.txt"] == "2024/a.csv\n2024/b.csv\n"


def test_no_inputs_is_bad_input(outputs_file: Path, kubeconfig: Path, api: ApiServer) -> None:
    result = cli(outputs_file, kubeconfig, "submit", "csv-clean")
    assert result.exit_code == 2
    assert "no input files under /data/csv-clean/inputs" in result.stderr
    assert api.stored("jobs") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["submit", "nope"],
            "workload: 'nope' is not allowed; stack 'minikube' has: csv-clean, dask-bench, "
            "ml-basic, simulations",
        ),
        (
            ["submit", "csv-clean", "--run-id", "Bad_Id"],
            "--run-id 'Bad_Id': expected 1-20 of a-z, 0-9 and '-'",
        ),
        (
            ["submit", "csv-clean", "--from", "/no/such/folder"],
            "--from '/no/such/folder': no such folder or file",
        ),
        (
            ["submit", "simulations", "--glob", "*.csv"],
            "option --glob '*.csv' is not allowed for simulations (a queue-workers workload); "
            "it takes: --output, --workers, --cpu, --memory, --setting",
        ),
        (
            ["submit", "ml-basic", "--parallelism", "3"],
            "option --parallelism 3 is not allowed for ml-basic (a pipeline workload); it "
            "takes: no run options",
        ),
        (["submit", "dask-bench"], "config: None is not allowed; a dask run needs its run config"),
        (["submit", "csv-clean", "--setting", "shards=0"], "shards"),
        (
            ["submit", "csv-clean", "--cpu", "lots"],
            "--cpu 'lots' is not allowed; expected a Kubernetes quantity",
        ),
        (["submit", "csv-clean", "--output", "csv-clean/inputs/x"], "lies inside the input"),
        (
            ["logs", "r1", "--index", "1", "--worker", "0"],
            "--index and --worker are not allowed together",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_option_value_and_what_is_allowed(
    outputs_file: Path, kubeconfig: Path, api: ApiServer, args: list[str], message: str
) -> None:
    result = cli(outputs_file, kubeconfig, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert api.stored("jobs") == []
    assert api.stored("configmaps") == []


def test_a_taken_run_id_exits_2_and_leaves_nothing_half_made(
    tmp_path: Path, outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    api.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "csv-clean-r1",
                "namespace": "workstack",
                "labels": {"workstack.dev/run": "r1"},
            },
            "spec": {},
        }
    )
    result = cli(
        outputs_file,
        kubeconfig,
        "submit",
        "csv-clean",
        "--from",
        str(inputs(tmp_path)),
        "--run-id",
        "r1",
    )
    assert result.exit_code == 2, result.output
    assert "--run-id 'r1' is taken" in result.stderr
    assert api.stored("configmaps") == []  # the ConfigMap made before the 409 was removed


def test_permission_denied_exits_4(
    tmp_path: Path, outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    api.cluster.denied.add(("POST", "/jobs"))
    result = cli(outputs_file, kubeconfig, "submit", "csv-clean", "--from", str(inputs(tmp_path)))
    assert result.exit_code == 4, result.output
    assert "permission denied" in result.stderr
    assert "/jobs" in result.stderr


def test_an_api_server_that_does_not_answer_exits_3(
    outputs_file: Path, kubeconfig: Path, api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workstack.runs.kube as kube

    api.cluster.slow.add("/jobs")
    original = kube.Kube.connect.__func__  # type: ignore[attr-defined]

    def quick(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return original(cls, *args, **{**kwargs, "timeout": 1.0})

    monkeypatch.setattr(kube.Kube, "connect", classmethod(quick))
    result = cli(outputs_file, kubeconfig, "runs")
    assert result.exit_code == 3, result.output
    assert "did not answer within 1 s" in result.stderr


def test_a_refused_connection_exits_3(outputs_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "kc"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "minikube", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "minikube",
            }
        )
    )
    result = cli(outputs_file, config, "runs")
    assert result.exit_code == 3
    assert "cannot reach the Kubernetes API at http://127.0.0.1:9" in result.stderr


def test_runs_lists_runs_by_label_and_cancel_deletes_them_in_the_foreground(
    tmp_path: Path, outputs_file: Path, kubeconfig: Path, api: ApiServer, volume: Path
) -> None:
    local = inputs(tmp_path)
    assert (
        cli(
            outputs_file, kubeconfig, "submit", "csv-clean", "--from", str(local), "--run-id", "r1"
        ).exit_code
        == 0
    )
    assert cli(outputs_file, kubeconfig, "submit", "simulations", "--run-id", "r2").exit_code == 0
    listed = cli(outputs_file, kubeconfig, "runs")
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [row[:3] for row in rows] == [
        ["r1", "csv-clean", "job-per-file"],
        ["r2", "simulations", "queue-workers"],
    ]
    (volume / "csv-clean/outputs").mkdir(parents=True)
    (volume / "csv-clean/outputs/sales-0.csv").write_text("done")
    cancelled = cli(outputs_file, kubeconfig, "cancel", "r1")
    assert cancelled.exit_code == 0, cancelled.output
    deletes = [r for r in api.requests("DELETE") if "/pods/" not in r.url.path]
    assert {r.url.path.rsplit("/", 1)[1] for r in deletes} == {
        "csv-clean-r1",
        "csv-clean-r1-inputs",
    }
    assert all(r.data["propagationPolicy"] == "Foreground" for r in deletes)
    assert [j["metadata"]["name"] for j in api.stored("jobs")] == [
        "simulations-r2-tasker",
        "simulations-r2-workers",
    ]
    assert (volume / "csv-clean/outputs/sales-0.csv").read_text() == "done"
    again = cli(outputs_file, kubeconfig, "cancel", "r1")
    assert again.exit_code == 2
    assert "run 'r1' has no objects" in again.stderr


def test_data_push_ls_pull_through_the_transfer_pod(
    tmp_path: Path, outputs_file: Path, kubeconfig: Path, api: ApiServer, volume: Path
) -> None:
    local = inputs(tmp_path, 4)
    pushed = cli(outputs_file, kubeconfig, "data", "push", str(local), "csv-clean/inputs")
    assert pushed.exit_code == 0, pushed.output
    assert "4 file(s) transferred" in pushed.stdout
    listed = cli(outputs_file, kubeconfig, "data", "ls", "/data/csv-clean")
    assert listed.exit_code == 0, listed.output
    assert [line.split()[-1] for line in listed.stdout.splitlines()] == [
        f"inputs/sales-{i}.csv" for i in range(4)
    ]
    pulled = cli(
        outputs_file, kubeconfig, "data", "pull", "csv-clean/inputs", str(tmp_path / "back")
    )
    assert pulled.exit_code == 0, pulled.output
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == [
        f"sales-{i}.csv" for i in range(4)
    ]
    assert api.stored("pods") == []  # every transfer pod was deleted
    outside = cli(outputs_file, kubeconfig, "data", "ls", "s3://elsewhere/x")
    assert outside.exit_code == 2
    assert "is not on stack 'minikube''s storage" in outside.stderr


def test_an_interrupted_push_over_the_exec_stream_resumes(
    tmp_path: Path, outputs_file: Path, kubeconfig: Path, api: ApiServer, volume: Path
) -> None:
    local = tmp_path / "big"
    local.mkdir()
    for i in range(5):
        (local / f"part-{i}.bin").write_bytes(bytes([i]) * 200_000)
    api.cluster.exec_breaks_after = 450_000  # the connection drops inside the third file
    broken = cli(outputs_file, kubeconfig, "data", "push", str(local), "big")
    assert broken.exit_code == 1, broken.output
    assert "interrupted" in broken.stderr
    assert "run the same command again" in broken.stderr
    arrived = sorted(p.name for p in (volume / "big").iterdir())
    assert arrived == ["part-0.bin", "part-1.bin"]  # whole files only, no partial one
    api.cluster.exec_breaks_after = None
    resumed = cli(outputs_file, kubeconfig, "data", "push", str(local), "big")
    assert resumed.exit_code == 0, resumed.output
    assert "3 file(s) transferred" in resumed.stdout
    assert "2 already there" in resumed.stdout
    assert all(
        (volume / "big" / f"part-{i}.bin").read_bytes() == bytes([i]) * 200_000 for i in range(5)
    )


def test_exec_forbidden_exits_4(
    tmp_path: Path, outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    api.cluster.denied.add(("GET", "/exec"))
    result = cli(outputs_file, kubeconfig, "data", "ls")
    assert result.exit_code == 4, result.output
    assert "permission denied" in result.stderr


def test_a_transfer_pod_that_cannot_pull_its_image_says_so(
    outputs_file: Path, kubeconfig: Path, api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workstack.runs.data as data

    monkeypatch.setattr(data, "_wait_running", _quick_wait(data._wait_running))
    api.cluster.pod_status = lambda pod: {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [
            {
                "name": "data",
                "image": pod["spec"]["containers"][0]["image"],
                "ready": False,
                "restartCount": 0,
                "state": {
                    "waiting": {
                        "reason": "ErrImageNeverPull",
                        "message": (
                            'Container image "workstack/csv-clean:abc" is not present '
                            "with pull policy of Never"
                        ),
                    }
                },
            }
        ],
    }
    result = cli(outputs_file, kubeconfig, "data", "ls")
    assert result.exit_code == 1, result.output
    assert "cannot be pulled (ErrImageNeverPull" in result.stderr
    assert "pulumi up -s minikube" in result.stderr
    assert api.stored("pods") == []


def _quick_wait(wait: Any) -> Any:
    def quick(kube: Any, contract: Any, name: str, timeout: float) -> None:
        wait(kube, contract, name, 1.0)

    return quick
