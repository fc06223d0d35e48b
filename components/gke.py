"""A GKE cluster with its own autoscaling node pool, Workload Identity and Artifact Registry."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from workstack.components.cluster import KubernetesCluster, Registry
from workstack.components.manifests import build_gke_kubeconfig
from workstack.components.manifests.clusters import GkeClusterArgs, google_account_id

__all__ = ["GkeCluster", "GkeClusterArgs"]

# Roles the node service account needs to ship logs and metrics; nothing else.
_NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
)
_CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


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

    workload_pool: pulumi.Output[str]
    """Workload Identity pool (``<project>.svc.id.goog``) Kubernetes service accounts map into;
    an output of the cluster, which creates the pool."""

    cluster_name: pulumi.Output[str]
    """Name of the GKE cluster."""

    configured_name: str
    """The cluster's name as configured, for names derived from it before it exists."""

    def __init__(
        self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:cluster:GkeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cloud = "gke"
        self.project = args.project
        self.region = args.region
        self.configured_name = args.cluster_name
        pool = f"{args.project}.svc.id.goog"

        nodes_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            project=args.project,
            account_id=google_account_id(f"{args.cluster_name}-nodes", args.project),
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
            workload_identity_config={"workload_pool": pool},
            datapath_provider="ADVANCED_DATAPATH",
            # Managed NFS (NfsStorage mode "managed") provisions Filestore through this driver.
            addons_config={"gcp_filestore_csi_driver_config": {"enabled": True}},
            deletion_protection=args.deletion_protection,
            # GKE checks deletion_protection only when the cluster itself is deleted, after
            # `pulumi destroy` has removed everything in it; Pulumi's own protect stops the
            # destroy in its preview, before anything is deleted.
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection),
        )
        self.cluster_name = cluster.name
        self.workload_pool = cluster.workload_identity_config.apply(
            lambda config: config.workload_pool if config and config.workload_pool else pool
        )

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
