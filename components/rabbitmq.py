"""RabbitMQ for the queue-workers pattern, run by the RabbitMQ Cluster Operator."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from workstack.components._objects import create_object
from workstack.components.cluster import KubernetesCluster
from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.operators import OPERATOR_SCOPES
from workstack.components.manifests.rabbitmq import (
    MANAGEMENT_PORT,
    RABBITMQ_OPERATOR_MANIFEST,
    RabbitMqSettings,
    broker_url,
    build_broker_egress_policies,
    build_broker_network_policy,
    build_operator_role_binding,
    build_rabbitmq_cluster,
    client_labels,
    default_user_conf,
    scope_operator_object,
)
from workstack.components.manifests.validation import require_choice

__all__ = ["RabbitMq", "RabbitMqArgs", "RabbitMqSettings"]

_USERNAME = "workstack"


@dataclass(kw_only=True, frozen=True)
class RabbitMqArgs:
    """Arguments for :class:`RabbitMq`.

    Attributes:
        cluster: Where the broker runs (its workload namespace).
        settings: Nodes, their resources and disks, the consumer timeout.
        install_operator: Install the pinned RabbitMQ Cluster Operator release. Turn off when
            the cluster already has it (another stack on the same cluster, say).
        operator_scope: ``namespace``: the operator installed here serves this namespace
            only; ``cluster``: every namespace, for other stacks on the cluster that do not
            install operators.
    """

    cluster: KubernetesCluster
    settings: RabbitMqSettings = field(default_factory=RabbitMqSettings)
    install_operator: bool = True
    operator_scope: str = "namespace"

    def __post_init__(self) -> None:
        require_choice("operator_scope", self.operator_scope, OPERATOR_SCOPES)


class RabbitMq(pulumi.ComponentResource):
    """A RabbitMQ cluster with generated credentials, quorum queues and a NetworkPolicy.

    The password is generated (pulumi-random), kept as a Pulumi secret and put in a Kubernetes
    Secret, ``<name>-default-user``, whose ``url`` key workloads read; the operator takes the
    broker's default user from the same Secret (``secretBackend.externalSecret``), so the
    password is in no other object, and guest/guest is never used.
    Quorum is the default queue type. A NetworkPolicy admits AMQP only from pods carrying
    ``client_labels`` (the queue pattern's tasker and workers). The management UI is reached
    with ``management_command`` (a port-forward).
    """

    broker_name: str
    """The RabbitmqCluster, and its Service: ``<broker_name>.<namespace>.svc``."""

    secret_name: str
    """The Secret with ``url``, ``username`` and ``password``; workloads read ``url``."""

    url: pulumi.Output[str]
    """The AMQP URL, credentials included (secret)."""

    client_labels: dict[str, str]
    """Labels a pod needs to be let through to the broker."""

    management_command: pulumi.Output[str]
    """``kubectl port-forward`` to the management UI on localhost:15672."""

    def __init__(
        self, name: str, args: RabbitMqArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:queue:RabbitMq", name, None, opts)
        cluster = args.cluster
        namespace = cluster.namespace_name
        # The broker's nodes keep their messages on claims of the cluster's storage class.
        k8s_opts = cluster.options_for(self, storage=True)
        password = random.RandomPassword(
            f"{name}-password",
            length=32,
            special=False,  # the password goes into an AMQP URL as is
            opts=pulumi.ResourceOptions(parent=self),
        )
        depends: list[pulumi.Resource] = []
        if args.install_operator:
            # The published manifest, changed as it is applied: the operator watches and
            # holds rights in this namespace only (scope_operator_object says how and why),
            # or, for a cluster shared with other stacks, in every namespace as released.
            served = namespace if args.operator_scope == "namespace" else None

            def scope(
                transform: pulumi.ResourceTransformArgs,
            ) -> pulumi.ResourceTransformResult | None:
                kind = transform.type_.rsplit(":", 1)[-1]
                props = scope_operator_object(kind, dict(transform.props), served)
                if props is None:
                    return None
                return pulumi.ResourceTransformResult(props=props, opts=transform.opts)

            if served is not None:
                depends.append(
                    create_object(
                        f"{name}-operator-rights",
                        build_operator_role_binding(namespace=namespace, instance=name),
                        k8s_opts,
                    )
                )
            depends.append(
                k8s.yaml.v2.ConfigFile(
                    f"{name}-operator",
                    file=RABBITMQ_OPERATOR_MANIFEST,
                    opts=pulumi.ResourceOptions.merge(
                        k8s_opts, pulumi.ResourceOptions(transforms=[scope])
                    ),
                )
            )
        with_operator = pulumi.ResourceOptions.merge(
            k8s_opts, pulumi.ResourceOptions(depends_on=depends)
        )

        self.broker_name = name
        # The operator reads the management API's credentials from `<name>-default-user`
        # whatever secretBackend says (cluster-operator v2.21.1 internal/rabbitmqclient/
        # client.go:39-47), and with externalSecret it makes no such Secret itself
        # (internal/resource/rabbitmq_resource_builder.go:89-92): ours has that name.
        self.secret_name = f"{name}-default-user"
        self.url = pulumi.Output.secret(
            password.result.apply(
                lambda secret: broker_url(
                    name=name, namespace=namespace, username=_USERNAME, password=secret
                )
            )
        )
        secret = create_object(
            f"{name}-secret",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": self.secret_name,
                    "namespace": namespace,
                    "labels": standard_labels(name="rabbitmq", instance=name, component="broker"),
                },
                "type": "Opaque",
                "stringData": pulumi.Output.secret(
                    pulumi.Output.all(self.url, password.result).apply(
                        lambda parts: {
                            "url": parts[0],
                            "username": _USERNAME,
                            "password": parts[1],
                            "default_user.conf": default_user_conf(
                                username=_USERNAME, password=parts[1]
                            ),
                        }
                    )
                ),
            },
            k8s_opts,
        )
        create_object(
            f"{name}-cluster",
            build_rabbitmq_cluster(
                name=name,
                namespace=namespace,
                instance=name,
                settings=_with_storage_class(args.settings, cluster.storage_class),
                credentials_secret=self.secret_name,
            ),
            pulumi.ResourceOptions.merge(
                with_operator, pulumi.ResourceOptions(depends_on=[secret])
            ),
        )
        create_object(
            f"{name}-network-policy",
            build_broker_network_policy(name=name, namespace=namespace, instance=name),
            k8s_opts,
        )
        for policy in build_broker_egress_policies(name=name, namespace=namespace, instance=name):
            create_object(f"{policy['metadata']['name']}-policy", policy, k8s_opts)

        self.client_labels = client_labels(name)
        self.management_command = pulumi.Output.from_input(
            f"kubectl port-forward -n {namespace} svc/{name} {MANAGEMENT_PORT}:{MANAGEMENT_PORT}"
        )
        self.register_outputs(
            {
                "secret_name": self.secret_name,
                "url": self.url,
                "management_command": self.management_command,
            }
        )


def _with_storage_class(settings: RabbitMqSettings, storage_class: str | None) -> RabbitMqSettings:
    """The settings with the cluster's storage class, unless they name one themselves."""
    if settings.storage_class is not None or storage_class is None:
        return settings
    return settings.model_copy(update={"storage_class": storage_class})
