"""RabbitMQ for the queue-workers pattern: the operator's RabbitmqCluster and who may reach it."""

from __future__ import annotations

from collections.abc import Mapping
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
    "OPERATOR_ACCOUNT",
    "OPERATOR_CLUSTER_ROLE",
    "OPERATOR_NAMESPACE",
    "OPERATOR_PODS",
    "RABBITMQ_OPERATOR_MANIFEST",
    "RABBITMQ_OPERATOR_VERSION",
    "RabbitMqSettings",
    "broker_url",
    "build_broker_egress_policies",
    "build_broker_network_policy",
    "build_operator_role_binding",
    "build_rabbitmq_cluster",
    "client_labels",
    "default_user_conf",
    "scope_operator_object",
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

# The release manifest's operator (rabbitmq/cluster-operator@v2.21.1: config/installation/
# kustomization.yaml puts everything in rabbitmq-system; config/manager/manager.yaml:12-28
# names and labels the Deployment; config/rbac/service_account.yaml, role.yaml:13 and
# role_binding.yaml:16 its account, ClusterRole and ClusterRoleBinding).
OPERATOR_NAMESPACE = "rabbitmq-system"
OPERATOR_ACCOUNT = "rabbitmq-cluster-operator"
OPERATOR_CLUSTER_ROLE = "rabbitmq-cluster-operator-role"
_OPERATOR_BINDING = "rabbitmq-cluster-operator-rolebinding"
_OPERATOR_DEPLOYMENT = "rabbitmq-cluster-operator"
OPERATOR_PODS = {"app.kubernetes.io/name": "rabbitmq-cluster-operator"}
"""Labels of the operator's pod (config/manager/manager.yaml:26-28)."""


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

    The management API admits only the operator, which reads each node's status and checks
    quorum before a restart through it (rabbitmq/cluster-operator@v2.21.1
    internal/rabbitmqclient/client.go:134-139, port 15672; reconcile_status.go:110). The
    management UI is not exposed otherwise: reach it with ``kubectl port-forward``, which
    does not pass through NetworkPolicies.
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
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": OPERATOR_NAMESPACE}
                            },
                            "podSelector": {"matchLabels": dict(OPERATOR_PODS)},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": MANAGEMENT_PORT}],
                },
            ],
        },
    }


def scope_operator_object(
    kind: str, props: Mapping[str, Any], namespace: str | None
) -> dict[str, Any] | None:
    """One document of the operator's release manifest, changed to serve one namespace only.

    With ``namespace`` None the operator serves every namespace, as released (its
    ClusterRoleBinding, no ``OPERATOR_SCOPE_NAMESPACE``): for a cluster whose other stacks
    use it (``operatorScope: cluster``); only its namespace's Pod Security level is set.

    Applied to each object of the manifest as it is registered (a Pulumi transform), so the
    pinned release is used as published:

    - the operator Deployment gets ``OPERATOR_SCOPE_NAMESPACE``: its cache, and so every
      list and watch, covers ``namespace`` only (cmd/main.go@v2.21.1:123-186; with one
      namespace, ``cache.Options{DefaultNamespaces: {ns}}``); nothing else it reads is
      cluster-scoped (its ClusterRole, config/rbac/role.yaml, holds namespaced resources only);
    - the ClusterRoleBinding binds nobody: :func:`build_operator_role_binding` grants the same
      ClusterRole's rules in ``namespace`` alone (a RoleBinding to a ClusterRole);
    - its namespace enforces the restricted Pod Security level, which the operator's pod meets
      (config/manager/manager.yaml: non-root, no escalation, all capabilities dropped, seccomp
      RuntimeDefault).

    Returns:
        The changed properties, or None to keep the object as it is.
    """
    metadata = props.get("metadata") or {}
    name = metadata.get("name")
    if kind == "Namespace" and name == OPERATOR_NAMESPACE:
        labels = dict(metadata.get("labels") or {})
        for mode in ("enforce", "audit", "warn"):
            labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
        return {**props, "metadata": {**metadata, "labels": labels}}
    if namespace is None:
        return None
    if kind == "ClusterRoleBinding" and name == _OPERATOR_BINDING:
        return {**props, "subjects": []}
    if kind == "Deployment" and name == _OPERATOR_DEPLOYMENT:
        spec = props["spec"]
        pod = spec["template"]["spec"]
        containers = []
        for container in pod["containers"]:
            env = [
                e for e in container.get("env") or [] if e.get("name") != "OPERATOR_SCOPE_NAMESPACE"
            ]
            env.append({"name": "OPERATOR_SCOPE_NAMESPACE", "value": namespace})
            containers.append({**container, "env": env})
        template = {**spec["template"], "spec": {**pod, "containers": containers}}
        return {**props, "spec": {**spec, "template": template}}
    return None


def build_operator_role_binding(*, namespace: str, instance: str) -> dict[str, Any]:
    """The operator's rights (its ClusterRole's rules) in ``namespace`` only."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": f"{instance}-operator",
            "namespace": require_dns1123_label("namespace", namespace),
            "labels": standard_labels(name="rabbitmq", instance=instance, component="operator"),
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": OPERATOR_CLUSTER_ROLE,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
        ],
    }


def build_broker_egress_policies(
    *, name: str, namespace: str, instance: str
) -> list[dict[str, Any]]:
    """Egress under the namespace's default deny: clients to AMQP, nodes to each other.

    RabbitMQ 4.x's Kubernetes peer discovery joins the node of ordinal 0 by its name and
    calls no API (rabbitmq/rabbitmq-server@v4.2.6 deps/rabbitmq_peer_discovery_k8s/src/
    rabbit_peer_discovery_k8s.erl:47-69), so the nodes need DNS (allowed namespace-wide) and
    each other only.
    """
    broker_pods = {"app.kubernetes.io/name": name}
    labels = standard_labels(name="rabbitmq", instance=instance, component="broker")

    def policy(
        suffix: str, pods: Mapping[str, str], egress: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"{name}-{suffix}", "namespace": namespace, "labels": labels},
            "spec": {
                "podSelector": {"matchLabels": dict(pods)},
                "policyTypes": ["Egress"],
                "egress": egress,
            },
        }

    to_broker = [{"podSelector": {"matchLabels": broker_pods}}]
    return [
        policy(
            "clients-egress",
            client_labels(name),
            [{"to": to_broker, "ports": [{"protocol": "TCP", "port": AMQP_PORT}]}],
        ),
        policy(
            "nodes-egress",
            broker_pods,
            [
                {
                    "to": to_broker,
                    "ports": [{"protocol": "TCP", "port": port} for port in _CLUSTERING_PORTS],
                }
            ],
        ),
    ]
