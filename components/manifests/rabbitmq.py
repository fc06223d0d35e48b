"""RabbitMQ for the queue-workers pattern: the operator's RabbitmqCluster and who may reach it."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import model_validator

from workstack.components.manifests.labels import LABEL_PREFIX, standard_labels
from workstack.components.manifests.pods import Resources
from workstack.components.manifests.security import container_security_context
from workstack.components.manifests.settings import (
    Between,
    OptionalText,
    Quantity,
    Settings,
    setting,
)
from workstack.components.manifests.validation import require_dns1123_label

__all__ = [
    "AMQP_PORT",
    "BROKER_CLIENT_LABEL",
    "MANAGEMENT_PORT",
    "RABBITMQ_OPERATOR_MANIFEST",
    "RABBITMQ_OPERATOR_VERSION",
    "RabbitMqSettings",
    "broker_url",
    "build_broker_network_policy",
    "build_rabbitmq_cluster",
    "client_labels",
    "default_user_conf",
]

RABBITMQ_OPERATOR_VERSION = "2.21.1"
"""The RabbitMQ Cluster Operator release: the last before v2.22.0 made cert-manager a
requirement (webhooks with cert-manager Certificates, rabbitmq/cluster-operator#2187). Its
RabbitmqCluster CRD is the same as v2.22.3's, which the tests validate against."""

RABBITMQ_OPERATOR_MANIFEST = (
    "https://github.com/rabbitmq/cluster-operator/releases/download/"
    f"v{RABBITMQ_OPERATOR_VERSION}/cluster-operator.yml"
)
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
_CLUSTERING_PORTS = (4369, 25672)  # epmd and inter-node traffic between broker replicas
BROKER_CLIENT_LABEL = LABEL_PREFIX + "broker-client"
"""Pods labelled with this key and the broker's name may open AMQP connections to it."""


class RabbitMqSettings(Settings):
    """A RabbitMQ cluster run by the RabbitMQ Cluster Operator: size, disk and timeout."""

    replicas: Annotated[int, Between(1, 9)] = setting(1, "rabbitmqReplicas")
    """queue-workers. RabbitMQ nodes, 1 or 3 to 9 (quorum queues then survive a node)."""
    resources: Resources = setting(Resources(cpu="500m", memory="2Gi", cpu_limit="2"), "rabbitmq")
    """queue-workers. Each RabbitMQ node's CPU and memory."""
    storage: Quantity = setting("10Gi", "rabbitmqStorage")
    """queue-workers. Each RabbitMQ node's disk (messages survive restarts)."""
    storage_class: OptionalText = setting(None)
    """StorageClass of the disks; None is the cluster's default."""
    consumer_timeout_minutes: Annotated[int, Between(1)] = setting(
        360, "rabbitmqConsumerTimeoutMinutes"
    )
    """queue-workers. Minutes a worker may hold a task unacknowledged before the broker
    closes its channel and redelivers the task; set it above the longest task."""

    @model_validator(mode="after")
    def _quorum_needs_a_majority(self) -> Self:
        if self.replicas == 2:
            raise self.refuse(
                "replicas", 2, "expected 1, or 3 to 9: quorum queues need a majority of the nodes"
            )
        return self


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


def build_rabbitmq_cluster(
    *,
    name: str,
    namespace: str,
    instance: str,
    settings: RabbitMqSettings,
    credentials_secret: str,
) -> dict[str, Any]:
    """The ``RabbitmqCluster``: quorum queues by default, its user from ``credentials_secret``.

    The Secret must hold ``default_user.conf`` (see :func:`default_user_conf`) plus
    ``username`` and ``password``; the operator then creates no default user of its own.

    Args:
        name: Cluster name; also the name of its Service (``<name>.<namespace>.svc``).
        namespace: Its namespace.
        instance: Owning component's name, for labels.
        settings: Size, disk and timeout.
        credentials_secret: The Secret holding the broker's user.
    """
    require_dns1123_label("name", name, max_length=40)
    require_dns1123_label("namespace", namespace)
    config = "\n".join(
        [
            "default_queue_type = quorum",
            f"consumer_timeout = {settings.consumer_timeout_minutes * 60_000}",
        ]
    )
    restricted = container_security_context(read_only_root_filesystem=False)
    return {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "RabbitmqCluster",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": standard_labels(name="rabbitmq", instance=instance, component="broker"),
        },
        "spec": {
            "replicas": settings.replicas,
            "resources": settings.resources.build(),
            "persistence": {
                "storage": settings.storage,
                **({"storageClassName": settings.storage_class} if settings.storage_class else {}),
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


def build_broker_network_policy(*, name: str, namespace: str, instance: str) -> dict[str, Any]:
    """Admit AMQP only from pods labelled as the broker's clients; nodes talk among themselves.

    The management UI is not exposed: reach it with ``kubectl port-forward``, which does not
    pass through NetworkPolicies.
    """
    broker_pods = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{name}-amqp-clients",
            "namespace": namespace,
            "labels": standard_labels(name="rabbitmq", instance=instance, component="broker"),
        },
        "spec": {
            "podSelector": {"matchLabels": broker_pods},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": client_labels(name)}}],
                    "ports": [{"protocol": "TCP", "port": AMQP_PORT}],
                },
                {
                    "from": [{"podSelector": {"matchLabels": broker_pods}}],
                    "ports": [{"protocol": "TCP", "port": port} for port in _CLUSTERING_PORTS],
                },
            ],
        },
    }
