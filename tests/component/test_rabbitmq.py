"""RabbitMq under Pulumi's mocks: the operator, the cluster, its credentials and policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from workstack.components import (
    MinikubeCluster,
    MinikubeClusterArgs,
    RabbitMq,
    RabbitMqArgs,
    RabbitMqSettings,
    SpecError,
)
from workstack.components.manifests.rabbitmq import (
    RABBITMQ_OPERATOR_VERSION,
    build_broker_network_policy,
    build_rabbitmq_cluster,
)
from workstack.offline import Deployment, ProgramError, Secret, run_function
from workstack.render import rendered_objects


def deploy(**changes: Any) -> Deployment:
    def program() -> None:
        import pulumi

        cluster = MinikubeCluster("dev", MinikubeClusterArgs())
        settings = {k: v for k, v in changes.items() if k in RabbitMqSettings.model_fields}
        wiring = {k: v for k, v in changes.items() if k not in settings}
        broker = RabbitMq(
            "broker",
            RabbitMqArgs(cluster=cluster, settings=RabbitMqSettings(**settings), **wiring),
        )
        pulumi.export("url", broker.url)
        pulumi.export("management", broker.management_command)

    return run_function(program)


def test_the_cluster_is_valid_against_the_operator_crd(assert_schema_valid: Any) -> None:
    objects = [
        o
        for o in rendered_objects(deploy())
        if o["kind"] != "Namespace"
        and o["metadata"].get("namespace") == "workstack"
        and o["metadata"]["labels"].get("app.kubernetes.io/name") == "rabbitmq"
    ]
    assert sorted(o["kind"] for o in objects) == [
        "NetworkPolicy",
        "NetworkPolicy",
        "NetworkPolicy",
        "RabbitmqCluster",
        "RoleBinding",
        "Secret",
    ]
    result = assert_schema_valid(objects)
    assert result.checked == 6


def test_credentials_are_generated_secret_and_never_guest() -> None:
    deployment = deploy()
    [password] = deployment.of_type("random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] >= 32
    [secret] = [r.inputs for r in deployment.of_type("kubernetes:core/v1:Secret")]
    data = secret["stringData"]
    assert isinstance(data, Secret), "the whole Secret payload is a Pulumi secret"
    assert set(data.value) == {"url", "username", "password", "default_user.conf"}
    assert data.value["username"] != "guest"
    assert (
        data.value["url"]
        == f"amqp://workstack:{data.value['password']}@broker.workstack.svc:5672/%2F"
    )
    assert deployment.outputs["url"] == Secret(data.value["url"])
    [cluster] = [o for o in rendered_objects(deployment) if o["kind"] == "RabbitmqCluster"]
    spec = cluster["spec"]
    # `<cluster>-default-user` is where the operator reads the management API's credentials
    # (cluster-operator v2.21.1 internal/rabbitmqclient/client.go:39-47), whatever the backend.
    assert spec["secretBackend"] == {"externalSecret": {"name": "broker-default-user"}}
    [secret] = [r for r in deployment.resources if r.name == "broker-secret"]
    assert [r.name for r in deployment.resources if r.waits_for("broker-secret")] == [
        "broker-cluster"
    ], "the broker's pods mount the Secret: it exists first"
    assert secret.inputs["metadata"]["name"] == f"{cluster['metadata']['name']}-default-user"
    assert "default_pass" not in str(spec), "the password lives only in the Secret"
    assert "default_queue_type = quorum" in spec["rabbitmq"]["additionalConfig"]


def test_operator_release_is_pinned() -> None:
    [manifest] = deploy().of_type("kubernetes:yaml/v2:ConfigFile")
    assert manifest.inputs["file"].endswith(f"/v{RABBITMQ_OPERATOR_VERSION}/cluster-operator.yml")
    assert not deploy(install_operator=False).of_type("kubernetes:yaml/v2:ConfigFile")


def test_only_labelled_clients_reach_amqp() -> None:
    [policy] = [
        o
        for o in rendered_objects(deploy())
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "broker-amqp-clients"
    ]
    amqp, clustering, management = policy["spec"]["ingress"]
    assert amqp == {
        "from": [{"podSelector": {"matchLabels": {"workstack.dev/broker-client": "broker"}}}],
        "ports": [{"protocol": "TCP", "port": 5672}],
    }
    assert {p["port"] for p in clustering["ports"]} == {4369, 25672}
    assert management == {
        "from": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "rabbitmq-system"}
                },
                "podSelector": {
                    "matchLabels": {"app.kubernetes.io/name": "rabbitmq-cluster-operator"}
                },
            }
        ],
        "ports": [{"protocol": "TCP", "port": 15672}],
    }, "the operator reads node status and checks quorum through the management API"
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "broker"}}


def test_management_ui_is_a_documented_port_forward() -> None:
    assert (
        deploy().outputs["management"] == "kubectl port-forward -n workstack svc/broker 15672:15672"
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"replicas": 2}, "replicas"),
        ({"replicas": 0}, "replicas"),
        ({"storage": "lots"}, "storage"),
        ({"consumer_timeout_minutes": 0}, "consumer_timeout_minutes"),
    ],
)
def test_bad_arguments(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ProgramError) as caught:
        deploy(**changes)
    assert isinstance(caught.value.error, SpecError)
    assert caught.value.error.field == field
    assert not [r for r in caught.value.deployment.resources if r.name.startswith("broker")]


def test_builders_golden(golden: Callable[[str, Any], None]) -> None:
    names = {"name": "broker", "namespace": "ws", "instance": "broker"}
    golden(
        "rabbitmq",
        [
            build_rabbitmq_cluster(
                **names,
                settings=RabbitMqSettings(replicas=3),
                credentials_secret="broker-default-user",
            ),
            build_broker_network_policy(**names),
        ],
    )
