"""WorkloadIdentity in a user's own program: namespaced permissions, cloud identity."""

from __future__ import annotations

import pytest

from workstack.components import (
    MinikubeCluster,
    MinikubeClusterArgs,
    SpecError,
    WorkloadIdentity,
    WorkloadIdentityArgs,
)
from workstack.offline import ProgramError, run_function
from workstack.render import rendered_objects


@pytest.mark.parametrize(
    ("permissions", "kinds"),
    [
        ("none", ["ServiceAccount"]),
        ("dask-client", ["Role", "RoleBinding", "ServiceAccount"]),
        ("argo-step", ["Role", "RoleBinding", "ServiceAccount"]),
    ],
)
def test_permissions_become_a_namespaced_role(permissions: str, kinds: list[str]) -> None:
    def program() -> None:
        cluster = MinikubeCluster("dev", MinikubeClusterArgs(namespace="science"))
        WorkloadIdentity(
            "runner",
            WorkloadIdentityArgs(
                cluster=cluster, service_account="runner", permissions=permissions
            ),
        )

    objects = [
        o
        for o in rendered_objects(run_function(program))
        if o["kind"] not in ("Namespace", "NetworkPolicy")  # the namespace's own policies
    ]
    assert sorted(o["kind"] for o in objects) == kinds
    for obj in objects:
        assert obj["metadata"]["namespace"] == "science"
    binding = next((o for o in objects if o["kind"] == "RoleBinding"), None)
    if binding is not None:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"runner-{permissions}",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "runner", "namespace": "science"}
        ]


def test_unknown_permission_set_is_rejected_before_anything_exists() -> None:
    def program() -> None:
        cluster = MinikubeCluster("dev", MinikubeClusterArgs())
        WorkloadIdentity(
            "runner",
            WorkloadIdentityArgs(
                cluster=cluster, service_account="runner", permissions="cluster-admin"
            ),
        )

    with pytest.raises(ProgramError) as caught:
        run_function(program)
    registered = [r.name for r in caught.value.deployment.resources]
    assert not [name for name in registered if name.startswith("runner")], registered
    error = caught.value.error
    assert isinstance(error, SpecError)
    assert (
        str(error)
        == "permissions: 'cluster-admin' is not allowed; allowed: none, dask-client, argo-step"
    )
