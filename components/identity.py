"""Who a workload runs as: a namespaced service account, its permissions and its cloud identity."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from workstack.components._aws import service_account_role
from workstack.components._objects import create_object
from workstack.components.cluster import KubernetesCluster
from workstack.components.eks import EksCluster
from workstack.components.gke import GkeCluster
from workstack.components.manifests import require_choice, require_dns1123_label
from workstack.components.manifests.clusters import google_account_id
from workstack.components.manifests.rbac import (
    PERMISSION_SETS,
    build_role,
    build_role_binding,
    build_service_account,
)

__all__ = ["WorkloadIdentity", "WorkloadIdentityArgs"]

_GKE_ANNOTATION = "iam.gke.io/gcp-service-account"
_IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(kw_only=True, frozen=True)
class WorkloadIdentityArgs:
    """Arguments for :class:`WorkloadIdentity`.

    Attributes:
        cluster: The cluster (any of MinikubeCluster, GkeCluster, EksCluster).
        service_account: Kubernetes service account name.
        namespace: Its namespace; None is the cluster's workload namespace.
        permissions: Kubernetes API permissions: ``none`` (job-per-file, queue workers),
            ``dask-client`` or ``argo-step``; see ``PERMISSION_SETS``.
    """

    cluster: KubernetesCluster
    service_account: str
    namespace: str | None = None
    permissions: str = "none"

    def __post_init__(self) -> None:
        # Room for the suffixes of the Role and the cloud identity names.
        require_dns1123_label("service_account", self.service_account, max_length=40)
        if self.namespace is not None:
            require_dns1123_label("namespace", self.namespace)
        require_choice("permissions", self.permissions, PERMISSION_SETS)

    @property
    def namespace_name(self) -> str:
        """The namespace the service account lives in."""
        return self.namespace or self.cluster.namespace_name


class WorkloadIdentity(pulumi.ComponentResource):
    """A Kubernetes service account for workloads, with only the rights its pattern needs.

    In the cluster: the service account (its API token is mounted only into pods that need
    one), and for ``dask-client`` or ``argo-step`` a namespaced Role and RoleBinding. In the
    cloud, an identity that storage components grant access to, reached without any key:

    - GKE: a Google service account the Kubernetes one may impersonate (Workload Identity);
    - EKS: an IAM role assumed through EKS Pod Identity (or IRSA);
    - minikube: nothing (an S3-compatible endpoint uses credentials from a Secret).
    """

    service_account: str
    """Name of the Kubernetes service account."""

    namespace: str
    """Namespace of the service account."""

    google_service_account: gcp.serviceaccount.Account | None
    """GKE only: the Google service account storage is granted to."""

    aws_role: aws.iam.Role | None
    """EKS only: the IAM role storage is granted to."""

    def __init__(
        self, name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:identity:WorkloadIdentity", name, None, opts)
        self.service_account = args.service_account
        self.namespace = args.namespace_name
        self.google_service_account = None
        self.aws_role = None
        child = pulumi.ResourceOptions(parent=self)
        k8s_child = pulumi.ResourceOptions(
            parent=self, provider=args.cluster.provider, depends_on=[args.cluster]
        )

        annotations: dict[str, object] = {}
        if isinstance(args.cluster, GkeCluster):
            self.google_service_account = self._google_identity(name, args, child)
            annotations[_GKE_ANNOTATION] = self.google_service_account.email
        elif isinstance(args.cluster, EksCluster):
            self.aws_role = self._aws_identity(name, args.cluster, args, child)
            if args.cluster.identity == "irsa":
                annotations[_IRSA_ANNOTATION] = self.aws_role.arn

        create_object(
            f"{name}-service-account",
            build_service_account(
                name=args.service_account,
                namespace=self.namespace,
                instance=name,
                annotations=annotations,
            ),
            k8s_child,
        )
        if args.permissions != "none":
            role = f"{args.service_account}-{args.permissions}"
            create_object(
                f"{name}-role",
                build_role(
                    name=role, namespace=self.namespace, instance=name, permissions=args.permissions
                ),
                k8s_child,
            )
            create_object(
                f"{name}-role-binding",
                build_role_binding(
                    name=role,
                    namespace=self.namespace,
                    instance=name,
                    role=role,
                    service_account=args.service_account,
                ),
                k8s_child,
            )
        self.register_outputs({"service_account": self.service_account})

    @staticmethod
    def _google_identity(
        name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions
    ) -> gcp.serviceaccount.Account:
        cluster = args.cluster
        assert isinstance(cluster, GkeCluster)
        account = gcp.serviceaccount.Account(
            f"{name}-gsa",
            project=cluster.project,
            # Unique per cluster and namespace: ids are global to the project.
            account_id=google_account_id(
                args.service_account, cluster.project, cluster.configured_name, args.namespace_name
            ),
            display_name=f"workstack workload {args.namespace_name}/{args.service_account}",
            opts=opts,
        )
        # The pool <project>.svc.id.goog exists once a cluster with Workload Identity does;
        # before that the binding fails ("Identity Pool does not exist"), so the member is
        # built from the cluster's own output and the binding waits for it.
        member = cluster.workload_pool.apply(
            lambda pool: f"serviceAccount:{pool}[{args.namespace_name}/{args.service_account}]"
        )
        gcp.serviceaccount.IAMMember(
            f"{name}-workload-identity",
            service_account_id=account.name,
            role="roles/iam.workloadIdentityUser",
            member=member,
            opts=opts,
        )
        return account

    @staticmethod
    def _aws_identity(
        name: str, cluster: EksCluster, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions
    ) -> aws.iam.Role:
        return service_account_role(
            name,
            identity=cluster.identity,
            cluster_name=cluster.cluster_name,
            namespace=args.namespace_name,
            service_account=args.service_account,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            opts=opts,
        ).role
