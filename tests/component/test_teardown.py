"""Ephemeral stacks leave nothing behind: checked over every stack and storage mode."""

from __future__ import annotations

import pytest

from workstack.project import PulumiProject
from workstack.teardown import blockers

from .harness import deploy
from .test_storage import MINIO, MINIO_SECRETS


@pytest.mark.parametrize("stack", ["minikube", "gke", "eks"])
@pytest.mark.parametrize("storage", ["nfs", "bucket", "both"])
def test_an_ephemeral_stack_has_nothing_that_blocks_or_survives_destroy(
    project: PulumiProject, stack: str, storage: str
) -> None:
    changes: dict[str, object] = {"ephemeral": True, "storage": storage}
    secrets = None
    if stack == "minikube" and storage != "nfs":
        changes |= MINIO
        secrets = MINIO_SECRETS
    assert blockers(deploy(project, stack, secrets=secrets, **changes)) == []


@pytest.mark.parametrize("stack", ["gke", "eks"])
def test_the_check_finds_what_a_long_lived_stack_protects(
    project: PulumiProject, stack: str
) -> None:
    found = "\n".join(blockers(deploy(project, stack, storage="both")))
    assert "deletion protection is on" in found
    assert "protected" in found, "the NFS server's disk"
    assert "forceDestroy is off" in found
    assert "deleteUnreachable is off" in found
