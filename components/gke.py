"""A GKE cluster with its own autoscaling node pool, Workload Identity and Artifact Registry."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from workstack.components.cluster import KubernetesCluster, Registry, check_node_range
from workstack.components.manifests import (
    SpecError,
    build_gke_kubeconfig,
    require_choice,
    require_dns1123_label,
)

__all__ = ["GKE_RELEASE_CHANNELS", "GkeCluster", "GkeClusterArgs"]

GKE_RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE", "EXTENDED")

_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_ZONE = re.compile(r"^([a-z]+-[a-z]+[0-9]+)-[a-z]$")
# Roles the node service account needs to ship logs and metrics; nothing else.
_NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
)
_CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


@dataclass(kw_only=True, frozen=True)
class GkeClusterArgs:
    """Arguments for :class:`GkeCluster`.

    Attributes:
        project: Google Cloud project id.
        location: A region (``europe-west1``: regional control plane, nodes in every zone) or a
            zone (``europe-west1-b``: cheaper, one zone).
        cluster_name: GKE cluster name; also prefixes the node service account and the
            Artifact Registry repository.
        machine_type: Node machine type.
        min_nodes: Lower bound of the node pool autoscaler (across all zones).
        max_nodes: Upper bound of the node pool autoscaler (across all zones).
        spot: Run nodes on Spot VMs (cheaper, may be reclaimed).
        release_channel: GKE release channel that drives control plane and node upgrades.
        deletion_protection: Refuse ``pulumi destroy`` of the cluster. Turn off for ephemeral
            stacks.
        namespace: Workload namespace to create.
    """

    project: str
    location: str
    cluster_name: str
    machine_type: str = "e2-standard-4"
    min_nodes: int = 1
    max_nodes: int = 3
    spot: bool = False
    release_channel: str = "REGULAR"
    deletion_protection: bool = True
    namespace: str = "workstack"

    def __post_init__(self) -> None:
        if not _PROJECT_ID.match(self.project):
            raise SpecError(
                "project", self.project, "expected a Google Cloud project id (6-30 of a-z, 0-9, -)"
            )
        if not (_REGION.match(self.location) or _ZONE.match(self.location)):
            raise SpecError(
                "location",
                self.location,
                "expected a region such as europe-west1 or a zone such as europe-west1-b",
            )
        # GKE allows 40 characters, starting with a letter.
        require_dns1123_label("cluster_name", self.cluster_name, max_length=40)
        if not self.cluster_name[0].isalpha():
            raise SpecError("cluster_name", self.cluster_name, "must start with a letter on GKE")
        if not self.machine_type.strip():
            raise SpecError("machine_type", self.machine_type, "expected a machine type")
        check_node_range(self.min_nodes, self.max_nodes)
        require_choice("release_channel", self.release_channel, GKE_RELEASE_CHANNELS)
        require_dns1123_label("namespace", self.namespace)

    @property
    def region(self) -> str:
        """The region that holds ``location`` (the location itself when it is a region)."""
        zone = _ZONE.match(self.location)
        return zone.group(1) if zone else self.location


class GkeCluster(KubernetesCluster):
    """A GKE Standard cluster ready for workloads.

    The default node pool is removed in favour of a separately managed autoscaling pool whose
    nodes run as a dedicated, minimal service account with the GKE metadata server, so pods
    get Google credentials only through Workload Identity. Dataplane V2 enforces
    NetworkPolicies. An Artifact Registry Docker repository in the cluster's region holds
    the workload images, readable by the nodes.
    """

    project: str
    """Project the cluster lives in."""

    region: str
    """Region of the cluster (its location, or the region holding its zone)."""

    workload_pool: str
    """Workload Identity pool (``<project>.svc.id.goog``) Kubernetes service accounts map into."""

    cluster_name: pulumi.Output[str]
    """Name of the GKE cluster."""

    def __init__(
        self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:cluster:GkeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cloud = "gke"
        self.project = args.project
        self.region = args.region
        self.workload_pool = f"{args.project}.svc.id.goog"

        nodes_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            project=args.project,
            account_id=f"{args.cluster_name[:24]}-nodes",
            display_name=f"GKE nodes of {args.cluster_name}",
            opts=child,
        )
        nodes_member = nodes_account.email.apply(lambda email: f"serviceAccount:{email}")
        for role in _NODE_ROLES:
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[1].replace('.', '-').lower()}",
                project=args.project,
                role=role,
                member=nodes_member,
                opts=child,
            )

        cluster = gcp.container.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            project=args.project,
            location=args.location,
            # GKE always creates a default pool; it is dropped for the pool below, which can
            # change without replacing the cluster.
            remove_default_node_pool=True,
            initial_node_count=1,
            node_config={
                "service_account": nodes_account.email,
                "oauth_scopes": [_CLOUD_PLATFORM_SCOPE],
            },
            release_channel={"channel": args.release_channel},
            workload_identity_config={"workload_pool": self.workload_pool},
            datapath_provider="ADVANCED_DATAPATH",
            # Managed NFS (NfsStorage mode "managed") provisions Filestore through this driver.
            addons_config={"gcp_filestore_csi_driver_config": {"enabled": True}},
            deletion_protection=args.deletion_protection,
            opts=child,
        )
        self.cluster_name = cluster.name

        node_pool = gcp.container.NodePool(
            f"{name}-pool",
            project=args.project,
            location=args.location,
            cluster=cluster.name,
            initial_node_count=1,
            autoscaling={
                "total_min_node_count": args.min_nodes,
                "total_max_node_count": args.max_nodes,
                # Spot capacity is found wherever it is; on-demand nodes are spread evenly.
                "location_policy": "ANY" if args.spot else "BALANCED",
            },
            management={"auto_repair": True, "auto_upgrade": True},
            node_config={
                "machine_type": args.machine_type,
                "spot": args.spot,
                "service_account": nodes_account.email,
                "oauth_scopes": [_CLOUD_PLATFORM_SCOPE],
                "workload_metadata_config": {"mode": "GKE_METADATA"},
                "shielded_instance_config": {"enable_secure_boot": True},
            },
            opts=child,
        )

        repository = gcp.artifactregistry.Repository(
            f"{name}-images",
            project=args.project,
            location=args.region,
            repository_id=f"{args.cluster_name}-images",
            format="DOCKER",
            description=f"Workload images for GKE cluster {args.cluster_name}",
            cleanup_policies=[
                {
                    "id": "drop-untagged-after-7d",
                    "action": "DELETE",
                    "condition": {"tag_state": "UNTAGGED", "older_than": "604800s"},
                }
            ],
            opts=child,
        )
        gcp.artifactregistry.RepositoryIamMember(
            f"{name}-nodes-pull",
            project=args.project,
            location=args.region,
            repository=repository.repository_id,
            role="roles/artifactregistry.reader",
            member=nodes_member,
            opts=child,
        )
        server = f"{args.region}-docker.pkg.dev"
        self.registry = Registry(
            kind="artifact-registry",
            url=repository.repository_id.apply(lambda repo: f"{server}/{args.project}/{repo}"),
            server=pulumi.Output.from_input(server),
        )

        kubeconfig = pulumi.Output.all(
            cluster.endpoint, cluster.master_auth.cluster_ca_certificate
        ).apply(
            lambda parts: build_gke_kubeconfig(
                context=f"gke_{args.project}_{args.location}_{args.cluster_name}",
                endpoint=parts[0],
                ca_certificate=parts[1],
            )
        )
        self._connect(
            name,
            kubeconfig=kubeconfig,
            namespace=args.namespace,
            delete_unreachable=not args.deletion_protection,
            depends_on=[node_pool],
        )
        self._register()
