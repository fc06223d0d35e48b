"""Pod specs for workload containers, with the security defaults always applied.

Every workload builder (jobs, workers, Dask, pipelines) makes its pods here, so none can forget
the security context, the writable ``/tmp``, resource requests and limits, or storage mounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Self

from pydantic import model_validator

from workstack.components.manifests.security import (
    TMP_MOUNT_PATH,
    TMP_VOLUME,
    container_security_context,
    pod_security_context,
)
from workstack.components.manifests.settings import (
    OptionalQuantity,
    Quantity,
    Settings,
    setting,
)
from workstack.components.manifests.validation import (
    SpecError,
    parse_quantity,
    require_choice,
    require_dns1123_label,
)

__all__ = ["ContainerSpec", "PodStorage", "Resources", "build_pod_spec"]


def _amount(quantity: str) -> Decimal:
    value = parse_quantity(quantity)
    assert value is not None, "validated before"
    return value


_ENV_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


class Resources(Settings):
    """CPU and memory a container requests, and the most it may use.

    The memory limit defaults to the request, so a pod is never killed for using what it asked
    for and never takes more than it was scheduled with.
    """

    cpu: Quantity = setting("500m", "cpu")
    """CPU the container requests (a Kubernetes quantity, e.g. 500m)."""
    memory: Quantity = setting("1Gi", "memory")
    """Memory the container requests (e.g. 1Gi)."""
    cpu_limit: Quantity = setting("1", "cpuLimit")
    """Most CPU the container may use; at least the request."""
    memory_limit: OptionalQuantity = setting(None, "memoryLimit", unset="")
    """Most memory the container may use; at least the request. Empty: the request."""

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Self:
        for request, limit in (("cpu", "cpu_limit"), ("memory", "memory_limit")):
            requested, allowed = getattr(self, request), getattr(self, limit)
            if allowed is not None and _amount(allowed) < _amount(requested):
                raise self.refuse(limit, allowed, f"must be at least {{{request}}} ({requested})")
        return self

    def build(self) -> dict[str, Any]:
        """The container ``resources`` field."""
        return {
            "requests": {"cpu": self.cpu, "memory": self.memory},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit or self.memory},
        }


@dataclass(kw_only=True, frozen=True)
class PodStorage:
    """How pods reach one storage: volumes to add, where to mount them, environment to set.

    Storage components produce one; workload builders take any number and merge them.
    """

    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()
    env: Mapping[str, Any] = field(default_factory=dict)
    env_from_secrets: tuple[str, ...] = ()

    def merge(self, other: PodStorage) -> PodStorage:
        """Both storages; the same env var set to two values is an error."""
        clash = {key for key in set(self.env) & set(other.env) if self.env[key] != other.env[key]}
        if clash:
            raise SpecError(
                "storage", sorted(clash), "each environment variable may be set by one storage"
            )
        return PodStorage(
            volumes=self.volumes + other.volumes,
            mounts=self.mounts + other.mounts,
            env={**self.env, **other.env},
            env_from_secrets=self.env_from_secrets + other.env_from_secrets,
        )


@dataclass(kw_only=True, frozen=True)
class ContainerSpec:
    """One workload container.

    Attributes:
        name: Container name (DNS-1123 label).
        image: Image reference; built by ``WorkloadImage`` or given.
        args: Arguments to the image's entrypoint.
        command: Replaces the image's entrypoint when set.
        env: Environment variables. Values are passed through untouched (they may be Pulumi
            outputs), so builders never need to resolve them.
        secret_env: Environment variables read from Secrets: name -> (secret name, key).
        ports: Named container ports: name -> port number.
        resources: Requests and limits.
        read_only_root_filesystem: Keep the root filesystem read-only (the default).
        pull_policy: ``IfNotPresent``; ``Never`` for an image loaded into the cluster's runtime
            (minikube); ``Always`` for a moving tag.
    """

    name: str
    image: Any
    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    env: Mapping[str, Any] = field(default_factory=dict)
    secret_env: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    read_only_root_filesystem: bool = True
    pull_policy: str = "IfNotPresent"

    def __post_init__(self) -> None:
        require_dns1123_label("container name", self.name)
        require_choice("pull_policy", self.pull_policy, ("IfNotPresent", "Never", "Always"))
        if isinstance(self.image, str) and not self.image.strip():
            raise SpecError(
                "image", self.image, "expected an image reference such as repo/name:tag"
            )
        for key in [*self.env, *self.secret_env]:
            if not key or not set(key) <= _ENV_NAME_CHARS or key[0].isdigit():
                raise SpecError(
                    "env", key, "expected an environment variable name such as DATA_URL"
                )
        for port_name, port in self.ports.items():
            require_dns1123_label("port name", port_name, max_length=15)
            if not 1 <= port <= 65535:
                raise SpecError(f"ports.{port_name}", port, "expected a port between 1 and 65535")

    def build(self, storage: PodStorage) -> dict[str, Any]:
        """The container object, with security context, ``/tmp`` and storage mounts."""
        env = {**storage.env, **self.env}
        env_list: list[dict[str, Any]] = [{"name": key, "value": env[key]} for key in sorted(env)]
        env_list += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": secret_key}}}
            for key, (secret, secret_key) in sorted(self.secret_env.items())
        ]
        container: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imagePullPolicy": self.pull_policy,
            "resources": self.resources.build(),
            "securityContext": container_security_context(
                read_only_root_filesystem=self.read_only_root_filesystem
            ),
            "volumeMounts": [{"name": TMP_VOLUME, "mountPath": TMP_MOUNT_PATH}, *storage.mounts],
        }
        if self.command:
            container["command"] = list(self.command)
        if self.args:
            container["args"] = list(self.args)
        if env_list:
            container["env"] = env_list
        if storage.env_from_secrets:
            container["envFrom"] = [
                {"secretRef": {"name": name}} for name in storage.env_from_secrets
            ]
        if self.ports:
            container["ports"] = [
                {"name": port_name, "containerPort": port, "protocol": "TCP"}
                for port_name, port in sorted(self.ports.items())
            ]
        return container


def build_pod_spec(
    *,
    containers: list[ContainerSpec],
    storage: list[PodStorage] | None = None,
    service_account: str | None = None,
    restart_policy: str = "Never",
    automount_service_account_token: bool = False,
) -> dict[str, Any]:
    """Build a pod spec that meets the restricted Pod Security Standard.

    Args:
        containers: The workload containers (at least one).
        storage: Storages every container mounts.
        service_account: Kubernetes service account the pod runs as; None uses ``default``.
        restart_policy: ``Never`` or ``OnFailure`` for Jobs, ``Always`` for Deployments.
        automount_service_account_token: Mount an API token; only pods that call the
            Kubernetes API (a Dask client, Argo steps) need one.

    Raises:
        SpecError: No container, two containers with one name, or a bad restart policy.
    """
    if not containers:
        raise SpecError("containers", containers, "expected at least one container")
    names = [c.name for c in containers]
    if len(set(names)) != len(names):
        raise SpecError("containers", names, "container names must be unique")
    if restart_policy not in ("Never", "OnFailure", "Always"):
        raise SpecError("restart_policy", restart_policy, "allowed: Never, OnFailure, Always")
    merged = PodStorage()
    for item in storage or []:
        merged = merged.merge(item)
    spec: dict[str, Any] = {
        "automountServiceAccountToken": automount_service_account_token,
        "containers": [container.build(merged) for container in containers],
        "restartPolicy": restart_policy,
        "securityContext": pod_security_context(),
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {}}, *merged.volumes],
    }
    if service_account is not None:
        spec["serviceAccountName"] = require_dns1123_label("service_account", service_account)
    return spec
