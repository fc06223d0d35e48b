"""Capacity: what runs at once against what the nodes hold, with the keys that size both.

Issue 12 item 7: the default EKS stack asks about 8 CPU of one m6i.large (no autoscaler, so
nodeMax does nothing) and the default minikube 2 CPU. These tests build such mismatches by
hand, and pin the allocatable formulas to the research report's worked numbers.
"""

from __future__ import annotations

import pytest

from workstack.components.manifests.queue import KEDA_CHART, KEDA_CHART_VERSION, KEDA_REPO
from workstack.components.manifests.upstream import (
    NODE_TYPES,
    gke_allocatable,
    nodeadm_allocatable,
)
from workstack.offline import Deployment
from workstack.project import PulumiProject
from workstack.proof.capacity import (
    COMPONENT_KEYS,
    NODE_KEYS,
    capacity_findings,
    demands,
    pod_request,
)

from .synthetic import chart, context, deployment, deployment_object, k8s, pod, res


@pytest.mark.parametrize(
    ("name", "cpu_m", "memory_mib"),
    [
        # pulumi-cloud-facts.md §6: e2-standard-4 3920m / 13621.6 MiB, e2-standard-2 1930m /
        # 6248.8 MiB; m6i.large 1930m / 7518 MiB (maxPods 29), m6i.xlarge 3920m / 15391 MiB.
        ("e2-standard-4", 3920, 13621),
        ("e2-standard-2", 1930, 6248),
        ("m6i.large", 1930, 7518),
        ("m6i.xlarge", 3920, 15391),
    ],
)
def test_allocatable_matches_the_worked_examples(name: str, cpu_m: int, memory_mib: int) -> None:
    node = NODE_TYPES[name]
    assert (node.cpu_m, node.memory_mib) == (cpu_m, memory_mib)


def test_formulas() -> None:
    assert gke_allocatable(1, 0.5) == (940, 512 - 255 - 100)  # under 1 GiB: 255 MiB reserved
    assert nodeadm_allocatable(2, 8, 110) == (1930, 8192 - (11 * 110 + 255) - 100)


def test_a_pod_requests_its_containers_or_its_largest_init_container() -> None:
    assert pod_request(pod("500m", "1Gi")) == (500, 1024.0)
    assert pod_request(pod("100m", "64Mi", init=("1", "32Mi"))) == (1000, 64.0)


def minikube(*objects: dict[str, object], cpus: int = 2, memory: str = "3Gi") -> Deployment:
    return deployment(
        *(k8s(o) for o in objects), minikube={"cpus": cpus, "memory": memory}, cloud="minikube"
    )


def test_a_minikube_stack_too_big_for_its_node_names_the_keys() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "files",
            "labels": {"app.kubernetes.io/component": "job-per-file"},
        },
        "spec": {"parallelism": 4, "template": {"spec": pod("500m", "1Gi")}},
    }
    [finding] = capacity_findings(minikube(job), context("minikube"))
    text = str(finding)
    assert "requests 2.00 CPU and 4.00 GiB" in text
    assert "workstack:minikubeCpus, workstack:minikubeMemory" in text
    assert "workstack:jobParallelism" in text
    bigger = minikube(job, cpus=4, memory="8Gi")
    assert capacity_findings(bigger, context("minikube")) == []


def test_the_largest_pod_must_fit_one_node() -> None:
    big = deployment_object("big", 1, pod("3", "1Gi"))
    found = capacity_findings(minikube(big, cpus=2, memory="16Gi"), context("minikube"))
    assert any("never schedules" in f.message and f.subject == "Deployment/big" for f in found)


def eks(desired: int, maximum: int, *objects: dict[str, object]) -> Deployment:
    group = res(
        "eks:index:ManagedNodeGroup",
        "nodes",
        {
            "instanceTypes": ["m6i.xlarge"],
            "scalingConfig": {"minSize": desired, "maxSize": maximum, "desiredSize": desired},
        },
    )
    return deployment(group, *(k8s(o) for o in objects), cloud="eks")


def test_eks_holds_its_desired_size_only() -> None:
    """No autoscaler runs on EKS: maxSize adds nothing."""
    work = deployment_object("work", 6, pod("1", "1Gi"))
    [finding] = capacity_findings(eks(1, 10, work), context("eks"))
    assert "1 x m6i.xlarge" in finding.message
    assert "workstack:nodeMin, workstack:eksInstanceTypes" in finding.message
    assert capacity_findings(eks(3, 3, work), context("eks")) == []


def test_gke_holds_up_to_node_max() -> None:
    pool = res(
        "gcp:container/nodePool:NodePool",
        "pool",
        {"nodeConfig": {"machineType": "e2-standard-4"}, "autoscaling": {"totalMaxNodeCount": 1}},
    )
    work = deployment_object("work", 6, pod("1", "1Gi"))
    [finding] = capacity_findings(deployment(pool, k8s(work)), context("gke"))
    assert "workstack:nodeMax, workstack:gkeMachineType" in finding.message
    more = res(pool.type, "pool", {**pool.inputs, "autoscaling": {"totalMaxNodeCount": 3}})
    assert capacity_findings(deployment(more, k8s(work)), context("gke")) == []


def test_an_unknown_node_type_is_named_with_the_known_ones() -> None:
    pool = res(
        "gcp:container/nodePool:NodePool",
        "pool",
        {"nodeConfig": {"machineType": "c4-standard-4"}, "autoscaling": {"totalMaxNodeCount": 3}},
    )
    [finding] = capacity_findings(deployment(pool), context("gke"))
    assert "c4-standard-4 is not in the capacity table" in finding.message
    assert "e2-standard-4" in finding.message


def test_chart_pods_count_with_their_default_or_given_requests() -> None:
    """KEDA 2.20.1 runs three pods of 100m/100Mi by default (values.yaml:546-570)."""
    keda = chart("keda", KEDA_REPO, KEDA_CHART, KEDA_CHART_VERSION, {})
    assert sum(d.total[0] for d in demands(deployment(keda))) == 300
    small = {"resources": {"operator": {"requests": {"cpu": "10m", "memory": "10Mi"}}}}
    given = chart("keda", KEDA_REPO, KEDA_CHART, KEDA_CHART_VERSION, small)
    assert sum(d.total[0] for d in demands(deployment(given))) == 210


def test_dask_workers_count_at_the_autoscaler_maximum() -> None:
    cluster = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": "d"},
        "spec": {
            "scheduler": {"spec": pod("250m", "1Gi")},
            "worker": {"replicas": 2, "spec": pod("1", "2Gi")},
        },
    }
    scaler = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskAutoscaler",
        "metadata": {"name": "d"},
        "spec": {"cluster": "d", "minimum": 2, "maximum": 5},
    }
    found = {d.what: d.count for d in demands(deployment(k8s(cluster), k8s(scaler)))}
    assert found["DaskCluster/d workers"] == 5


def test_every_key_a_message_names_is_a_stack_key(project: PulumiProject) -> None:
    named = {k for keys in [*COMPONENT_KEYS.values(), *NODE_KEYS.values()] for k in keys}
    declared = {f"workstack:{key}" for key in project.schema}
    assert named - declared == set()
