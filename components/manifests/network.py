"""NetworkPolicies: the workload namespace denies all traffic, and each pattern allows its own.

NetworkPolicies add up: a pod selected by any policy of a direction accepts only what one of
them allows. The namespace gets a default deny for both directions and the allows every pod
needs (DNS, the cloud's metadata endpoint for workload identity); each component adds what its
pods need (the broker's clients, the Dask scheduler's clients, the operators' calls to the API
server, the bucket's HTTPS endpoints). Policies are stateful: replies need no rule.

What a NetworkPolicy cannot express (traffic a node originates, such as NFS mounts by the
kubelet) is in docs/security.md, with the reasons and sources.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.validation import SpecError, require_dns1123_label

__all__ = [
    "API_SERVER_PORTS",
    "CLUSTER_PRIVATE_RANGES",
    "DNS_SELECTOR",
    "METADATA_ENDPOINTS",
    "STORAGE_CLIENTS",
    "WORKFLOW_PODS",
    "build_api_server_egress",
    "build_default_deny",
    "build_dns_egress",
    "build_egress_deny",
    "build_endpoint_egress",
    "build_https_egress",
    "build_metadata_egress",
    "build_namespace_policies",
    "build_storage_egress",
    "endpoint_port",
]

DNS_SELECTOR = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
"""The cluster DNS pods: CoreDNS on minikube (kubeadm) and EKS, kube-dns on GKE; all three
label them ``k8s-app: kube-dns`` in ``kube-system``. A policy sees the pod behind the
``kube-dns`` Service's ClusterIP (it is evaluated after the Service's address translation)."""

API_SERVER_PORTS = (443, 6443, 8443)
"""Ports the API server's endpoints listen on, as a policy sees them (after the ``kubernetes``
Service's translation of 443): 443 on GKE and EKS, 6443 under kubeadm, 8443 on minikube."""

METADATA_ENDPOINTS: dict[str, tuple[tuple[str, int], ...]] = {
    # GKE Workload Identity: the GKE metadata server answers on 169.254.169.254:80; with
    # network policy enforcement, GKE's Workload Identity documentation also asks for
    # 169.254.169.252:988 (where the metadata server listens on the node).
    "gke": (("169.254.169.254/32", 80), ("169.254.169.252/32", 988)),
    # EKS Pod Identity: the agent on each node serves credentials on 169.254.170.23:80
    # (awsdocs/amazon-eks-user-guide@4d52b4d0 manage-access/aws-access/service-accounts.adoc
    # :196 and :300). IRSA needs only STS (HTTPS, public). The instance metadata service
    # (169.254.169.254) is not allowed: pods must not reach the node role's credentials.
    "eks": (("169.254.170.23/32", 80),),
    "minikube": (),
}
"""Link-local endpoints pods need for their cloud identity, per cloud."""

CLUSTER_PRIVATE_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
)
"""Ranges excluded from the public HTTPS egress: every private (RFC 1918), shared (RFC 6598)
and link-local range, which hold the pod, Service and node addresses of GKE, EKS and minikube
clusters (the cluster's own ranges are not known before it exists; these contain them)."""


STORAGE_CLIENTS: dict[str, dict[str, Any]] = {
    "workload": {"matchLabels": {"app.kubernetes.io/part-of": "workstack"}},
    "workflow": {
        "matchExpressions": [{"key": "workflows.argoproj.io/workflow", "operator": "Exists"}]
    },
}
"""Pods that read and write the stack's bucket: workstack's own (every builder labels them
``part-of: workstack``) and Argo's workflow pods (labelled with their workflow by Argo's
controller, ``common.LabelKeyWorkflow``), whose steps and executor use it."""

WORKFLOW_PODS: dict[str, Any] = STORAGE_CLIENTS["workflow"]
"""Argo's workflow pods: their executor calls the API server (workflowtaskresults)."""


def _metadata(name: str, namespace: str, instance: str) -> dict[str, Any]:
    return {
        "name": require_dns1123_label("name", name),
        "namespace": require_dns1123_label("namespace", namespace),
        "labels": standard_labels(name="workstack", instance=instance, component="network"),
    }


def _policy(
    name: str,
    namespace: str,
    instance: str,
    *,
    pods: Mapping[str, Any] | None = None,
    ingress: Sequence[dict[str, Any]] | None = None,
    egress: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    types = [
        kind for kind, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None
    ]
    spec: dict[str, Any] = {"podSelector": dict(pods or {}), "policyTypes": types}
    if ingress is not None:
        spec["ingress"] = list(ingress)
    if egress is not None:
        spec["egress"] = list(egress)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(name, namespace, instance),
        "spec": spec,
    }


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def build_default_deny(*, namespace: str, instance: str) -> dict[str, Any]:
    """Every pod of the namespace: no traffic in or out but what another policy allows."""
    return _policy("default-deny", namespace, instance, pods={}, ingress=[], egress=[])


