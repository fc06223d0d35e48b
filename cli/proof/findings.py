"""What a check reports, and what it knows about the stack beyond the registered resources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workstack.offline import Deployment

__all__ = ["Finding", "StackContext"]


@dataclass(frozen=True)
class Finding:
    """One broken rule.

    Attributes:
        check: Which check: ``charts``, ``crds``, ``tpl``, ``ordering``, ``capacity``,
            ``names`` or ``images``.
        subject: What breaks it: a resource, an object or a stack key.
        message: What is wrong, why it matters and what to change.
        severity: ``error`` (``pulumi up`` or the workload would fail: render exits 1) or
            ``warning`` (a risk nothing here can remove, such as an image whose digest no
            authoritative source records).
    """

    check: str
    subject: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.message}"


@dataclass(frozen=True)
class StackContext:
    """What the checks need to know about the stack besides what it registered.

    Attributes:
        stack: The stack's name.
        cloud: ``minikube``, ``gke`` or ``eks`` (the ``cloud`` output).
        config: The config the program got (full key to string).
        provided_crds: ``group/Kind`` of CRDs the cluster already has (installed by another
            stack or by hand).
    """

    stack: str
    cloud: str
    config: Mapping[str, str] = field(default_factory=dict)
    provided_crds: frozenset[str] = frozenset()

    def setting(self, key: str, default: str = "") -> str:
        """A ``workstack:`` key's value as the program got it."""
        return self.config.get(f"workstack:{key}", default)

    @staticmethod
    def of(stack: str, deployment: Deployment, config: Mapping[str, str]) -> StackContext:
        """The context of a render: the cloud from its outputs, provided CRDs from its config.

        With ``installOperators`` off, "another stack on the same cluster installed them"
        (the key's description in Pulumi.yaml): the operators' CRDs count as provided.
        """
        from workstack.components.manifests.upstream import BUNDLES

        cloud = str(_plain(deployment.outputs.get("cloud")) or "")
        provided: set[str] = set()
        if config.get("workstack:installOperators", "true") == "false":
            for bundle in BUNDLES.values():
                if bundle.name in _OPERATOR_BUNDLES:
                    provided |= {kind for source in bundle.crds for kind in source.kinds}
        return StackContext(stack, cloud, dict(config), frozenset(provided))


_OPERATOR_BUNDLES = (
    "rabbitmq-cluster-operator",
    "keda",
    "dask-kubernetes-operator",
    "argo-workflows",
)
"""What ``workstack:installOperators`` installs cluster-wide: the operators workloads need
(RabbitMQ, KEDA, Dask) and Argo's CRDs (ArgoWorkflowsArgs.install_crds)."""


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)
