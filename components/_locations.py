"""Where workload pods can read and write: the NFS mount, or a bucket URL."""

from __future__ import annotations

from collections.abc import Iterable

from workstack.components.manifests import SpecError
from workstack.components.manifests.pods import PodStorage
from workstack.sdk import env
from workstack.sdk.storage import StorageError, normalize_url

__all__ = ["check_reachable"]


def check_reachable(field: str, url: str, storage: Iterable[PodStorage]) -> None:
    """Refuse a location pods cannot see.

    Raises:
        SpecError: Naming ``field``: an unsupported scheme, or a path outside the NFS mount
            (or with no NFS storage attached).
    """
    try:
        normal = normalize_url(url)
    except StorageError as error:
        raise SpecError(field, url, str(error)) from None
    if normal.startswith(("s3://", "gs://")):
        return
    mounted = any(env.NFS_PATH in item.env for item in storage)
    if not mounted or not (normal + "/").startswith(env.NFS_MOUNT_PATH + "/"):
        raise SpecError(
            field,
            url,
            f"pods see only {env.NFS_MOUNT_PATH} (with NFS storage attached) and s3:// or gs:// "
            "URLs; a path on the deploying machine is not visible to them",
        )
