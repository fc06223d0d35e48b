"""Pure builders: golden YAML and schema checks, no Pulumi involved."""

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from workstack.components.manifests import (
    NamespaceSpec,
    SpecError,
    build_gke_kubeconfig,
    build_namespace,
    standard_labels,
)


def test_namespace_golden(golden: Callable[[str, Any], None], assert_schema_valid: Any) -> None:
    obj = build_namespace(NamespaceSpec(name="workstack", instance="cluster", stack="dev"))
    golden("namespace", obj)
    assert_schema_valid([obj])


def test_namespace_enforces_restricted_pod_security_by_default() -> None:
    labels = build_namespace(NamespaceSpec(name="ws", instance="c"))["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["app.kubernetes.io/part-of"] == "workstack"
    assert "workstack.dev/stack" not in labels


def test_namespace_rejects_bad_name_and_level() -> None:
    with pytest.raises(SpecError, match="namespace: 'Work_Stack'"):
        NamespaceSpec(name="Work_Stack", instance="c")
    with pytest.raises(SpecError, match="pod_security: 'open' is not allowed; allowed: restricted"):
        NamespaceSpec(name="ws", instance="c", pod_security="open")


def test_standard_labels_cannot_be_overridden() -> None:
    with pytest.raises(ValueError, match=r"app\.kubernetes\.io/name"):
        standard_labels(
            name="a", instance="b", component="c", extra={"app.kubernetes.io/name": "x"}
        )


def test_gke_kubeconfig_golden(golden: Callable[[str, Any], None]) -> None:
    text = build_gke_kubeconfig(context="gke_p_z_c", endpoint="203.0.113.10", ca_certificate="Q0E=")
    golden("gke-kubeconfig", text)
    document = yaml.safe_load(text)
    exec_ = document["users"][0]["user"]["exec"]
    assert exec_["command"] == "gke-gcloud-auth-plugin"
    assert "token" not in document["users"][0]["user"], "no credential may be embedded"
    assert document["clusters"][0]["cluster"]["server"] == "https://203.0.113.10"
