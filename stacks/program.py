"""Compose the components a stack's config asks for and export what users need."""

from __future__ import annotations

import pulumi

from stacks.config import StackConfig
from workstack.components import (
    EksCluster,
    EksClusterArgs,
    GkeCluster,
    GkeClusterArgs,
    KubernetesCluster,
    MinikubeCluster,
    MinikubeClusterArgs,
)

__all__ = ["compose", "make_cluster"]


def make_cluster(config: StackConfig) -> KubernetesCluster:
    """Create the cluster component the config's ``cloud`` names."""
    name = "cluster"
    if isinstance(config.cluster, GkeClusterArgs):
        return GkeCluster(name, config.cluster)
    if isinstance(config.cluster, EksClusterArgs):
        return EksCluster(name, config.cluster)
    if isinstance(config.cluster, MinikubeClusterArgs):
        return MinikubeCluster(name, config.cluster)
    raise TypeError(f"unsupported cluster arguments {type(config.cluster).__name__}")


def compose(config: StackConfig) -> None:
    """Build the stack described by ``config`` and export its outputs."""
    cluster = make_cluster(config)
    pulumi.export("cloud", config.cloud)
    pulumi.export("namespace", cluster.namespace)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("registry", cluster.registry.url if cluster.registry else None)
