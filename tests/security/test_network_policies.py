"""Who reaches what, asked of the rendered stacks' NetworkPolicies (tests/security/netpol.py).

Every allow the stacks make has a case here, and so has what it must not admit: the stacks and
the off-defaults fixtures (bucket storage, KEDA, the Dask operator) are rendered offline, their
policies checked against the Kubernetes schema, and connections between the pods they run (as
rendered, run Jobs built from the stack's contract) are put to the policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.component.harness import deploy, offdefaults_settings
from workstack.components.manifests.contract import StackContract, load_contract
from workstack.components.manifests.runs import RunRequest, build_run
from workstack.offline import run_program
from workstack.project import PulumiProject, find_project
from workstack.render import rendered_objects

from .netpol import Address, Pod, reaches

NS = "workstack"
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"}, ip="10.8.0.2")
STRANGER = Pod("other-team", {"app": "anything"})
PUBLIC = Address("142.250.74.27")  # a storage.googleapis.com / s3 address
IN_CLUSTER = Address("10.0.0.5")


@cache
def _project() -> PulumiProject:
    return find_project(Path(__file__).resolve().parents[2])


@cache
def render(stack: str) -> tuple[dict[str, Any], ...]:
    """The stack (``minikube``) or an off-defaults fixture (``offdefaults-gke``), rendered."""
    project = _project()
    if stack == "gke-operators":  # the stack's own KEDA and Dask operator
        deployment = deploy(project, "gke", queueMode="keda", daskMode="operator")
    elif stack.startswith("offdefaults-"):
        cloud = stack.removeprefix("offdefaults-")
        deployment = run_program(project, stack, offdefaults_settings(project, cloud))
    else:
        deployment = run_program(project, stack)
    objects = list(rendered_objects(deployment))
    contract = load_contract(deployment.outputs["contract"])
    objects += _runs(contract)
    return tuple(objects)


def _runs(contract: StackContract) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for name, workload in contract.workloads.items():
        if workload.pattern == "dask":
            request = RunRequest(workload=name, run_id="r1", config="function: x:y\n")
        elif workload.pattern == "job-per-file":
            request = RunRequest(workload=name, run_id="r1", files=("a.csv",))
        else:
            request = RunRequest(workload=name, run_id="r1")
        objects += build_run(contract, request)
    return objects


def pod_of(objects: tuple[dict[str, Any], ...], kind: str, name_part: str) -> Pod:
    """The pod an object of ``kind`` whose name contains ``name_part`` runs, with its labels."""
    for obj in objects:
        if obj["kind"] == kind and name_part in obj["metadata"]["name"]:
            spec = obj["spec"]
            template = spec.get("jobTargetRef", spec).get("template", {})
            return Pod(obj["metadata"]["namespace"], dict(template["metadata"]["labels"]))
    raise AssertionError(f"no {kind} named *{name_part}*")


def ns(stack: str) -> str:
    """The stack's workload namespace."""
    return next(
        o["metadata"]["namespace"]
        for o in policies(stack)
        if o["metadata"]["name"] == "default-deny"
    )


def policies(stack: str) -> list[dict[str, Any]]:
    return [o for o in render(stack) if o["kind"] == "NetworkPolicy"]


STACKS = ("minikube", "gke", "eks")


@pytest.mark.parametrize("stack", [*STACKS, *(f"offdefaults-{c}" for c in STACKS)])
def test_policies_are_schema_valid(stack: str, assert_schema_valid: Any) -> None:
    found = policies(stack)
    assert len(found) >= 8
    assert_schema_valid(found)


