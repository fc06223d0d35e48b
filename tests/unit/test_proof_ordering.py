"""Ordering on the registered graph: cluster references, providers, claims and their classes.

Each case is a reduction of a violation issue 12 names (items 4, 5, 6): the EKS Pod Identity
association and EFS add-on given the cluster name as a plain string, the GKE
workloadIdentityUser binding made before the pool exists, claims on EKS with no default
StorageClass. The check walks ``depends_on`` and providers transitively, as the engine waits.
"""

from __future__ import annotations

import dataclasses
import json

from workstack.offline import RegisteredResource
from workstack.proof.graph import ResourceGraph, urn_key
from workstack.proof.ordering import (
    claim_findings,
    cluster_reference_findings,
    nfs_destroy_findings,
    provider_findings,
)

from .synthetic import PROVIDER_TYPE, context, deployment, k8s, res, urn

EKS = res("eks:index:Cluster", "cluster-eks", {"name": "workstack-eks"})
NODES = res("eks:index:ManagedNodeGroup", "cluster-nodes", {"cluster": urn(EKS.type, EKS.name)},
            waits=[EKS])  # fmt: skip
PROVIDER = res(PROVIDER_TYPE, "cluster-provider", {}, waits=[EKS, NODES])


def association(*waits: RegisteredResource) -> RegisteredResource:
    return res(
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "workload-pod-identity",
        {"clusterName": "workstack-eks", "namespace": "ns", "serviceAccount": "sa"},
        waits=waits,
    )


def test_urns_and_provider_references_name_their_resource() -> None:
    assert urn_key(urn("aws:iam/role:Role", "r")) == ("aws:iam/role:Role", "r")
    assert urn_key(urn(PROVIDER_TYPE, "p") + "::p-id") == (PROVIDER_TYPE, "p")


def test_a_pod_identity_association_given_the_name_as_text_does_not_wait() -> None:
    """Issue 12 item 5: cluster_name=args.cluster_name, a plain string: no dependency."""
    bad = deployment(EKS, association())
    [finding] = cluster_reference_findings(bad, ResourceGraph.of(bad))
    assert "workload-pod-identity" in finding.subject
    assert "does not wait for it" in finding.message


def test_waiting_through_another_resource_counts() -> None:
    """The EBS add-on waits for the node group, which waits for the cluster: fine."""
    addon = res(
        "aws:eks/addon:Addon",
        "ebs",
        {"clusterName": "workstack-eks", "addonName": "aws-ebs-csi-driver"},
        waits=[NODES],
    )
    ok = deployment(EKS, NODES, addon, association(EKS))
    assert cluster_reference_findings(ok, ResourceGraph.of(ok)) == []


def test_a_workload_identity_binding_waits_for_the_gke_cluster() -> None:
    """Issue 12 item 6: 'Identity Pool does not exist' until a WI cluster created it."""
    cluster = res("gcp:container/cluster:Cluster", "cluster", {"name": "workstack-gke"})
    binding = res(
        "gcp:serviceaccount/iAMMember:IAMMember",
        "wi",
        {"role": "roles/iam.workloadIdentityUser", "member": "serviceAccount:p.svc.id.goog[ns/sa]"},
    )
    bad = deployment(cluster, binding)
    assert len(cluster_reference_findings(bad, ResourceGraph.of(bad))) == 1
    fixed = res(binding.type, binding.name, binding.inputs, waits=[cluster])
    ok = deployment(cluster, fixed)
    assert cluster_reference_findings(ok, ResourceGraph.of(ok)) == []


def test_objects_need_the_cluster_provider_and_it_needs_the_nodes() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
    ambient = deployment(EKS, NODES, PROVIDER, k8s(namespace, provider=None))
    [finding] = provider_findings(ambient, ResourceGraph.of(ambient))
    assert "ambient kubeconfig" in finding.message
    early = res(PROVIDER_TYPE, "cluster-provider", {}, waits=[EKS])
    bad = deployment(EKS, NODES, early, k8s(namespace))
    [finding] = provider_findings(bad, ResourceGraph.of(bad))
    assert "node pool" in finding.message
    ok = deployment(EKS, NODES, PROVIDER, k8s(namespace))
    assert provider_findings(ok, ResourceGraph.of(ok)) == []


def claim(storage_class: str | None = None, **kwargs: object) -> RegisteredResource:
    spec: dict[str, object] = {"accessModes": ["ReadWriteOnce"]}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "disk", "namespace": "ns"},
        "spec": spec,
    }
    return k8s(obj, **kwargs)  # type: ignore[arg-type]


