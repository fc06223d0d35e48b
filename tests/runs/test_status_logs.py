"""status, logs and following a run, over HTTP against the fake API, with realistic objects."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from workstack.main import app

from .kubeapi import ApiServer

runner = CliRunner()
RUN = {"workstack.dev/run": "r1"}


def cli(outputs: Path, kubeconfig: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--outputs", str(outputs), "--kubeconfig", str(kubeconfig)])


def meta(name: str, **labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "workstack",
        "labels": {**RUN, **labels},
        "creationTimestamp": f"2026-11-30T10:00:{len(name):02d}Z",
    }


def files_job(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("csv-clean-r1", **{"app.kubernetes.io/component": "job-per-file"}),
        "spec": {"completions": 4, "completionMode": "Indexed"},
        "status": status,
    }


def manifest(count: int) -> dict[str, Any]:
    text = "".join(f"f{i:02d}.csv\n" for i in range(count))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("csv-clean-r1-inputs"),
        "data": {"inputs.txt": text},
    }


def pod(
    name: str, status: dict[str, Any], component: str = "job-per-file", **labels: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, **{"app.kubernetes.io/component": component}, **labels),
        "spec": {
            "containers": [
                {
                    "name": "work",
                    "image": "workstack/csv-clean:abc",
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "512Mi"},
                        "limits": {"memory": "512Mi"},
                    },
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}}],
        },
        "status": status,
    }


def terminated(code: int, reason: str = "Error") -> dict[str, Any]:
    return {
        "phase": "Failed",
        "containerStatuses": [
            {
                "name": "work",
                "image": "workstack/csv-clean:abc",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": reason}},
            }
        ],
    }


def test_job_per_file_progress_counts_files_from_the_frozen_list(
    outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    api.put(manifest(10))  # 10 files over 4 shards: indexes hold 3, 3, 2, 2
    api.put(
        files_job(
            {
                "completedIndexes": "0,2",
                "failedIndexes": "1,3",
                "active": 0,
                "startTime": "x",
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "FailedIndexes",
                        "message": "Job has failed indexes",
                    }
                ],
            }
        )
    )
    api.put(
        pod(
            "csv-clean-r1-1-aaa",
            terminated(65),
            **{"batch.kubernetes.io/job-completion-index": "1"},
        )
    )
    api.put(
        pod(
            "csv-clean-r1-3-bbb", terminated(1), **{"batch.kubernetes.io/job-completion-index": "3"}
        )
    )
    api.cluster.logs["csv-clean-r1-1-aaa"] = [
        "bad-input /data/csv-clean/inputs/f01.csv: BadInput: no header"
    ]
    api.cluster.logs["csv-clean-r1-3-bbb"] = [
        "Traceback (most recent call last):",
        "ValueError: boom",
    ]
    result = cli(outputs_file, kubeconfig, "status", "r1")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "run r1 (csv-clean, job-per-file): failed" in out
    assert (
        "files: 5 of 10 done, 2 failed, 3 in shards with bad input, 0 to go (2/4 indexes done, "
        "0 running)" in out
    )
    assert "exit 65: an input file is malformed" in out
    assert "| bad-input /data/csv-clean/inputs/f01.csv: BadInput: no header" in out
    assert "failed with exit 1" in out
    assert "| ValueError: boom" in out


def test_a_pod_whose_requests_do_not_fit_names_the_stack_keys(
    outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    api.put(manifest(4))
    api.put(files_job({"active": 1, "startTime": "x"}))
    api.put(
        pod(
            "csv-clean-r1-0-ccc",
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": (
                            "0/1 nodes are available: 1 Insufficient memory. "
                            "preemption: 0/1 nodes are available: 1 No preemption victims "
                            "found for incoming pod."
                        ),
                    }
                ],
            },
            **{"batch.kubernetes.io/job-completion-index": "0"},
        )
    )
    result = cli(outputs_file, kubeconfig, "status", "r1")
    assert result.exit_code == 5, result.output
    assert (
        "requests (cpu 250m, memory 512Mi) do not fit the nodes (0/1 nodes are available: 1 "
        "Insufficient memory" in result.stdout
    )
    assert (
        "lower jobCpu/jobMemory in the stack config, or this run's --cpu/--memory; or raise "
        "minikubeCpus/minikubeMemory" in result.stdout
    )


def test_an_unbound_claim_and_a_quota_are_named(
    outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    api.put(manifest(4))
    api.put(files_job({"active": 1, "startTime": "x"}))
    api.put(
        pod(
            "csv-clean-r1-0-ddd",
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": (
                            "0/1 nodes are available: pod has unbound immediate "
                            "PersistentVolumeClaims."
                        ),
                    }
                ],
            },
        )
    )
    api.put(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "shared-data", "namespace": "workstack"},
            "status": {"phase": "Pending"},
        }
    )
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e1", "namespace": "workstack"},
            "involvedObject": {"kind": "Job", "name": "csv-clean-r1"},
            "reason": "FailedCreate",
            "message": (
                'Error creating: pods "csv-clean-r1-1-x" is forbidden: exceeded quota: '
                "compute, requested: memory=512Mi, used: memory=4Gi, limited: memory=4Gi"
            ),
        }
    )
    result = cli(outputs_file, kubeconfig, "status", "r1")
    assert result.exit_code == 5, result.output
    assert "its storage claim is not bound (claim shared-data is Pending)" in result.stdout
    assert "a ResourceQuota is exhausted: Error creating" in result.stdout
    assert "exceeded quota: compute" in result.stdout


def test_a_crash_loop_shows_its_last_log_lines(
    outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    api.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta(
                "simulations-r1-workers", **{"app.kubernetes.io/component": "queue-worker"}
            ),
            "spec": {},
            "status": {"active": 1, "startTime": "x"},
        }
    )
    api.put(
        pod(
            "simulations-r1-workers-eee",
            {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "work",
                        "image": "i",
                        "ready": False,
                        "restartCount": 4,
                        "state": {
                            "waiting": {
                                "reason": "CrashLoopBackOff",
                                "message": "back-off 40s restarting failed container",
                            }
                        },
                    }
                ],
            },
            component="queue-worker",
        )
    )
    api.cluster.logs["simulations-r1-workers-eee"] = [
        "connecting to amqp://rabbitmq:5672",
        "error: broker unreachable",
    ]
    result = cli(outputs_file, kubeconfig, "status", "r1")
    assert result.exit_code == 5, result.output
    assert "crash loop: restarted 4 times" in result.stdout
    assert "| error: broker unreachable" in result.stdout


def test_queue_progress_comes_from_the_taskers_log_and_logs_link_the_errors(
    outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    tasker = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(
            "simulations-r1-tasker", **{"app.kubernetes.io/component": "queue-tasker"}
        ),
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "tasker",
                            "env": [
                                {"name": "WORKSTACK_STORAGE_URL", "value": "/data/simulations"}
                            ],
                        }
                    ]
                }
            }
        },
        "status": {"active": 1, "startTime": "x"},
    }
    api.put(tasker)
    api.put(pod("simulations-r1-tasker-fff", {"phase": "Running"}, component="queue-tasker"))
    api.put(pod("simulations-r1-workers-ggg", {"phase": "Running"}, component="queue-worker"))
    api.put(pod("simulations-r1-workers-hhh", {"phase": "Running"}, component="queue-worker"))
    api.cluster.logs["simulations-r1-tasker-fff"] = [
        "run x: 1 stage(s), 40 task(s), queue simulations",
        "stage prepare: 40 task(s)",
        "stage prepare: published 40/40, done 31, failed 2",
    ]
    api.cluster.logs["simulations-r1-workers-hhh"] = ["worker 2 ready", "task 7 done"]
    status = cli(outputs_file, kubeconfig, "status", "r1")
    assert status.exit_code == 0, status.output
    assert "tasks of stage prepare: 40 of 40 published, 31 done, 2 dead-lettered" in status.stdout
    logs = cli(outputs_file, kubeconfig, "logs", "r1", "--worker", "1")
    assert logs.exit_code == 0, logs.output
    assert logs.stdout.splitlines() == ["worker 2 ready", "task 7 done"]
    assert "/data/simulations/errors/" in logs.stderr
    assert "workstack data ls simulations/errors" in logs.stderr
    missing = cli(outputs_file, kubeconfig, "logs", "r1", "--worker", "5")
    assert missing.exit_code == 2
    assert "--worker 5 is not allowed; run r1 has workers 0 to 1" in missing.stderr


def test_logs_of_an_index_and_followed_logs(
    outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    api.put(files_job({"active": 2, "startTime": "x"}))
    for index in (0, 1):
        api.put(
            pod(
                f"csv-clean-r1-{index}-p",
                {"phase": "Running"},
                **{"batch.kubernetes.io/job-completion-index": str(index)},
            )
        )
        api.cluster.logs[f"csv-clean-r1-{index}-p"] = [
            f"index {index} of 4: 3 files",
            f"done f{index}.csv",
        ]
    one = cli(outputs_file, kubeconfig, "logs", "r1", "--index", "1")
    assert one.stdout.splitlines() == ["index 1 of 4: 3 files", "done f1.csv"]
    followed = cli(outputs_file, kubeconfig, "logs", "r1", "--follow")
    assert followed.exit_code == 0, followed.output
    assert sorted(followed.stdout.splitlines()) == sorted(
        f"[csv-clean-r1-{i}-p] {line}"
        for i in (0, 1)
        for line in (f"index {i} of 4: 3 files", f"done f{i}.csv")
    )
    wrong = cli(outputs_file, kubeconfig, "logs", "r1", "--index", "7")
    assert wrong.exit_code == 2
    assert "has pods for index(es) 0, 1" in wrong.stderr
    gone = cli(outputs_file, kubeconfig, "logs", "r9")
    assert gone.exit_code == 2
    assert "run r9 has no pods" in gone.stderr


def test_submit_watch_follows_the_watch_stream_until_the_job_completes(
    tmp_path: Path, outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    local = tmp_path / "in"
    local.mkdir()
    (local / "a.csv").write_text("a\n")

    def controller() -> None:
        deadline = time.monotonic() + 30
        while not api.stored("jobs") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        api.patch("jobs", "csv-clean-r1", {"status": {"active": 1, "startTime": "x"}})
        time.sleep(0.3)
        api.patch(
            "jobs",
            "csv-clean-r1",
            {
                "status": {
                    "active": 0,
                    "completedIndexes": "0-9",
                    "succeeded": 10,
                    "conditions": [{"type": "Complete", "status": "True"}],
                }
            },
        )

    thread = threading.Thread(target=controller, daemon=True)
    thread.start()
    result = cli(
        outputs_file,
        kubeconfig,
        "submit",
        "csv-clean",
        "--from",
        str(local),
        "--run-id",
        "r1",
        "--watch",
    )
    thread.join()
    assert result.exit_code == 0, result.output
    assert "run r1 (csv-clean, job-per-file): succeeded" in result.stdout
    assert "files: 1 of 1 done" in result.stdout
    watches = [r for r in api.requests("GET", "/jobs") if r.params.get("watch") == "true"]
    assert watches
    assert all(r.params["labelSelector"] == "workstack.dev/run=r1" for r in watches)


def step_pod(name: str, workflow: str, main: dict[str, Any]) -> dict[str, Any]:
    """An Argo step pod as the v4 controller makes it: ``wait`` and ``main`` containers, and
    the default-container annotation (workflow/controller/workflowpod.go)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "workstack",
            "labels": {"workflows.argoproj.io/workflow": workflow},
            "annotations": {"kubectl.kubernetes.io/default-container": "main"},
            "creationTimestamp": "2026-11-30T10:01:00Z",
        },
        "spec": {
            "containers": [
                {"name": "wait", "image": "quay.io/argoproj/argoexec:v4.1.0"},
                {"name": "main", "image": "workstack/ml-basic:abc"},
            ]
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "wait", "state": {"terminated": {"exitCode": 0}}},
                {"name": "main", "image": "workstack/ml-basic:abc", "state": main},
            ],
        },
    }


def test_logs_and_status_of_a_pipeline_step_name_its_main_container(
    outputs_file: Path, kubeconfig: Path, api: ApiServer
) -> None:
    """A step pod has two containers: the API server refuses a log request that names none."""
    api.put(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": meta("ml-basic-r1", **{"app.kubernetes.io/component": "pipeline"}),
            "status": {
                "phase": "Failed",
                "nodes": {"n1": {"type": "Pod", "displayName": "fit", "phase": "Failed"}},
            },
        }
    )
    api.put(
        step_pod("ml-basic-r1-fit-1", "ml-basic-r1", terminated(1)["containerStatuses"][0]["state"])
    )
    api.cluster.logs["ml-basic-r1-fit-1"] = ["fitting", "ValueError: no rows"]
    logs = cli(outputs_file, kubeconfig, "logs", "r1")
    assert logs.exit_code == 0, logs.output
    assert logs.stdout.splitlines() == ["fitting", "ValueError: no rows"]
    status = cli(outputs_file, kubeconfig, "status", "r1")
    assert "ValueError: no rows" in status.stdout, status.output
