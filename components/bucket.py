"""A bucket for workload inputs and outputs, reachable from pods without static cloud keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from workstack.components._objects import create_object
from workstack.components.cluster import KubernetesCluster
from workstack.components.eks import EksCluster
from workstack.components.gke import GkeCluster
from workstack.components.identity import WorkloadIdentity
from workstack.components.manifests import SpecError
from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.network import build_storage_egress
from workstack.components.manifests.pods import PodStorage
from workstack.components.manifests.storage import BucketSettings, bucket_pod_storage

__all__ = ["BucketSettings", "BucketStorage", "BucketStorageArgs"]


@dataclass(kw_only=True, frozen=True)
class BucketStorageArgs:
    """Arguments for :class:`BucketStorage`.

    Attributes:
        cluster: The cluster whose workloads use the bucket; its kind picks the backend (S3 on
            EKS, GCS on GKE, an S3-compatible endpoint for minikube).
        settings: Name, versioning and (minikube) the endpoint and its keys; checked for the
            cluster's cloud.
        identities: Workload identities granted read and write access to the bucket's objects.
        force_destroy: Let ``pulumi destroy`` delete a bucket that still holds objects. Turn
            on for ephemeral stacks; off, a non-empty bucket survives to protect the data.
    """

    cluster: KubernetesCluster
    settings: BucketSettings = field(default_factory=BucketSettings)
    identities: tuple[WorkloadIdentity, ...] = ()
    force_destroy: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", self.settings.validated_for(cloud=self.cluster.cloud))


class BucketStorage(pulumi.ComponentResource):
    """A bucket that workloads read inputs from and write outputs to.

    - EKS: an S3 bucket with public access blocked, default encryption, optional versioning,
      incomplete multipart uploads expired, and each identity's IAM role allowed to list the
      bucket and get, put and delete its objects.
    - GKE: a GCS bucket with uniform bucket-level access and public access prevention, each
      identity's Google service account granted ``roles/storage.objectUser`` on it.
    - minikube: an existing bucket on an S3-compatible endpoint; its credentials go into a
      Kubernetes Secret from Pulumi secrets and into the pods' environment.

    No static cloud key is created, stored or exported.
    """

    bucket_name: pulumi.Output[str]
    """The bucket's name."""

    url: pulumi.Output[str]
    """``s3://<name>`` or ``gs://<name>``: what ``workstack.sdk.storage`` opens."""

    pod_storage: PodStorage
    """What workload builders add to their pods to reach the bucket."""

    def __init__(
        self, name: str, args: BucketStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:storage:BucketStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster = args.cluster
        self._name = name
        self._s3_bucket: aws.s3.Bucket | None = None
        self._gcs_bucket: gcp.storage.Bucket | None = None
        if isinstance(cluster, EksCluster):
            self._s3_bucket = self._s3(name, args, child)
            self.bucket_name = self._s3_bucket.bucket
            self.url = self.bucket_name.apply(lambda bucket: f"s3://{bucket}")
            self.pod_storage = bucket_pod_storage(self.url)
        elif isinstance(cluster, GkeCluster):
            self._gcs_bucket = self._gcs(name, args, cluster, child)
            self.bucket_name = self._gcs_bucket.name
            self.url = self.bucket_name.apply(lambda bucket: f"gs://{bucket}")
            self.pod_storage = bucket_pod_storage(self.url)
        else:
            settings = args.settings
            assert settings.name is not None
            assert settings.access_key_id is not None
            assert settings.secret_access_key is not None
            self.bucket_name = pulumi.Output.from_input(settings.name)
            # The bucket exists already and may serve several stacks (a preview and the
            # stack it copies): each keeps its data under its own namespace.
            self.url = pulumi.Output.from_input(f"s3://{settings.name}/{cluster.namespace_name}")
            secret = f"{name}-s3-endpoint"
            create_object(
                f"{name}-credentials",
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": secret,
                        "namespace": cluster.namespace_name,
                        "labels": standard_labels(
                            name="workstack", instance=name, component="storage"
                        ),
                    },
                    "type": "Opaque",
                    "stringData": pulumi.Output.secret(
                        {
                            "AWS_ACCESS_KEY_ID": settings.access_key_id.get_secret_value(),
                            "AWS_SECRET_ACCESS_KEY": settings.secret_access_key.get_secret_value(),
                            "AWS_ENDPOINT_URL_S3": settings.endpoint,
                        }
                    ),
                },
                cluster.options_for(self),
            )
            self.pod_storage = bucket_pod_storage(self.url, credentials_secret=secret)
        # Under the workload namespace's default deny, the bucket's clients reach its HTTPS
        # endpoints (outside the cluster's ranges), or minikube's S3-compatible endpoint.
        endpoint = (
            args.settings.endpoint if not isinstance(cluster, EksCluster | GkeCluster) else None
        )
        for policy in build_storage_egress(
            name=f"{name}-egress",
            namespace=cluster.namespace_name,
            instance=name,
            endpoint=endpoint,
        ):
            create_object(f"{policy['metadata']['name']}-policy", policy, cluster.options_for(self))
        for identity in args.identities:
            self.grant(identity, child)
        self.register_outputs({"bucket_name": self.bucket_name, "url": self.url})

    def grant(self, identity: WorkloadIdentity, opts: pulumi.ResourceOptions) -> None:
        """Let ``identity`` list the bucket and read, write and delete its objects.

        For identities made after the bucket (an Argo workflow service account, say). On
        minikube there is nothing to grant: the endpoint's credentials are in a Secret.

        Raises:
            SpecError: The identity belongs to another kind of cluster.
        """
        name = f"{self._name}-access-{identity.service_account}"
        if self._s3_bucket is not None:
            if identity.aws_role is None:
                raise SpecError(
                    "identities",
                    identity.service_account,
                    "expected identities of this EKS cluster",
                )
            aws.iam.RolePolicy(
                name,
                role=identity.aws_role.name,
                policy=self._s3_bucket.arn.apply(_s3_access_policy),
                opts=opts,
            )
        elif self._gcs_bucket is not None:
            account = identity.google_service_account
            if account is None:
                raise SpecError(
                    "identities",
                    identity.service_account,
                    "expected identities of this GKE cluster",
                )
            gcp.storage.BucketIAMMember(
                name,
                bucket=self._gcs_bucket.name,
                role="roles/storage.objectUser",
                member=account.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=opts,
            )

    @staticmethod
    def _s3(name: str, args: BucketStorageArgs, child: pulumi.ResourceOptions) -> aws.s3.Bucket:
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.settings.name,
            # Without a name, a unique one is generated from this prefix.
            bucket_prefix=None if args.settings.name else "workstack-",
            force_destroy=args.force_destroy,
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={
                "status": "Enabled" if args.settings.versioning else "Suspended"
            },
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "abort-incomplete-uploads",
                    "status": "Enabled",
                    "filter": {},
                    # An upload cut off mid-way is never visible, but its parts cost money.
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                }
            ],
            opts=child,
        )
        return bucket

    @staticmethod
    def _gcs(
        name: str, args: BucketStorageArgs, cluster: GkeCluster, child: pulumi.ResourceOptions
    ) -> gcp.storage.Bucket:
        bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            name=args.settings.name,
            project=cluster.project,
            location=(args.settings.location or cluster.region).upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=args.force_destroy,
            versioning={"enabled": args.settings.versioning},
            lifecycle_rules=[
                {
                    "action": {"type": "AbortIncompleteMultipartUpload"},
                    "condition": {"age": 1},
                }
            ],
            opts=child,
        )
        return bucket


def _s3_access_policy(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                # GetBucketLocation: SDK clients (Argo's artifact driver among them) ask for
                # the bucket's region before they use it.
                {
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                    "Resource": bucket_arn,
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": f"{bucket_arn}/*",
                },
            ],
        }
    )
