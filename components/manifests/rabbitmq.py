"""RabbitMQ for the queue-workers pattern: the operator's RabbitmqCluster and who may reach it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workstack.components.manifests.labels import LABEL_PREFIX, standard_labels
from workstack.components.manifests.pods import Resources
from workstack.components.manifests.security import container_security_context
from workstack.components.manifests.validation import (
    SpecError,
    require_dns1123_label,
    require_int,
    require_quantity,
)

__all__ = [
    "AMQP_PORT",
    "BROKER_CLIENT_LABEL",
    "MANAGEMENT_PORT",
    "RABBITMQ_OPERATOR_MANIFEST",
    "RABBITMQ_OPERATOR_VERSION",
    "RabbitMqSpec",
    "broker_url",
    "build_broker_network_policy",
    "build_rabbitmq_cluster",
    "client_labels",
    "default_user_conf",
]

RABBITMQ_OPERATOR_VERSION = "2.22.3"
"""The RabbitMQ Cluster Operator release whose CRD the tests validate against."""

RABBITMQ_OPERATOR_MANIFEST = (
    "https://github.com/rabbitmq/cluster-operator/releases/download/"
    f"v{RABBITMQ_OPERATOR_VERSION}/cluster-operator.yml"
)
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
_CLUSTERING_PORTS = (4369, 25672)  # epmd and inter-node traffic between broker replicas
BROKER_CLIENT_LABEL = LABEL_PREFIX + "broker-client"
"""Pods labelled with this key and the broker's name may open AMQP connections to it."""


@dataclass(kw_only=True, frozen=True)
class RabbitMqSpec:
    """A RabbitMQ cluster managed by the RabbitMQ Cluster Operator.

    Attributes:
        name: Cluster name; also the name of its Service (``<name>.<namespace>.svc``).
        namespace: Its namespace.
        instance: Owning component's name, for labels.
        replicas: Broker nodes (1 or 3+: quorum queues need a majority).
        resources: CPU and memory per node.
        storage: Persistent volume per node (messages survive restarts).
        storage_class: StorageClass of the volumes; None is the cluster default.
        consumer_timeout_minutes: How long a worker may hold a message unacknowledged before
            the broker closes its channel; set above the longest task.
    """

    name: str
    namespace: str
    instance: str
    replicas: int = 1
    resources: Resources = field(
        default_factory=lambda: Resources(cpu="500m", memory="2Gi", cpu_limit="2")
    )
    storage: str = "10Gi"
    storage_class: str | None = None
    consumer_timeout_minutes: int = 360

    def __post_init__(self) -> None:
        require_dns1123_label("name", self.name, max_length=40)
        require_dns1123_label("namespace", self.namespace)
        require_int("replicas", self.replicas, minimum=1, maximum=9)
        if self.replicas == 2:
            raise SpecError(
                "replicas", 2, "expected 1, or 3 to 9: quorum queues need a majority of the nodes"
            )
        require_quantity("storage", self.storage)
        require_int("consumer_timeout_minutes", self.consumer_timeout_minutes, minimum=1)


def client_labels(broker: str) -> dict[str, str]:
    """Labels that admit a pod through the broker's NetworkPolicy."""
    return {BROKER_CLIENT_LABEL: broker}


def broker_url(*, name: str, namespace: str, username: str, password: str) -> str:
    """The AMQP URL workloads use, credentials included (store it only in a Secret)."""
    return f"amqp://{username}:{password}@{name}.{namespace}.svc:{AMQP_PORT}/%2F"


def default_user_conf(*, username: str, password: str) -> str:
    """The broker's default user as the operator mounts it into ``/etc/rabbitmq/conf.d``.

    It goes into the Secret named by ``secretBackend.externalSecret``, under the key
    ``default_user.conf``, so the password never appears in the RabbitmqCluster object.
    """
    return f"default_user = {username}\ndefault_pass = {password}\n"


def build_rabbitmq_cluster(spec: RabbitMqSpec, *, credentials_secret: str) -> dict[str, Any]:
    """The ``RabbitmqCluster``: quorum queues by default, its user from ``credentials_secret``.

    The Secret must hold ``default_user.conf`` (see :func:`default_user_conf`) plus
    ``username`` and ``password``; the operator then creates no default user of its own.
    """
    config = "\n".join(
        [
            "default_queue_type = quorum",
            f"consumer_timeout = {spec.consumer_timeout_minutes * 60_000}",
        ]
    )
    restricted = container_security_context(read_only_root_filesystem=False)
    return {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "RabbitmqCluster",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": standard_labels(name="rabbitmq", instance=spec.instance, component="broker"),
        },
        "spec": {
            "replicas": spec.replicas,
            "resources": spec.resources.build(),
            "persistence": {
                "storage": spec.storage,
                **({"storageClassName": spec.storage_class} if spec.storage_class else {}),
            },
            "rabbitmq": {"additionalConfig": config},
            "secretBackend": {"externalSecret": {"name": credentials_secret}},
            # The operator's pods meet the restricted Pod Security level with these.
            "override": {
                "statefulSet": {
                    "spec": {
                        "template": {
                            "spec": {
                                "securityContext": {
                                    "runAsNonRoot": True,
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                                "containers": [{"name": "rabbitmq", "securityContext": restricted}],
                                "initContainers": [
                                    {"name": "setup-container", "securityContext": restricted}
                                ],
                            }
                        }
                    }
                }
            },
        },
    }


def build_broker_network_policy(spec: RabbitMqSpec) -> dict[str, Any]:
    """Admit AMQP only from pods labelled as the broker's clients; nodes talk among themselves.

    The management UI is not exposed: reach it with ``kubectl port-forward``, which does not
    pass through NetworkPolicies.
    """
    broker_pods = {"app.kubernetes.io/name": spec.name}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{spec.name}-amqp-clients",
            "namespace": spec.namespace,
            "labels": standard_labels(name="rabbitmq", instance=spec.instance, component="broker"),
        },
        "spec": {
            "podSelector": {"matchLabels": broker_pods},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": client_labels(spec.name)}}],
                    "ports": [{"protocol": "TCP", "port": AMQP_PORT}],
                },
                {
                    "from": [{"podSelector": {"matchLabels": broker_pods}}],
                    "ports": [{"protocol": "TCP", "port": port} for port in _CLUSTERING_PORTS],
                },
            ],
        },
    }
