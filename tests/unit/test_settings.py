"""Settings models: one place per default, Pulumi.yaml generated from them, errors by key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stacks.config import SETTINGS_MODELS, project_keys
from stacks.schema import pulumi_yaml, secret_keys
from workstack.components import JobSettings, QueueSettings, Resources, SettingsError
from workstack.components.manifests.settings import Problem, parse_config_value, stack_keys

ROOT = Path(__file__).resolve().parents[2]

# Every stack key's default, written here to pin it: change one only on purpose.
PINNED_DEFAULTS = {
    "cloud": "minikube",
    "ephemeral": False,
    "storage": "nfs",
    "workloads": [],
    "installOperators": True,
    "operatorScope": "namespace",
    "dockerHost": "",
    "namespace": "workstack",
    "kubeconfig": "",
    "kubeContext": "minikube",
    "minikubeCpus": 2,
    "minikubeMemory": "3Gi",
    "minikubePlatform": "linux/amd64",
    "clusterName": "",
    "nodeMin": 1,
    "nodeMax": 3,
    "nodeSpot": False,
    "gkeMachineType": "e2-standard-4",
    "gkeReleaseChannel": "REGULAR",
    "eksInstanceTypes": ["m6i.large"],
    "eksVersion": "",
    "eksIdentity": "pod-identity",
    "eksAdminArns": [],
    "eksVpcId": "",
    "eksSubnetIds": [],
    "nfsMode": "in-cluster",
    "nfsSize": "10Gi",
    "bucketName": "",
    "bucketVersioning": False,
    "bucketEndpoint": "",
    "bucketAccessKeyId": None,
    "bucketSecretAccessKey": None,
    "jobShards": 10,
    "jobParallelism": 4,
    "jobRetriesPerIndex": 2,
    "jobTtlSeconds": 86400,
    "jobDeadlineSeconds": 21600,
    "jobCpu": "500m",
    "jobMemory": "1Gi",
    "jobCpuLimit": "1",
    "jobMemoryLimit": "",
    "queueMode": "jobs",
    "queueWorkers": 4,
    "queuePrefetch": 1,
    "queueConcurrency": 1,
    "queueMaxAttempts": 3,
    "queueIdleTimeout": 0,
    "queueGrace": 20,
    "queueWorkerCpu": "500m",
    "queueWorkerMemory": "1Gi",
    "queueWorkerCpuLimit": "1",
    "queueWorkerMemoryLimit": "",
    "queueTaskerCpu": "100m",
    "queueTaskerMemory": "512Mi",
    "queueTaskerCpuLimit": "500m",
    "queueTaskerMemoryLimit": "",
    "queueRetries": 6,
    "queueTtlSeconds": 86400,
    "queueDeadlineSeconds": 86400,
    "rabbitmqReplicas": 1,
    "rabbitmqCpu": "500m",
    "rabbitmqMemory": "2Gi",
    "rabbitmqCpuLimit": "2",
    "rabbitmqMemoryLimit": "",
    "rabbitmqStorage": "10Gi",
    "rabbitmqConsumerTimeoutMinutes": 360,
    "daskMode": "plain",
    "daskWorkers": 2,
    "daskMaxWorkers": 0,
    "daskThreads": 1,
    "daskWorkerCpu": "1",
    "daskWorkerMemory": "2Gi",
    "daskWorkerCpuLimit": "1",
    "daskWorkerMemoryLimit": "",
    "daskSchedulerCpu": "250m",
    "daskSchedulerMemory": "1Gi",
    "daskSchedulerCpuLimit": "1",
    "daskSchedulerMemoryLimit": "",
    "daskTls": True,
}


def test_pulumi_yaml_is_generated_from_the_models() -> None:
    assert (ROOT / "Pulumi.yaml").read_text() == pulumi_yaml(), "run `make schema`"


def test_the_keys_table_in_the_docs_is_generated_from_the_models() -> None:
    from stacks.schema import with_keys_table

    docs = (ROOT / "docs" / "stacks.md").read_text()
    assert docs == with_keys_table(docs), "run `make schema`"
    assert "`jobShards` | integer | `10` |" in docs


def test_defaults_are_pinned() -> None:
    assert {key.name: key.default for key in project_keys()} == PINNED_DEFAULTS


def test_every_declared_key_has_type_description_and_default() -> None:
    config = yaml.safe_load(pulumi_yaml())["config"]
    assert set(config) == {key.name for key in project_keys() if not key.secret}
    for name, declaration in config.items():
        assert declaration["type"] in ("string", "integer", "boolean", "array"), name
        assert declaration["description"].strip(), f"{name} needs a description"
        # Pulumi treats a declared key without a default as required by every stack.
        assert "default" in declaration, name
        if declaration["type"] == "array":
            assert declaration["items"] == {"type": "string"}


def test_secret_keys_are_not_declared() -> None:
    assert secret_keys() == ["bucketAccessKeyId", "bucketSecretAccessKey"]
    assert not set(secret_keys()) & set(yaml.safe_load(pulumi_yaml())["config"])


def test_a_key_shared_by_models_is_one_declaration() -> None:
    seen: dict[str, tuple[object, ...]] = {}
    for model in SETTINGS_MODELS:
        for key in stack_keys(model):
            same = (key.type, key.default, key.description, key.unset)
            assert seen.setdefault(key.name, same) == same, key.name


def test_nested_settings_extend_their_parent_key() -> None:
    names = [key.name for key in stack_keys(QueueSettings)]
    assert "queueWorkerCpu" in names
    assert "queueTaskerMemoryLimit" in names
    tasker_cpu = next(k for k in stack_keys(QueueSettings) if k.name == "queueTaskerCpu")
    assert tasker_cpu.path == ("tasker_resources", "cpu")
    assert tasker_cpu.default == "100m"


def test_python_errors_name_every_field() -> None:
    with pytest.raises(SettingsError) as caught:
        JobSettings(shards=0, parallelism="4", resources=Resources(cpu="1"))
    problems = {p.key: p.allowed for p in caught.value.problems}
    assert problems == {
        "shards": "expected an integer between 1 and 100000",
        "parallelism": "expected an integer between 1 and 100000",
    }


def test_cross_field_errors_name_the_other_field() -> None:
    with pytest.raises(
        SettingsError, match=r"concurrency: 2 is not allowed; must not exceed prefetch"
    ):
        QueueSettings(concurrency=2)
    values = {"workstack:queueConcurrency": "2"}
    with pytest.raises(SettingsError) as caught:
        QueueSettings.from_stack(values, namespace="workstack")
    assert str(caught.value.problems[0]) == (
        "workstack:queueConcurrency: 2 is not allowed; must not exceed workstack:queuePrefetch (1)"
    )


def test_stack_errors_name_the_key_and_show_the_raw_value() -> None:
    values = {
        "workstack:jobShards": "ten",
        "workstack:jobParallelism": "0",
        "workstack:jobCpu": "lots",
    }
    with pytest.raises(SettingsError) as caught:
        JobSettings.from_stack(values, namespace="workstack")
    assert [str(p) for p in caught.value.problems] == [
        "workstack:jobShards: 'ten' is not allowed; expected an integer",
    ], "type errors are found first, all of them"
    with pytest.raises(SettingsError) as caught:
        JobSettings.from_stack(
            {k: v for k, v in values.items() if "Shards" not in k}, namespace="workstack"
        )
    assert sorted(str(p) for p in caught.value.problems) == [
        "workstack:jobCpu: 'lots' is not allowed; expected a positive Kubernetes quantity such as "
        "500m, 2, 512Mi or 10Gi",
        "workstack:jobParallelism: 0 is not allowed; expected an integer between 1 and 100000",
    ]


def test_unset_values_mean_the_field_default() -> None:
    values = {"workstack:queueIdleTimeout": "0", "workstack:queueWorkerMemoryLimit": ""}
    settings = QueueSettings.from_stack(values, namespace="workstack")
    assert settings.idle_timeout is None
    assert settings.worker_idle_timeout == 900
    assert settings.worker_resources.memory_limit is None


def test_secret_keys_must_be_set_as_secrets() -> None:
    from workstack.components import BucketSettings

    values = {"workstack:bucketAccessKeyId": "AKIA-plain"}
    with pytest.raises(SettingsError) as caught:
        BucketSettings.from_stack(values, namespace="workstack")
    [problem] = caught.value.problems
    assert problem.key == "workstack:bucketAccessKeyId"
    assert "AKIA" not in str(caught.value), "a secret is never echoed"
    assert "pulumi config set --secret" in problem.allowed
    settings = BucketSettings.from_stack(
        values, namespace="workstack", secret_keys={"workstack:bucketAccessKeyId"}
    )
    assert settings.access_key_id is not None
    assert "AKIA" not in repr(settings)


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("integer", "42", 42),
        ("integer", " 7 ", 7),
        ("boolean", "True", True),
        ("array", '["a", "b"]', ("a", "b")),
        ("string", "", ""),
    ],
)
def test_config_values_parse_like_the_engine(kind: str, raw: str, expected: object) -> None:
    assert parse_config_value(kind, raw) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("integer", "4.5"),
        ("integer", "9" * 40),
        ("boolean", "yes"),
        ("array", "[1]"),
        ("array", "[" * 5000),
    ],
)
def test_bad_config_values_are_problems(kind: str, raw: str) -> None:
    assert isinstance(parse_config_value(kind, raw), Problem)  # type: ignore[arg-type]


def test_long_values_are_shortened_in_messages() -> None:
    problem = Problem("workstack:x", "y" * 10_000, "expected a short value")
    assert len(str(problem)) < 300
