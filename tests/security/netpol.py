"""NetworkPolicy semantics, as the Kubernetes API documents them, to ask a render who reaches what.

- A pod is isolated for a direction once any policy of its namespace selects it with that
  policy type; an isolated pod accepts only what some selecting policy allows (allows add up).
- A connection needs the source's egress and the destination's ingress allowed.
- A peer with ``podSelector`` alone means pods of the policy's namespace; with
  ``namespaceSelector`` (alone or with ``podSelector``), pods of the selected namespaces;
  ``ipBlock`` means addresses (here: traffic that leaves the pod network).
- A rule without ``to``/``from`` admits every peer; without ``ports``, every port.

Named ports and SCTP are not modelled (the renders use neither). Node-originated traffic is
not modelled either: Kubernetes always admits a pod's own node (docs/security.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = "10.8.0.10"  # pod addresses are in the cluster's private ranges


@dataclass(frozen=True)
class Address:
    """An address outside the pod network (a bucket endpoint, an API server, a metadata IP)."""

    ip: str


Peer = Pod | Address


def _matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(rule_peer: Mapping[str, Any], policy_namespace: str, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        address = ipaddress.ip_address(peer.ip)
        if isinstance(peer, Pod):
            return False  # an ipBlock does not select pods of the cluster
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])
    if not isinstance(peer, Pod):
        return False
    if "namespaceSelector" in rule_peer:
        namespace_labels = {"kubernetes.io/metadata.name": peer.namespace}
        if not _matches(rule_peer["namespaceSelector"], namespace_labels):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return _matches(rule_peer.get("podSelector"), peer.labels)


def _port_matches(rule: Mapping[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(
        p.get("protocol", "TCP") == protocol and ("port" not in p or p["port"] == port)
        for p in ports
    )


def _allowed(
    policies: Iterable[Mapping[str, Any]],
    pod: Pod,
    direction: str,
    peer: Peer,
    port: int,
    protocol: str,
) -> bool:
    selecting = [
        p
        for p in policies
        if p["kind"] == "NetworkPolicy"
        and p["metadata"]["namespace"] == pod.namespace
        and direction in p["spec"].get("policyTypes", ["Ingress"])
        and _matches(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True  # not isolated in this direction
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(
                _peer_matches(r, policy["metadata"]["namespace"], peer) for r in peers
            )
            if peer_ok and _port_matches(rule, port, protocol):
                return True
    return False


def reaches(
    objects: Iterable[Mapping[str, Any]],
    source: Pod,
    destination: Peer,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether ``source`` may open a connection to ``destination`` on ``port``."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    if not _allowed(policies, source, "Egress", destination, port, protocol):
        return False
    if isinstance(destination, Pod):
        return _allowed(policies, destination, "Ingress", source, port, protocol)
    return True
