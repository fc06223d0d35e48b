import pytest

from workstack.components.manifests import (
    SpecError,
    require_choice,
    require_dns1123_label,
    require_dns1123_subdomain,
    require_int,
)


@pytest.mark.parametrize("name", ["a", "workstack", "ws-1", "0abc", "a" * 63])
def test_dns1123_label_accepts(name: str) -> None:
    assert require_dns1123_label("namespace", name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "A", "a_b", "a.b", "a" * 64, 7, None])
def test_dns1123_label_rejects_and_names_field(name: object) -> None:
    with pytest.raises(SpecError) as caught:
        require_dns1123_label("namespace", name)
    assert caught.value.field == "namespace"
    assert str(caught.value).startswith(f"namespace: {name!r} is not allowed")
    assert "DNS-1123 label" in str(caught.value)


def test_dns1123_label_respects_a_shorter_cloud_limit() -> None:
    with pytest.raises(SpecError, match="at most 40 characters"):
        require_dns1123_label("cluster_name", "a" * 41, max_length=40)


def test_dns1123_subdomain() -> None:
    assert require_dns1123_subdomain("name", "a.b-c.d") == "a.b-c.d"
    with pytest.raises(SpecError, match="subdomain"):
        require_dns1123_subdomain("name", "a..b")


def test_choice_lists_every_allowed_value() -> None:
    with pytest.raises(SpecError) as caught:
        require_choice("cloud", "azure", ("minikube", "gke", "eks"))
    assert str(caught.value) == "cloud: 'azure' is not allowed; allowed: minikube, gke, eks"


@pytest.mark.parametrize("value", [True, 1.5, "3", -1, 11])
def test_int_range_rejects(value: object) -> None:
    with pytest.raises(SpecError, match="between 0 and 10"):
        require_int("replicas", value, minimum=0, maximum=10)


def test_int_range_accepts_bounds() -> None:
    assert require_int("replicas", 0, minimum=0, maximum=10) == 0
    assert require_int("replicas", 10, minimum=0, maximum=10) == 10
