"""Present an offline deployment: Kubernetes objects as YAML, plus cloud resources and charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from workstack.offline import Deployment, RegisteredResource, Secret

__all__ = [
    "SECRET",
    "duplicate_names",
    "present",
    "rendered_objects",
    "summary_lines",
    "to_yaml",
    "write_objects",
]

SECRET = "[secret]"

# The order kubectl and Helm apply kinds in: what others depend on comes first.
_KIND_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
]
_CHART_TYPES = ("kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Release")
_MANIFEST_TYPES = ("kubernetes:yaml/v2:ConfigFile", "kubernetes:yaml/v2:ConfigGroup")


def present(value: Any) -> Any:
    """Replace secret values by ``[secret]``; a secret mapping keeps its keys visible."""
    if isinstance(value, Secret):
        inner = value.value
        if isinstance(inner, dict):
            return {key: SECRET for key in inner}
        return SECRET
    if isinstance(value, dict):
        return {key: present(item) for key, item in value.items()}
    if isinstance(value, list):
        return [present(item) for item in value]
    return value


def _sort_key(obj: dict[str, Any]) -> tuple[int, str, str, str]:
    kind = obj.get("kind", "")
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    meta = obj.get("metadata", {})
    return rank, kind, meta.get("namespace", ""), meta.get("name", "")


def rendered_objects(deployment: Deployment) -> list[dict[str, Any]]:
    """Every Kubernetes object of the deployment, secrets masked, in apply order."""
    return sorted((present(obj) for obj in deployment.kubernetes_objects()), key=_sort_key)


def duplicate_names(objects: list[dict[str, Any]]) -> list[str]:
    """Objects that would overwrite each other: the same group, kind, namespace and name.

    The API server keeps one object per name; a second ``apply`` (or Pulumi's create) of the
    same name fails with a conflict on the cluster, or silently replaces the first.
    """
    seen: dict[tuple[str, str, str, str], int] = {}
    for obj in objects:
        group = obj.get("apiVersion", "").rpartition("/")[0]
        meta = obj.get("metadata", {})
        key = (group, obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
        seen[key] = seen.get(key, 0) + 1
    return [
        f"{kind}/{name}"
        + (f" in namespace {namespace}" if namespace else "")
        + f" is defined {count} times"
        for (_, kind, namespace, name), count in sorted(seen.items())
        if count > 1
    ]


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """Objects as one multi-document YAML stream."""
    return yaml.safe_dump_all(objects, sort_keys=True, explicit_start=True)


def write_objects(objects: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write one YAML file per object under ``out``, numbered in apply order."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, obj in enumerate(objects, start=1):
        meta = obj.get("metadata", {})
        parts = [
            f"{index:03d}",
            obj["kind"].lower(),
            meta.get("namespace", ""),
            meta.get("name", ""),
        ]
        path = out / ("-".join(part for part in parts if part) + ".yaml")
        path.write_text(yaml.safe_dump(obj, sort_keys=True))
        written.append(path)
    return written


def _compact(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resource_line(resource: RegisteredResource) -> str:
    props = present(resource.inputs)
    shown = ", ".join(f"{key}={_compact(value)}" for key, value in sorted(props.items()))
    return f"{resource.type}  {resource.name}  {shown}".rstrip()


def summary_lines(deployment: Deployment) -> list[str]:
    """Cloud resources, Helm charts, manifest bundles and stack outputs, one line each."""
    cloud = [
        r
        for r in deployment.resources
        if r.custom and not r.type.startswith(("kubernetes:", "pulumi:providers:"))
    ]
    # Components from other packages (pulumi_eks) stand for the cloud resources inside them.
    remote = [
        r
        for r in deployment.resources
        if not r.custom and r.type.split(":")[0] not in ("workstack", "kubernetes")
    ]
    charts = [r for r in deployment.resources if r.type in _CHART_TYPES]
    manifests = [r for r in deployment.resources if r.type in _MANIFEST_TYPES]

    lines = [f"Cloud resources ({len(cloud) + len(remote)}):"]
    ordered = sorted([*remote, *cloud], key=lambda r: (r.type, r.name))
    lines += [f"  {_resource_line(r)}" for r in ordered] or ["  (none)"]
    lines.append(f"Helm charts ({len(charts)}):")
    for chart in charts:
        inputs = present(chart.inputs)
        repo = (inputs.get("repositoryOpts") or {}).get("repo", "")
        lines.append(
            f"  {chart.name}: chart={inputs.get('chart')} repo={repo} "
            f"version={inputs.get('version')} values={_compact(inputs.get('values', {}), 400)}"
        )
    if not charts:
        lines.append("  (none)")
    if manifests:
        lines.append(f"Manifest bundles ({len(manifests)}):")
        lines += [f"  {m.name}: {_compact(present(m.inputs), 400)}" for m in manifests]
    lines.append("Stack outputs:")
    for key, value in sorted(deployment.outputs.items()):
        lines.append(f"  {key}: {_compact(present(value))}")
    return lines
