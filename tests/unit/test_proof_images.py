"""Images: every third-party image is in the table and pinned by a verified digest;
workload images name the nodes' platform.

Issue 12: the NFS server ran ``registry.k8s.io/volume-nfs:0.8`` by tag (a 2016 image;
containerd 2 refuses Docker schema 1), and workload images were built for whatever machine
ran ``pulumi up``. The table records a verified digest only where an authoritative source
gives one (the registry promoter manifest for the e2e NFS image).
"""

from __future__ import annotations

from workstack.components.manifests.argo import ARGO_CHART, ARGO_CHART_VERSION, ARGO_REPO
from workstack.components.manifests.upstream import IMAGES
from workstack.offline import RegisteredResource
from workstack.proof.images import image_findings, image_uses, platform_findings

from .synthetic import chart, context, deployment, deployment_object, k8s, res

NFS_160 = "registry.k8s.io/e2e-test-images/volume/nfs:1.6.0"


def running(image: str) -> RegisteredResource:
    spec = {"containers": [{"name": "main", "image": image}]}
    return k8s(deployment_object("server", 1, spec))


def test_an_image_missing_from_the_table_is_an_error() -> None:
    [finding] = image_findings(deployment(running("docker.io/library/busybox:1.36")))
    assert finding.severity == "error"
    assert "not in the image table" in finding.message


def test_the_old_nfs_image_is_an_error_naming_the_pinned_alternative() -> None:
    [finding] = image_findings(deployment(running("registry.k8s.io/volume-nfs:0.8")))
    assert finding.severity == "error"
    assert f"{NFS_160}@{IMAGES[NFS_160].digest}" in finding.message


def test_a_table_image_must_be_pulled_by_its_verified_digest() -> None:
    [finding] = image_findings(deployment(running(NFS_160)))
    assert "without its verified digest" in finding.message
    assert image_findings(deployment(running(f"{NFS_160}@{IMAGES[NFS_160].digest}"))) == []


def test_an_image_no_source_gives_a_digest_for_is_a_warning() -> None:
    [finding] = image_findings(deployment(running("ghcr.io/rabbitmq/cluster-operator:2.21.1")))
    assert finding.severity == "warning"
    assert "no verified digest" in finding.message


def test_chart_images_come_from_the_facts_table_and_images_the_stack_builds_do_not_count() -> None:
    argo = chart("argo", ARGO_REPO, ARGO_CHART, ARGO_CHART_VERSION, {})
    template = k8s(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "p"},
            "spec": {"templates": [{"name": "s", "container": {"image": "workstack/p:abc"}}]},
        }
    )
    build = res("docker-build:index:Image", "p-image", {"tags": ["workstack/p:abc"]})
    refs = {use.ref for use in image_uses(deployment(argo, template, build))}
    assert refs == {
        "quay.io/argoproj/workflow-controller:v4.1.0",
        "quay.io/argoproj/argocli:v4.1.0",
        "quay.io/argoproj/argoexec:v4.1.0",
    }


def test_a_chart_image_pinned_through_its_tag_value() -> None:
    digest = "sha256:" + "0" * 64
    argo = chart(
        "argo",
        ARGO_REPO,
        ARGO_CHART,
        ARGO_CHART_VERSION,
        {"controller": {"image": {"tag": f"v4.1.0@{digest}"}}},
    )
    [controller] = [u for u in image_uses(deployment(argo)) if "controller" in u.where]
    assert (controller.ref, controller.digest) == (
        "quay.io/argoproj/workflow-controller:v4.1.0",
        digest,
    )


def test_workload_images_name_the_nodes_platform() -> None:
    pool = res("eks:index:ManagedNodeGroup", "nodes", {"instanceTypes": ["m6i.large"]})
    unnamed = res("docker-build:index:Image", "app", {"tags": ["r/app:1"]})
    [finding] = platform_findings(deployment(pool, unnamed), context("eks"))
    assert "names no platforms" in finding.message
    assert "linux/amd64" in finding.message
    arm = res(
        "docker-build:index:Image", "app", {"tags": ["r/app:1"], "platforms": ["linux/arm64"]}
    )
    [finding] = platform_findings(deployment(pool, arm), context("eks"))
    assert "nodes run linux/amd64" in finding.message
    amd = res(
        "docker-build:index:Image", "app", {"tags": ["r/app:1"], "platforms": ["linux/amd64"]}
    )
    assert platform_findings(deployment(pool, amd), context("eks")) == []
