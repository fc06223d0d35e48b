"""Check pod templates against the Kubernetes *restricted* Pod Security Standard.

The rules are those the API server's Pod Security Admission applies at level ``restricted``
(which includes ``baseline``). Pod templates are found in every kind workstack renders,
custom resources included, so nothing reaches a cluster unchecked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from workstack.components.manifests.security import POD_SECURITY_EXCEPTIONS

__all__ = ["PodTemplate", "pod_templates", "restricted_violations"]

_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


@dataclass(frozen=True)
class PodTemplate:
    """A pod spec found in a rendered object.

    Attributes:
        source: ``Kind/name`` of the object, plus where in it the pod spec sits.
        spec: The pod spec.
        labels: The pod's labels (used to find allowed exceptions).
    """

    source: str
    spec: dict[str, Any]
    labels: dict[str, str]

    @property
    def exception(self) -> str | None:
        """Why this pod may break the profile, if it is a listed exception."""
        return POD_SECURITY_EXCEPTIONS.get(self.labels.get("app.kubernetes.io/component", ""))


def _template(source: str, template: dict[str, Any] | None) -> Iterator[PodTemplate]:
    if template and isinstance(template.get("spec"), dict):
        labels = (template.get("metadata") or {}).get("labels") or {}
        yield PodTemplate(source, template["spec"], labels)


def _argo_pods(label: str, spec: dict[str, Any]) -> Iterator[PodTemplate]:
    """Argo builds one pod per container template, from spec-level and template-level fields."""
    for template in spec.get("templates", []):
        container = template.get("container") or template.get("script")
        if container is None:
            continue
        pod = {
            "securityContext": template.get("securityContext", spec.get("securityContext", {})),
            "containers": [container],
            "initContainers": template.get("initContainers", []),
            "volumes": [*spec.get("volumes", []), *template.get("volumes", [])],
        }
        labels = (template.get("metadata") or {}).get("labels") or {}
        yield PodTemplate(f"{label} template {template.get('name')}", pod, labels)


def pod_templates(obj: dict[str, Any]) -> list[PodTemplate]:
    """Every pod spec inside ``obj``: pods, controllers, jobs and known custom resources."""
    kind, spec = obj.get("kind", ""), obj.get("spec") or {}
    label = f"{kind}/{(obj.get('metadata') or {}).get('name')}"
    found: list[PodTemplate] = []
    if kind == "Pod":
        found.append(PodTemplate(label, spec, (obj.get("metadata") or {}).get("labels") or {}))
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        found += _template(label, spec.get("template"))
    elif kind == "CronJob":
        found += _template(
            label, ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
        )
    elif kind == "ScaledJob":
        found += _template(label, (spec.get("jobTargetRef") or {}).get("template"))
    elif kind in ("DaskCluster", "DaskWorkerGroup"):
        for role in ("scheduler", "worker"):
            found += _template(f"{label} {role}", spec.get(role))
    elif kind == "DaskJob":
        found += _template(f"{label} job", spec.get("job"))
        cluster = (spec.get("cluster") or {}).get("spec") or {}
        for role in ("scheduler", "worker"):
            found += _template(f"{label} {role}", cluster.get(role))
    elif kind in ("Workflow", "WorkflowTemplate"):
        found += _argo_pods(label, spec)
    return found


def _containers(spec: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """Every rule of the restricted profile that the pod spec breaks (empty if none)."""
    problems: list[str] = []
    pod_ctx = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{field} must not be true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            allowed = ", ".join(sorted(_RESTRICTED_VOLUMES))
            problems.append(f"volume {volume.get('name')} uses {sorted(kinds)}; allowed: {allowed}")
    for sysctl in pod_ctx.get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl.get('name')} is not in the safe set")
    if (pod_ctx.get("seLinuxOptions") or {}).get("type", "") not in _SELINUX_TYPES:
        problems.append("pod seLinuxOptions.type is not allowed")
    if pod_ctx.get("runAsUser") == 0:
        problems.append("pod runAsUser must not be 0")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"pod seccompProfile {pod_seccomp} is not allowed")

    for container in _containers(spec):
        name = container.get("name")
        ctx = container.get("securityContext") or {}
        if ctx.get("privileged"):
            problems.append(f"container {name}: privileged must not be true")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name}: allowPrivilegeEscalation must be false")
        capabilities = ctx.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"container {name}: capabilities must drop ALL")
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            problems.append(
                f"container {name}: may add only NET_BIND_SERVICE, adds {sorted(added)}"
            )
        if not (
            ctx.get("runAsNonRoot")
            or (pod_ctx.get("runAsNonRoot") and ctx.get("runAsNonRoot") is not False)
        ):
            problems.append(f"container {name}: runAsNonRoot must be true (pod or container)")
        if ctx.get("runAsUser") == 0:
            problems.append(f"container {name}: runAsUser must not be 0")
        seccomp = (ctx.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"container {name}: seccompProfile must be RuntimeDefault or Localhost")
        if ctx.get("procMount", "Default") != "Default":
            problems.append(f"container {name}: procMount must be Default")
        if (ctx.get("seLinuxOptions") or {}).get("type", "") not in _SELINUX_TYPES:
            problems.append(f"container {name}: seLinuxOptions.type is not allowed")
        if (ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
            problems.append(f"container {name}: appArmorProfile must not be Unconfined")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"container {name}: hostPort must not be set")
    return problems
