"""stacks/config.py: raw config in, typed settings out, every problem named by its key."""

import pytest

from stacks.config import default_cluster_name, parse_stack_config
from workstack.components import (
    EksClusterArgs,
    GkeClusterArgs,
    MinikubeClusterArgs,
    NfsSettings,
)
from workstack.project import ConfigError, PulumiProject


def test_minikube_stack(project: PulumiProject) -> None:
    config = parse_stack_config("minikube", project.read_stack("minikube").values)
    assert config.cloud == "minikube"
    assert config.cluster == MinikubeClusterArgs(
        context="minikube", namespace="workstack", cpus=4, memory="10Gi"
    )
    assert config.nfs == NfsSettings()
    assert config.bucket is None
    assert config.job.parallelism == 2, "sized to fit the declared minikube node"
    assert [w.spec.name for w in config.workloads] == [
        "csv-clean",
        "dask-bench",
        "ml-basic",
        "simulations",
    ]


def test_gke_stack_maps_every_key(project: PulumiProject) -> None:
    config = parse_stack_config("gke", project.read_stack("gke").values)
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
    config = parse_stack_config("pr-42", values)
    assert isinstance(config.cluster, EksClusterArgs)
    assert config.ephemeral is True
    assert config.cluster.deletion_protection is False
    assert config.cluster.force_delete_images is True
    assert config.cluster.cluster_name == "workstack-pr-42"
    assert config.cluster.instance_types == ("m6i.xlarge",)


def test_model_defaults_apply_when_config_leaves_keys_out() -> None:
    values = {"workstack:cloud": "gke", "gcp:project": "my-project", "gcp:region": "us-east1"}
    config = parse_stack_config("dev", values)
    assert isinstance(config.cluster, GkeClusterArgs)
    assert config.cluster.machine_type == "e2-standard-4"
    assert config.cluster.location == "us-east1"


def test_every_problem_is_reported_at_once() -> None:
    values = {
        "workstack:cloud": "gke",
        "workstack:nodeMin": "two",
        "workstack:jobShards": "0",
        "workstack:colour": "red",
        "workstack:eksVersion": "1.33",
        "workstack:bucketName": "data",
    }
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("dev", values)
    keys = [problem.key for problem in caught.value.problems]
    assert sorted(keys) == [
        "gcp:project",
        "gcp:region or gcp:zone",
        "workstack:bucketName",
        "workstack:colour",
        "workstack:eksVersion",
        "workstack:jobShards",
        "workstack:nodeMin",
    ]
    message = str(caught.value)
    assert (
        "workstack:eksVersion: '1.33' is not allowed; applies only when workstack:cloud is eks"
        in message
    )
    assert (
        "workstack:bucketName: 'data' is not allowed; applies only when workstack:storage"
        in message
    )


def test_keys_at_their_default_are_not_flagged_for_other_clouds(project: PulumiProject) -> None:
    # The CLI passes every declared key with its default, whatever the cloud.
    values = project.read_stack("eks").values
    assert values["workstack:gkeMachineType"] == "e2-standard-4"
    parse_stack_config("eks", values)


def test_workloads_must_be_folders_under_workloads() -> None:
    for name in ("../x", "/etc", "nope"):
        values = {"workstack:workloads": f'["{name}"]'}
        with pytest.raises(
            ConfigError, match="known workloads: asreview-makita, clc-preprocess, csv-clean"
        ):
            parse_stack_config("dev", values)


def test_default_cluster_name_is_valid_everywhere() -> None:
    assert default_cluster_name("Feature/Login_Page") == "workstack-feature-login-page"
    assert len(default_cluster_name("x" * 80)) <= 40
    assert not default_cluster_name("a" * 29 + "-b").endswith("-")
