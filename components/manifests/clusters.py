"""What a cluster component takes: one settings model per kind of cluster.

The models are pure (no Pulumi), so the stack layer, ``workstack render`` and the tests use them
without a cloud SDK. ``MinikubeCluster``, ``GkeCluster`` and ``EksCluster`` take them as their
args.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated, Self

from pydantic import model_validator

from workstack.components.manifests.settings import (
    Between,
    Checked,
    Flag,
    Label,
    Names,
    OneOf,
    OptionalText,
    Quantity,
    Settings,
    Text,
    setting,
)
from workstack.components.manifests.validation import SpecError, require_dns1123_label

__all__ = [
    "EKS_IDENTITY_MODES",
    "GKE_RELEASE_CHANNELS",
    "EksClusterArgs",
    "GkeClusterArgs",
    "ManagedClusterArgs",
    "MinikubeClusterArgs",
    "google_account_id",
    "node_platform",
]

GKE_RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE", "EXTENDED")
EKS_IDENTITY_MODES = ("pod-identity", "irsa")

_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_ZONE = re.compile(r"^([a-z]+-[a-z]+[0-9]+)-[a-z]$")
_EKS_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
_EKS_VERSION = re.compile(r"^1\.[0-9]{2}$")
_IAM_PRINCIPAL = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[A-Za-z0-9+=,.@_/-]+$")


def _require_project(field: str, value: object) -> str:
    if not isinstance(value, str) or not _PROJECT_ID.match(value):
        raise SpecError(field, value, "expected a Google Cloud project id (6-30 of a-z, 0-9, -)")
    return value


def _require_location(field: str, value: object) -> str:
    if not isinstance(value, str) or not (_REGION.match(value) or _ZONE.match(value)):
        raise SpecError(
            field, value, "expected a region such as europe-west1 or a zone such as europe-west1-b"
        )
    return value


def _require_eks_version(field: str, value: object) -> str:
    if not isinstance(value, str) or not _EKS_VERSION.match(value):
        raise SpecError(field, value, "expected a version such as 1.33")
    return value


def _require_principals(field: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise SpecError(field, value, "expected a list of IAM user or role ARNs")
    for arn in value:
        if not isinstance(arn, str) or not _IAM_PRINCIPAL.match(arn):
            raise SpecError(
                field,
                arn,
                "expected an IAM user or role ARN such as arn:aws:iam::123456789012:role/admin",
            )
    return tuple(value)


_AWS_ARM = re.compile(r"^[a-z]+[0-9]+[a-z]*g[a-z]*\.")  # Graviton: m6g, c7gn, t4g, r8g...
_GCP_ARM = re.compile(r"^(t2a|c4a|n4a)-")  # Ampere Altra and Google Axion machine families


def node_platform(node_type: str) -> str:
    """The container platform of a node type: ``linux/arm64`` or ``linux/amd64``.

    Sources: AWS's instance type naming (a ``g`` after the generation digit marks Graviton,
    docs.aws.amazon.com/ec2/latest/instancetypes/instance-type-names.html) and Google's Arm
    machine series (Tau T2A, C4A, N4A: cloud.google.com/compute/docs/instances/arm-on-compute).
    """
    return (
        "linux/arm64" if _AWS_ARM.match(node_type) or _GCP_ARM.match(node_type) else "linux/amd64"
    )


_GOOGLE_ACCOUNT_ID = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def google_account_id(readable: str, *unique: str) -> str:
    """A Google service account id: 6-30 of a-z, 0-9 and '-', starting with a letter.

    Ids are global to a project, so one made per stack must differ between stacks and
    previews: the readable part is followed by a hash of everything that makes it unique
    (the cluster, namespace and Kubernetes service account), never cut into a collision.
    Rule from terraform-provider-google ``resource_google_service_account.go``
    (``ValidateRFC1035Name(6, 30)``).

    Raises:
        SpecError: ``readable`` has nothing usable (no letter to start the id with).
    """
    digest = hashlib.sha256("/".join((readable, *unique)).encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9-]+", "-", readable.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[: 30 - len(digest) - 1].rstrip("-")
    account_id = f"{slug}-{digest}" if slug else f"ws-{digest}"
    if not _GOOGLE_ACCOUNT_ID.match(account_id) or not 6 <= len(account_id) <= 30:
        raise SpecError("account_id", account_id, "expected 6-30 of a-z, 0-9, '-'")
    return account_id


SHARED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
"""Namespaces every cluster has and other things use: never a stack's workload namespace."""


