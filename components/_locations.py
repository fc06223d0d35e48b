"""Where workload pods can read and write: the NFS mount, or a bucket URL.

A location may start with ``$(WORKSTACK_BUCKET_URL)``: Kubernetes expands it in the pod's
arguments from the environment the bucket storage sets, so a stack can point at a bucket
whose name Pulumi generates.
"""

from __future__ import annotations

from collections.abc import Iterable

from workstack.components.manifests import SpecError
from workstack.components.manifests.pods import PodStorage
from workstack.sdk import env
from workstack.sdk.storage import StorageError, normalize_url

__all__ = ["BUCKET_ROOT", "check_reachable", "comparable"]

BUCKET_ROOT = f"$({env.BUCKET_URL})"
"""The stack's bucket in a pod's arguments (expanded by Kubernetes)."""

_STAND_IN = "s3://stack-bucket"


def comparable(url: str) -> str:
    """``url`` with the bucket placeholder replaced, for checks that compare locations."""
    return _STAND_IN + url[len(BUCKET_ROOT) :] if url.startswith(BUCKET_ROOT) else url


def check_reachable(field: str, url: str, storage: Iterable[PodStorage]) -> None:
    """Refuse a location pods cannot see.

    Raises:
        SpecError: Naming ``field``: an unsupported scheme, a path outside the NFS mount (or
            with no NFS storage attached), or the bucket placeholder without a bucket.
    """
    attached = list(storage)
    if url.startswith(BUCKET_ROOT):
        if not any(env.BUCKET_URL in item.env for item in attached):
            raise SpecError(field, url, f"{BUCKET_ROOT} needs the stack's bucket storage attached")
        return
    try:
        normal = normalize_url(url)
    except StorageError as error:
        raise SpecError(field, url, str(error)) from None
    if normal.startswith(("s3://", "gs://")):
        return
    mounted = any(env.NFS_PATH in item.env for item in attached)
    if not mounted or not (normal + "/").startswith(env.NFS_MOUNT_PATH + "/"):
        raise SpecError(
            field,
            url,
            f"pods see only {env.NFS_MOUNT_PATH} (with NFS storage attached) and s3:// or gs:// "
            "URLs; a path on the deploying machine is not visible to them",
        )
