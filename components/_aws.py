"""IAM roles that Kubernetes service accounts on EKS assume, without any static key."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

__all__ = ["ServiceAccountRole", "service_account_role"]


def _pod_identity_trust() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "pods.eks.amazonaws.com"},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                }
            ],
        }
    )


def _irsa_trust(provider_arn: str, issuer: str, subject: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": subject,
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
    )


@dataclass(frozen=True)
class ServiceAccountRole:
    """An IAM role for one service account, and what must exist before pods can assume it.

    Attributes:
        role: The role.
        ready: The Pod Identity association (``pod-identity``); empty with IRSA, where the
            service account's annotation is the link.
    """

    role: aws.iam.Role
    ready: tuple[pulumi.Resource, ...] = ()


def service_account_role(
    name: str,
    *,
    identity: str,
    cluster_name: pulumi.Input[str],
    namespace: str,
    service_account: str,
    oidc_provider_arn: pulumi.Output[str] | None,
    oidc_issuer: pulumi.Output[str] | None,
    opts: pulumi.ResourceOptions,
) -> ServiceAccountRole:
    """An IAM role that exactly one Kubernetes service account can assume.

    With ``pod-identity`` the role trusts the EKS Pod Identity service and an association ties
    it to the service account. With ``irsa`` the role trusts the cluster's OIDC provider for
    that one service account's token; the service account must carry the role ARN in its
    ``eks.amazonaws.com/role-arn`` annotation.

    Args:
        name: Pulumi name prefix of the role (and association).
        identity: ``pod-identity`` or ``irsa``.
        cluster_name: The EKS cluster's name, as an output of the cluster, so that the
            association waits for the cluster to exist.
        namespace: Namespace of the service account.
        service_account: The service account's name.
        oidc_provider_arn: The cluster's IAM OIDC provider (``irsa`` only).
        oidc_issuer: Its issuer host and path (``irsa`` only).
        opts: Options for the created resources (parent, provider).
    """
    if identity == "irsa":
        if oidc_provider_arn is None or oidc_issuer is None:
            raise ValueError("IRSA needs the cluster's OIDC provider")
        subject = f"system:serviceaccount:{namespace}:{service_account}"
        trust = pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
            lambda parts: _irsa_trust(parts[0], parts[1], subject)
        )
        return ServiceAccountRole(aws.iam.Role(f"{name}-role", assume_role_policy=trust, opts=opts))

    role = aws.iam.Role(f"{name}-role", assume_role_policy=_pod_identity_trust(), opts=opts)
    association = aws.eks.PodIdentityAssociation(
        f"{name}-pod-identity",
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        opts=opts,
    )
    return ServiceAccountRole(role, (association,))
