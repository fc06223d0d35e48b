"""stacks/config.py: raw config in, typed StackConfig out, component rules applied."""

from stacks.config import default_cluster_name, parse_stack_config
from workstack.components import EksClusterArgs, GkeClusterArgs, MinikubeClusterArgs
from workstack.project import PulumiProject


def test_minikube_stack(project: PulumiProject) -> None:
    config = parse_stack_config(project, "minikube", project.read_stack("minikube").values)
    assert config.cloud == "minikube"
    assert config.cluster == MinikubeClusterArgs(context="minikube", namespace="workstack")


def test_gke_stack_maps_every_key(project: PulumiProject) -> None:
    config = parse_stack_config(project, "gke", project.read_stack("gke").values)
    assert config.cluster == GkeClusterArgs(
        project="workstack-demo",
        location="europe-west1-b",  # gcp:zone wins over gcp:region: a zonal cluster
        cluster_name="workstack-gke",
        machine_type="e2-standard-4",
        min_nodes=1,
        max_nodes=4,
        spot=True,
        release_channel="REGULAR",
        deletion_protection=True,
        namespace="workstack",
    )


def test_eks_stack_and_ephemeral_overrides(project: PulumiProject) -> None:
    values = project.read_stack("eks").values | {"workstack:ephemeral": "true"}
    config = parse_stack_config(project, "pr-42", values)
    assert isinstance(config.cluster, EksClusterArgs)
    assert config.ephemeral is True
    assert config.cluster.deletion_protection is False
    assert config.cluster.force_delete_images is True
    assert config.cluster.cluster_name == "workstack-pr-42"
    assert config.cluster.instance_types == ("m6i.large",)


def test_component_defaults_apply_when_config_leaves_them_empty(project: PulumiProject) -> None:
    values = {"workstack:cloud": "gke", "gcp:project": "my-project", "gcp:region": "us-east1"}
    config = parse_stack_config(project, "dev", values)
    assert isinstance(config.cluster, GkeClusterArgs)
    assert config.cluster.machine_type == "e2-standard-4"
    assert config.cluster.location == "us-east1"


def test_default_cluster_name_is_valid_everywhere() -> None:
    assert default_cluster_name("Feature/Login_Page") == "workstack-feature-login-page"
    assert len(default_cluster_name("x" * 80)) <= 40
    assert not default_cluster_name("a" * 29 + "-b").endswith("-")
