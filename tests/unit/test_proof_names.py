"""Globally scoped names: the services' rules, and collisions between renders.

Issue 12 item 9: the Google service account ids of every stack in a project are the same
(``ws-workload``), the node account id is cut to 24 characters (all ``feature/*`` previews
share one), and a preview of minikube reuses the original's namespace, volume and operator
namespace. These tests rebuild each kind of collision and each refused name by hand.
"""

from __future__ import annotations

import pytest

from workstack.components.manifests.queue import KEDA_CHART, KEDA_CHART_VERSION, KEDA_REPO
from workstack.offline import Deployment, RegisteredResource
from workstack.proof.names import collisions, global_names, name_findings

from .synthetic import PROVIDER_TYPE, chart, deployment, k8s, res


def account(account_id: str, project: str = "p") -> RegisteredResource:
    return res(
        "gcp:serviceaccount/account:Account", "gsa", {"accountId": account_id, "project": project}
    )


@pytest.mark.parametrize(
    ("type_token", "inputs", "problem"),
    [
        ("gcp:serviceaccount/account:Account", {"accountId": "ws-ab"}, "6-30 characters"),
        ("gcp:serviceaccount/account:Account", {"accountId": "ws-" + "x" * 28}, "6-30"),
        ("gcp:serviceaccount/account:Account", {"accountId": "ws_workload"}, "matching"),
        ("gcp:container/cluster:Cluster", {"name": "w" * 41}, "1-40"),
        ("aws:iam/role:Role", {"name": "r" * 65}, "1-64"),
        ("aws:iam/role:Role", {"namePrefix": "p" * 39}, "longer than 38"),
        ("aws:s3/bucket:Bucket", {"bucket": "Upper-Case"}, "matching"),
        ("aws:ecr/repository:Repository", {"name": "Images"}, "matching"),
    ],
)
def test_names_the_service_refuses(type_token: str, inputs: dict[str, str], problem: str) -> None:
    [finding] = name_findings(deployment(res(type_token, "r", inputs)))
    assert problem in finding.message


def test_valid_names_pass() -> None:
    ok = deployment(
        account("ws-workload"),
        res("gcp:container/cluster:Cluster", "c", {"name": "workstack-gke"}),
        res("aws:iam/role:Role", "r", {}),  # auto-named: Pulumi adds a random suffix
    )
    assert name_findings(ok) == []


def test_the_same_service_account_id_in_one_project_collides() -> None:
    found = collisions(
        {"gke": deployment(account("ws-workload")), "gke2": deployment(account("ws-workload"))}
    )
    [finding] = found
    assert finding.subject == "Google service account in p: ws-workload"
    assert "gke: " in finding.message
    assert "gke2: " in finding.message
    apart = {
        "a": deployment(account("ws-workload", "p1")),
        "b": deployment(account("ws-workload", "p2")),
    }
    assert collisions(apart) == []


def minikube_stack(namespace: str, context: str = "minikube") -> Deployment:
    provider = res(PROVIDER_TYPE, "cluster-provider", {"context": context, "kubeconfig": "/k"})
    ns = k8s({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    keda = chart("keda", KEDA_REPO, KEDA_CHART, KEDA_CHART_VERSION, {"watchNamespace": namespace})
    return deployment(provider, ns, keda)


def test_cluster_scoped_objects_collide_on_a_shared_cluster_charts_included() -> None:
    found = collisions({"minikube": minikube_stack("a"), "preview": minikube_stack("b")})
    subjects = {f.subject for f in found}
    assert "APIService on context minikube of /k: v1beta1.external.metrics.k8s.io" in subjects
    assert (
        "RoleBinding in namespace kube-system on context minikube of /k: keda-operator-auth-reader"
        in subjects
    )
    assert not any(s.startswith("Namespace ") for s in subjects)
    same = collisions({"minikube": minikube_stack("a"), "preview": minikube_stack("a")})
    assert "Namespace on context minikube of /k: a" in {f.subject for f in same}
    other = collisions({"a": minikube_stack("a"), "b": minikube_stack("a", context="kind")})
    assert other == []


def test_chart_objects_follow_their_values() -> None:
    """keda-operator's ClusterRoleBinding exists only without watchNamespace."""
    bindings = {
        n.name for n in global_names(minikube_stack("a")) if "ClusterRoleBinding" in n.scope
    }
    assert "keda-operator-minimal" in bindings
    assert "keda-operator" not in bindings


def test_eks_clusters_are_scoped_by_the_stack_region() -> None:
    cluster = deployment(res("eks:index:Cluster", "c", {"name": "workstack-eks"}))
    same = collisions(
        {"a": cluster, "b": cluster},
        {"a": {"aws:region": "eu-west-1"}, "b": {"aws:region": "eu-west-1"}},
    )
    assert [f.subject for f in same] == ["EKS cluster in 123456789012/eu-west-1: workstack-eks"]
    apart = collisions(
        {"a": cluster, "b": cluster},
        {"a": {"aws:region": "eu-west-1"}, "b": {"aws:region": "us-east-1"}},
    )
    assert apart == []
