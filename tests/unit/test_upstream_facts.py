"""The facts table itself: every entry sourced, every pinned version of the components in it."""

from __future__ import annotations

import re

from workstack.components.manifests.argo import ARGO_CHART, ARGO_CHART_VERSION, ARGO_REPO
from workstack.components.manifests.dask import (
    DASK_OPERATOR_CHART,
    DASK_OPERATOR_REPO,
    DASK_OPERATOR_VERSION,
)
from workstack.components.manifests.queue import KEDA_CHART, KEDA_CHART_VERSION, KEDA_REPO
from workstack.components.manifests.rabbitmq import RABBITMQ_OPERATOR_MANIFEST
from workstack.components.manifests.upstream import BUNDLES, IMAGES, NODE_TYPES, SYSTEM_PODS


def test_every_bundle_the_components_pin_is_in_the_table() -> None:
    """A version bump without new facts fails here before it fails on a cluster."""
    pinned = {
        f"chart:{ARGO_REPO}/{ARGO_CHART}@{ARGO_CHART_VERSION}",
        f"chart:{KEDA_REPO}/{KEDA_CHART}@{KEDA_CHART_VERSION}",
        f"chart:{DASK_OPERATOR_REPO}/{DASK_OPERATOR_CHART}@{DASK_OPERATOR_VERSION}",
        f"manifest:{RABBITMQ_OPERATOR_MANIFEST}",
    }
    assert pinned == set(BUNDLES)


def test_every_fact_names_its_source() -> None:
    for bundle in BUNDLES.values():
        assert bundle.exists
        for key in bundle.values:
            assert key.source, f"{bundle.name} {key.path}"
        for source in bundle.crds:
            assert source.source
            assert source.kinds
        for pod in bundle.pods:
            assert pod.source, f"{bundle.name} {pod.name}"
            assert pod.image in IMAGES, f"{bundle.name} {pod.name}"
        for image in bundle.images:
            assert image.image in IMAGES
        for obj in bundle.cluster_objects:
            assert obj.source, f"{bundle.name} {obj.kind}/{obj.name}"
    for node in NODE_TYPES.values():
        assert node.basis
    for pod in SYSTEM_PODS:
        assert pod.basis


def test_digests_are_recorded_only_with_an_authoritative_source() -> None:
    for image in IMAGES.values():
        assert image.digest_source
        if image.digest is not None:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", image.digest), image.ref
        if image.pinned_alternative is not None:
            assert IMAGES[image.pinned_alternative].digest is not None
    verified = {ref for ref, image in IMAGES.items() if image.digest}
    assert verified == {"registry.k8s.io/e2e-test-images/volume/nfs:1.6.0"}
