"""Kubeconfig documents for clusters whose provider does not hand one out."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["GKE_AUTH_PLUGIN", "build_gke_kubeconfig"]

GKE_AUTH_PLUGIN = "gke-gcloud-auth-plugin"


def build_gke_kubeconfig(*, context: str, endpoint: str, ca_certificate: str) -> str:
    """Build a kubeconfig for a GKE cluster that authenticates with ``gke-gcloud-auth-plugin``.

    No token is embedded: the plugin fetches a short-lived one from the caller's gcloud
    credentials each time, so the kubeconfig itself grants nothing.

    Args:
        context: Name for the cluster, user and context entries.
        endpoint: The control plane's IP address or host name (without scheme).
        ca_certificate: Base64-encoded cluster CA certificate, as GKE reports it.

    Returns:
        The kubeconfig as a YAML string.
    """
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {
                    "server": f"https://{endpoint}",
                    "certificate-authority-data": ca_certificate,
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "users": [
            {
                "name": context,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": GKE_AUTH_PLUGIN,
                        "installHint": (
                            "Install gke-gcloud-auth-plugin: "
                            "gcloud components install gke-gcloud-auth-plugin"
                        ),
                        "provideClusterInfo": True,
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)