class ClusterArgs(Settings):
    """What every cluster component has: the namespace workloads run in."""

    namespace: Label = setting("workstack", "namespace")
    """Kubernetes namespace the workloads run in (DNS-1123 label)."""

    @model_validator(mode="after")
    def _own_namespace(self) -> Self:
        # The stack denies all traffic in its namespace and enforces the restricted Pod
        # Security level there: a namespace other things live in would break them, and
        # `pulumi destroy` would delete it.
        if self.namespace in SHARED_NAMESPACES or self.namespace.startswith("kube-"):
            allowed = "a namespace of the stack's own; kube-system, kube-public, kube-node-lease, "
            allowed += "other kube-* and default are the cluster's"
            raise self.refuse("namespace", self.namespace, allowed)
        return self


class MinikubeClusterArgs(ClusterArgs):
    """An existing cluster reached through a kubeconfig: minikube, or any other."""

    kubeconfig_path: OptionalText = setting(None, "kubeconfig", unset="")
    """minikube only: kubeconfig file of the existing cluster. Empty means the first entry of
    $KUBECONFIG, or ~/.kube/config."""
    context: Text = setting("minikube", "kubeContext")
    """minikube only. Kubeconfig context of the existing cluster."""
    cpus: Annotated[int, Between(1, 256)] = setting(2, "minikubeCpus")
    """minikube only. CPUs the cluster's node has (`minikube start --cpus`); what the stack
    runs must fit in them. minikube's own default is 2."""
    memory: Quantity = setting("3Gi", "minikubeMemory")
    """minikube only. Memory the cluster's node has (`minikube start --memory`); what the
    stack runs must fit in it. minikube's default is a quarter of the host's memory, at
    least 3072 MB."""
    platform: Annotated[str, OneOf("linux/amd64", "linux/arm64")] = setting(
        "linux/amd64", "minikubePlatform"
    )
    """minikube only. The node's platform, which workload images are built for: linux/arm64
    on Apple silicon and other Arm hosts."""
    delete_unreachable: Flag = setting(False)
    """Let ``pulumi destroy`` forget objects if the cluster is already gone (a deleted
    minikube); for preview stacks."""

    @model_validator(mode="after")
    def _kubeconfig_exists(self) -> Self:
        # Only a path given explicitly is checked: the default ($KUBECONFIG or ~/.kube/config)
        # need not exist for an offline render.
        if (
            self.kubeconfig_path is not None
            and not Path(self.kubeconfig_path).expanduser().is_file()
        ):
            raise self.refuse(
                "kubeconfig_path",
                self.kubeconfig_path,
                "no such file; name the existing cluster's kubeconfig, or leave it empty for "
                "$KUBECONFIG or ~/.kube/config",
            )
        return self

    def resolved_kubeconfig_path(self) -> str:
        """The kubeconfig file this cluster is reached through, as kubectl would choose it."""
        if self.kubeconfig_path is not None:
            return str(Path(self.kubeconfig_path).expanduser())
        from_env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        return from_env or str(Path("~/.kube/config").expanduser())


class ManagedClusterArgs(ClusterArgs):
    """What GKE and EKS clusters share: a name, an autoscaled node pool, protection."""

    cluster_name: Text = setting(..., "clusterName", unset="")
    """Name of the GKE or EKS cluster. Empty means `workstack-<stack>`."""
    min_nodes: Annotated[int, Between(0, 1000)] = setting(1, "nodeMin")
    """Fewest nodes in the node pool (GKE and EKS)."""
    max_nodes: Annotated[int, Between(1, 1000)] = setting(3, "nodeMax")
    """Most nodes in the node pool (GKE and EKS); at least nodeMin."""
    spot: Flag = setting(False, "nodeSpot")
    """Run nodes on Spot capacity (GKE and EKS); cheaper, but nodes may be reclaimed."""
    deletion_protection: Flag = setting(True)
    """Refuse deletion of the cluster; off for ephemeral stacks."""

    @model_validator(mode="after")
    def _node_range(self) -> Self:
        if self.min_nodes > self.max_nodes:
            raise self.refuse(
                "min_nodes", self.min_nodes, f"must not exceed {{max_nodes}} ({self.max_nodes})"
            )
        return self


