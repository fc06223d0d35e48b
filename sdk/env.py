"""Names of the environment variables pods receive: builders set them, the runtime reads them.

Keeping them in one module below both sides means a rename cannot leave the two apart.
"""

from __future__ import annotations

__all__ = [
    "BROKER_URL",
    "BUCKET_URL",
    "DATA_URL",
    "NFS_MOUNT_PATH",
    "NFS_PATH",
    "RUN_ID",
    "STORAGE_URL",
    "WORKLOAD_FILE",
]

NFS_PATH = "WORKSTACK_NFS_PATH"
"""Where the stack's NFS storage is mounted in the container (set when it has NFS)."""

NFS_MOUNT_PATH = "/data"
"""The mount path of NFS storage in every workload container."""

BUCKET_URL = "WORKSTACK_BUCKET_URL"
"""The stack's bucket as ``s3://name`` or ``gs://name`` (set when it has a bucket)."""

DATA_URL = "WORKSTACK_DATA_URL"
"""Root a workload reads and writes by default: one of the two above, chosen by its component."""

WORKLOAD_FILE = "WORKSTACK_WORKLOAD"
"""Path of the image's ``workload.yaml``."""

BROKER_URL = "WORKSTACK_BROKER_URL"
"""The queue pattern's AMQP URL, credentials included (pods read it from the broker's Secret)."""

RUN_ID = "WORKSTACK_RUN_ID"
"""The run a pod belongs to: a queue run's tasker names its run so, and its workers obey only
that run's stop messages (set on every run's pods, not on a KEDA service's)."""

STORAGE_URL = "WORKSTACK_STORAGE_URL"
"""Where the queue pattern's tasker and workers keep results."""
