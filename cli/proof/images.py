"""Every image a stack runs is known, pinned by digest, and built for its nodes.

Third-party images are those the stack does not build: images in pod specs of every object
(custom resources included), the images of every chart and bundle pod (from the facts
table), the image a RabbitmqCluster runs (``spec.image`` or the operator's default), Argo's
executor in every workflow pod, and the base images workload builds start from. Each must
be in ``upstream.IMAGES`` and pulled by a digest that table records from an authoritative
source: a tag can be moved, and an old image format (Docker schema 1) is refused by
containerd 2 (containerd#9765). Workload images (``docker-build:index:Image``) must name
their ``platforms``: without it BuildKit builds for the deploying machine's platform
(pulumi-docker-build ``image.go`` "Defaults to the host's platform"), and an arm64 laptop
ships images an amd64 node cannot run ("exec format error"); on GKE and EKS the platform
must be the nodes' (``upstream.NODE_TYPES``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from workstack.components.manifests.upstream import IMAGES, NODE_TYPES, RABBITMQ_DEFAULT_IMAGE
from workstack.offline import Deployment, Secret
from workstack.policy import pod_templates
from workstack.proof.charts import bundle_uses, holds
from workstack.proof.findings import Finding, StackContext

__all__ = ["ImageUse", "image_findings", "image_uses", "platform_findings"]

_BUILD = "docker-build:index:Image"


@dataclass(frozen=True)
class ImageUse:
    """An image reference a stack uses, where, and the digest it is pinned to (if any)."""

    ref: str
    where: str
    digest: str | None


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _split(image: str) -> tuple[str, str | None]:
    """``repo:tag@sha256:...`` -> (``repo:tag``, ``sha256:...``)."""
    ref, _, digest = image.partition("@")
    return ref, digest or None


def _built(deployment: Deployment) -> set[str]:
    """References of the images the stack builds itself (tags of its image builds)."""
    return {
        _split(str(tag))[0]
        for resource in deployment.of_type(_BUILD)
        for tag in _plain(resource.inputs.get("tags")) or []
    }


def _object_images(obj: Mapping[str, Any]) -> Iterator[ImageUse]:
    for template in pod_templates(dict(obj)):
        for key in ("initContainers", "containers"):
            for container in template.spec.get(key) or []:
                image = container.get("image")
                if isinstance(image, str):
                    ref, digest = _split(image)
                    yield ImageUse(
                        ref, f"{template.source} container {container.get('name')}", digest
                    )
    if obj.get("kind") == "RabbitmqCluster":
        name = (obj.get("metadata") or {}).get("name")
        image = (obj.get("spec") or {}).get("image")
        ref, digest = _split(image) if isinstance(image, str) else (RABBITMQ_DEFAULT_IMAGE, None)
        where = "spec.image" if image else "the operator's default (spec.image unset)"
        yield ImageUse(ref, f"RabbitmqCluster/{name} {where}", digest)


def image_uses(deployment: Deployment) -> list[ImageUse]:
    """Every third-party image the stack runs or builds on."""
    uses: list[ImageUse] = []
    objects = [_plain(o) for o in deployment.kubernetes_objects()]
    kinds = {f"{str(o.get('apiVersion')).rpartition('/')[0]}/{o.get('kind')}" for o in objects}
    for obj in objects:
        uses += _object_images(obj)
    for use in bundle_uses(deployment):
        if use.bundle is None:
            continue
        for pod in use.bundle.pods:
            if holds(use, pod.when):
                uses.append(
                    _chart_image(use.value, pod.image, pod.image_tag_key, f"{use.label} {pod.name}")
                )
        for image in use.bundle.images:
            if image.used_by in kinds:
                where = f"{use.label}: every {image.used_by.split('/')[1]} pod"
                uses.append(_chart_image(use.value, image.image, image.image_tag_key, where))
    for resource in deployment.of_type(_BUILD):
        base = (_plain(resource.inputs.get("buildArgs")) or {}).get("BASE_IMAGE")
        if isinstance(base, str):
            ref, digest = _split(base)
            uses.append(ImageUse(ref, f"{resource.name} builds FROM it", digest))
    built = _built(deployment)
    return [use for use in uses if use.ref not in built]


def _chart_image(value: Any, image: str, tag_key: str | None, where: str) -> ImageUse:
    """A chart image; a ``tag@sha256:`` in its tag value pins it."""
    tag = value(tag_key) if tag_key else None
    if isinstance(tag, str) and "@" in tag:
        ref, digest = _split(f"{image.rpartition(':')[0]}:{tag}")
        return ImageUse(ref, where, digest)
    return ImageUse(image, where, None)


def image_findings(deployment: Deployment) -> list[Finding]:
    """Third-party images missing from the table, or not pinned by a verified digest.

    An image without any verified digest (nor a pinned alternative in the table) is reported
    as a warning: nothing in this repository can pin it until a digest is verified.
    """
    by_ref: dict[str, list[ImageUse]] = {}
    for use in image_uses(deployment):
        by_ref.setdefault(use.ref, []).append(use)
    findings = []
    for ref, uses in sorted(by_ref.items()):
        where = "; ".join(sorted({use.where for use in uses}))
        fact = IMAGES.get(ref)
        if fact is None:
            findings.append(
                Finding(
                    "images",
                    ref,
                    f"used by {where}; not in the image table (upstream.IMAGES): add it with "
                    "where it comes from and its digest",
                )
            )
        elif fact.digest is None:
            alternative = IMAGES.get(fact.pinned_alternative or "")
            if alternative is not None:
                findings.append(
                    Finding(
                        "images",
                        ref,
                        f"used by {where}; not pinned ({fact.digest_source}). Use "
                        f"{alternative.ref}@{alternative.digest} ({alternative.digest_source})",
                    )
                )
            else:
                findings.append(
                    Finding(
                        "images",
                        ref,
                        f"used by {where}; not pinned: no verified digest ({fact.digest_source})",
                        severity="warning",
                    )
                )
        elif any(use.digest != fact.digest for use in uses):
            findings.append(
                Finding(
                    "images",
                    ref,
                    f"used by {where} without its verified digest: use {ref}@{fact.digest} "
                    f"({fact.digest_source})",
                )
            )
    return findings


def _node_platforms(deployment: Deployment, context: StackContext) -> set[str]:
    types: list[str] = []
    for pool in deployment.of_type("gcp:container/nodePool:NodePool"):
        types.append(str((pool.inputs.get("nodeConfig") or {}).get("machineType")))
    for group in deployment.of_type("eks:index:ManagedNodeGroup"):
        types += [str(t) for t in group.inputs.get("instanceTypes") or []]
    return {NODE_TYPES[t].arch for t in types if t in NODE_TYPES}


def platform_findings(deployment: Deployment, context: StackContext) -> list[Finding]:
    """Workload images that do not name their platform, or not the nodes' platform."""
    wanted = _node_platforms(deployment, context)
    findings = []
    for resource in deployment.of_type(_BUILD):
        platforms = [str(p) for p in _plain(resource.inputs.get("platforms")) or []]
        if not platforms:
            findings.append(
                Finding(
                    "images",
                    f"{_BUILD} {resource.name}",
                    "names no platforms: BuildKit builds for the deploying machine's platform; "
                    "set platforms to the nodes' ("
                    + (", ".join(sorted(wanted)) or "the cluster's node platform")
                    + ")",
                )
            )
        elif wanted and not wanted <= set(platforms):
            findings.append(
                Finding(
                    "images",
                    f"{_BUILD} {resource.name}",
                    f"is built for {', '.join(platforms)} but the nodes run "
                    f"{', '.join(sorted(wanted))}",
                )
            )
    return findings