class GkeClusterArgs(ManagedClusterArgs):
    """A GKE Standard cluster: its project and location, node pool and release channel."""

    project: Annotated[str, Checked(_require_project)] = setting(...)
    """Google Cloud project id (the stack's gcp:project)."""
    location: Annotated[str, Checked(_require_location)] = setting(...)
    """A region (``europe-west1``: regional control plane, nodes in every zone) or a zone
    (``europe-west1-b``: cheaper, one zone); the stack's gcp:zone, else gcp:region."""
    machine_type: Text = setting("e2-standard-4", "gkeMachineType")
    """GKE node machine type."""
    release_channel: Annotated[str, OneOf(*GKE_RELEASE_CHANNELS)] = setting(
        "REGULAR", "gkeReleaseChannel"
    )
    """GKE release channel (RAPID, REGULAR, STABLE or EXTENDED)."""

    @model_validator(mode="after")
    def _gke_cluster_name(self) -> Self:
        # GKE allows 40 characters of a-z, 0-9 and '-', starting with a letter.
        try:
            require_dns1123_label("", self.cluster_name, max_length=40)
        except SpecError as error:
            raise self.refuse("cluster_name", self.cluster_name, error.allowed) from None
        if not self.cluster_name[0].isalpha():
            raise self.refuse("cluster_name", self.cluster_name, "must start with a letter on GKE")
        return self

    @property
    def region(self) -> str:
        """The region that holds ``location`` (the location itself when it is a region)."""
        zone = _ZONE.match(self.location)
        return zone.group(1) if zone else self.location


class EksClusterArgs(ManagedClusterArgs):
    """An EKS cluster: node types, version, how pods get AWS access, the network."""

    instance_types: Names = setting(("m6i.large",), "eksInstanceTypes")
    """EKS node instance types; several help Spot find capacity."""
    kubernetes_version: Annotated[str | None, Checked(_require_eks_version, optional=True)] = (
        setting(None, "eksVersion", unset="")
    )
    """EKS Kubernetes version such as 1.33. Empty lets EKS choose its default."""
    identity: Annotated[str, OneOf(*EKS_IDENTITY_MODES)] = setting("pod-identity", "eksIdentity")
    """How EKS pods get AWS access, `pod-identity` (EKS Pod Identity) or `irsa`."""
    admin_principal_arns: Annotated[tuple[str, ...], Checked(_require_principals)] = setting(
        (), "eksAdminArns"
    )
    """IAM user or role ARNs given cluster-admin through EKS access entries."""
    vpc_id: OptionalText = setting(None, "eksVpcId", unset="")
    """VPC for the EKS cluster. Empty uses the account's default VPC."""
    subnet_ids: Names = setting((), "eksSubnetIds")
    """Subnets of eksVpcId for the cluster and its nodes. Empty uses the VPC's subnets."""
    force_delete_images: Flag = setting(False)
    """Let ``pulumi destroy`` delete the image repository with its images; on for ephemeral
    stacks."""

    @model_validator(mode="after")
    def _eks_rules(self) -> Self:
        if not _EKS_CLUSTER_NAME.match(self.cluster_name):
            raise self.refuse(
                "cluster_name",
                self.cluster_name,
                "expected 1-100 of A-Z, a-z, 0-9, '-' and '_', starting with a letter or digit",
            )
        if not self.instance_types or not all(t.strip() for t in self.instance_types):
            raise self.refuse("instance_types", self.instance_types, "expected one or more types")
        if self.subnet_ids and self.vpc_id is None:
            raise self.refuse("subnet_ids", list(self.subnet_ids), "needs {vpc_id} to be set")
        if len({node_platform(t) for t in self.instance_types}) > 1:
            raise self.refuse(
                "instance_types",
                list(self.instance_types),
                "mixes Arm (Graviton) and x86 types; workload images are built for one",
            )
        return self
