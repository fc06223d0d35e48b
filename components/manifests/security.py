"""Pod security defaults: the one place they are defined, applied by every workload builder.

Workload pods meet the Kubernetes *restricted* Pod Security Standard: they run as a fixed
non-root user, cannot escalate privileges, drop every capability, use the runtime's default
seccomp profile and have a read-only root filesystem with a writable ``/tmp``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "POD_SECURITY_EXCEPTIONS",
    "TMP_MOUNT_PATH",
    "TMP_VOLUME",
    "WORKLOAD_GID",
    "WORKLOAD_UID",
    "container_security_context",
    "pod_security_context",
]

WORKLOAD_UID = 10001
"""User id every workload container runs as (the images are built for it)."""

WORKLOAD_GID = 10001
"""Group id of workload containers; also the owner group of shared storage."""

TMP_VOLUME = "tmp"
TMP_MOUNT_PATH = "/tmp"  # the one writable path of a read-only root filesystem

POD_SECURITY_EXCEPTIONS: dict[str, str] = {
    "nfs-server": (
        "runs the kernel NFS server for in-cluster NFS storage, which needs a privileged "
        "container; it lives in its own namespace whose Pod Security level is privileged, so "
        "the workload namespace stays restricted"
    ),
}
"""Pods allowed to break the restricted profile, keyed by their ``app.kubernetes.io/component``
label, with the reason. Nothing else may; the policy test fails otherwise."""


def pod_security_context() -> dict[str, Any]:
    """The pod-level security context of a workload pod."""
    return {
        "runAsNonRoot": True,
        "runAsUser": WORKLOAD_UID,
        "runAsGroup": WORKLOAD_GID,
        # Volumes that support ownership management (emptyDir, block PVCs) are made writable
        # for the workload's group.
        "fsGroup": WORKLOAD_GID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(*, read_only_root_filesystem: bool = True) -> dict[str, Any]:
    """The container-level security context of a workload container.

    Args:
        read_only_root_filesystem: Keep the image's filesystem read-only. Turn off only for a
            workload that must write outside ``/tmp`` and mounted storage.
    """
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root_filesystem,
        "runAsNonRoot": True,
    }
