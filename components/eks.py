"""An EKS cluster on pulumi_eks: access entries, a managed node group, Pod Identity and ECR."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from workstack.components._aws import service_account_role
from workstack.components.cluster import KubernetesCluster, Registry, StorageClassPlan
from workstack.components.manifests.clusters import EksClusterArgs
from workstack.components.manifests.storage import build_storage_class

__all__ = ["EBS_STORAGE_CLASS", "EksCluster", "EksClusterArgs"]

EBS_STORAGE_CLASS = "workstack-gp3"
"""The StorageClass claims use on EKS: EKS 1.30+ has no default class of its own."""
_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
_EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
_EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
_NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
)


class EksCluster(KubernetesCluster):
    """An EKS cluster ready for workloads.

    Access is managed with EKS access entries (authentication mode ``API``, no ``aws-auth``
    ConfigMap); nodes come from a managed node group whose role can only join the cluster and
    pull images; pods get AWS credentials through EKS Pod Identity (or IRSA), never static keys.
    An ECR repository holds the workload images.

    The node group is bounded by ``min_nodes``/``max_nodes`` and starts at ``min_nodes`` (at
    least one); growing it on demand needs an autoscaler such as Karpenter.
    """

    cluster_name: pulumi.Output[str]
    """Name of the EKS cluster."""

    identity: str
    """``pod-identity`` or ``irsa``: how workloads are granted AWS access."""

    oidc_provider_arn: pulumi.Output[str] | None
    """ARN of the IAM OIDC provider (IRSA only)."""

    oidc_issuer: pulumi.Output[str] | None
    """OIDC issuer host and path, without scheme (IRSA only)."""

    vpc_id: str | None
    """The cluster's VPC, or None for the account's default VPC."""

    subnet_ids: tuple[str, ...]
    """The cluster's subnets, or empty for the VPC's."""

    def __init__(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:cluster:EksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cloud = "eks"
        self.identity = args.identity
        self.vpc_id = args.vpc_id
        self.subnet_ids = args.subnet_ids

        node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            opts=child,
        )
        for policy_arn in _NODE_POLICIES:
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy_arn.rsplit('/', 1)[1].lower().replace('_', '-')}",
                role=node_role.name,
                policy_arn=policy_arn,
                opts=child,
            )

        cluster = eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries={
                f"admin-{index}": eks.AccessEntryArgs(
                    principal_arn=arn,
                    access_policies={
                        "cluster-admin": eks.AccessPolicyAssociationArgs(
                            policy_arn=_ADMIN_POLICY,
                            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(
                                type="cluster"
                            ),
                        )
                    },
                )
                for index, arn in enumerate(args.admin_principal_arns)
            },
            skip_default_node_group=True,
            create_oidc_provider=args.identity == "irsa",
            vpc_id=args.vpc_id,
            subnet_ids=list(args.subnet_ids) or None,
            # The VPC CNI enforces NetworkPolicies only when told to (off by default; needs
            # CNI 1.14+ and Kubernetes 1.25+): the stack's policies are its broker and
            # storage protection.
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_network_policy=True),
            deletion_protection=args.deletion_protection,
            # EKS refuses to delete a protected cluster only when its turn comes, after
            # `pulumi destroy` has removed everything in it; Pulumi's own protect stops the
            # destroy in its preview, before anything is deleted.
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection),
        )
        # The name as an output of the cluster, not the configured string: what takes it
        # (add-ons, Pod Identity associations) then waits until the control plane is up (its
        # kubeconfig is known once the endpoint is). `eks_cluster.name` would do the same on
        # a real engine; the offline engine has no resource references to hydrate it.
        self.cluster_name = cluster.kubeconfig_json.apply(lambda _: args.cluster_name)
        self.region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.oidc_provider_arn = cluster.oidc_provider_arn if args.identity == "irsa" else None
        self.oidc_issuer = cluster.oidc_issuer if args.identity == "irsa" else None

        node_group = eks.ManagedNodeGroup(
            f"{name}-nodes",
            cluster=cluster,
            node_role=node_role,
            instance_types=list(args.instance_types),
            capacity_type="SPOT" if args.spot else "ON_DEMAND",
            scaling_config={
                "min_size": args.min_nodes,
                "max_size": args.max_nodes,
                "desired_size": max(args.min_nodes, 1),
            },
            opts=child,
        )
        addon_opts = pulumi.ResourceOptions(parent=self, depends_on=[node_group])
        if args.identity == "pod-identity":
            agent = eks.Addon(
                f"{name}-pod-identity-agent",
                cluster=cluster,
                addon_name="eks-pod-identity-agent",
                opts=child,
            )
            addon_opts = pulumi.ResourceOptions.merge(
                addon_opts, pulumi.ResourceOptions(depends_on=[agent])
            )
        # Volumes (the in-cluster NFS server's disk, any PVC) need the EBS CSI driver: EKS no
        # longer ships an in-tree provisioner. Its controller reaches EC2 through its own role.
        ebs = service_account_role(
            f"{name}-ebs-csi",
            identity=args.identity,
            cluster_name=self.cluster_name,
            namespace="kube-system",
            service_account=_EBS_CSI_SERVICE_ACCOUNT,
            oidc_provider_arn=self.oidc_provider_arn,
            oidc_issuer=self.oidc_issuer,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster]),
        )
        ebs_policy = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-policy",
            role=ebs.role.name,
            policy_arn=_EBS_CSI_POLICY,
            opts=child,
        )
        # The driver's controller must find its role usable when it starts.
        ebs_driver = aws.eks.Addon(
            f"{name}-ebs-csi-driver",
            cluster_name=self.cluster_name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs.role.arn if args.identity == "irsa" else None,
            opts=pulumi.ResourceOptions.merge(
                addon_opts, pulumi.ResourceOptions(depends_on=[ebs_policy, *ebs.ready])
            ),
        )

        repository = aws.ecr.Repository(
            f"{name}-images",
            name=f"{args.cluster_name.lower()}-images",
            force_delete=args.force_delete_images,
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "AES256"}],
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-images-expiry",
            repository=repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "Drop untagged images after 7 days",
                            "selection": {
                                "tagStatus": "untagged",
                                "countType": "sinceImagePushed",
                                "countUnit": "days",
                                "countNumber": 7,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=child,
        )
        self.registry = Registry(
            kind="ecr",
            url=repository.repository_url,
            server=repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
            registry_id=repository.registry_id,
        )

        self._connect(
            name,
            kubeconfig=cluster.kubeconfig_json,
            namespace=args.namespace,
            delete_unreachable=not args.deletion_protection,
            depends_on=[node_group],
            storage=_storage_class(f"{name}-gp3", ebs_driver),
        )
        self._register()


def _storage_class(name: str, driver: pulumi.Resource) -> StorageClassPlan:
    """An encrypted gp3 class on the EBS CSI driver, made once the driver is installed.

    EKS clusters from Kubernetes 1.30 have no default StorageClass, so claims that name none
    stay Pending; claims made by workstack name this one.
    """
    return StorageClassPlan(
        name=EBS_STORAGE_CLASS,
        resource_name=name,
        manifest=build_storage_class(
            name=EBS_STORAGE_CLASS,
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true"},
        ),
        depends_on=(driver,),
    )
