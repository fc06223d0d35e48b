"""Argo Workflows in the workload namespace, and pipelines deployed to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from workstack.components._locations import check_reachable
from workstack.components._objects import create_object
from workstack.components.bucket import BucketStorage
from workstack.components.cluster import KubernetesCluster
from workstack.components.eks import EksCluster
from workstack.components.gke import GkeCluster
from workstack.components.identity import WorkloadIdentity, WorkloadIdentityArgs
from workstack.components.image import ImageInput, ImageRef
from workstack.components.manifests import SpecError, require_choice
from workstack.components.manifests.argo import (
    ARGO_CHART,
    ARGO_CHART_VERSION,
    ARGO_REPO,
    WORKFLOW_SERVICE_ACCOUNT,
    ArgoExportSpec,
    argo_values,
    build_argo_workflow,
    build_executor_token,
    gcs_artifact_repository,
    s3_artifact_repository,
)
from workstack.components.manifests.network import WORKFLOW_PODS, build_api_server_egress
from workstack.components.manifests.pods import PodStorage
from workstack.sdk.describe import describe_pipeline
from workstack.sdk.pipeline import Pipeline, PipelineError
from workstack.sdk.workload import WorkloadError, load_workload

__all__ = ["ArgoPipeline", "ArgoPipelineArgs", "ArgoWorkflows", "ArgoWorkflowsArgs"]


@dataclass(kw_only=True, frozen=True)
class ArgoWorkflowsArgs:
    """Arguments for :class:`ArgoWorkflows`.

    Attributes:
        cluster: Where Argo runs: its controller and server live in, and only watch, the
            cluster's workload namespace.
        bucket: The stack's bucket, to hold workflow artifacts and logs through the workflow
            service account's identity (GKE and EKS); None, or on minikube, no artifact
            repository.
        install_crds: Install Argo's CRDs (cluster-wide). Turn off when another stack on the
            same cluster installed them: destroying this one then leaves them in place.
    """

    cluster: KubernetesCluster
    bucket: BucketStorage | None = None
    install_crds: bool = True


class ArgoWorkflows(pulumi.ComponentResource):
    """The argo-workflows chart (pinned), namespaced, plus the service account steps run as.

    The chart runs in single-namespace mode with namespaced Roles only; its executor runs
    under the restricted profile. The workflow service account is a ``WorkloadIdentity``
    with the ``argo-step`` permission set (create and patch ``workflowtaskresults``), and,
    on GKE and EKS, the cloud identity that reaches the stack's bucket, which is the default
    artifact repository.
    """

    identity: WorkloadIdentity
    """The service account workflow steps run as."""

    server_command: pulumi.Output[str]
    """The ``kubectl port-forward`` command that opens the Argo UI on localhost:2746."""

    def __init__(
        self, name: str, args: ArgoWorkflowsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:workflow:ArgoWorkflows", name, None, opts)
        cluster = args.cluster
        namespace = cluster.namespace_name
        self.identity = WorkloadIdentity(
            f"{name}-workflow-identity",
            WorkloadIdentityArgs(
                cluster=cluster, service_account=WORKFLOW_SERVICE_ACCOUNT, permissions="argo-step"
            ),
            pulumi.ResourceOptions(parent=self),
        )
        # The executor's API token, mounted only into Argo's own containers of each step.
        create_object(
            f"{name}-executor-token",
            build_executor_token(service_account=WORKFLOW_SERVICE_ACCOUNT, namespace=namespace),
            cluster.options_for(self, self.identity),
        )
        repository: Any = None
        # Artifacts go to a cloud bucket through the workflow identity; on minikube (an
        # endpoint reached with keys) there is no artifact repository: steps share /data.
        if args.bucket is not None and isinstance(cluster, GkeCluster | EksCluster):
            args.bucket.grant(self.identity, pulumi.ResourceOptions(parent=self))
            repository = args.bucket.bucket_name.apply(
                lambda bucket: _artifact_repository(cluster, bucket)
            )
        k8s.helm.v4.Chart(
            f"{name}-chart",
            name=ARGO_CHART,  # the release name: resources are called argo-workflows-*
            chart=ARGO_CHART,
            version=ARGO_CHART_VERSION,
            repository_opts={"repo": ARGO_REPO},
            namespace=namespace,
            values=_values(namespace, repository, install_crds=args.install_crds),
            opts=cluster.options_for(self),
        )
        # The controller, the server and every workflow pod's executor call the API server.
        for suffix, pods in (
            ("argo-api", {"matchLabels": {"app.kubernetes.io/part-of": ARGO_CHART}}),
            ("workflow-api", WORKFLOW_PODS),
        ):
            create_object(
                f"{name}-{suffix}-policy",
                build_api_server_egress(
                    name=f"{name}-{suffix}", namespace=namespace, instance=name, pods=pods
                ),
                cluster.options_for(self),
            )
        self.server_command = pulumi.Output.from_input(
            f"kubectl port-forward -n {namespace} svc/{ARGO_CHART}-server 2746:2746"
        )
        self.register_outputs({"server_command": self.server_command})


def _values(namespace: str, repository: Any, *, install_crds: bool) -> Any:
    if repository is None:
        return argo_values(namespace, install_crds=install_crds)
    return pulumi.Output.from_input(repository).apply(
        lambda resolved: argo_values(
            namespace, install_crds=install_crds, artifact_repository=resolved
        )
    )


def _artifact_repository(cluster: KubernetesCluster, bucket: str) -> pulumi.Output[dict[str, Any]]:
    """Argo's artifact repository for the stack's bucket, credentials from the identity."""
    if isinstance(cluster, GkeCluster):
        # Without serviceAccountKeySecret, Argo uses the pod's Workload Identity.
        return pulumi.Output.from_input(gcs_artifact_repository(bucket))
    if isinstance(cluster, EksCluster):
        return cluster.region.apply(lambda region: s3_artifact_repository(bucket, region))
    raise SpecError(
        "bucket", bucket, "an artifact repository needs a GKE or EKS bucket reached by identity"
    )


@dataclass(kw_only=True, frozen=True)
class ArgoPipelineArgs:
    """Arguments for :class:`ArgoPipeline`.

    Attributes:
        argo: The Argo installation that runs it.
        cluster: The cluster Argo runs in.
        image: The pipeline workload's image: a ``WorkloadImage`` or a reference.
        workload_dir: The pipeline workload's folder; its entrypoint builds the DAG, read in
            a child process (the workload's code is never imported into the program).
        data_url: Root of the steps' paths: a path under ``/data`` or a bucket URL.
        storage: Storages every step mounts.
        kind: ``WorkflowTemplate`` (submit runs with ``argo submit --from``) or
            ``Workflow`` (runs when deployed).
    """

    argo: ArgoWorkflows
    cluster: KubernetesCluster
    image: ImageInput
    workload_dir: str
    data_url: str
    storage: tuple[PodStorage, ...] = ()
    kind: str = "WorkflowTemplate"
    entrypoint: str = field(init=False)
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        ImageRef.of(self.image)
        require_choice("kind", self.kind, ("WorkflowTemplate", "Workflow"))
        check_reachable("data_url", self.data_url, self.storage)
        try:
            workload = load_workload(self.workload_dir)
            pipeline = describe_pipeline(workload.folder, workload.spec.entrypoint)
        except (WorkloadError, PipelineError) as error:
            raise SpecError("workload_dir", self.workload_dir, str(error)) from None
        object.__setattr__(self, "entrypoint", workload.spec.entrypoint)
        object.__setattr__(self, "pipeline", pipeline)


class ArgoPipeline(pulumi.ComponentResource):
    """A pipeline deployed as an Argo WorkflowTemplate (or a Workflow that runs at once)."""

    name: str
    """Name of the WorkflowTemplate (the pipeline's name)."""

    def __init__(
        self, name: str, args: ArgoPipelineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:workflow:ArgoPipeline", name, None, opts)
        image = ImageRef.of(args.image)
        spec = ArgoExportSpec(
            pipeline=args.pipeline,
            entrypoint=args.entrypoint,
            image=image.ref,
            pull_policy=image.pull_policy,
            namespace=args.cluster.namespace_name,
            data_url=args.data_url,
            kind=args.kind,
            storage=args.storage,
            service_account=args.argo.identity.service_account,
        )
        document = build_argo_workflow(spec)
        if args.kind == "Workflow":
            # Pulumi needs a fixed name; a changed pipeline replaces the Workflow.
            document["metadata"]["name"] = document["metadata"].pop("generateName").rstrip("-")
        self.name = document["metadata"]["name"]
        create_object(
            f"{name}-{args.kind.lower()}",
            document,
            args.cluster.options_for(self, args.argo),
        )
        self.register_outputs({"name": self.name})
