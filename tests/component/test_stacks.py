"""Each stack, evaluated offline under Pulumi's mocks: what it creates and that it is valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from workstack.offline import Deployment, Secret
from workstack.project import PulumiProject
from workstack.render import rendered_objects

from .harness import deploy

ROOT = Path(__file__).resolve().parents[2]

STACKS = ["minikube", "gke", "eks"]


@pytest.fixture(scope="module", params=STACKS)
def stack(request: pytest.FixtureRequest, project: PulumiProject) -> tuple[str, Deployment]:
    return request.param, deploy(project, request.param)


def only(deployment: Deployment, type_token: str) -> dict[str, Any]:
    found = deployment.of_type(type_token)
    assert len(found) == 1, f"expected one {type_token}, got {len(found)}"
    return found[0].inputs


def test_every_rendered_object_is_schema_valid(
    stack: tuple[str, Deployment], assert_schema_valid: Any
) -> None:
    _, deployment = stack
    objects = rendered_objects(deployment)
    assert objects, "a stack renders at least its namespace"
    result = assert_schema_valid(objects)
    assert result.checked == len(objects)


def test_kubernetes_objects_go_through_the_cluster_provider(stack: tuple[str, Deployment]) -> None:
    _, deployment = stack
    objects = [r for r in deployment.resources if r.is_kubernetes_object]
    providers = deployment.of_type("pulumi:providers:kubernetes")
    assert len(providers) == 1
    for resource in objects:
        assert resource.provider, f"{resource.name} would use the ambient kubeconfig"
        assert "cluster-provider" in resource.provider, resource.name


def test_workload_namespace_and_common_outputs(stack: tuple[str, Deployment]) -> None:
    name, deployment = stack
    [namespace] = [
        r.inputs
        for r in deployment.of_type("kubernetes:core/v1:Namespace")
        if r.inputs["metadata"]["name"] == "workstack"
    ]
    labels = namespace["metadata"]["labels"]
    assert namespace["metadata"]["name"] == "workstack"
    assert labels["workstack.dev/stack"] == name
    assert labels["app.kubernetes.io/managed-by"] == "pulumi"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    outputs = deployment.outputs
    assert outputs["cloud"] == name
    assert outputs["namespace"] == "workstack"
    assert isinstance(outputs["kubeconfig"], Secret), "the kubeconfig must be a secret output"


def test_minikube_creates_nothing_in_a_cloud(project: PulumiProject) -> None:
    deployment = deploy(project, "minikube")
    clouds = [r.type for r in deployment.resources if r.type.split(":")[0] in ("gcp", "aws", "eks")]
    assert clouds == []
    provider = only(deployment, "pulumi:providers:kubernetes")
    assert provider["context"] == "minikube"
    assert deployment.outputs["registry"] is None


def test_minikube_kubeconfig_path_and_context_are_configurable(
    project: PulumiProject, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kind.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    deployment = deploy(project, "minikube", kubeconfig=str(kubeconfig), kubeContext="kind-dev")
    provider = only(deployment, "pulumi:providers:kubernetes")
    assert provider["context"] == "kind-dev"
    assert provider["kubeconfig"] == str(kubeconfig)


def test_gke_cluster(project: PulumiProject) -> None:
    deployment = deploy(project, "gke")
    cluster = only(deployment, "gcp:container/cluster:Cluster")
    assert cluster["removeDefaultNodePool"] is True
    assert cluster["deletionProtection"] is True
    assert cluster["workloadIdentityConfig"] == {"workloadPool": "workstack-demo.svc.id.goog"}
    assert cluster["releaseChannel"] == {"channel": "REGULAR"}
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"

    pool = only(deployment, "gcp:container/nodePool:NodePool")
    assert pool["autoscaling"]["totalMinNodeCount"] == 1
    assert pool["autoscaling"]["totalMaxNodeCount"] == 4
    assert pool["nodeConfig"]["spot"] is True
    assert pool["nodeConfig"]["machineType"] == "e2-standard-4"
    assert pool["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    [account] = [
        r.inputs
        for r in deployment.of_type("gcp:serviceaccount/account:Account")
        if r.name == "cluster-nodes"
    ]
    assert pool["nodeConfig"]["serviceAccount"].startswith(account["accountId"] + "@")

    roles = {r.inputs["role"] for r in deployment.of_type("gcp:projects/iAMMember:IAMMember")}
    assert "roles/owner" not in roles
    assert "roles/editor" not in roles
    repository = only(deployment, "gcp:artifactregistry/repository:Repository")
    assert repository["format"] == "DOCKER"
    assert repository["location"] == "europe-west1"
    assert deployment.outputs["registry"] == (
        "europe-west1-docker.pkg.dev/workstack-demo/workstack-gke-images"
    )


def test_gke_kubeconfig_uses_the_auth_plugin(project: PulumiProject) -> None:
    deployment = deploy(project, "gke")
    kubeconfig = deployment.outputs["kubeconfig"]
    assert isinstance(kubeconfig, Secret)
    document = yaml.safe_load(kubeconfig.value)
    assert document["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert document["current-context"] == "gke_workstack-demo_europe-west1-b_workstack-gke"


def test_eks_cluster(project: PulumiProject) -> None:
    deployment = deploy(project, "eks", eksAdminArns='["arn:aws:iam::123456789012:role/admin"]')
    cluster = only(deployment, "eks:index:Cluster")
    assert cluster["authenticationMode"] == "API"
    assert cluster["skipDefaultNodeGroup"] is True
    assert cluster["createOidcProvider"] is False
    assert cluster["deletionProtection"] is True
    entry = cluster["accessEntries"]["admin-0"]
    assert entry["principalArn"] == "arn:aws:iam::123456789012:role/admin"
    assert entry["accessPolicies"]["cluster-admin"]["accessScope"] == {"type": "cluster"}

    nodes = only(deployment, "eks:index:ManagedNodeGroup")
    assert nodes["instanceTypes"] == ["m6i.xlarge"]
    assert nodes["capacityType"] == "ON_DEMAND"
    # Nothing scales the group: it runs nodeMin nodes, sized to hold the stack (capacity).
    assert nodes["scalingConfig"] == {"minSize": 3, "maxSize": 3, "desiredSize": 3}
    assert only(deployment, "eks:index:Addon")["addonName"] == "eks-pod-identity-agent"

    repository = only(deployment, "aws:ecr/repository:Repository")
    assert repository["forceDelete"] is False
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    policies = {
        r.inputs["policyArn"]
        for r in deployment.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert not [p for p in policies if "Admin" in p or "FullAccess" in p]
    assert deployment.outputs["registry"].endswith(
        ".dkr.ecr.eu-west-1.amazonaws.com/workstack-eks-images"
    )


def test_eks_irsa_mode_creates_an_oidc_provider_instead_of_the_agent(
    project: PulumiProject,
) -> None:
    deployment = deploy(project, "eks", eksIdentity="irsa")
    assert only(deployment, "eks:index:Cluster")["createOidcProvider"] is True
    assert not deployment.of_type("eks:index:Addon")


@pytest.mark.parametrize("stack_name", ["gke", "eks"])
def test_ephemeral_stacks_can_be_destroyed_completely(
    project: PulumiProject, stack_name: str
) -> None:
    deployment = deploy(project, stack_name, ephemeral=True)
    provider = only(deployment, "pulumi:providers:kubernetes")
    assert provider["deleteUnreachable"] == "true"  # provider inputs travel as strings
    if stack_name == "gke":
        assert only(deployment, "gcp:container/cluster:Cluster")["deletionProtection"] is False
    else:
        assert only(deployment, "eks:index:Cluster")["deletionProtection"] is False
        assert only(deployment, "aws:ecr/repository:Repository")["forceDelete"] is True


def test_component_types_follow_the_house_token_scheme(stack: tuple[str, Deployment]) -> None:
    _, deployment = stack
    ours = {r.type for r in deployment.resources if r.type.startswith("workstack:")}
    assert ours
    for token in ours:
        _, area, noun = token.split(":")
        assert area.islower(), token
        assert area.isalpha(), token
        assert noun[0].isupper(), token
        assert noun.isalnum(), token


def test_nothing_secret_leaks_into_rendered_text(stack: tuple[str, Deployment]) -> None:
    _, deployment = stack
    text = json.dumps(rendered_objects(deployment))
    assert "certificate-authority-data" not in text


def _waits_for(deployment: Any, resource: Any, type_token: str) -> bool:
    """Whether ``resource`` depends, directly or through others, on one of ``type_token``."""
    # A URN ends with "<parent types>$<type>::<name>"; logical names are unique per type.
    by_key = {(r.type, r.name): r for r in deployment.resources}

    def key(urn: str) -> tuple[str, str]:
        types, _, name = urn.rpartition("::")
        return types.rpartition("$")[2].rpartition("::")[2], name

    seen: set[tuple[str, str]] = set()
    pending = [key(urn) for urn in resource.depends_on]
    while pending:
        found_key = pending.pop()
        if found_key in seen:
            continue
        seen.add(found_key)
        if found_key[0] == type_token:
            return True
        found = by_key.get(found_key)
        if found is not None:
            pending += [key(urn) for urn in found.depends_on]
    return False


def test_eks_cloud_resources_wait_for_the_cluster_and_claims_for_the_driver(
    project: PulumiProject,
) -> None:
    """Issue 12 items 4, 5: associations and add-ons took the cluster's name as a string."""
    deployment = deploy(project, "eks", storage="both", nfsMode="managed")
    for token in (
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "aws:eks/addon:Addon",
    ):
        for resource in deployment.of_type(token):
            assert _waits_for(deployment, resource, "eks:index:Cluster"), resource.name
    [driver] = [r for r in deployment.of_type("aws:eks/addon:Addon") if "ebs" in r.name]
    assert _waits_for(
        deployment, driver, "aws:eks/podIdentityAssociation:PodIdentityAssociation"
    ), "the EBS driver starts with its role usable"
    [cluster] = [r for r in deployment.resources if r.inputs.get("kind") == "RabbitmqCluster"]
    assert cluster.inputs["spec"]["persistence"]["storageClassName"] == "workstack-gp3"
    assert _waits_for(deployment, cluster, "kubernetes:storage.k8s.io/v1:StorageClass")


