"""The operators the stacks install are scoped to the workload namespace, with narrow rights.

The RabbitMQ operator's documents are those of the pinned release
(tests/fixtures/rabbitmq-operator-v2.21.1/: rabbitmq/cluster-operator@v2.21.1, commit
859e50e4, config/namespace/base/namespace.yaml, config/rbac/role.yaml, role_binding.yaml and
config/manager/manager.yaml), changed by the transform the stack applies them with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from workstack.components.manifests.dask import build_dask_operator_rbac, dask_operator_values
from workstack.components.manifests.queue import keda_values
from workstack.components.manifests.rabbitmq import (
    OPERATOR_ACCOUNT,
    OPERATOR_CLUSTER_ROLE,
    OPERATOR_NAMESPACE,
    build_operator_role_binding,
    scope_operator_object,
)
from workstack.components.manifests.upstream import BUNDLES

RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "rabbitmq-operator-v2.21.1"


def _document(name: str, kind: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all((RELEASE / name).read_text()):
        if doc and doc["kind"] == kind:
            return dict(doc)
    raise AssertionError(f"no {kind} in {name}")


def test_the_operator_watches_the_workload_namespace_only() -> None:
    deployment = _document("manager.yaml", "Deployment")
    scoped = scope_operator_object("Deployment", deployment, "science")
    assert scoped is not None
    [container] = scoped["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["OPERATOR_SCOPE_NAMESPACE"] == {
        "name": "OPERATOR_SCOPE_NAMESPACE",
        "value": "science",
    }
    assert "OPERATOR_NAMESPACE" in env, "its own namespace (leader election) is kept"
    # The rest of the release's Deployment is untouched.
    assert (
        scoped["spec"]["template"]["spec"]["securityContext"]
        == (deployment["spec"]["template"]["spec"]["securityContext"])
    )


def test_its_cluster_wide_binding_binds_nobody_and_a_rolebinding_grants_its_rules_here() -> None:
    binding = _document("role_binding.yaml", "ClusterRoleBinding")
    assert binding["subjects"], "the release binds the operator cluster-wide"
    scoped = scope_operator_object("ClusterRoleBinding", binding, "science")
    assert scoped is not None
    assert scoped["subjects"] == []
    role_binding = build_operator_role_binding(namespace="science", instance="rabbitmq")
    assert role_binding["kind"] == "RoleBinding"
    assert role_binding["metadata"]["namespace"] == "science"
    assert role_binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": OPERATOR_CLUSTER_ROLE,
    }
    assert role_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
    ]
    assert binding["roleRef"]["name"] == OPERATOR_CLUSTER_ROLE


def test_the_clusterrole_holds_namespaced_resources_only() -> None:
    """A RoleBinding of it grants all the operator needs: nothing in it is cluster-scoped."""
    role = _document("role.yaml", "ClusterRole")
    cluster_scoped = {
        "namespaces",
        "nodes",
        "persistentvolumes",
        "clusterroles",
        "clusterrolebindings",
        "customresourcedefinitions",
        "storageclasses",
    }
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert not resources & cluster_scoped, resources & cluster_scoped


def test_the_operator_namespace_enforces_restricted_pod_security() -> None:
    namespace = _document("namespace.yaml", "Namespace")
    scoped = scope_operator_object("Namespace", namespace, "science")
    assert scoped is not None
    labels = scoped["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert scope_operator_object("Namespace", {"metadata": {"name": "other"}}, "science") is None


@pytest.mark.parametrize("kind", ["CustomResourceDefinition", "ServiceAccount", "Role"])
def test_other_documents_are_left_as_released(kind: str) -> None:
    assert scope_operator_object(kind, {"metadata": {"name": "x"}}, "science") is None


def test_keda_gets_the_narrowest_rights_its_chart_offers() -> None:
    values = keda_values("science")
    assert values["permissions"]["operator"]["restrict"]["secret"] is True
    assert values["rbac"]["enabledCustomScaledRefKinds"] is False
    assert values["metricsServer"]["enabled"] is False
    assert values["webhooks"]["enabled"] is False
    bundle = BUNDLES["chart:https://kedacore.github.io/charts/keda@2.20.1"]
    for path in (
        "permissions.operator.restrict.secret",
        "rbac.enabledCustomScaledRefKinds",
        "metricsServer.enabled",
        "webhooks.enabled",
        "certificates.operator.apiServicePatching.enabled",
    ):
        assert bundle.value_key(path) is not None, path


def test_the_dask_operator_role_names_its_verbs() -> None:
    values = dask_operator_values("science", "bench-operator")
    assert values["rbac"] == {"create": False}
    role, binding = build_dask_operator_rbac(namespace="science", release="bench-operator")
    assert role["kind"] == "Role"
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert "*" not in verbs
    assert not verbs & {"escalate", "bind", "impersonate", "deletecollection", "update"}
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "secrets" not in resources
    assert binding["subjects"][0]["name"] == values["serviceAccount"]["name"]


# -- operatorScope: cluster (a cluster shared with previews) --------------------------------


def test_cluster_scope_keeps_the_rabbitmq_operator_as_released() -> None:
    deployment = _document("manager.yaml", "Deployment")
    binding = _document("role_binding.yaml", "ClusterRoleBinding")
    assert scope_operator_object("Deployment", deployment, None) is None
    assert scope_operator_object("ClusterRoleBinding", binding, None) is None
    namespace = _document("namespace.yaml", "Namespace")
    labelled = scope_operator_object("Namespace", namespace, None)
    assert labelled is not None, "its namespace still enforces the restricted level"


def test_cluster_scope_for_keda_and_the_dask_operator() -> None:
    keda = keda_values("science", all_namespaces=True)
    # kedacore/charts@v2.20.1 clusterrolebindings.yaml:2 binds cluster-wide without
    # watchNamespace; TriggerAuthentications elsewhere name Secrets there (clusterrole.yaml:50).
    assert keda["watchNamespace"] == ""
    assert keda["permissions"]["operator"]["restrict"]["secret"] is False
    values = dask_operator_values("science", "d-operator", all_namespaces=True)
    assert values["kopfArgs"] == ["--all-namespaces"]
    role, binding = build_dask_operator_rbac(
        namespace="science", release="d-operator", all_namespaces=True
    )
    assert (role["kind"], binding["kind"]) == ("ClusterRole", "ClusterRoleBinding")
    namespaced, _ = build_dask_operator_rbac(namespace="science", release="d-operator")
    assert all(rule in role["rules"] for rule in namespaced["rules"])
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]} in role[
        "rules"
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "d-operator-sa", "namespace": "science"}
    ]


@pytest.mark.parametrize(("stack", "scope"), [("minikube", "cluster"), ("gke", "namespace")])
def test_the_stack_files_operator_scope_reaches_every_operator(
    project: Any, stack: str, scope: str
) -> None:
    """minikube is shared with its previews: its operators serve every namespace."""
    from tests.component.harness import deploy
    from workstack.render import rendered_objects

    deployment = deploy(project, stack, queueMode="keda", daskMode="operator")
    objects = rendered_objects(deployment)
    # The release's own documents are changed by the transform as the engine registers them
    # (checked above on the release's files); the mocks do not expand a ConfigFile.
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert (("RoleBinding", "rabbitmq-operator") in kinds) == (scope == "namespace")
    assert (("ClusterRole", "dask-bench-operator-operator") in kinds) == (scope == "cluster")
    charts = {
        c.inputs["chart"]: c.inputs["values"]
        for c in deployment.of_type("kubernetes:helm.sh/v4:Chart")
    }
    assert (charts["keda"]["watchNamespace"] == "") == (scope == "cluster")
    assert (charts["dask-kubernetes-operator"]["kopfArgs"] == ["--all-namespaces"]) == (
        scope == "cluster"
    )
    [amqp] = [o for o in objects if o["metadata"]["name"].endswith("-keda-amqp")]
    assert ("namespaceSelector" in amqp["spec"]["egress"][0]["to"][0]) == (scope == "cluster")