@pytest.mark.parametrize("stack", STACKS)
def test_the_workload_namespace_denies_everything_by_default(stack: str) -> None:
    objects = render(stack)
    [deny] = [p for p in policies(stack) if p["metadata"]["name"] == "default-deny"]
    assert deny["metadata"]["namespace"] == NS
    assert deny["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }
    anyone = Pod(NS, {"app": "new"})
    assert not reaches(objects, anyone, IN_CLUSTER, 443)
    assert not reaches(objects, anyone, PUBLIC, 443)
    assert not reaches(objects, STRANGER, anyone, 8080)
    assert not reaches(objects, anyone, Pod(NS, {"app": "other"}), 8080)


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_resolves_names_and_nothing_more_through_dns(stack: str) -> None:
    objects = render(stack)
    anyone = Pod(NS, {"app": "new"})
    assert reaches(objects, anyone, KUBE_DNS, 53, "UDP")
    assert reaches(objects, anyone, KUBE_DNS, 53, "TCP")
    assert not reaches(objects, anyone, KUBE_DNS, 9153)
    assert not reaches(objects, anyone, Pod("kube-system", {"app": "x"}), 53, "UDP")


def test_gke_pods_reach_the_metadata_server_for_workload_identity() -> None:
    objects = render("gke")
    anyone = Pod(NS, {"app": "new"})
    assert reaches(objects, anyone, Address("169.254.169.254"), 80)
    assert reaches(objects, anyone, Address("169.254.169.252"), 988)
    assert not reaches(objects, anyone, Address("169.254.169.254"), 443)


def test_eks_pods_reach_the_pod_identity_agent_but_not_the_instance_metadata() -> None:
    objects = render("eks")
    anyone = Pod(NS, {"app": "new"})
    assert reaches(objects, anyone, Address("169.254.170.23"), 80)
    assert not reaches(objects, anyone, Address("169.254.169.254"), 80), "the node role's keys"


def test_minikube_pods_reach_no_metadata_endpoint() -> None:
    objects = render("minikube")
    assert not reaches(objects, Pod(NS, {}), Address("169.254.169.254"), 80)


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_brokers_clients_reach_amqp(stack: str) -> None:
    objects = render(stack)
    broker = Pod(NS, {"app.kubernetes.io/name": "rabbitmq"})
    tasker = pod_of(objects, "Job", "simulations-r1-tasker")
    workers = pod_of(objects, "Job", "simulations-r1-workers")
    for client in (tasker, workers):
        assert reaches(objects, client, broker, 5672)
        assert not reaches(objects, client, broker, 15672), "no management API for clients"
    assert not reaches(objects, Pod(NS, {"app": "new"}), broker, 5672)
    labelled_elsewhere = Pod("other-team", dict(tasker.labels))
    assert not reaches(objects, labelled_elsewhere, broker, 5672)
    node = Pod(NS, {"app.kubernetes.io/name": "rabbitmq", "statefulset": "1"})
    assert reaches(objects, node, broker, 25672)
    assert reaches(objects, node, broker, 4369)
    assert not reaches(objects, node, PUBLIC, 443)
    operator = Pod("rabbitmq-system", {"app.kubernetes.io/name": "rabbitmq-cluster-operator"})
    assert reaches(objects, operator, broker, 15672), "node status and quorum checks"
    assert not reaches(objects, STRANGER, broker, 15672)


def test_keda_reaches_the_api_server_and_the_broker_only() -> None:
    objects = render("gke-operators")
    NS = ns("gke-operators")  # noqa: N806
    operator = Pod(
        NS,
        {"app.kubernetes.io/name": "keda-operator", "app.kubernetes.io/part-of": "keda-operator"},
    )
    broker = Pod(NS, {"app.kubernetes.io/name": "rabbitmq"})
    assert reaches(objects, operator, broker, 5672)
    assert reaches(objects, operator, Address("34.76.1.1"), 443), "the API server"
    assert not reaches(objects, operator, broker, 15672)
    assert not reaches(objects, operator, Pod(NS, {"dask.org/component": "scheduler"}), 8786)


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_clusters_own_pods_and_clients_reach_the_dask_scheduler(stack: str) -> None:
    objects = render(stack)
    scheduler = pod_of(objects, "Deployment", "dask-bench-scheduler")
    worker = pod_of(objects, "Deployment", "dask-bench-worker")
    client = pod_of(objects, "Job", "dask-bench-r1")
    for port in (8786, 8787):
        assert reaches(objects, client, scheduler, port)
        assert reaches(objects, worker, scheduler, port)
        assert not reaches(objects, Pod(NS, {"app": "new"}), scheduler, port)
        assert not reaches(objects, STRANGER, scheduler, port)
        assert not reaches(objects, Pod("other-team", dict(client.labels)), scheduler, port)
        other_cluster = Pod(NS, {"workstack.dev/dask-client": "another-cluster"})
        assert not reaches(objects, other_cluster, scheduler, port)
    job = pod_of(objects, "Job", "simulations-r1-workers")
    assert not reaches(objects, job, scheduler, 8786), "a queue worker is no Dask client"
    assert reaches(objects, scheduler, worker, 40123), "the scheduler calls its workers"
    assert reaches(objects, worker, worker, 40123), "workers exchange data"
    assert reaches(objects, client, worker, 40123)
    assert not reaches(objects, Pod(NS, {"app": "new"}), worker, 40123)


def test_the_dask_operator_reaches_the_scheduler_and_the_api_server() -> None:
    objects = render("gke-operators")
    NS = ns("gke-operators")  # noqa: N806
    operator = Pod(NS, {"app.kubernetes.io/name": "dask-kubernetes-operator"})
    scheduler = Pod(NS, {"dask.org/cluster-name": "dask-bench", "dask.org/component": "scheduler"})
    worker = Pod(NS, {"dask.org/cluster-name": "dask-bench", "dask.org/component": "worker"})
    assert reaches(objects, operator, scheduler, 8787), "adaptive target, retirement (HTTP API)"
    assert reaches(objects, operator, scheduler, 8786)
    assert reaches(objects, operator, Address("34.76.1.1"), 443)
    assert not reaches(objects, operator, worker, 40123)
    client = pod_of(objects, "Job", "dask-bench-r1")
    assert reaches(objects, client, scheduler, 8786)


@pytest.mark.parametrize("stack", ["offdefaults-gke", "offdefaults-eks"])
def test_bucket_clients_reach_public_https_not_the_cluster(stack: str) -> None:
    objects = render(stack)
    NS = ns(stack)  # noqa: N806
    job = pod_of(objects, "Job", "csv-clean-r1")
    workflow_pod = Pod(NS, {"workflows.argoproj.io/workflow": "ml-basic-r1"})
    for pod in (job, workflow_pod):
        assert reaches(objects, pod, PUBLIC, 443)
        assert not reaches(objects, pod, PUBLIC, 80)
    # Workflow pods call the API server, whose address is unknown here: 443 anywhere (see
    # build_api_server_egress). Other workloads reach no cluster address on 443.
    assert not reaches(objects, job, IN_CLUSTER, 443), "cluster ranges are excluded"
    assert not reaches(objects, job, Address("172.20.0.1"), 443)
    assert not reaches(objects, job, Address("192.168.1.1"), 443)


def test_an_operator_another_stack_installed_reaches_the_scheduler_from_its_namespace() -> None:
    objects = render("offdefaults-gke")  # installOperators: false, daskMode: operator
    NS = ns("offdefaults-gke")  # noqa: N806
    scheduler = Pod(NS, {"dask.org/cluster-name": "dask-bench", "dask.org/component": "scheduler"})
    elsewhere = Pod("dask-operator", {"app.kubernetes.io/name": "dask-kubernetes-operator"})
    assert reaches(objects, elsewhere, scheduler, 8787)
    assert not reaches(objects, Pod("dask-operator", {"app": "x"}), scheduler, 8787)


def test_stacks_without_a_bucket_reach_nothing_outside() -> None:
    objects = render("gke")  # NFS only
    job = pod_of(objects, "Job", "csv-clean-r1")
    assert not reaches(objects, job, PUBLIC, 443)


def test_minikube_bucket_clients_reach_the_endpoints_port_only() -> None:
    objects = render("offdefaults-minikube")  # bucketEndpoint http://minio.minio:9000
    job = pod_of(objects, "Job", "csv-clean-r1")
    assert reaches(objects, job, Address("10.96.0.20"), 9000)
    assert not reaches(objects, job, Address("10.96.0.20"), 9001)
    assert not reaches(objects, job, PUBLIC, 443)


@pytest.mark.parametrize("stack", STACKS)
def test_argo_and_its_workflow_pods_reach_the_api_server_other_workloads_do_not(
    stack: str,
) -> None:
    objects = render(stack)
    api = Address("10.0.0.1") if stack == "eks" else Address("192.168.49.2")
    controller = Pod(
        NS,
        {
            "app.kubernetes.io/part-of": "argo-workflows",
            "app.kubernetes.io/component": "workflow-controller",
        },
    )
    workflow_pod = Pod(NS, {"workflows.argoproj.io/workflow": "ml-basic-r1"})
    port = 8443 if stack == "minikube" else 443
    assert reaches(objects, controller, api, port)
    assert reaches(objects, workflow_pod, api, port)
    job = pod_of(objects, "Job", "csv-clean-r1")
    assert not reaches(objects, job, api, port)
    assert not reaches(objects, controller, Pod(NS, {"app.kubernetes.io/name": "rabbitmq"}), 5672)


@pytest.mark.parametrize("stack", STACKS)
def test_the_nfs_server_opens_no_connection(stack: str) -> None:
    objects = render(stack)
    server = Pod(f"{NS}-nfs", {"app.kubernetes.io/component": "nfs-server"})
    assert not reaches(objects, server, PUBLIC, 443)
    assert not reaches(objects, server, KUBE_DNS, 53, "UDP")
    [deny] = [p for p in policies(stack) if p["metadata"]["namespace"] == f"{NS}-nfs"]
    assert deny["spec"]["podSelector"] == {}
    assert deny["spec"]["policyTypes"] == ["Egress"], (
        "ingress stays open: kubelets on every node mount it (docs/security.md, NFS)"
    )


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return obj["metadata"].get("labels") or {}


def test_the_operator_is_admitted_from_its_own_namespace_only_when_the_stack_runs_it() -> None:
    objects = render("gke-operators")
    namespace = ns("gke-operators")
    scheduler = Pod(
        namespace, {"dask.org/cluster-name": "dask-bench", "dask.org/component": "scheduler"}
    )
    operator = {"app.kubernetes.io/name": "dask-kubernetes-operator"}
    assert reaches(objects, Pod(namespace, operator), scheduler, 8787)
    assert not reaches(objects, Pod("elsewhere", operator), scheduler, 8787)


def test_a_second_cluster_admits_the_operator_the_first_installed_from_here_only() -> None:
    from workstack.components import (
        DaskCluster,
        DaskClusterArgs,
        DaskSettings,
        MinikubeCluster,
        MinikubeClusterArgs,
    )
    from workstack.offline import run_function

    def program() -> None:
        cluster = MinikubeCluster("dev", MinikubeClusterArgs(namespace="science"))
        settings = DaskSettings(mode="operator", workers=1, max_workers=2)
        first = DaskCluster(
            "one", DaskClusterArgs(cluster=cluster, image="img:1", settings=settings)
        )
        DaskCluster(
            "two",
            DaskClusterArgs(
                cluster=cluster,
                image="img:1",
                settings=settings,
                install_operator=False,
                operator_here=True,
            ),
            pulumi.ResourceOptions(depends_on=[first]),
        )

    objects = tuple(rendered_objects(run_function(program)))
    scheduler = Pod("science", {"dask.org/cluster-name": "two", "dask.org/component": "scheduler"})
    operator = {"app.kubernetes.io/name": "dask-kubernetes-operator"}
    assert reaches(objects, Pod("science", operator), scheduler, 8787)
    assert not reaches(objects, Pod("elsewhere", operator), scheduler, 8787)


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("stack", [*STACKS, "gke-operators", *(f"offdefaults-{c}" for c in STACKS)])
def test_services_reached_by_an_egress_rule_carry_its_pod_selector(stack: str) -> None:
    """EKS's policy agent checks egress before kube-proxy rewrites a Service's ClusterIP, and
    its controller adds the ClusterIP to a rule only when the rule's pod selector matches the
    Service's own selector (aws/amazon-network-policy-controller-k8s pkg/resolvers/
    endpoints.go:451-513). Otherwise a client reaching the Service by name is dropped on EKS
    though the pods it talks to are admitted (as Dask's plain-mode scheduler once was)."""
    from workstack.policy import pod_templates

    objects = render(stack)
    pods = [
        (obj["metadata"].get("namespace"), template.labels)
        for obj in objects
        for template in pod_templates(obj)
    ]
    services = [o for o in objects if o["kind"] == "Service" and o["spec"].get("selector")]
    problems = []
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        namespace = policy["metadata"]["namespace"]
        for rule in policy["spec"].get("egress") or []:
            for peer in rule.get("to") or []:
                selector = (peer.get("podSelector") or {}).get("matchLabels")
                if not selector or "namespaceSelector" in peer:
                    continue  # a namespace-wide or cross-namespace peer: checked elsewhere
                for service in services:
                    if service["metadata"].get("namespace") != namespace:
                        continue
                    backing = [
                        labels
                        for pod_namespace, labels in pods
                        if pod_namespace == namespace
                        and _selects(service["spec"]["selector"], labels)
                    ]
                    admitted = [labels for labels in backing if _selects(selector, labels)]
                    if admitted and not _selects(selector, service["spec"]["selector"]):
                        problems.append(
                            f"{policy['metadata']['name']} -> Service "
                            f"{service['metadata']['name']}: {selector} is not within "
                            f"{service['spec']['selector']}"
                        )
    assert problems == []