def test_gke_workload_identity_binding_waits_for_the_cluster(project: PulumiProject) -> None:
    """Issue 12 item 6: the pool <project>.svc.id.goog exists once the cluster does."""
    deployment = deploy(project, "gke")
    bindings = [
        r
        for r in deployment.of_type("gcp:serviceaccount/iAMMember:IAMMember")
        if r.inputs["role"] == "roles/iam.workloadIdentityUser"
    ]
    assert bindings
    for binding in bindings:
        assert _waits_for(deployment, binding, "gcp:container/cluster:Cluster"), binding.name


@pytest.mark.parametrize(
    ("stack", "changes", "platform", "extra"),
    [
        ("gke", {"storage": "both"}, "linux/amd64", "gcs"),
        ("eks", {"storage": "bucket", "eksInstanceTypes": '["m7g.xlarge"]'}, "linux/arm64", "s3"),
        ("minikube", {"minikubePlatform": "linux/arm64"}, "linux/arm64", None),
    ],
)
def test_images_are_built_for_the_nodes_with_the_storage_extra(
    project: PulumiProject,
    stack: str,
    changes: dict[str, str],
    platform: str,
    extra: str | None,
) -> None:
    """Issue 12: images were built for the deploying machine, and lacked s3fs/gcsfs."""
    deployment = deploy(project, stack, **changes)
    images = deployment.of_type("docker-build:index:Image")
    assert images
    for image in images:
        assert image.inputs["platforms"] == [platform], image.name
    components = [r for r in deployment.resources if r.type == "workstack:image:WorkloadImage"]
    assert components
    from workstack.images import plan_context
    from workstack.sdk.workload import load_workload

    plain = plan_context(load_workload(ROOT / "workloads" / "csv-clean"), platform=platform)
    with_extra = plan_context(
        load_workload(ROOT / "workloads" / "csv-clean"),
        platform=platform,
        extras=(extra,) if extra else (),
    )
    [csv] = [i for i in images if i.name == "csv-clean-image"]
    tag = str(csv.inputs["tags"][0])
    assert with_extra.tag in tag
    if extra:
        assert plain.tag not in tag, "the storage extra is in the image, so in its tag"


@pytest.mark.parametrize(
    ("stack", "token"), [("gke", "gcp:container/cluster:Cluster"), ("eks", "eks:index:Cluster")]
)
def test_a_protected_stack_fails_destroy_before_deleting_anything(
    project: PulumiProject, stack: str, token: str
) -> None:
    """Issue 12: GKE's and EKS's own deletion protection fails `pulumi destroy` only when the
    cluster's turn comes, after everything in it is gone. Pulumi's protect fails the destroy
    in its preview (pulumi/pulumi pkg/resource/deploy/step.go, DeleteStep.Apply)."""
    [protected] = deploy(project, stack).of_type(token)
    assert protected.protect is True
    [preview] = deploy(project, stack, ephemeral="true").of_type(token)
    assert preview.protect is False, "a preview is destroyed in one go"
