"""A ReadWriteMany volume every workload pod can mount: NFS in the cluster, or managed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from workstack.components._objects import create_object
from workstack.components.cluster import KubernetesCluster
from workstack.components.eks import EksCluster
from workstack.components.gke import GkeCluster
from workstack.components.manifests import NamespaceSpec, build_namespace
from workstack.components.manifests.network import build_egress_deny
from workstack.components.manifests.pods import PodStorage
from workstack.components.manifests.security import WORKLOAD_GID, WORKLOAD_UID
from workstack.components.manifests.storage import (
    NFS_MOUNT_OPTIONS,
    NFS_PORTS,
    NfsSettings,
    build_claim,
    build_nfs_server,
    build_static_volume,
    nfs_pod_storage,
)

__all__ = ["NfsSettings", "NfsStorage", "NfsStorageArgs"]

_FILESTORE_CLASS = "standard-rwx"


@dataclass(kw_only=True, frozen=True)
class NfsStorageArgs:
    """Arguments for :class:`NfsStorage`.

    Attributes:
        cluster: The cluster whose workload namespace gets the claim.
        settings: Mode, size, claim name and disk class; checked for the cluster's cloud.
        protect_data: Refuse to delete the data (the server's disk, or the EFS file system)
            on ``pulumi destroy``. Leave off for ephemeral stacks.
    """

    cluster: KubernetesCluster
    settings: NfsSettings = field(default_factory=NfsSettings)
    protect_data: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", self.settings.validated_for(cloud=self.cluster.cloud))


class NfsStorage(pulumi.ComponentResource):
    """Shared ReadWriteMany storage, mounted by every workload pod at ``/data``.

    In-cluster mode runs an NFS server (a privileged pod in a namespace of its own, so the
    workload namespace stays restricted) on a disk from the cluster's default StorageClass.
    The PersistentVolume reaches the server by its Service's ClusterIP, not its DNS name:
    kubelets mount NFS from the node, where cluster DNS does not resolve (minikube, EKS).

    Managed mode uses Filestore through GKE's Filestore CSI driver, or an EFS file system
    with mount targets, an access point owned by the workload user and the EFS CSI add-on.
    """

    claim_name: str
    """Name of the claim in the workload namespace."""

    server: pulumi.Output[str]
    """Where the data lives: the NFS server address, the EFS file system, or the Filestore class."""

    pod_storage: PodStorage
    """What workload builders add to their pods to mount the claim."""

    def __init__(
        self, name: str, args: NfsStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:storage:NfsStorage", name, None, opts)
        cluster, settings = args.cluster, args.settings
        self.claim_name = settings.claim_name
        self.pod_storage = nfs_pod_storage(settings.claim_name)
        k8s = cluster.options_for(self, storage=True)
        data = pulumi.ResourceOptions(protect=args.protect_data)

        if settings.mode == "in-cluster":
            self.server = self._in_cluster(name, args, k8s, data)
        elif isinstance(cluster, GkeCluster):
            claim = build_claim(
                name=settings.claim_name,
                namespace=cluster.namespace_name,
                instance=name,
                size=settings.size,
                storage_class=_FILESTORE_CLASS,
            )
            create_object(f"{name}-claim", claim, pulumi.ResourceOptions.merge(k8s, data))
            self.server = pulumi.Output.from_input(f"filestore ({_FILESTORE_CLASS})")
        else:
            assert isinstance(cluster, EksCluster)
            self.server = self._efs(name, args, cluster, k8s, data)
        self.register_outputs({"claim_name": self.claim_name, "server": self.server})

    def _in_cluster(
        self,
        name: str,
        args: NfsStorageArgs,
        k8s: pulumi.ResourceOptions,
        data: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        namespace = f"{args.cluster.namespace_name}-nfs"[:63].rstrip("-")
        created = create_object(
            f"{name}-namespace",
            build_namespace(
                NamespaceSpec(
                    name=namespace,
                    instance=name,
                    stack=pulumi.get_stack(),
                    pod_security="privileged",
                )
            ),
            k8s,
        )
        in_namespace = pulumi.ResourceOptions.merge(
            k8s, pulumi.ResourceOptions(depends_on=[created])
        )
        # The server opens no connection of its own (NFSv4.1 calls clients back over their
        # own connection). Its ingress stays open: mounts come from the kubelet of each
        # client's node, which a NetworkPolicy cannot tell from other traffic on every CNI
        # (docs/security.md, "NFS").
        create_object(
            f"{name}-deny-egress",
            build_egress_deny(namespace=namespace, instance=name),
            in_namespace,
        )
        settings = args.settings
        if settings.storage_class is None and args.cluster.storage_class is not None:
            settings = settings.model_copy(update={"storage_class": args.cluster.storage_class})
        disk, deployment, service = build_nfs_server(
            name=f"{settings.claim_name}-server",
            namespace=namespace,
            instance=name,
            settings=settings,
        )
        create_object(f"{name}-disk", disk, pulumi.ResourceOptions.merge(in_namespace, data))
        create_object(f"{name}-server", deployment, in_namespace)
        service_resource = create_object(f"{name}-service", service, in_namespace)
        cluster_ip: pulumi.Output[str] = service_resource.spec.apply(  # type: ignore[attr-defined]
            lambda service_spec: service_spec.cluster_ip
        )
        self._volume(
            name,
            args,
            {"nfs": {"server": cluster_ip, "path": "/"}},
            k8s,
            mount_options=NFS_MOUNT_OPTIONS,
        )
        return cluster_ip

    def _efs(
        self,
        name: str,
        args: NfsStorageArgs,
        cluster: EksCluster,
        k8s: pulumi.ResourceOptions,
        data: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        vpc = (
            aws.ec2.get_vpc(id=cluster.vpc_id) if cluster.vpc_id else aws.ec2.get_vpc(default=True)
        )
        subnet_ids = cluster.subnet_ids or tuple(
            aws.ec2.get_subnets(filters=[{"name": "vpc-id", "values": [vpc.id]}]).ids
        )
        # EFS allows one mount target per availability zone.
        per_zone: dict[str, str] = {}
        for subnet_id in sorted(subnet_ids):
            zone = aws.ec2.get_subnet(id=subnet_id).availability_zone
            per_zone.setdefault(zone, subnet_id)

        group = aws.ec2.SecurityGroup(
            f"{name}-efs",
            vpc_id=vpc.id,
            description="NFS from the cluster's VPC to the workload file system",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": NFS_PORTS["nfs"],
                    "to_port": NFS_PORTS["nfs"],
                    "cidr_blocks": [vpc.cidr_block],
                }
            ],
            opts=child,
        )
        file_system = aws.efs.FileSystem(
            f"{name}-efs",
            encrypted=True,
            throughput_mode="elastic",
            tags={"Name": f"{cluster.namespace_name}-shared-data"},
            opts=pulumi.ResourceOptions.merge(child, data),
        )
        targets = [
            aws.efs.MountTarget(
                f"{name}-efs-{zone}",
                file_system_id=file_system.id,
                subnet_id=subnet_id,
                security_groups=[group.id],
                opts=child,
            )
            for zone, subnet_id in sorted(per_zone.items())
        ]
        access_point = aws.efs.AccessPoint(
            f"{name}-efs-access",
            file_system_id=file_system.id,
            posix_user={"uid": WORKLOAD_UID, "gid": WORKLOAD_GID},
            root_directory={
                "path": "/workstack",
                "creation_info": {
                    "owner_uid": WORKLOAD_UID,
                    "owner_gid": WORKLOAD_GID,
                    "permissions": "2775",
                },
            },
            opts=child,
        )
        driver = aws.eks.Addon(
            f"{name}-efs-csi-driver",
            cluster_name=cluster.cluster_name,
            addon_name="aws-efs-csi-driver",
            opts=child,
        )
        handle = pulumi.Output.concat(file_system.id, "::", access_point.id)
        self._volume(
            name,
            args,
            {"csi": {"driver": "efs.csi.aws.com", "volumeHandle": handle}},
            pulumi.ResourceOptions.merge(
                k8s, pulumi.ResourceOptions(depends_on=[driver, *targets])
            ),
        )
        return file_system.id

    def _volume(
        self,
        name: str,
        args: NfsStorageArgs,
        source: dict[str, Any],
        opts: pulumi.ResourceOptions,
        mount_options: tuple[str, ...] = (),
    ) -> None:
        volume, claim = build_static_volume(
            name=args.settings.claim_name,
            instance=name,
            size=args.settings.size,
            claim_namespace=args.cluster.namespace_name,
            source=source,
            mount_options=mount_options,
        )
        created = create_object(f"{name}-volume", volume, opts)
        create_object(
            f"{name}-claim",
            claim,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[created])),
        )
