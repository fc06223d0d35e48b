"""Argo Workflows: a pipeline as a Workflow (or WorkflowTemplate), and the chart's settings.

The Workflow is assembled from hera's models of the Argo API, so every field is checked
against Argo's own types, and each step's container comes from ``build_pod_spec``, so steps
carry the same security defaults, resources and storage mounts as every other workload pod.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hera.workflows import models

from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.pods import ContainerSpec, PodStorage, Resources, build_pod_spec
from workstack.components.manifests.security import pod_security_context
from workstack.components.manifests.validation import require_choice, require_dns1123_label
from workstack.sdk.pipeline import Pipeline, Step

__all__ = [
    "ARGO_CHART",
    "ARGO_CHART_VERSION",
    "ARGO_REPO",
    "ARTIFACT_KEY_FORMAT",
    "WORKFLOW_SERVICE_ACCOUNT",
    "ArgoExportSpec",
    "argo_values",
    "build_argo_workflow",
    "build_executor_token",
    "executor_token_name",
    "gcs_artifact_repository",
    "s3_artifact_repository",
]

ARGO_CHART = "argo-workflows"
ARGO_REPO = "https://argoproj.github.io/argo-helm"
ARGO_CHART_VERSION = "2.0.1"
"""Chart 2.0.1 ships Argo Workflows v4.1.0, whose CRDs the tests validate against."""

WORKFLOW_SERVICE_ACCOUNT = "argo-workflow"
_STAND_IN = "__workstack_opaque_{}__"
_KINDS = ("Workflow", "WorkflowTemplate")
_RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(kw_only=True, frozen=True)
class ArgoExportSpec:
    """A pipeline as Argo runs it.

    Attributes:
        pipeline: The pipeline.
        entrypoint: The workload's ``module:builder`` that returns the pipeline in the image.
        image: The workload image (may be a Pulumi output).
        pull_policy: The image's pull policy (``Never`` for an image loaded into minikube).
        namespace: Namespace of the Workflow.
        data_url: Root every step's paths are relative to: a path under ``/data`` (NFS) or an
            ``s3://``/``gs://`` URL.
        kind: ``Workflow`` (runs once it is created) or ``WorkflowTemplate`` (run it with
            ``argo submit --from workflowtemplate/<name>``).
        storage: Storages every step mounts.
        service_account: Service account of the step pods (needs ``argo-step`` rights).
        ttl_seconds_after_finished: Delete a finished Workflow after this long.
        labels: Extra labels on the Workflow.
    """

    pipeline: Pipeline
    entrypoint: str
    image: Any
    namespace: str
    data_url: str
    pull_policy: str = "IfNotPresent"
    kind: str = "Workflow"
    storage: Sequence[PodStorage] = field(default_factory=tuple)
    service_account: str = WORKFLOW_SERVICE_ACCOUNT
    ttl_seconds_after_finished: int = 86_400
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_choice("kind", self.kind, _KINDS)
        require_dns1123_label("namespace", self.namespace)
        require_dns1123_label("service_account", self.service_account)


class _Opaque:
    """Values hera's models cannot check, such as Pulumi outputs (an image, a bucket URL).

    They are swapped for stand-in strings while the models validate, and back afterwards.
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def hide(self, value: Any) -> Any:
        """``value`` with every non-JSON leaf replaced by a stand-in string."""
        if isinstance(value, dict):
            return {key: self.hide(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.hide(item) for item in value]
        if value is None or isinstance(value, str | int | float | bool):
            return value
        stand_in = _STAND_IN.format(len(self._values))
        self._values[stand_in] = value
        return stand_in

    def restore(self, value: Any) -> Any:
        """``value`` with the stand-ins replaced by what they stood for."""
        if isinstance(value, dict):
            return {key: self.restore(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.restore(item) for item in value]
        if isinstance(value, str) and value in self._values:
            return self._values[value]
        return value


def _template(spec: ArgoExportSpec, step: Step, opaque: _Opaque) -> models.Template:
    container = ContainerSpec(
        name="main",
        image=spec.image,
        command=("workstack",),
        args=(
            "pipeline",
            "step",
            "--entrypoint",
            spec.entrypoint,
            "--step",
            step.name,
            "--data",
            spec.data_url,
        ),
        resources=Resources(cpu=step.cpu, memory=step.memory, cpu_limit=step.cpu),
        pull_policy=spec.pull_policy,
    )
    built = build_pod_spec(containers=[container], storage=list(spec.storage))["containers"][0]
    built.pop("name")  # Argo names the step's container "main" itself
    built = opaque.hide(built)
    retry = (
        models.RetryStrategy(limit=models.IntOrString(root=step.retries), retry_policy="OnFailure")
        if step.retries
        else None
    )
    return models.Template(
        name=step.name,
        container=models.Container.model_validate(built),
        retry_strategy=retry,
    )


def build_argo_workflow(spec: ArgoExportSpec) -> dict[str, Any]:
    """The Workflow (or WorkflowTemplate): a DAG with one task per step, as declared."""
    pipeline = spec.pipeline
    opaque = _Opaque()
    pod = build_pod_spec(
        containers=[ContainerSpec(name="main", image="unused")], storage=list(spec.storage)
    )
    dag = models.DAGTemplate(
        tasks=[
            models.DAGTask(
                name=step.name,
                template=step.name,
                dependencies=list(pipeline.dependencies(step)) or None,
            )
            for step in pipeline.steps
        ]
    )
    labels = standard_labels(
        name=pipeline.name, instance=pipeline.name, component="pipeline", extra=spec.labels
    )
    workflow_spec = models.WorkflowSpec(
        entrypoint="pipeline",
        service_account_name=spec.service_account,
        # The step's own code gets no API token: only Argo's executor containers (init,
        # wait) need one, to report results. With automount off, Argo mounts the executor
        # service account's token Secret into those containers alone (argo-workflows v4.1.0
        # workflow/controller/workflowpod.go setupServiceAccount/newExecContainer; the
        # Secret is build_executor_token's). Cloud identity is unaffected: GKE's metadata
        # server and EKS's injected web-identity token do not use the automounted token.
        automount_service_account_token=False,
        executor=models.ExecutorConfig(service_account_name=spec.service_account),
        security_context=models.PodSecurityContext.model_validate(pod_security_context()),
        volumes=[models.Volume.model_validate(opaque.hide(volume)) for volume in pod["volumes"]],
        # No podGC: step pods stay (for `workstack logs`) until the TTL deletes the Workflow,
        # which owns them, as finished Jobs keep theirs until jobTtlSeconds.
        ttl_strategy=models.TTLStrategy(seconds_after_completion=spec.ttl_seconds_after_finished),
        templates=[
            models.Template(name="pipeline", dag=dag),
            *(_template(spec, step, opaque) for step in pipeline.steps),
        ],
    )
    metadata = models.ObjectMeta(namespace=spec.namespace, labels=labels)
    if spec.kind == "Workflow":
        metadata.generate_name = f"{pipeline.name}-"
        document = models.Workflow(
            api_version="argoproj.io/v1alpha1",
            kind="Workflow",
            metadata=metadata,
            spec=workflow_spec,
        ).model_dump(by_alias=True, exclude_none=True, mode="json")
    else:
        metadata.name = pipeline.name
        document = models.WorkflowTemplate(
            api_version="argoproj.io/v1alpha1",
            kind="WorkflowTemplate",
            metadata=metadata,
            spec=workflow_spec,
        ).model_dump(by_alias=True, exclude_none=True, mode="json")
    restored: dict[str, Any] = opaque.restore(document)
    return restored


def executor_token_name(service_account: str) -> str:
    """The token Secret Argo looks up for an executor service account without one listed.

    ``<name>.service-account-token``: argo-workflows v4.1.0 util/secrets/secret_name.go
    ``TokenName`` (docs/service-account-secrets.md, "Discovery By Name").
    """
    return f"{service_account}.service-account-token"


def build_executor_token(*, service_account: str, namespace: str) -> dict[str, Any]:
    """The token Secret of the workflow service account, for Argo's executor containers.

    Kubernetes 1.24+ no longer makes one per service account; the token controller fills in
    a Secret of type ``kubernetes.io/service-account-token`` that names the account (and
    deletes it if the account does not exist, so it is created after the account).
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": executor_token_name(require_dns1123_label("service_account", service_account)),
            "namespace": require_dns1123_label("namespace", namespace),
            "annotations": {"kubernetes.io/service-account.name": service_account},
            "labels": standard_labels(
                name="workstack", instance=service_account, component="argo-executor"
            ),
        },
    }


def argo_values(
    namespace: str,
    *,
    install_crds: bool = True,
    artifact_repository: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Helm values for Argo Workflows limited to one namespace, restricted pods throughout.

    ``singleNamespace`` gives the controller and server namespaced Roles and ``--namespaced``
    (``controller.workflowNamespaces`` applies only without it); aggregate roles and
    ClusterWorkflowTemplate access (ClusterRoles) are off. The workflow service account is
    made by workstack (``WorkloadIdentity`` with ``argo-step`` rights), not by the chart.

    CRDs: with the chart's default ``crds.full: true`` they are installed by a pre-install
    hook Job, which ``helm.v4.Chart`` never runs (pulumi-kubernetes
    ``provider/pkg/provider/helm/v4/chart.go``: ``DisableHooks = true``), so the chart's
    plain-template minimal CRDs are used (``crds.full: false``), deleted with the stack
    (``crds.keep: false``; ``keep`` would make Pulumi retain them on destroy).

    Args:
        namespace: The namespace Argo runs in and watches.
        install_crds: Install the CRDs (cluster-wide); off when another stack on the same
            cluster owns them.
        artifact_repository: The default artifact repository (e.g. the stack's bucket,
            reached through workload identity), or None for none. The chart renders it
            whenever one of its ``s3``/``gcs``/``azure`` keys is set.
    """
    pod_security = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    values: dict[str, Any] = {
        "singleNamespace": True,
        "createAggregateRoles": False,
        "crds": {"install": install_crds, "full": False, "keep": False},
        "workflow": {"serviceAccount": {"create": False}, "rbac": {"create": False}},
        "controller": {
            "clusterWorkflowTemplates": {"enabled": False},
            "podSecurityContext": pod_security,
        },
        "server": {
            "clusterWorkflowTemplates": {"enabled": False},
            "podSecurityContext": pod_security,
        },
        "executor": {"securityContext": _RESTRICTED_CONTAINER},
        "useStaticCredentials": False,
    }
    if artifact_repository is not None:
        values["artifactRepository"] = dict(artifact_repository)
    return values


ARTIFACT_KEY_FORMAT = "argo/{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}"
"""Where Argo stores a step's artifacts and logs in the bucket (Argo's own template syntax)."""


def gcs_artifact_repository(bucket: str) -> dict[str, Any]:
    """A GCS artifact repository reached through the pod's Workload Identity.

    The chart passes the whole ``gcs`` map through Helm's ``tpl``, so the key format's Argo
    braces are wrapped in a Helm string action, as the chart's own values.yaml shows
    (argo-helm ``templates/controller/workflow-controller-config-map.yaml``).
    """
    escaped = '{{ "' + ARTIFACT_KEY_FORMAT + '" }}'
    return {"archiveLogs": True, "gcs": {"bucket": bucket, "keyFormat": escaped}}


def s3_artifact_repository(bucket: str, region: str) -> dict[str, Any]:
    """An S3 artifact repository reached through the pod's IAM role (SDK credentials).

    ``s3.keyFormat`` is quoted, not passed through ``tpl``, so it stays as Argo reads it.
    """
    return {
        "archiveLogs": True,
        "s3": {
            "bucket": bucket,
            "endpoint": "s3.amazonaws.com",
            "region": region,
            "keyFormat": ARTIFACT_KEY_FORMAT,
            "useSDKCreds": True,
            "encryptionOptions": {"enableEncryption": True},
        },
    }
