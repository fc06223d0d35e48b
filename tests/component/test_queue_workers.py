"""QueueWorkers under Pulumi's mocks: a tasker Job, workers that finish, and KEDA mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from workstack.components import (
    BrokerRef,
    MinikubeCluster,
    MinikubeClusterArgs,
    NfsStorage,
    NfsStorageArgs,
    QueueSettings,
    QueueWorkers,
    QueueWorkersArgs,
    RabbitMq,
    RabbitMqArgs,
    SpecError,
)
from workstack.components.manifests.queue import (
    KEDA_CHART_VERSION,
    QueueTarget,
    build_queue_workers,
)
from workstack.offline import Deployment, ProgramError, run_function
from workstack.policy import pod_templates, restricted_violations
from workstack.render import rendered_objects

IMAGE = "registry.example/simulations:5d1e"


def deploy(broker: BrokerRef | None = None, **changes: Any) -> Deployment:
    def program() -> None:
        cluster = MinikubeCluster("dev", MinikubeClusterArgs())
        nfs = NfsStorage("nfs", NfsStorageArgs(cluster=cluster))
        rabbitmq = RabbitMq("broker", RabbitMqArgs(cluster=cluster))
        args: dict[str, Any] = {
            "cluster": cluster,
            "image": IMAGE,
            "broker": broker or rabbitmq,
            "storage_url": "/data/simulations",
            "tasks_from": "simulations.plan:stages",
            "storage": (nfs.pod_storage,),
            "run_id": "r1",
        }
        settings = {k: v for k, v in changes.items() if k in QueueSettings.model_fields}
        wiring = {k: v for k, v in changes.items() if k not in settings}
        QueueWorkers(
            "sims", QueueWorkersArgs(**(args | wiring), settings=QueueSettings(**settings))
        )

    return run_function(program)


def objects_of(deployment: Deployment, instance: str = "sims") -> list[dict[str, Any]]:
    return [
        o
        for o in rendered_objects(deployment)
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == instance
    ]


def by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def container(obj: dict[str, Any]) -> dict[str, Any]:
    [template] = pod_templates(obj)
    [only] = template.spec["containers"]
    return only


def test_a_tasker_job_and_a_worker_job_that_completes(assert_schema_valid: Any) -> None:
    objects = by_name(objects_of(deploy(workers=6)))
    assert sorted(objects) == ["Job/sims-r1-tasker", "Job/sims-r1-workers"]
    assert_schema_valid(list(objects.values()))
    workers = objects["Job/sims-r1-workers"]
    spec = workers["spec"]
    assert spec["parallelism"] == 6
    assert "completions" not in spec, "a work-queue Job: done once its workers exit 0"
    assert spec["backoffLimit"] == 6
    assert "ttlSecondsAfterFinished" not in spec, "a declared run keeps its Job"
    fatal, ignore = spec["podFailurePolicy"]["rules"]
    assert fatal["onExitCodes"] == {"containerName": "worker", "operator": "In", "values": [2]}
    assert ignore["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 30
    assert workers["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    assert container(workers)["command"] == ["workstack"]
    assert container(workers)["args"] == [
        "queue", "worker", "--queue", "sims", "--storage", "/data/simulations",
        "--prefetch", "1", "--concurrency", "1", "--max-attempts", "3",
        "--idle-timeout", "900", "--grace", "20",
    ]  # fmt: skip
    tasker = objects["Job/sims-r1-tasker"]
    assert tasker["spec"]["completions"] == 1
    [fatal, _] = tasker["spec"]["podFailurePolicy"]["rules"]
    assert fatal["onExitCodes"]["values"] == [1, 2], "failed tasks or bad input: no rerun"
    assert container(tasker)["args"] == [
        "queue", "tasker", "--queue", "sims", "--storage", "/data/simulations",
        "--workers", "6", "--max-attempts", "3", "--from", "simulations.plan:stages",
        "--no-progress",
    ]  # fmt: skip


def test_pods_read_the_broker_url_from_its_secret_and_pass_its_policy() -> None:
    deployment = deploy()
    everything = rendered_objects(deployment)
    [policy] = [
        o
        for o in everything
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "broker-amqp-clients"
    ]
    admitted = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    [egress] = [o for o in everything if o["metadata"]["name"] == "broker-clients-egress"]
    assert egress["spec"]["podSelector"]["matchLabels"] == admitted
    [secret] = [r.inputs for r in deployment.of_type("kubernetes:core/v1:Secret")]
    password = secret["stringData"].value["password"]
    for job in objects_of(deployment):
        [template] = pod_templates(job)
        assert admitted.items() <= template.labels.items()
        assert {
            "name": "WORKSTACK_BROKER_URL",
            "valueFrom": {"secretKeyRef": {"name": "broker-default-user", "key": "url"}},
        } in container(job)["env"]
        assert password not in str(job), "the password is only in the Secret"
        assert restricted_violations(template.spec) == []
        assert template.spec["automountServiceAccountToken"] is False
        assert {"name": "data", "mountPath": "/data"} in container(job)["volumeMounts"]


def test_keda_mode_scales_worker_jobs_on_the_task_queue(assert_schema_valid: Any) -> None:
    deployment = deploy(mode="keda", workers=20, prefetch=2, concurrency=2, queue="sim")
    objects = by_name(objects_of(deployment))
    assert sorted(objects) == [
        "Job/sims-r1-tasker",
        "NetworkPolicy/sims-keda-amqp",
        "NetworkPolicy/sims-keda-api",
        "NetworkPolicy/sims-keda-to-broker",
        "ScaledJob/sims-r1-workers",
        "TriggerAuthentication/sims-r1-broker",
    ]
    result = assert_schema_valid(list(objects.values()))
    assert result.checked == 6
    scaled = objects["ScaledJob/sims-r1-workers"]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (0, 20)
    [trigger] = scaled["triggers"]
    assert trigger["metadata"] == {
        "protocol": "amqp",
        "queueName": "sim.tasks",
        "mode": "QueueLength",
        "value": "2",
    }
    assert trigger["authenticationRef"] == {"name": "sims-r1-broker"}
    assert objects["TriggerAuthentication/sims-r1-broker"]["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "broker-default-user", "key": "url"}
    ]
    job = scaled["jobTargetRef"]
    assert (job["parallelism"], job["completions"]) == (1, 1)
    args = job["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--idle-timeout") + 1] == "60", "KEDA workers leave when idle"
    assert restricted_violations(job["template"]["spec"]) == []
    tasker_args = container(objects["Job/sims-r1-tasker"])["args"]
    assert tasker_args[tasker_args.index("--workers") + 1] == "0", "no stop messages"

    policy = objects["NetworkPolicy/sims-keda-to-broker"]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "broker"}}
    assert policy["ingress"][0]["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "workstack"}
    }
    [chart] = deployment.of_type("kubernetes:helm.sh/v4:Chart")
    assert chart.inputs["version"] == KEDA_CHART_VERSION
    assert chart.inputs["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}
    values = chart.inputs["values"]
    assert values["watchNamespace"] == "workstack"
    assert values["securityContext"]["operator"]["capabilities"] == {"drop": ["ALL"]}
    # The chart's narrowest rights: Secrets in its namespace only, no `*/*` get rule, no
    # metrics APIService or webhook (a ScaledJob needs neither).
    assert values["permissions"] == {"operator": {"restrict": {"secret": True}}}
    assert values["rbac"] == {"enabledCustomScaledRefKinds": False}
    assert values["metricsServer"] == {"enabled": False}
    assert values["webhooks"] == {"enabled": False}
    amqp = objects["NetworkPolicy/sims-keda-amqp"]["spec"]
    assert amqp["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "keda-operator"}}
    assert amqp["egress"][0]["ports"] == [{"protocol": "TCP", "port": 5672}]


def test_keda_already_on_the_cluster() -> None:
    deployment = deploy(mode="keda", install_keda=False, keda_namespace="keda-system")
    assert not deployment.of_type("kubernetes:helm.sh/v4:Chart")
    [policy] = [o for o in objects_of(deployment) if o["kind"] == "NetworkPolicy"]
    assert policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "keda-system"}
    }


def test_a_broker_made_elsewhere() -> None:
    broker = BrokerRef(
        name="shared-mq",
        secret_name="shared-mq-url",
        secret_key="amqp",
        client_labels={"team.example/mq": "yes"},
    )
    deployment = deploy(broker=broker, tasker=False)
    [workers] = objects_of(deployment)
    assert workers["metadata"]["name"] == "sims-r1-workers"
    [template] = pod_templates(workers)
    assert template.labels["team.example/mq"] == "yes"
    assert container(workers)["env"][-1]["valueFrom"] == {
        "secretKeyRef": {"name": "shared-mq-url", "key": "amqp"}
    }


BAD = [
    ({"workers": 0}, "workers", "between 1 and 10000"),
    ({"mode": "deployment"}, "mode", "jobs, keda"),
    ({"prefetch": 0}, "prefetch", "between 1 and 65535"),
    ({"prefetch": 2, "concurrency": 3}, "concurrency", "must not exceed prefetch"),
    ({"queue": "Big Queue"}, "queue", "a-z, 0-9"),
    ({"max_attempts": 0}, "max_attempts", "between 1 and 1000"),
    ({"storage_url": "/home/me/out"}, "storage_url", "pods see only /data"),
    ({"tasks_from": None}, "tasks_from", "exactly one of tasks_from"),
    ({"task_files": ("/app/jobs/a.txt",)}, "tasks_from", "exactly one of tasks_from"),
    ({"image": "not an image"}, "image", "image reference"),
    ({"run_id": None}, "run_id", "a tasker or worker Job is a run"),
    ({"run_id": "Run 1"}, "run_id", "DNS-1123 label"),
]


@pytest.mark.parametrize(("changes", "field", "allowed"), BAD)
def test_bad_arguments_fail_before_anything_exists(
    changes: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(ProgramError) as caught:
        deploy(**changes)
    error = caught.value.error
    assert isinstance(error, SpecError), error
    assert error.field == field
    assert allowed in str(error)
    assert not [r for r in caught.value.deployment.resources if r.name.startswith("sims")]


def test_builders_golden(golden: Callable[[str, Any], None]) -> None:
    common: dict[str, Any] = {
        "name": "sims",
        "namespace": "ws",
        "instance": "sims",
        "image": IMAGE,
        "broker_secret": "broker-default-user",
        "broker_labels": {"workstack.dev/broker-client": "broker"},
        "storage_url": "s3://results/sims",
        "tasks_from": "simulations.plan:stages",
    }
    target = QueueTarget(**common, queue="workstack")
    golden(
        "queue-workers",
        build_queue_workers(target, QueueSettings())
        + build_queue_workers(target, QueueSettings(mode="keda", idle_timeout=60)),
    )
