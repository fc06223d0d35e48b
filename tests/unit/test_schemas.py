"""The schema check itself: it must catch what the API server would reject."""

import pytest

from tests.conftest import SHARED_CRDS
from workstack.schemas import CrdCatalog, validate_objects

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ws"}}


def test_valid_builtin_object_passes(crd_catalog: CrdCatalog) -> None:
    result = validate_objects([NAMESPACE], crd_catalog)
    assert result.errors == []
    assert result.checked == 1


def test_unknown_field_on_builtin_kind_is_an_error(crd_catalog: CrdCatalog) -> None:
    bad = {**NAMESPACE, "spec": {"finalizers": ["kubernetes"], "colour": "red"}}
    result = validate_objects([bad], crd_catalog)
    assert any("colour" in error for error in result.errors), result.errors


def test_wrong_type_is_reported_for_every_checked_version(crd_catalog: CrdCatalog) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"parallelism": "two", "template": {"spec": {"containers": []}}},
    }
    result = validate_objects([job], crd_catalog)
    assert len([e for e in result.errors if "parallelism" in e]) == 2  # 1.33 and 1.37


@pytest.mark.skipif(not SHARED_CRDS.is_dir(), reason="../shared/crds is absent")
def test_custom_resource_is_checked_strictly_against_its_crd(crd_catalog: CrdCatalog) -> None:
    good = {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "RabbitmqCluster",
        "metadata": {"name": "broker"},
        "spec": {"replicas": 1},
    }
    assert validate_objects([good], crd_catalog).errors == []
    wrong_type = {**good, "spec": {"replicas": "one"}}
    assert validate_objects([wrong_type], crd_catalog).errors
    unknown = {**good, "spec": {"replica": 1}}
    assert any("replica" in e for e in validate_objects([unknown], crd_catalog).errors)


def test_custom_resource_without_crd_is_reported_unchecked() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    result = validate_objects([obj], CrdCatalog([]))
    assert result.unchecked == ["Widget/w"]
    assert result.checked == 0
