"""Storage, identity and pod security across every stack and storage mode, offline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from workstack.components.manifests.security import POD_SECURITY_EXCEPTIONS
from workstack.offline import Deployment, ProgramError, Secret
from workstack.policy import pod_templates, restricted_violations
from workstack.project import PulumiProject
from workstack.render import rendered_objects

from .harness import deploy

ROOT = Path(__file__).resolve().parents[2]
MINIO = {
    "bucketEndpoint": "http://minio.minio.svc:9000",
    "bucketName": "workstack-data",
}
# Shaped like real AWS keys on purpose: the test proves they never surface unmasked.
MINIO_SECRETS = {
    "bucketAccessKeyId": "AKIAIOSFODNN7EXAMPLE",
    "bucketSecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
VARIANTS = [
    (stack, mode, nfs_mode)
    for stack in ("minikube", "gke", "eks")
    for mode in ("nfs", "bucket", "both")
    for nfs_mode in ("in-cluster", "managed")
    if not (stack == "minikube" and nfs_mode == "managed")
    and not (mode == "bucket" and nfs_mode == "managed")
]


def render(
    project: PulumiProject, stack: str, mode: str, nfs_mode: str = "in-cluster", **extra: Any
) -> Deployment:
    # Storage on its own: the stacks' example workloads are tested elsewhere.
    changes: dict[str, Any] = {"storage": mode, "nfsMode": nfs_mode, "workloads": "[]", **extra}
    secrets = None
    if stack == "minikube" and mode != "nfs":
        changes |= MINIO
        secrets = MINIO_SECRETS
    if nfs_mode == "managed" and stack == "gke":
        changes["nfsSize"] = "1Ti"
    return deploy(project, stack, secrets=secrets, **changes)


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: "-".join(v))
def variant(
    request: pytest.FixtureRequest, project: PulumiProject
) -> tuple[str, str, str, Deployment]:
    stack, mode, nfs_mode = request.param
    return stack, mode, nfs_mode, render(project, stack, mode, nfs_mode)


def test_every_variant_renders_schema_valid_objects(variant: Any, assert_schema_valid: Any) -> None:
    *_, deployment = variant
    objects = rendered_objects(deployment)
    assert_schema_valid(objects)


def test_every_pod_template_meets_the_restricted_profile(variant: Any) -> None:
    *_, deployment = variant
    checked = 0
    for obj in rendered_objects(deployment):
        for template in pod_templates(obj):
            checked += 1
            problems = restricted_violations(template.spec)
            if template.exception is not None:
                assert problems, f"{template.source} is listed as an exception but needs none"
                continue
            assert problems == [], f"{template.source}: {problems}"
    _stack, mode, nfs_mode, _ = variant
    expected = 1 if mode != "bucket" and nfs_mode == "in-cluster" else 0
    assert checked >= expected


def test_no_cluster_wide_roles_and_no_static_keys(variant: Any) -> None:
    *_, deployment = variant
    kinds = {obj["kind"] for obj in rendered_objects(deployment)}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    assert_no_static_keys(deployment)


KEY_SHAPES = [
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"(?i)secret.?access.?key\W+[A-Za-z0-9/+=]{40}\b"),  # AWS secret key beside its name
    re.compile(r"-----BEGIN (RSA )?PRIVATE KEY-----"),  # a Google service account key's key
    re.compile(r'"type":\s*"service_account"'),  # a Google service account key file
]


def _plain(value: Any) -> Any:
    """Everything that is not a secret, with secrets dropped entirely."""
    if isinstance(value, Secret):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def assert_no_static_keys(deployment: Deployment) -> None:
    texts = {
        "rendered objects": json.dumps(rendered_objects(deployment)),
        "resource inputs outside secrets": json.dumps(
            [_plain(r.inputs) for r in deployment.resources], default=str
        ),
        "stack outputs": json.dumps(_plain(deployment.outputs), default=str),
    }
    for where, text in texts.items():
        for shape in KEY_SHAPES:
            assert not shape.search(text), f"{where} contain something shaped like a static key"


def test_stack_files_hold_no_static_keys() -> None:
    for path in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        text = path.read_text()
        for shape in KEY_SHAPES:
            assert not shape.search(text), f"{path.name} holds something shaped like a key"


def test_the_key_scanner_catches_a_leak() -> None:
    leaked = Deployment(outputs={"creds": "AKIAIOSFODNN7EXAMPLE"})
    with pytest.raises(AssertionError, match="shaped like a static key"):
        assert_no_static_keys(leaked)


# --- NFS ---------------------------------------------------------------------------------


def _objects(deployment: Deployment, kind: str) -> list[dict[str, Any]]:
    return [o for o in rendered_objects(deployment) if o["kind"] == kind]


def test_in_cluster_nfs_volume_reaches_the_server_by_cluster_ip(project: PulumiProject) -> None:
    deployment = render(project, "eks", "nfs")
    [volume] = _objects(deployment, "PersistentVolume")
    assert volume["spec"]["nfs"] == {"server": "192.0.2.10", "path": "/"}, "the Service's ClusterIP"
    assert volume["spec"]["claimRef"] == {"namespace": "workstack", "name": "shared-data"}
    claims = {c["metadata"]["namespace"]: c for c in _objects(deployment, "PersistentVolumeClaim")}
    assert claims["workstack"]["spec"]["volumeName"] == volume["metadata"]["name"]
    assert claims["workstack"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claims["workstack-nfs"]["spec"]["accessModes"] == ["ReadWriteOnce"], "the server's disk"
    namespaces = {
        n["metadata"]["name"]: n["metadata"]["labels"] for n in _objects(deployment, "Namespace")
    }
    assert namespaces["workstack"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces["workstack-nfs"]["pod-security.kubernetes.io/enforce"] == "privileged"
    [server] = _objects(deployment, "Deployment")
    assert server["metadata"]["namespace"] == "workstack-nfs"
    assert (
        server["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        in POD_SECURITY_EXCEPTIONS
    )


def test_managed_nfs_on_gke_is_filestore(project: PulumiProject) -> None:
    deployment = render(project, "gke", "nfs", "managed")
    [claim] = _objects(deployment, "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == "standard-rwx"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Ti"
    assert not _objects(deployment, "Deployment"), "no NFS server pod"


def test_managed_nfs_on_eks_is_efs_with_an_access_point_for_the_workload_user(
    project: PulumiProject,
) -> None:
    deployment = render(project, "eks", "nfs", "managed")
    [fs] = deployment.of_type("aws:efs/fileSystem:FileSystem")
    assert fs.inputs["encrypted"] is True
    assert fs.protect, "data is protected unless the stack is ephemeral"
    targets = deployment.of_type("aws:efs/mountTarget:MountTarget")
    assert sorted(t.inputs["subnetId"] for t in targets) == ["subnet-offline-a", "subnet-offline-b"]
    [access] = deployment.of_type("aws:efs/accessPoint:AccessPoint")
    assert access.inputs["posixUser"] == {"uid": 10001, "gid": 10001}
    addons = {a.inputs["addonName"] for a in deployment.of_type("aws:eks/addon:Addon")}
    assert "aws-efs-csi-driver" in addons
    [volume] = _objects(deployment, "PersistentVolume")
    assert volume["spec"]["csi"]["driver"] == "efs.csi.aws.com"
    assert volume["spec"]["csi"]["volumeHandle"].count("::") == 1
    [group] = deployment.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert group.inputs["ingress"][0]["fromPort"] == group.inputs["ingress"][0]["toPort"] == 2049


# --- buckets ---------------------------------------------------------------------------


def test_s3_bucket_is_private_encrypted_and_granted_to_the_workload_role(
    project: PulumiProject,
) -> None:
    deployment = render(project, "eks", "bucket")
    [bucket] = deployment.of_type("aws:s3/bucket:Bucket")
    assert bucket.inputs["forceDestroy"] is False
    [block] = deployment.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        block.inputs[k]
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    assert deployment.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    [policy] = deployment.of_type("aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    actions = sorted(a for s in statements for a in s["Action"])
    assert actions == [
        "s3:DeleteObject",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
    ]
    assert policy.inputs["role"] == "workload-identity-role-offline"
    [association] = [
        r.inputs
        for r in deployment.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if r.inputs["serviceAccount"] == "workload"
    ]
    assert association["namespace"] == "workstack"
    assert association["clusterName"] == "workstack-eks"


def test_gcs_bucket_uses_uniform_access_and_workload_identity(project: PulumiProject) -> None:
    deployment = render(project, "gke", "bucket", bucketVersioning=True)
    [bucket] = deployment.of_type("gcp:storage/bucket:Bucket")
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    assert bucket.inputs["versioning"] == {"enabled": True}
    assert bucket.inputs["location"] == "EUROPE-WEST1"
    [member] = deployment.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert member.inputs["role"] == "roles/storage.objectUser"
    assert (
        member.inputs["member"]
        == "serviceAccount:workload-9b42520c@workstack-demo.iam.gserviceaccount.com"
    )
    [binding] = deployment.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    assert binding.inputs["role"] == "roles/iam.workloadIdentityUser"
    assert (
        binding.inputs["member"] == "serviceAccount:workstack-demo.svc.id.goog[workstack/workload]"
    )
    [account] = _objects(deployment, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "workload-9b42520c@workstack-demo.iam.gserviceaccount.com"
    }


def test_irsa_annotates_the_service_account_with_its_role(project: PulumiProject) -> None:
    deployment = render(project, "eks", "bucket", eksIdentity="irsa")
    [account] = _objects(deployment, "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/workload-identity-role-offline"
    )
    role = next(
        r for r in deployment.of_type("aws:iam/role:Role") if r.name == "workload-identity-role"
    )
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert (
        next(iter(trust["Condition"]["StringEquals"].values()))
        == "system:serviceaccount:workstack:workload"
    )


def test_minikube_bucket_credentials_live_only_in_a_secret(project: PulumiProject) -> None:
    deployment = render(project, "minikube", "bucket")
    [secret] = _objects(deployment, "Secret")
    assert secret["stringData"] == {
        "AWS_ACCESS_KEY_ID": "[secret]",
        "AWS_ENDPOINT_URL_S3": "[secret]",
        "AWS_SECRET_ACCESS_KEY": "[secret]",
    }
    assert deployment.outputs["bucketUrl"] == "s3://workstack-data/workstack"


def test_ephemeral_storage_is_destroyed_with_the_stack(project: PulumiProject) -> None:
    for stack in ("gke", "eks"):
        deployment = render(project, stack, "both", ephemeral=True)
        assert not [r.name for r in deployment.resources if r.protect], stack
        for bucket in [
            *deployment.of_type("aws:s3/bucket:Bucket"),
            *deployment.of_type("gcp:storage/bucket:Bucket"),
        ]:
            assert bucket.inputs["forceDestroy"] is True


# --- bad input ---------------------------------------------------------------------------

BAD_STORAGE = [
    ("minikube", {"storage": "tape"}, ["workstack:storage: 'tape'", "allowed: nfs, bucket, both"]),
    (
        "eks",
        {"storage": "bucket", "bucketName": "My_Bucket"},
        ["workstack:bucketName: 'My_Bucket'", "S3 bucket name"],
    ),
    (
        "gke",
        {"storage": "bucket", "bucketName": "google-data"},
        ["workstack:bucketName: 'google-data'", "containing 'google'"],
    ),
    ("eks", {"storage": "bucket", "bucketName": "192.0.2.1"}, ["not shaped like an IP address"]),
    (
        "minikube",
        {"nfsSize": "ten gigs"},
        ["workstack:nfsSize: 'ten gigs'", "Kubernetes quantity such as"],
    ),
    (
        "minikube",
        {"nfsMode": "managed"},
        ["workstack:nfsMode: 'managed'", "needs GKE (Filestore) or EKS (EFS)"],
    ),
    (
        "gke",
        {"nfsMode": "managed", "nfsSize": "100Gi"},
        ["workstack:nfsSize: '100Gi'", "at least 1Ti"],
    ),
    ("eks", {"nfsMode": "cloud"}, ["workstack:nfsMode: 'cloud'", "allowed: in-cluster, managed"]),
    (
        "minikube",
        {"storage": "bucket"},
        ["workstack:bucketEndpoint: (missing)", "S3-compatible endpoint"],
    ),
    (
        "minikube",
        {"storage": "bucket", "bucketEndpoint": "minio:9000", "bucketName": "data"},
        ["workstack:bucketEndpoint: 'minio:9000'"],
    ),
    (
        "minikube",
        {"storage": "bucket", "bucketEndpoint": "http://minio:9000", "bucketName": "data"},
        ["workstack:bucketAccessKeyId and workstack:bucketSecretAccessKey", "both required"],
    ),
    (
        "eks",
        {"storage": "bucket", "bucketEndpoint": "http://minio:9000"},
        ["workstack:bucketEndpoint", "static keys and endpoints are refused"],
    ),
]


@pytest.mark.parametrize(("stack", "changes", "fragments"), BAD_STORAGE)
def test_bad_storage_config_names_the_key(
    project: PulumiProject, stack: str, changes: dict[str, str], fragments: list[str]
) -> None:
    with pytest.raises(ProgramError) as caught:
        deploy(project, stack, **changes)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert caught.value.deployment.resources == []


def test_static_keys_on_a_cloud_are_refused(project: PulumiProject) -> None:
    with pytest.raises(ProgramError, match="static keys and endpoints are refused") as caught:
        deploy(project, "eks", storage="bucket", secrets=MINIO_SECRETS)
    assert caught.value.deployment.resources == []
