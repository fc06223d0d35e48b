"""DaskCluster in both modes under Pulumi's mocks: valid objects, CRDs, namespaced rights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from workstack.components import (
    DaskCluster,
    DaskClusterArgs,
    DaskSettings,
    MinikubeCluster,
    MinikubeClusterArgs,
    NfsStorage,
    NfsStorageArgs,
    SpecError,
    WorkloadIdentity,
    WorkloadIdentityArgs,
)
from workstack.components.manifests.dask import (
    DASK_OPERATOR_VERSION,
    DaskTarget,
    build_dask_operator_resources,
    build_plain_dask,
)
from workstack.offline import Deployment, ProgramError, run_function
from workstack.policy import pod_templates, restricted_violations
from workstack.render import rendered_objects

IMAGE = "registry.example/dask-bench:9c1e"


def deploy(**settings: Any) -> Deployment:
    def program() -> None:
        import pulumi

        cluster = MinikubeCluster("dev", MinikubeClusterArgs(namespace="science"))
        nfs = NfsStorage("nfs", NfsStorageArgs(cluster=cluster))
        identity = WorkloadIdentity(
            "dask-identity", WorkloadIdentityArgs(cluster=cluster, service_account="dask")
        )
        dask = DaskCluster(
            "bench",
            DaskClusterArgs(
                cluster=cluster,
                image=IMAGE,
                storage=(nfs.pod_storage,),
                identity=identity,
                settings=DaskSettings(**settings),
            ),
        )
        pulumi.export("scheduler", dask.scheduler_address)
        pulumi.export("dashboard", dask.dashboard_command)

    return run_function(program)


def ours(deployment: Deployment) -> list[dict[str, Any]]:
    return [
        o
        for o in rendered_objects(deployment)
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == "bench"
    ]


def test_plain_mode_scheduler_service_and_workers(assert_schema_valid: Any) -> None:
    deployment = deploy(workers=3, threads=2)
    objects = ours(deployment)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("Deployment", "bench-scheduler"),
        ("Deployment", "bench-worker"),
        ("NetworkPolicy", "bench-clients"),
        ("NetworkPolicy", "bench-scheduler"),
        ("NetworkPolicy", "bench-workers"),
        ("Secret", "bench-dask-tls"),
        ("Service", "bench-scheduler"),
    ]
    assert_schema_valid(objects)
    service = next(o for o in objects if o["kind"] == "Service")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("tcp-comm", 8786),
        ("http-dashboard", 8787),
    ]
    workers = next(o for o in objects if o["metadata"]["name"] == "bench-worker")
    assert workers["spec"]["replicas"] == 3
    container = workers["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["dask"]
    assert container["args"][:2] == [
        "worker",
        "tls://bench-scheduler.science.svc.cluster.local:8786",
    ]
    assert "--local-directory" in container["args"], (
        "spill to /tmp: the root filesystem is read-only"
    )
    assert workers["spec"]["template"]["spec"]["serviceAccountName"] == "dask"
    for obj in objects:
        for template in pod_templates(obj):
            assert restricted_violations(template.spec) == [], template.source
    assert deployment.outputs["scheduler"] == "tls://bench-scheduler.science.svc.cluster.local:8786"
    assert (
        deployment.outputs["dashboard"]
        == "kubectl port-forward -n science svc/bench-scheduler 8787:8787"
    )


def test_operator_mode_is_adaptive_and_namespaced(assert_schema_valid: Any) -> None:
    deployment = deploy(mode="operator", workers=1, max_workers=6)
    objects = [o for o in ours(deployment) if o["kind"] in ("DaskAutoscaler", "DaskCluster")]
    assert sorted(o["kind"] for o in objects) == ["DaskAutoscaler", "DaskCluster"]
    result = assert_schema_valid(objects)
    assert result.checked == 2, "both validated against the CRDs from dask-kubernetes"
    cluster, autoscaler = sorted(objects, key=lambda o: o["kind"] != "DaskCluster")
    assert cluster["spec"]["worker"]["replicas"] == 1
    assert autoscaler["spec"] == {"cluster": "bench", "minimum": 1, "maximum": 6}
    for template in pod_templates(cluster):
        assert restricted_violations(template.spec) == [], template.source
    [chart] = deployment.of_type("kubernetes:helm.sh/v4:Chart")
    assert chart.inputs["chart"] == "dask-kubernetes-operator"
    assert chart.inputs["version"] == DASK_OPERATOR_VERSION
    assert chart.inputs["repositoryOpts"] == {"repo": "https://helm.dask.org"}
    assert chart.inputs["namespace"] == "science"
    values = chart.inputs["values"]
    assert values["rbac"] == {"create": False}, "the chart's wildcard Role is not made"
    assert values["serviceAccount"] == {"create": True, "name": "bench-operator-sa"}
    assert values["kopfArgs"] == ["--namespace", "science"]
    rendered = rendered_objects(deployment)
    [role] = [o for o in rendered if o["kind"] == "Role"]
    assert role["metadata"]["namespace"] == "science"
    for rule in role["rules"]:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule["resources"], rule
    [binding] = [o for o in rendered if o["kind"] == "RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bench-operator-sa", "namespace": "science"}
    ]
    assert not [o for o in rendered if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_operator_chart_is_pinned_to_the_installed_dask_kubernetes() -> None:
    dask_kubernetes = pytest.importorskip("dask_kubernetes")
    assert dask_kubernetes.__version__ == DASK_OPERATOR_VERSION


BAD = [
    ({"mode": "fargate"}, "mode", "allowed: plain, operator"),
    ({"workers": 0}, "workers", "a fixed cluster needs at least 1"),
    (
        {"workers": 4, "max_workers": 2, "mode": "operator"},
        "workers",
        "must not exceed max_workers",
    ),
    ({"workers": 1, "max_workers": 3}, "mode", "needs mode operator"),
    ({"threads": 0}, "threads", "between 1 and 256"),
]


@pytest.mark.parametrize(("changes", "field", "allowed"), BAD)
def test_bad_arguments(changes: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(ProgramError) as caught:
        deploy(**changes)
    error = caught.value.error
    assert isinstance(error, SpecError)
    assert error.field == field
    assert allowed in str(error)
    assert not [r for r in caught.value.deployment.resources if r.name.startswith("bench")]


def test_builders_golden(golden: Callable[[str, Any], None]) -> None:
    target = DaskTarget(
        name="bench", namespace="ws", instance="bench", image=IMAGE, tls_secret="bench-dask-tls"
    )
    plain = build_plain_dask(target, DaskSettings())
    operator = build_dask_operator_resources(
        target, DaskSettings(mode="operator", workers=1, max_workers=4)
    )
    golden("dask-plain", plain)
    golden("dask-operator", operator)