def build_egress_deny(*, namespace: str, instance: str) -> dict[str, Any]:
    """Every pod of the namespace: no connection out (replies to connections in still flow)."""
    return _policy("deny-egress", namespace, instance, pods={}, egress=[])


def build_dns_egress(*, namespace: str, instance: str) -> dict[str, Any]:
    """Every pod may ask the cluster DNS (53 over UDP and TCP), and nothing else by this rule."""
    ports = [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]
    return _policy(
        "allow-dns", namespace, instance, pods={}, egress=[{"to": [DNS_SELECTOR], "ports": ports}]
    )


def build_metadata_egress(*, namespace: str, instance: str, cloud: str) -> dict[str, Any] | None:
    """Every pod may reach its cloud's identity endpoint (GKE, EKS); None on minikube."""
    if cloud not in METADATA_ENDPOINTS:
        raise SpecError("cloud", cloud, "expected one of: " + ", ".join(METADATA_ENDPOINTS))
    endpoints = METADATA_ENDPOINTS[cloud]
    if not endpoints:
        return None
    rules = [{"to": [{"ipBlock": {"cidr": cidr}}], "ports": _tcp(port)} for cidr, port in endpoints]
    return _policy("allow-cloud-identity", namespace, instance, pods={}, egress=rules)


def build_api_server_egress(
    *, name: str, namespace: str, instance: str, pods: Mapping[str, Any]
) -> dict[str, Any]:
    """The selected pods (operators, Argo's executor) may call the Kubernetes API server.

    The API server's addresses are not known before the cluster exists (GKE's control plane,
    EKS's control-plane interfaces in the VPC, minikube's node), so the rule names its ports
    only, for these pods only.
    """
    if not pods:
        raise SpecError("pods", dict(pods), "select the pods that call the API server")
    return _policy(
        name, namespace, instance, pods=pods, egress=[{"ports": _tcp(*API_SERVER_PORTS)}]
    )


def build_https_egress(
    *, name: str, namespace: str, instance: str, pods: Mapping[str, Any]
) -> dict[str, Any]:
    """The selected pods may open HTTPS connections outside the cluster (a bucket's endpoints).

    443 to every address but the private, shared and link-local ranges, which hold the
    cluster's own pods, Services and nodes: a workload reaches the bucket, not the cluster.
    """
    block = {"cidr": "0.0.0.0/0", "except": list(CLUSTER_PRIVATE_RANGES)}
    rules = [{"to": [{"ipBlock": block}], "ports": _tcp(443)}]
    return _policy(name, namespace, instance, pods=pods, egress=rules)


def endpoint_port(url: str) -> int:
    """The TCP port of an ``http(s)://host[:port]`` endpoint (80 or 443 when not given)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError("endpoint", url, "expected http(s)://host[:port]")
    try:
        port = parts.port
    except ValueError:
        raise SpecError("endpoint", url, "expected a port between 1 and 65535") from None
    return port or (443 if parts.scheme == "https" else 80)


def build_endpoint_egress(
    *, name: str, namespace: str, instance: str, pods: Mapping[str, Any], url: str
) -> dict[str, Any]:
    """The selected pods may reach an S3-compatible endpoint given by URL (minikube's bucket).

    The endpoint may be a Service in the cluster (MinIO) or a host outside it, whose address
    is not known here: the rule names its port.
    """
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    to = [{"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}] if address else None
    rule: dict[str, Any] = {"ports": _tcp(endpoint_port(url))}
    if to:
        rule["to"] = to
    return _policy(name, namespace, instance, pods=pods, egress=[rule])


def build_storage_egress(
    *, name: str, namespace: str, instance: str, endpoint: str | None = None
) -> list[dict[str, Any]]:
    """The bucket's clients may reach it: its HTTPS endpoints, or an S3-compatible ``endpoint``."""
    policies = []
    for role, pods in STORAGE_CLIENTS.items():
        policy_name = f"{name}-{role}"
        if endpoint is None:
            policies.append(
                build_https_egress(
                    name=policy_name, namespace=namespace, instance=instance, pods=pods
                )
            )
        else:
            policies.append(
                build_endpoint_egress(
                    name=policy_name,
                    namespace=namespace,
                    instance=instance,
                    pods=pods,
                    url=endpoint,
                )
            )
    return policies


def build_namespace_policies(*, namespace: str, instance: str, cloud: str) -> list[dict[str, Any]]:
    """What every workload namespace gets: deny all, then DNS and the cloud identity endpoint."""
    policies = [
        build_default_deny(namespace=namespace, instance=instance),
        build_dns_egress(namespace=namespace, instance=instance),
    ]
    metadata = build_metadata_egress(namespace=namespace, instance=instance, cloud=cloud)
    return [*policies, *([metadata] if metadata else [])]
