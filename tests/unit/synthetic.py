"""Hand-built deployments for the offline proof's unit tests: each rule broken on purpose."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workstack.offline import Deployment, RegisteredResource
from workstack.proof import StackContext

PROVIDER_TYPE = "pulumi:providers:kubernetes"


def urn(type_token: str, name: str) -> str:
    return f"urn:pulumi:test::workstack::workstack:test:Parent${type_token}::{name}"


def provider_ref(name: str = "cluster-provider") -> str:
    return f"{urn(PROVIDER_TYPE, name)}::{name}-id"


def res(
    type_token: str,
    name: str,
    inputs: dict[str, Any] | None = None,
    *,
    waits: Iterable[RegisteredResource] = (),
    provider: str | None = None,
) -> RegisteredResource:
    """A registered resource that waits for ``waits``."""
    return RegisteredResource(
        type=type_token,
        name=name,
        custom=not type_token.startswith("eks:index:Cluster"),
        inputs=inputs or {},
        provider=provider,
        depends_on=tuple(urn(r.type, r.name) for r in waits),
    )


def k8s(
    obj: dict[str, Any],
    name: str | None = None,
    *,
    waits: Iterable[RegisteredResource] = (),
    provider: str | None = "cluster-provider",
) -> RegisteredResource:
    """A Kubernetes object registered with the cluster provider (unless ``provider=None``)."""
    group_version = obj["apiVersion"]
    group = group_version.rpartition("/")[0].split(".")[0] or "core"
    version = group_version.rpartition("/")[2]
    token = f"kubernetes:{group}/{version}:{obj['kind']}"
    if "." in group_version.rpartition("/")[0] and not group_version.rpartition("/")[0].endswith(
        ".k8s.io"
    ):
        token = f"kubernetes:{group_version}:{obj['kind']}"
    return res(
        token,
        name or obj["metadata"]["name"],
        obj,
        waits=waits,
        provider=provider_ref(provider) if provider else None,
    )


def chart(
    name: str,
    repo: str,
    chart_name: str,
    version: str,
    values: dict[str, Any] | None = None,
    *,
    waits: Iterable[RegisteredResource] = (),
    **extra: Any,
) -> RegisteredResource:
    inputs = {
        "chart": chart_name,
        "version": version,
        "repositoryOpts": {"repo": repo},
        "values": values or {},
        **extra,
    }
    return res("kubernetes:helm.sh/v4:Chart", name, inputs, waits=waits, provider=provider_ref())


def deployment(*resources: RegisteredResource, **outputs: Any) -> Deployment:
    return Deployment(resources=list(resources), outputs=dict(outputs))


def context(cloud: str, **config: str) -> StackContext:
    return StackContext(
        stack="test", cloud=cloud, config={f"workstack:{k}": v for k, v in config.items()}
    )


def pod(cpu: str, memory: str, *, init: tuple[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "app",
                "resources": {"requests": {"cpu": cpu, "memory": memory}},
            }
        ]
    }
    if init:
        spec["initContainers"] = [
            {
                "name": "init",
                "image": "app",
                "resources": {"requests": {"cpu": init[0], "memory": init[1]}},
            }
        ]
    return spec


def deployment_object(name: str, replicas: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"replicas": replicas, "template": {"spec": spec}},
    }
