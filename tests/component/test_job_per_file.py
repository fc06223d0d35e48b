"""JobPerFile under Pulumi's mocks: constant object count, valid Job, clear errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from workstack.components import (
    MinikubeCluster,
    MinikubeClusterArgs,
    NfsStorage,
    NfsStorageArgs,
    SpecError,
)
from workstack.components.job_per_file import JobPerFile, JobPerFileArgs
from workstack.components.manifests.jobs import JobSettings, build_indexed_job
from workstack.components.manifests.pods import ContainerSpec
from workstack.offline import Deployment, ProgramError, run_function
from workstack.policy import pod_templates, restricted_violations
from workstack.render import rendered_objects

IMAGE = "registry.example/csv-clean:3f2a"


def deploy(files: int | None = None, **changes: Any) -> Deployment:
    def program() -> None:
        cluster = MinikubeCluster("dev", MinikubeClusterArgs())
        nfs = NfsStorage("nfs", NfsStorageArgs(cluster=cluster))
        args: dict[str, Any] = {
            "cluster": cluster,
            "image": IMAGE,
            "run_id": "r1",
            "input_url": "/data/raw",
            "output_url": "/data/clean",
            "function": "csv_clean:process",
            "storage": (nfs.pod_storage,),
            "files": None if files is None else tuple(f"day-{n:06d}.csv" for n in range(files)),
        }
        settings = {k: v for k, v in changes.items() if k in JobSettings.model_fields}
        wiring = {k: v for k, v in changes.items() if k not in settings}
        JobPerFile("clean", JobPerFileArgs(**(args | wiring), settings=JobSettings(**settings)))

    return run_function(program)


def job_objects(deployment: Deployment) -> list[dict[str, Any]]:
    return [
        o
        for o in rendered_objects(deployment)
        if o["metadata"]["labels"].get("app.kubernetes.io/instance") == "clean"
    ]


def test_object_count_does_not_grow_with_the_number_of_files() -> None:
    small, large = job_objects(deploy(files=10)), job_objects(deploy(files=10_000))
    assert [o["kind"] for o in small] == [o["kind"] for o in large] == ["ConfigMap", "Job"]
    assert len(job_objects(deploy())) == 1, "without a frozen list, only the Job"


def test_the_job_is_indexed_with_per_index_retries_and_a_failure_policy(
    assert_schema_valid: Any,
) -> None:
    objects = job_objects(deploy(shards=25, parallelism=5, max_failed_indexes=3))
    assert_schema_valid(objects)
    [job] = [o for o in objects if o["kind"] == "Job"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"]) == (25, 5)
    assert spec["backoffLimitPerIndex"] == 2
    assert spec["maxFailedIndexes"] == 3
    # A run declared in Pulumi keeps its finished Job: a TTL would delete it and the next
    # `pulumi up --refresh` would create (and run) it again.
    assert "ttlSecondsAfterFinished" not in spec
    assert spec["activeDeadlineSeconds"] == 21_600
    fail_index, ignore = spec["podFailurePolicy"]["rules"]
    assert fail_index == {
        "action": "FailIndex",
        "onExitCodes": {"containerName": "work", "operator": "In", "values": [65]},
    }
    assert ignore == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert job["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    [container] = spec["template"]["spec"]["containers"]
    assert container["command"] == ["workstack"]
    assert container["args"] == [
        "files",
        "run",
        "--input",
        "/data/raw",
        "--output",
        "/data/clean",
        "--shards",
        "25",
        "--function",
        "csv_clean:process",
    ]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    [template] = pod_templates(job)
    assert restricted_violations(template.spec) == []


def test_a_frozen_file_list_is_mounted_and_passed_to_the_pods() -> None:
    objects = job_objects(deploy(files=3))
    config_map, job = objects
    assert config_map["data"]["inputs.txt"] == "day-000000.csv\nday-000001.csv\nday-000002.csv\n"
    assert config_map["immutable"] is True
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"][-2:] == ["--manifest", "/etc/workstack/manifest/inputs.txt"]
    assert {"name": "manifest", "configMap": {"name": "clean-r1-inputs"}} in pod["volumes"]


def test_a_declared_run_is_never_replaced_or_rerun_by_a_later_up() -> None:
    """Issue 16: an image or parallelism change replaced a running Job, and a TTL deletion
    followed by `pulumi up --refresh` made it again."""
    first = deploy(files=2)
    second = deploy(files=2, image="registry.example/csv-clean:other", parallelism=9)
    [job_1] = first.of_type("kubernetes:batch/v1:Job")
    [job_2] = second.of_type("kubernetes:batch/v1:Job")
    assert job_1.inputs["metadata"]["name"] == job_2.inputs["metadata"]["name"] == "clean-r1"
    assert job_2.ignore_changes == ("spec",), "what changed is left as it is"
    assert job_1.inputs["metadata"]["labels"]["workstack.dev/run"] == "r1"
    [job_3] = deploy(files=2, run_id="r2").of_type("kubernetes:batch/v1:Job")
    assert job_3.inputs["metadata"]["name"] == "clean-r2", "a new id is a new run"


def test_bucket_locations_need_no_mount() -> None:
    objects = job_objects(
        deploy(input_url="s3://raw-data/2024", output_url="s3://clean-data/2024", storage=())
    )
    assert (
        objects[0]["spec"]["template"]["spec"]["containers"][0]["args"][3] == "s3://raw-data/2024"
    )


BAD = [
    ({"parallelism": 0}, "parallelism", "integer between 1 and 100000"),
    ({"shards": 0}, "shards", "integer between 1 and 100000"),
    ({"input_url": "ftp://archive/raw"}, "input_url", "scheme 'ftp'; allowed: s3://, gs://"),
    ({"input_url": "/home/me/raw"}, "input_url", "pods see only /data"),
    ({"output_url": "/data/raw"}, "output_url", "is the input location"),
    ({"output_url": "/data/raw/clean"}, "output_url", "lies inside the input"),
    ({"function": None}, "function", "exactly one of function or command"),
    ({"manifest_url": "/data/manifest.txt"}, "files", "not both"),
    ({"max_failed_indexes": 11}, "max_failed_indexes", "must not exceed shards"),
]


@pytest.mark.parametrize(("changes", "field", "allowed"), BAD)
def test_bad_arguments_fail_before_the_job_exists(
    changes: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(ProgramError) as caught:
        deploy(files=2, **changes)
    error = caught.value.error
    assert isinstance(error, SpecError), error
    assert error.field == field
    assert allowed in str(error)
    assert not [r for r in caught.value.deployment.resources if r.name.startswith("clean")]


def test_too_many_files_for_a_config_map_points_to_a_manifest() -> None:
    with pytest.raises(ProgramError, match="workstack files manifest"):
        deploy(files=100_000)


def test_builder_golden(golden: Callable[[str, Any], None]) -> None:
    job = build_indexed_job(
        name="clean",
        namespace="ws",
        instance="clean",
        container=ContainerSpec(name="work", image=IMAGE, args=("files", "run")),
        settings=JobSettings(shards=4, parallelism=2),
    )
    golden("indexed-job", job)


def test_evaluation_time_barely_grows_with_files() -> None:
    """Sanity check only; the measured ratio is in docs/benchmarks.md (tests/bench)."""
    started = time.perf_counter()
    deploy(files=10)
    small = time.perf_counter() - started
    started = time.perf_counter()
    deploy(files=10_000)
    large = time.perf_counter() - started
    assert large < small * 5 + 1.0