def test_claims_on_eks_need_a_default_class_someone_provides() -> None:
    """Issue 12 item 4: EKS 1.30+ marks no StorageClass default."""
    plain = res("aws:eks/addon:Addon", "ebs", {"addonName": "aws-ebs-csi-driver"}, waits=[NODES])
    bad = deployment(EKS, NODES, PROVIDER, plain, claim(waits=[PROVIDER]))
    [finding] = claim_findings(bad, ResourceGraph.of(bad), context("eks"))
    assert "no default StorageClass" in finding.message
    values = json.dumps({"defaultStorageClass": {"enabled": True}})
    ebs = res(plain.type, "ebs", {**plain.inputs, "configurationValues": values}, waits=[NODES])
    waits = deployment(EKS, NODES, PROVIDER, ebs, claim(waits=[ebs]))
    assert claim_findings(waits, ResourceGraph.of(waits), context("eks")) == []
    early = deployment(EKS, NODES, PROVIDER, ebs, claim())
    [finding] = claim_findings(early, ResourceGraph.of(early), context("eks"))
    assert "does not wait for ebs" in finding.message


def test_a_default_storage_class_object_counts_when_waited_for() -> None:
    storage_class = k8s(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "gp3",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "ebs.csi.aws.com",
        }
    )
    ok = deployment(storage_class, claim(waits=[storage_class]))
    assert claim_findings(ok, ResourceGraph.of(ok), context("eks")) == []


def test_built_in_classes_and_filestore() -> None:
    assert claim_findings(deployment(claim()), ResourceGraph.of(deployment()), context("gke")) == []
    assert (
        claim_findings(deployment(claim()), ResourceGraph.of(deployment()), context("minikube"))
        == []
    )
    no_driver = deployment(
        res("gcp:container/cluster:Cluster", "c", {"name": "c"}), claim("standard-rwx")
    )
    [finding] = claim_findings(no_driver, ResourceGraph.of(no_driver), context("gke"))
    assert "Filestore" in finding.message
    unknown = deployment(claim("fast"))
    assert len(claim_findings(unknown, ResourceGraph.of(unknown), context("minikube"))) == 1


def test_rabbitmq_clusters_make_claims() -> None:
    broker = k8s(
        {
            "apiVersion": "rabbitmq.com/v1beta1",
            "kind": "RabbitmqCluster",
            "metadata": {"name": "rabbitmq", "namespace": "ns"},
            "spec": {"persistence": {"storage": "10Gi"}},
        }
    )
    [finding] = claim_findings(
        deployment(broker), ResourceGraph.of(deployment(broker)), context("eks")
    )
    assert finding.subject == "RabbitmqCluster/rabbitmq"


def test_static_and_efs_volumes() -> None:
    volume = k8s(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "ns-disk"},
            "spec": {
                "claimRef": {"namespace": "ns", "name": "disk"},
                "csi": {"driver": "efs.csi.aws.com", "volumeHandle": "fs"},
            },
        }
    )
    bad = deployment(volume, claim(""))
    found = claim_findings(bad, ResourceGraph.of(bad), context("eks"))
    assert {f.subject for f in found} == {"PersistentVolume/ns-disk", "PersistentVolumeClaim/disk"}
    efs = res("aws:eks/addon:Addon", "efs", {"addonName": "aws-efs-csi-driver"})
    waiting = k8s(volume.inputs, waits=[efs])
    ok = deployment(efs, waiting, claim("", waits=[waiting]))
    assert claim_findings(ok, ResourceGraph.of(ok), context("eks")) == []


def _nfs_stack(consumer_parent: RegisteredResource | None) -> list[RegisteredResource]:
    """An NFS server, its volume and claim, and a Deployment that mounts the claim."""
    server = k8s(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "nfs-server", "namespace": "ns-nfs"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "nfs", "image": "nfs", "ports": [{"containerPort": 2049}]}
                        ]
                    }
                }
            },
        },
        "nfs-server",
    )
    volume = k8s(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "ns-shared-data"},
            "spec": {
                "nfs": {"server": "nfs-server.ns-nfs", "path": "/"},
                "claimRef": {"namespace": "ns", "name": "shared-data"},
            },
        },
        "nfs-volume",
    )
    consumer = k8s(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "dask-worker", "namespace": "ns"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "worker", "image": "app"}],
                        "volumes": [
                            {"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}}
                        ],
                    }
                }
            },
        },
        "dask-worker",
    )
    if consumer_parent is not None:
        consumer = dataclasses.replace(
            consumer, parent=urn(consumer_parent.type, consumer_parent.name)
        )
        return [server, volume, consumer_parent, consumer]
    return [server, volume, consumer]


def test_what_mounts_the_nfs_share_must_be_destroyed_before_its_server() -> None:
    """Nothing orders the worker before the server: destroy may delete the server first."""
    bad = deployment(*_nfs_stack(None))
    [finding] = nfs_destroy_findings(bad, ResourceGraph.of(bad))
    assert finding.subject == "Deployment/dask-worker"
    assert "nfs-server" in finding.message


def test_a_parent_that_depends_on_the_server_orders_its_children_too() -> None:
    """The engine deletes a parent after its children, and the server after the parent."""
    resources = _nfs_stack(None)
    component = res("workstack:dask:DaskCluster", "dask", {}, waits=[resources[0]])
    ok = deployment(*_nfs_stack(component))
    assert nfs_destroy_findings(ok, ResourceGraph.of(ok)) == []
