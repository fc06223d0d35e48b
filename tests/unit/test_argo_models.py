"""Argo objects without their CRD at hand are checked against hera's models of the Argo API."""

from __future__ import annotations

import copy
from typing import Any

from workstack.schemas import CrdCatalog, validate_objects

TEMPLATE: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "WorkflowTemplate",
    "metadata": {"name": "ml", "namespace": "workstack"},
    "spec": {
        "entrypoint": "pipeline",
        "templates": [
            {"name": "pipeline", "dag": {"tasks": [{"name": "get", "template": "get"}]}},
            {"name": "get", "container": {"image": "registry.example/ml:1", "args": ["x"]}},
        ],
    },
}
NO_CRDS = CrdCatalog([])


def test_a_valid_template_is_checked_by_the_models() -> None:
    check = validate_objects([TEMPLATE], NO_CRDS)
    assert check.errors == []
    assert check.unchecked == []
    assert check.by_models == ["WorkflowTemplate/ml"]
    assert check.checked == 1


def test_wrong_types_and_unknown_fields_are_errors_naming_the_field() -> None:
    bad = copy.deepcopy(TEMPLATE)
    bad["spec"]["entrypoint"] = 3
    bad["spec"]["templates"][1]["container"]["argz"] = ["x"]
    check = validate_objects([bad], NO_CRDS)
    assert check.errors == [
        "WorkflowTemplate/ml (Argo model) at spec.entrypoint: Input should be a valid string"
    ]
    bad["spec"]["entrypoint"] = "pipeline"
    check = validate_objects([bad], NO_CRDS)
    assert check.errors == [
        "WorkflowTemplate/ml (Argo model) at spec.templates[1].container.argz: unknown field"
    ]


def test_other_custom_resources_stay_unchecked_without_a_crd() -> None:
    cluster = {"apiVersion": "rabbitmq.com/v1beta1", "kind": "RabbitmqCluster",
               "metadata": {"name": "rabbitmq"}, "spec": {}}  # fmt: skip
    check = validate_objects([cluster], NO_CRDS)
    assert check.unchecked == ["RabbitmqCluster/rabbitmq"]
    assert check.checked == 0
