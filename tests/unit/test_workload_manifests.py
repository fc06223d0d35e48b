"""Builders for pods, identity and storage: golden YAML, schema validity, policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from workstack.components.manifests import SpecError
from workstack.components.manifests.pods import ContainerSpec, PodStorage, Resources, build_pod_spec
from workstack.components.manifests.rbac import (
    PERMISSION_SETS,
    build_role,
    build_role_binding,
    build_service_account,
)
from workstack.components.manifests.storage import (
    BucketSettings,
    NfsSettings,
    bucket_pod_storage,
    build_claim,
    build_nfs_server,
    build_static_volume,
    nfs_pod_storage,
)
from workstack.policy import pod_templates, restricted_violations

Golden = Callable[[str, Any], None]


def _job(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "example", "namespace": "ws"},
        "spec": {"template": {"spec": pod_spec}},
    }


def test_pod_spec_golden_and_restricted(golden: Golden, assert_schema_valid: Any) -> None:
    spec = build_pod_spec(
        containers=[
            ContainerSpec(
                name="work",
                image="repo/work:abc",
                args=("pod",),
                env={"B": "2", "A": "1"},
                secret_env={"TOKEN": ("creds", "token")},
                ports={"http": 8080},
            )
        ],
        storage=[
            nfs_pod_storage("shared-data"),
            bucket_pod_storage("s3://bucket", credentials_secret="s3"),
        ],
        service_account="workload",
    )
    golden("pod-spec", spec)
    assert_schema_valid([_job(spec)])
    assert restricted_violations(spec) == []
    env = [e["name"] for e in spec["containers"][0]["env"]]
    assert env == ["A", "B", "WORKSTACK_BUCKET_URL", "WORKSTACK_NFS_PATH", "TOKEN"]
    assert spec["automountServiceAccountToken"] is False


def test_writable_root_is_an_explicit_opt_out() -> None:
    spec = build_pod_spec(
        containers=[ContainerSpec(name="w", image="i", read_only_root_filesystem=False)]
    )
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    assert restricted_violations(spec) == [], "still restricted: the profile allows a writable root"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cpu": "lots"}, "cpu"),
        ({"memory": "-1Gi"}, "memory"),
        ({"cpu": "2", "cpu_limit": "1"}, "cpu_limit"),
        ({"memory": "2Gi", "memory_limit": "1Gi"}, "memory_limit"),
    ],
)
def test_resources_are_validated(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        Resources(**kwargs)
    assert caught.value.field == field


def test_memory_limit_defaults_to_the_request() -> None:
    assert Resources(memory="3Gi").build()["limits"]["memory"] == "3Gi"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Work"}, "container name"),
        ({"name": "w", "image": " "}, "image"),
        ({"name": "w", "env": {"1BAD": "x"}}, "environment variable name"),
        ({"name": "w", "ports": {"http": 70000}}, "port between 1 and 65535"),
    ],
)
def test_container_spec_is_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ContainerSpec(**{"image": "i", **kwargs})


def test_pod_spec_rejects_duplicate_containers_and_conflicting_storage() -> None:
    with pytest.raises(SpecError, match="unique"):
        build_pod_spec(containers=[ContainerSpec(name="w", image="i")] * 2)
    with pytest.raises(SpecError, match="one storage"):
        PodStorage(env={"X": "1"}).merge(PodStorage(env={"X": "2"}))


def test_rbac_golden(golden: Golden, assert_schema_valid: Any) -> None:
    objects = [
        build_service_account(
            name="dask",
            namespace="ws",
            instance="id",
            annotations={"iam.gke.io/gcp-service-account": "a@p.iam"},
        ),
        build_role(name="dask-client", namespace="ws", instance="id", permissions="dask-client"),
        build_role(name="argo", namespace="ws", instance="id", permissions="argo-step"),
        build_role_binding(
            name="dask-client",
            namespace="ws",
            instance="id",
            role="dask-client",
            service_account="dask",
        ),
    ]
    golden("rbac", objects)
    assert_schema_valid(objects)


def test_permission_sets_hold_no_wildcards_or_cluster_scope() -> None:
    for name, rules in PERMISSION_SETS.items():
        for rule in rules:
            assert "*" not in rule["verbs"], name
            assert "*" not in rule["resources"], name
            assert "*" not in rule["apiGroups"], name
    assert PERMISSION_SETS["none"] == ()
    [argo] = PERMISSION_SETS["argo-step"]
    assert argo["resources"] == ["workflowtaskresults"]
    assert set(argo["verbs"]) == {"create", "patch"}


def test_no_role_for_no_permissions() -> None:
    with pytest.raises(SpecError, match="permissions"):
        build_role(name="r", namespace="ws", instance="id", permissions="none")


def test_nfs_server_golden(golden: Golden, assert_schema_valid: Any) -> None:
    objects = build_nfs_server(
        name="data-server", namespace="ws-nfs", instance="nfs", settings=NfsSettings()
    )
    golden("nfs-server", objects)
    assert_schema_valid(objects)
    [template] = pod_templates(objects[1])
    assert template.exception, "the server is the listed exception"
    assert "container nfs-server: privileged must not be true" in restricted_violations(
        template.spec
    )


def test_static_and_dynamic_volumes_golden(golden: Golden, assert_schema_valid: Any) -> None:
    objects = [
        *build_static_volume(
            name="shared-data",
            instance="nfs",
            size="10Gi",
            claim_namespace="ws",
            source={"nfs": {"server": "192.0.2.10", "path": "/"}},
        ),
        build_claim(
            name="shared-data",
            namespace="ws",
            instance="nfs",
            size="1Ti",
            storage_class="standard-rwx",
        ),
    ]
    golden("volumes", objects)
    assert_schema_valid(objects[:2])  # a static volume and its claim
    assert_schema_valid(objects[2:])  # or a claim a CSI driver fills (same name: one or other)
    assert objects[0]["metadata"]["name"] == "ws-shared-data", "volumes are cluster-scoped"


def test_static_volume_needs_exactly_one_source() -> None:
    with pytest.raises(SpecError, match="exactly one of: nfs, csi"):
        build_static_volume(
            name="v", instance="i", size="1Gi", claim_namespace="ws", source={"hostPath": {}}
        )


def test_storage_settings_checks() -> None:
    NfsSettings(mode="managed", size="2Ti").validated_for(cloud="gke")
    with pytest.raises(SpecError, match="at least 1Ti") as caught:
        NfsSettings(mode="managed", size="512Gi").validated_for(cloud="gke")
    assert caught.value.field == "size"
    NfsSettings(mode="managed", size="10Gi").validated_for(cloud="eks")
    with pytest.raises(SpecError, match="managed NFS needs GKE"):
        NfsSettings(mode="managed").validated_for(cloud="minikube")
    BucketSettings().validated_for(cloud="eks")
    with pytest.raises(SpecError, match="refused"):
        BucketSettings(access_key_id="k").validated_for(cloud="gke")
    with pytest.raises(SpecError, match="both required") as caught:
        BucketSettings(name="data", endpoint="http://minio:9000", access_key_id="k").validated_for(
            cloud="minikube"
        )
    assert caught.value.field == "secret_access_key"
    assert "access_key_id and secret_access_key" in str(caught.value)
    # An existing bucket's versioning is not workstack's to set: refused, not ignored.
    with pytest.raises(SpecError, match="turn versioning on at its endpoint"):
        BucketSettings(
            name="data",
            endpoint="http://minio:9000",
            access_key_id="k",
            secret_access_key="s",
            versioning=True,
        ).validated_for(cloud="minikube")


BAD_PODS = [
    ({"hostNetwork": True}, "hostNetwork must not be true"),
    ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "uses ['hostPath']"),
    ({"securityContext": {"runAsUser": 0}}, "pod runAsUser must not be 0"),
]
BAD_CONTAINERS = [
    ({"privileged": True}, "privileged must not be true"),
    ({"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation must be false"),
    ({"capabilities": {"drop": []}}, "capabilities must drop ALL"),
    ({"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}, "may add only NET_BIND_SERVICE"),
    ({"runAsNonRoot": False}, "runAsNonRoot must be true"),
    ({"seccompProfile": {"type": "Unconfined"}}, "seccompProfile must be RuntimeDefault"),
]


def _good_spec() -> dict[str, Any]:
    return build_pod_spec(containers=[ContainerSpec(name="w", image="i")])


@pytest.mark.parametrize(("change", "problem"), BAD_PODS)
def test_policy_catches_pod_level_breaches(change: dict[str, Any], problem: str) -> None:
    spec = {**_good_spec(), **change}
    assert any(problem in p for p in restricted_violations(spec)), restricted_violations(spec)


@pytest.mark.parametrize(("change", "problem"), BAD_CONTAINERS)
def test_policy_catches_container_level_breaches(change: dict[str, Any], problem: str) -> None:
    spec = _good_spec()
    context = spec["containers"][0]["securityContext"]
    context.update(change)
    if "seccompProfile" in change:
        spec["securityContext"].pop("seccompProfile")
    assert any(problem in p for p in restricted_violations(spec)), restricted_violations(spec)


def test_policy_finds_pod_templates_in_every_kind() -> None:
    pod = {"metadata": {"labels": {}}, "spec": _good_spec()}
    kinds = {
        "Deployment": {"template": pod},
        "Job": {"template": pod},
        "CronJob": {"jobTemplate": {"spec": {"template": pod}}},
        "ScaledJob": {"jobTargetRef": {"template": pod}},
        "DaskCluster": {"scheduler": pod, "worker": pod},
        "Workflow": {"templates": [{"name": "a", "container": pod["spec"]["containers"][0]}]},
    }
    counts = {
        kind: len(pod_templates({"kind": kind, "metadata": {"name": "x"}, "spec": spec}))
        for kind, spec in kinds.items()
    }
    assert counts == {
        "Deployment": 1,
        "Job": 1,
        "CronJob": 1,
        "ScaledJob": 1,
        "DaskCluster": 2,
        "Workflow": 1,
    }
