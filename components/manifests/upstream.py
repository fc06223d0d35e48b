"""Facts about what the stacks install and run, taken from upstream at the pinned versions.

One table per pinned Helm chart and manifest bundle (:data:`BUNDLES`), one for every
third-party image (:data:`IMAGES`), one for the node types the stacks support
(:data:`NODE_TYPES`) and the system pods that share those nodes (:data:`SYSTEM_PODS`).
The offline proof (``workstack.proof``) checks renders against them: the values keys a
component sets exist, every custom resource's CRD is installed by something Pulumi applies,
values that go through Helm's ``tpl`` hold no raw ``{{``, what runs fits the nodes, globally
scoped names differ between stacks, and every image is listed and pinned.

Every entry names its source. Notation: ``owner/repo@ref:path:lines``. Where a fact could not
be read at the pinned version the entry says what was read instead and why (see
``docs/deploying.md``, "What the offline proof checks"). The research behind these tables is
``/work/research/chart-facts.md`` and ``pulumi-cloud-facts.md`` (kept outside the repository).

Nothing here imports Pulumi: these are plain data and small pure helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "BUNDLES",
    "CLUSTER_STORAGE_CLASSES",
    "EBS_DEFAULT_CLASS",
    "FILESTORE_CLASSES",
    "IMAGES",
    "NODE_TYPES",
    "RABBITMQ_DEFAULT_IMAGE",
    "RABBITMQ_DEFAULT_RESOURCES",
    "RABBITMQ_SETUP_CONTAINER",
    "SYSTEM_PODS",
    "Bundle",
    "ChartImage",
    "ChartPod",
    "ClusterObject",
    "CrdSource",
    "ImageFact",
    "NodeType",
    "SystemPod",
    "ValueKey",
    "gke_allocatable",
    "lookup",
    "nodeadm_allocatable",
]

CrdVia = Literal["hook", "templates", "crds-dir", "manifest"]
Condition = tuple[str, bool]
"""A values path and the truthiness Helm's ``if`` needs it to have."""


@dataclass(frozen=True)
class ValueKey:
    """A values key a chart reads.

    Attributes:
        path: Dotted path, e.g. ``crds.full``.
        default: The chart's default (None when unset or empty).
        opaque: A free-form map or list (a pod securityContext, a list of args): the keys
            below it are not the chart's own.
        tpl: The chart renders it through Helm's ``tpl``: a raw ``{{`` is a template call.
        source: Where this is stated.
    """

    path: str
    default: Any = None
    opaque: bool = False
    tpl: bool = False
    source: str = ""


@dataclass(frozen=True)
class CrdSource:
    """How a bundle installs some CRDs.

    Attributes:
        kinds: ``group/Kind`` of each CRD.
        via: ``hook`` (a Helm hook Job: ``helm.v4.Chart`` renders with hooks disabled, so it
            never runs), ``templates`` (ordinary templates), ``crds-dir`` (the chart's
            ``crds/`` folder, applied unless ``skipCrds``) or ``manifest`` (a document of a
            manifest bundle).
        when: Values conditions under which this path is taken.
        source: Where this is stated.
    """

    kinds: tuple[str, ...]
    via: CrdVia
    when: tuple[Condition, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class ChartPod:
    """A pod a bundle runs, and what it requests.

    Attributes:
        name: Which pod (``controller``).
        cpu_m: Default CPU request, millicores.
        memory_mib: Default memory request, MiB.
        replicas: Default replicas.
        replicas_key: Values path overriding the replicas.
        resources_key: Values path of the pod's ``resources`` (its ``requests`` override the
            defaults).
        when: Values conditions under which the pod exists.
        image: The image reference it runs (a key of :data:`IMAGES`).
        image_tag_key: Values path whose value may pin the image by digest (``tag@sha256:``).
        source: Where this is stated.
    """

    name: str
    cpu_m: int
    memory_mib: int
    image: str
    replicas: int = 1
    replicas_key: str | None = None
    resources_key: str | None = None
    when: tuple[Condition, ...] = ()
    image_tag_key: str | None = None
    source: str = ""


@dataclass(frozen=True)
class ChartImage:
    """An image a bundle makes other pods run (Argo's executor in every workflow pod)."""

    image: str
    used_by: str
    image_tag_key: str | None = None
    source: str = ""


@dataclass(frozen=True)
class ClusterObject:
    """A cluster-scoped object (or one in a namespace every stack shares) a bundle creates.

    ``{release}`` in a name is the Helm release name.
    """

    kind: str
    name: str
    namespace: str | None = None
    when: tuple[Condition, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Bundle:
    """A pinned Helm chart or manifest bundle and what upstream says about it.

    Attributes:
        key: ``chart:<repo>/<name>@<version>`` or ``manifest:<url>``; how renders find it.
        name: Chart or bundle name.
        version: The pinned version.
        exists: Where the version is shown to exist.
        values: Every values key the components set, plus those a fix would use.
        crds: How its CRDs get installed.
        custom_resources: Custom resources the bundle itself creates (``group/Kind``), whose
            CRDs something else must install.
        pods: The pods it runs.
        images: Images it makes other pods run.
        cluster_objects: Cluster-scoped objects it creates.
        notes: What could not be read at the pinned version, and what was read instead.
    """

    key: str
    name: str
    version: str
    exists: str
    values: tuple[ValueKey, ...] = ()
    crds: tuple[CrdSource, ...] = ()
    custom_resources: tuple[str, ...] = ()
    pods: tuple[ChartPod, ...] = ()
    images: tuple[ChartImage, ...] = ()
    cluster_objects: tuple[ClusterObject, ...] = ()
    notes: str = ""

    def value_key(self, path: str) -> ValueKey | None:
        """The table entry for ``path``, or None."""
        return next((key for key in self.values if key.path == path), None)


def lookup(values: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """The value at a dotted ``path`` in nested ``values``, or ``default``."""
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


# -- argo-workflows 2.0.1 -------------------------------------------------------------------

_ARGO_README = "argoproj/argo-helm@0063e433:charts/argo-workflows/README.md (chart 2.0.1)"
_ARGO_TPL = "argoproj/argo-helm@argo-workflows-1.0.18:charts/argo-workflows/templates"
_ARGO_CM = f"{_ARGO_TPL}/controller/workflow-controller-config-map.yaml"
_ARGO_VALUES = "argoproj/argo-helm@argo-workflows-1.0.18:charts/argo-workflows/values.yaml"
_ARGO_KINDS = (
    "argoproj.io/ClusterWorkflowTemplate",
    "argoproj.io/CronWorkflow",
    "argoproj.io/Workflow",
    "argoproj.io/WorkflowArtifactGCTask",
    "argoproj.io/WorkflowEventBinding",
    "argoproj.io/WorkflowTaskResult",
    "argoproj.io/WorkflowTaskSet",
    "argoproj.io/WorkflowTemplate",
)

_ARGO = Bundle(
    key="chart:https://argoproj.github.io/argo-helm/argo-workflows@2.0.1",
    name="argo-workflows",
    version="2.0.1",
    exists=(
        "argoproj/argo-helm@0063e433:charts/argo-workflows/Chart.yaml: version 2.0.1, "
        "appVersion v4.1.0 (file index); releases 2.0.3/2.0.4 listed in ocf/kubernetes#163"
    ),
    notes=(
        "Only Chart.yaml and README.md are readable at 2.0.1 (the git snapshot ends at tag "
        "argo-workflows-1.0.18): value keys come from the 2.0.1 README's values table; template "
        "behaviour (tpl, CRD templates, ClusterRoles) from the templates at 1.0.18, which the "
        "2.0.1 README's CRD section and 'To 2.0.0' notes agree with."
    ),
    values=(
        ValueKey("singleNamespace", False, source=_ARGO_README),
        ValueKey("createAggregateRoles", True, source=_ARGO_README),
        ValueKey("crds.install", True, source=_ARGO_README),
        ValueKey("crds.keep", True, source=_ARGO_README),
        ValueKey(
            "crds.full",
            True,
            source=f"{_ARGO_README}: 'Full CRDs ... are installed via a pre-install/"
            "pre-upgrade hook Job'",
        ),
        ValueKey("crds.annotations", opaque=True, source=_ARGO_README),
        ValueKey("images.tag", "", source=_ARGO_README),
        ValueKey("workflow.serviceAccount.create", False, source=_ARGO_README),
        ValueKey("workflow.serviceAccount.name", "argo-workflow", source=_ARGO_README),
        ValueKey("workflow.rbac.create", True, source=_ARGO_README),
        ValueKey(
            "controller.workflowNamespaces",
            ["default"],
            opaque=True,
            source=f"{_ARGO_README} ('Only valid when singleNamespace is false')",
        ),
        ValueKey("controller.clusterWorkflowTemplates.enabled", True, source=_ARGO_README),
        ValueKey("controller.podSecurityContext", opaque=True, source=_ARGO_README),
        ValueKey("controller.securityContext", opaque=True, source=_ARGO_README),
        ValueKey("controller.resources", opaque=True, source=_ARGO_README),
        ValueKey("controller.replicas", 1, source=_ARGO_README),
        ValueKey("controller.image.tag", "", source=_ARGO_README),
        ValueKey(
            "controller.extraInitContainers",
            opaque=True,
            tpl=True,
            source=f"{_ARGO_TPL}/controller/workflow-controller-deployment.yaml:43",
        ),
        ValueKey("server.enabled", True, source=_ARGO_README),
        ValueKey("server.clusterWorkflowTemplates.enabled", True, source=_ARGO_README),
        ValueKey("server.podSecurityContext", opaque=True, source=_ARGO_README),
        ValueKey("server.securityContext", opaque=True, source=_ARGO_README),
        ValueKey("server.resources", opaque=True, source=_ARGO_README),
        ValueKey("server.replicas", 1, source=_ARGO_README),
        ValueKey("server.image.tag", "", source=_ARGO_README),
        ValueKey(
            "server.extraInitContainers",
            opaque=True,
            tpl=True,
            source=f"{_ARGO_TPL}/server/server-deployment.yaml:51",
        ),
        ValueKey("executor.securityContext", opaque=True, source=_ARGO_README),
        ValueKey("executor.resources", opaque=True, source=_ARGO_README),
        ValueKey("executor.image.tag", "", source=_ARGO_README),
        ValueKey("executor.image.nonroot", False, source=_ARGO_README),
        ValueKey("mainContainer.resources", opaque=True, source=_ARGO_README),
        ValueKey("useStaticCredentials", True, source=_ARGO_README),
        ValueKey(
            "artifactRepository.archiveLogs", False, source=f"{_ARGO_README}; {_ARGO_CM}:68-69"
        ),
        ValueKey(
            "artifactRepository.gcs",
            opaque=True,
            tpl=True,
            source=f"{_ARGO_CM}:71-72 (gcs: tpl (toYaml .) $); escaping shown at "
            f"{_ARGO_VALUES}:1032",
        ),
        ValueKey("artifactRepository.azure", opaque=True, tpl=True, source=f"{_ARGO_CM}:74-75"),
        ValueKey("artifactRepository.s3.bucket", tpl=True, source=f"{_ARGO_CM}:92"),
        ValueKey(
            "artifactRepository.s3.endpoint",
            "s3.amazonaws.com",
            tpl=True,
            source=f"{_ARGO_CM}:93",
        ),
        ValueKey("artifactRepository.s3.insecure", source=f"{_ARGO_CM}:94"),
        ValueKey(
            "artifactRepository.s3.keyFormat",
            source=f"{_ARGO_CM}:100-101 (| quote, not tpl: Argo's own {{{{...}}}} stay raw)",
        ),
        ValueKey("artifactRepository.s3.region", tpl=True, source=f"{_ARGO_CM}:103-104"),
        ValueKey("artifactRepository.s3.roleARN", source=f"{_ARGO_CM}:106-107"),
        ValueKey("artifactRepository.s3.useSDKCreds", source=f"{_ARGO_CM}:109-110"),
        ValueKey(
            "artifactRepository.s3.encryptionOptions", opaque=True, source=f"{_ARGO_CM}:112-114"
        ),
        ValueKey("artifactRepository.s3.accessKeySecret", opaque=True, tpl=True, source=_ARGO_CM),
        ValueKey("artifactRepository.s3.secretKeySecret", opaque=True, tpl=True, source=_ARGO_CM),
        ValueKey("artifactRepository.s3.caSecret", opaque=True, tpl=True, source=_ARGO_CM),
        ValueKey("artifactRepositoryRef", opaque=True, source=f"{_ARGO_README} (toYaml, no tpl)"),
        ValueKey(
            "extraObjects", opaque=True, tpl=True, source=f"{_ARGO_TPL}/extra-manifests.yaml:4-6"
        ),
    ),
    crds=(
        CrdSource(
            kinds=_ARGO_KINDS,
            via="hook",
            when=(("crds.install", True), ("crds.full", True)),
            source=f"{_ARGO_README}; {_ARGO_TPL}/crds-install-job.yaml:1,50-60 "
            "(helm.sh/hook: pre-install,pre-upgrade)",
        ),
        CrdSource(
            kinds=tuple(k for k in _ARGO_KINDS if k != "argoproj.io/ClusterWorkflowTemplate"),
            via="templates",
            when=(("crds.install", True), ("crds.full", False)),
            source=f"{_ARGO_TPL}/crds.yaml:1-8 (files/crds/minimal/*)",
        ),
        CrdSource(
            kinds=("argoproj.io/ClusterWorkflowTemplate",),
            via="templates",
            when=(
                ("crds.install", True),
                ("crds.full", False),
                ("controller.clusterWorkflowTemplates.enabled", True),
            ),
            source=f"{_ARGO_TPL}/crds.yaml:3 (only with clusterWorkflowTemplates enabled)",
        ),
    ),
    pods=(
        ChartPod(
            "workflow-controller",
            cpu_m=0,
            memory_mib=0,
            image="quay.io/argoproj/workflow-controller:v4.1.0",
            replicas_key="controller.replicas",
            resources_key="controller.resources",
            image_tag_key="controller.image.tag",
            source=f"{_ARGO_README}: controller.resources {{}}, controller.replicas 1",
        ),
        ChartPod(
            "server",
            cpu_m=0,
            memory_mib=0,
            image="quay.io/argoproj/argocli:v4.1.0",
            replicas_key="server.replicas",
            resources_key="server.resources",
            when=(("server.enabled", True),),
            image_tag_key="server.image.tag",
            source=f"{_ARGO_README}: server.enabled true, server.resources {{}}",
        ),
    ),
    images=(
        ChartImage(
            "quay.io/argoproj/argoexec:v4.1.0",
            used_by="argoproj.io/WorkflowTemplate",
            image_tag_key="executor.image.tag",
            source=f"{_ARGO_README}: executor.image argoproj/argoexec, tag = appVersion",
        ),
        ChartImage(
            "quay.io/argoproj/argoexec:v4.1.0",
            used_by="argoproj.io/Workflow",
            image_tag_key="executor.image.tag",
            source=f"{_ARGO_README}: executor.image argoproj/argoexec, tag = appVersion",
        ),
    ),
    cluster_objects=(
        *(
            ClusterObject(
                "CustomResourceDefinition",
                f"{kind.split('/')[1].lower()}s.argoproj.io",
                when=(("crds.install", True), ("crds.full", False)),
                source=f"{_ARGO_TPL}/crds.yaml",
            )
            for kind in _ARGO_KINDS
            if kind != "argoproj.io/ClusterWorkflowTemplate"
        ),
        *(
            ClusterObject(
                "ClusterRole",
                f"{{release}}-{role}",
                when=(("createAggregateRoles", True),),
                source=f"{_ARGO_TPL}/controller/workflow-aggregate-roles.yaml:1",
            )
            for role in ("view", "edit", "admin")
        ),
        ClusterObject(
            "ClusterRoleBinding",
            "{release}-workflow-controller-cluster-template",
            when=(("controller.clusterWorkflowTemplates.enabled", True),),
            source=f"{_ARGO_TPL}/controller/workflow-controller-crb.yaml:28 (not guarded by "
            "singleNamespace)",
        ),
        ClusterObject(
            "ClusterRoleBinding",
            "{release}-server-cluster-template",
            when=(("server.clusterWorkflowTemplates.enabled", True),),
            source=f"{_ARGO_TPL}/server/server-crb.yaml:28",
        ),
        ClusterObject(
            "ClusterRole",
            "{release}-workflow-controller",
            when=(("singleNamespace", False),),
            source=f"{_ARGO_TPL}/controller/workflow-controller-cluster-roles.yaml:3-7",
        ),
        ClusterObject(
            "ClusterRole",
            "{release}-server",
            when=(("singleNamespace", False),),
            source=f"{_ARGO_TPL}/server/server-cluster-roles.yaml:3-7",
        ),
    ),
)

# -- keda 2.20.1 ----------------------------------------------------------------------------

_KEDA = "kedacore/charts@v2.20.1:keda"
_KEDA_KINDS = (
    "eventing.keda.sh/CloudEventSource",
    "eventing.keda.sh/ClusterCloudEventSource",
    "keda.sh/ClusterTriggerAuthentication",
    "keda.sh/ScaledJob",
    "keda.sh/ScaledObject",
    "keda.sh/TriggerAuthentication",
)
_KEDA_BUNDLE = Bundle(
    key="chart:https://kedacore.github.io/charts/keda@2.20.1",
    name="keda",
    version="2.20.1",
    exists=f"{_KEDA}/Chart.yaml:11 version 2.20.1, appVersion 2.20.1 (tag v2.20.1, 355e50df)",
    values=(
        ValueKey("watchNamespace", "", source=f"{_KEDA}/values.yaml:63"),
        ValueKey("crds.install", True, source=f"{_KEDA}/values.yaml:55"),
        ValueKey("rbac.create", True, source=f"{_KEDA}/values.yaml:323"),
        ValueKey("rbac.aggregateToDefaultRoles", False, source=f"{_KEDA}/values.yaml:327"),
        ValueKey("rbac.enabledCustomScaledRefKinds", True, source=f"{_KEDA}/values.yaml:330"),
        ValueKey("rbac.scaledRefKinds", opaque=True, source=f"{_KEDA}/values.yaml:340-344"),
        ValueKey(
            "rbac.controlPlaneServiceAccountsNamespace",
            "kube-system",
            source=f"{_KEDA}/values.yaml:334",
        ),
        ValueKey("metricsServer.enabled", True, source=f"{_KEDA}/values.yaml:159"),
        ValueKey("webhooks.enabled", True, source=f"{_KEDA}/values.yaml:209"),
        ValueKey("operator.replicaCount", 1, source=f"{_KEDA}/values.yaml:95"),
        ValueKey("metricsServer.replicaCount", 1, source=f"{_KEDA}/values.yaml:166"),
        ValueKey("webhooks.replicaCount", 1, source=f"{_KEDA}/values.yaml:239"),
        *(
            ValueKey(f"{group}.{part}", opaque=True, source=f"{_KEDA}/values.yaml:{line}")
            for group, line in (
                ("securityContext", "467-499"),
                ("podSecurityContext", "501-525"),
                ("resources", "546-570"),
            )
            for part in ("operator", "metricServer", "webhooks")
        ),
        ValueKey("image.keda.tag", "", source=f"{_KEDA}/values.yaml:29"),
        ValueKey("image.metricsApiServer.tag", "", source=f"{_KEDA}/values.yaml:36"),
        ValueKey("image.webhooks.tag", "", source=f"{_KEDA}/values.yaml:43"),
        ValueKey("permissions.operator.restrict.secret", False, source=f"{_KEDA}/values.yaml:913"),
        ValueKey(
            "permissions.metricServer.restrict.secret", False, source=f"{_KEDA}/values.yaml:908"
        ),
        ValueKey(
            "certificates.operator.apiServicePatching.enabled",
            None,
            source=f"{_KEDA}/values.yaml:898-902 (documented, commented out); "
            "templates/manager/deployment.yaml:90-92 passes --enable-apiservice-patching",
        ),
        ValueKey("extraObjects", opaque=True, tpl=True, source=f"{_KEDA}/templates (tpl)"),
        ValueKey("clusterName", "kubernetes-default", tpl=True, source=f"{_KEDA}/values.yaml:48"),
    ),
    crds=(
        CrdSource(
            kinds=_KEDA_KINDS,
            via="templates",
            when=(("crds.install", True),),
            source=f"{_KEDA}/templates/crds/crd-*.yaml:1 ({{{{- if .Values.crds.install }}}})",
        ),
    ),
    pods=tuple(
        ChartPod(
            pod,
            cpu_m=100,
            memory_mib=100,
            image=f"ghcr.io/kedacore/{image}:2.20.1",
            replicas_key=f"{replicas}.replicaCount",
            resources_key=f"resources.{part}",
            when=when,
            image_tag_key=f"image.{tag}.tag",
            source=f"{_KEDA}/values.yaml:546-570 (requests cpu 100m, memory 100Mi)",
        )
        for pod, image, replicas, part, tag, when in (
            ("keda-operator", "keda", "operator", "operator", "keda", ()),
            (
                "keda-operator-metrics-apiserver",
                "keda-metrics-apiserver",
                "metricsServer",
                "metricServer",
                "metricsApiServer",
                (("metricsServer.enabled", True),),
            ),
            (
                "keda-admission-webhooks",
                "keda-admission-webhooks",
                "webhooks",
                "webhooks",
                "webhooks",
                (("webhooks.enabled", True),),
            ),
        )
    ),
    cluster_objects=(
        *(
            ClusterObject(
                "CustomResourceDefinition",
                f"{kind.split('/')[1].lower()}s.{kind.split('/')[0]}",
                when=(("crds.install", True),),
                source=f"{_KEDA}/templates/crds/",
            )
            for kind in _KEDA_KINDS
        ),
        ClusterObject(
            "ClusterRole",
            "keda-operator",
            when=(("rbac.create", True),),
            source=f"{_KEDA}/templates/manager/clusterrole.yaml:3-12",
        ),
        ClusterObject(
            "ClusterRoleBinding",
            "keda-operator",
            when=(("rbac.create", True), ("watchNamespace", False)),
            source=f"{_KEDA}/templates/manager/clusterrolebindings.yaml:1-13",
        ),
        ClusterObject(
            "ClusterRole",
            "keda-operator-minimal-cluster-role",
            when=(("rbac.create", True),),
            source=f"{_KEDA}/templates/manager/minimal-rbac.yaml:90-99",
        ),
        ClusterObject(
            "ClusterRoleBinding",
            "keda-operator-minimal",
            when=(("rbac.create", True),),
            source=f"{_KEDA}/templates/manager/minimal-rbac.yaml:149-158",
        ),
        ClusterObject(
            "APIService",
            "v1beta1.external.metrics.k8s.io",
            when=(("metricsServer.enabled", True),),
            source=f"{_KEDA}/templates/metrics-server/apiservice.yaml:1-21",
        ),
        ClusterObject(
            "ClusterRole",
            "keda-operator-external-metrics-reader",
            when=(("metricsServer.enabled", True), ("rbac.create", True)),
            source=f"{_KEDA}/templates/metrics-server/clusterrole.yaml:1-12",
        ),
        ClusterObject(
            "ClusterRoleBinding",
            "keda-operator-system-auth-delegator",
            when=(("metricsServer.enabled", True), ("rbac.create", True)),
            source=f"{_KEDA}/templates/metrics-server/clusterrolebinding.yaml:3-12",
        ),
        ClusterObject(
            "ClusterRoleBinding",
            "keda-operator-hpa-controller-external-metrics",
            when=(("metricsServer.enabled", True), ("rbac.create", True)),
            source=f"{_KEDA}/templates/metrics-server/clusterrolebinding.yaml:45-54",
        ),
        ClusterObject(
            "RoleBinding",
            "keda-operator-auth-reader",
            namespace="kube-system",
            when=(("metricsServer.enabled", True), ("rbac.create", True)),
            source=f"{_KEDA}/templates/metrics-server/clusterrolebinding.yaml:24-34",
        ),
        ClusterObject(
            "ClusterRole",
            "keda-operator-webhook",
            when=(("rbac.create", True),),
            source=f"{_KEDA}/templates/webhooks/clusterrole.yaml:3-12",
        ),
        ClusterObject(
            "ClusterRoleBinding",
            "keda-operator-webhook",
            when=(("rbac.create", True),),
            source=f"{_KEDA}/templates/webhooks/clusterrolebindings.yaml:3-12",
        ),
        ClusterObject(
            "ValidatingWebhookConfiguration",
            "keda-admission",
            when=(("webhooks.enabled", True),),
            source=f"{_KEDA}/templates/webhooks/validatingconfiguration.yaml:1-21",
        ),
    ),
)

# -- dask-kubernetes-operator 2026.3.0 ------------------------------------------------------

_DASK = "dask/helm-chart@gh-pages(4748a3da):dask-kubernetes-operator-2026.3.0.tgz"
_DASK_KINDS = (
    "kubernetes.dask.org/DaskAutoscaler",
    "kubernetes.dask.org/DaskCluster",
    "kubernetes.dask.org/DaskJob",
    "kubernetes.dask.org/DaskWorkerGroup",
)
_DASK_BUNDLE = Bundle(
    key="chart:https://helm.dask.org/dask-kubernetes-operator@2026.3.0",
    name="dask-kubernetes-operator",
    version="2026.3.0",
    exists=(
        "dask/helm-chart@gh-pages(4748a3da):index.yaml lists 2026.3.0, digest "
        "sha256:12d9a707e05eb8a45e46eb6ab49cec19b614200d3b137211e136675621e14ba1 (the tgz "
        "hashes to it)"
    ),
    notes=(
        "The dask-kubernetes git snapshot ends before 2026.3.0: facts come from the published tgz."
    ),
    values=(
        ValueKey("rbac.create", True, source=f"{_DASK}:values.yaml"),
        ValueKey("rbac.cluster", True, source=f"{_DASK}:values.yaml"),
        ValueKey("serviceAccount.create", True, source=f"{_DASK}:values.yaml:10-13"),
        ValueKey(
            "serviceAccount.name",
            "",
            source=f"{_DASK}:values.yaml:10-13; templates/deployment.yaml:26, _helpers.tpl",
        ),
        ValueKey("kopfArgs", ["--all-namespaces"], opaque=True, source=f"{_DASK}:values.yaml"),
        ValueKey("podSecurityContext", opaque=True, source=f"{_DASK}:values.yaml"),
        ValueKey("securityContext", opaque=True, source=f"{_DASK}:values.yaml"),
        ValueKey("resources", opaque=True, source=f"{_DASK}:values.yaml (resources: {{}})"),
        ValueKey("image.tag", "2026.3.0", source=f"{_DASK}:values.yaml"),
    ),
    crds=(
        CrdSource(
            kinds=_DASK_KINDS,
            via="crds-dir",
            source=f"{_DASK}:crds/daskautoscaler.yaml, daskcluster.yaml, daskjob.yaml, "
            "daskworkergroup.yaml",
        ),
    ),
    pods=(
        ChartPod(
            "operator",
            cpu_m=0,
            memory_mib=0,
            image="ghcr.io/dask/dask-kubernetes-operator:2026.3.0",
            resources_key="resources",
            image_tag_key="image.tag",
            source=f"{_DASK}:values.yaml (resources: {{}}), templates/deployment.yaml",
        ),
    ),
    cluster_objects=(
        *(
            ClusterObject(
                "CustomResourceDefinition",
                f"{kind.split('/')[1].lower()}s.kubernetes.dask.org",
                source=f"{_DASK}:crds/",
            )
            for kind in _DASK_KINDS
        ),
        ClusterObject(
            "ClusterRole",
            "{release}-role-cluster",
            when=(("rbac.create", True), ("rbac.cluster", True)),
            source=f"{_DASK}:templates/clusterrole.yaml:3-5",
        ),
        ClusterObject(
            "ClusterRoleBinding",
            "{release}-rolebinding-cluster",
            when=(("rbac.create", True), ("rbac.cluster", True)),
            source=f"{_DASK}:templates/clusterrolebinding.yaml:3-5",
        ),
    ),
)

# -- RabbitMQ Cluster Operator v2.21.1 (release manifest) -----------------------------------
# v2.22.0 added admission webhooks whose certificates come from cert-manager (Issuer,
# Certificate objects in the manifest; rabbitmq/cluster-operator#2187): nothing installs
# cert-manager here, so the pin is v2.21.1, the last release without it (2026-06-08). Its
# CRD, RBAC, namespace and manager are the same as v2.22.3's (`git diff v2.21.1 v2.22.3 --
# config/crd config/rbac config/manager config/namespace` is empty), so the v2.22.3 CRD in
# ../shared/crds validates its RabbitmqCluster.

_RMQ = "rabbitmq/cluster-operator@v2.21.1"
_RABBITMQ = Bundle(
    key=(
        "manifest:https://github.com/rabbitmq/cluster-operator/releases/download/"
        "v2.21.1/cluster-operator.yml"
    ),
    name="rabbitmq-cluster-operator",
    version="2.21.1",
    exists=(
        f"{_RMQ} (tag, 859e50e4, 2026-06-08); cluster-operator.yml is made by `make "
        "generate-installation-manifest` (Makefile:388-393: kustomize build config/installation, "
        "then the operator image overlay) and uploaded with the release"
    ),
    notes=(
        "The release asset could not be downloaded here; its documents follow from "
        "config/installation at the tag: namespace, CRD, RBAC, manager, metrics service. No "
        "webhook, no cert-manager objects (config/installation/kustomization.yaml). "
        "workstack applies it with a transform (rabbitmq.scope_operator_object): env "
        "OPERATOR_SCOPE_NAMESPACE on the manager (read at cmd/main.go:123; one namespace "
        "makes the cache namespaced, :175-186), no subjects on ClusterRoleBinding "
        "rabbitmq-cluster-operator-rolebinding (config/rbac/role_binding.yaml), Pod Security "
        "labels on Namespace rabbitmq-system; the ClusterRole's rules are all namespaced "
        "(config/rbac/role.yaml) and metrics are served without authn (--metrics-secure "
        "defaults to false, cmd/main.go:83), so a RoleBinding in the workload namespace grants "
        "all it uses."
    ),
    crds=(
        CrdSource(
            kinds=("rabbitmq.com/RabbitmqCluster",),
            via="manifest",
            source=f"{_RMQ}:config/crd/bases/rabbitmq.com_rabbitmqclusters.yaml",
        ),
    ),
    custom_resources=(),
    pods=(
        ChartPod(
            "rabbitmq-cluster-operator",
            cpu_m=200,
            memory_mib=500,
            image="ghcr.io/rabbitmq/cluster-operator:2.21.1",
            source=f"{_RMQ}:config/manager/manager.yaml:62-68",
        ),
    ),
    cluster_objects=(
        ClusterObject("Namespace", "rabbitmq-system", source=f"{_RMQ}:config/namespace/base"),
        ClusterObject(
            "CustomResourceDefinition", "rabbitmqclusters.rabbitmq.com", source=f"{_RMQ}:config/crd"
        ),
        ClusterObject(
            "ClusterRole",
            "rabbitmq-cluster-operator-role",
            source=f"{_RMQ}:config/rbac/role.yaml:13",
        ),
        ClusterObject(
            "ClusterRole",
            "rabbitmq-cluster-service-binding-role",
            source=f"{_RMQ}:config/rbac/service_binding_role.yaml:17",
        ),
        ClusterObject(
            "ClusterRoleBinding",
            "rabbitmq-cluster-operator-rolebinding",
            source=f"{_RMQ}:config/rbac/role_binding.yaml:16",
        ),
    ),
)

BUNDLES: dict[str, Bundle] = {
    bundle.key: bundle for bundle in (_ARGO, _KEDA_BUNDLE, _DASK_BUNDLE, _RABBITMQ)
}
"""Every pinned chart and manifest bundle, by how a render names it."""

RABBITMQ_DEFAULT_RESOURCES = (1000, 2048)
"""CPU (m) and memory (MiB) a RabbitmqCluster's node requests when ``spec.resources`` is
unset: rabbitmq/cluster-operator@v2.21.1:api/v1beta1/rabbitmqcluster_types.go:73."""
RABBITMQ_SETUP_CONTAINER = (20, 64)
"""Its init container's requests: rabbitmq/cluster-operator@v2.21.1:internal/resource/
statefulset.go:40-41."""
RABBITMQ_DEFAULT_IMAGE = "rabbitmq:4.2.6-management"
"""The image a RabbitmqCluster runs when ``spec.image`` is unset:
rabbitmq/cluster-operator@v2.21.1:cmd/main.go:73."""


# -- images ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFact:
    """A third-party image a stack runs or builds on.

    Attributes:
        ref: ``registry/repository:tag`` as the render names it.
        origin: Who publishes it and where it is built from.
        digest: The manifest (list) digest, only when an authoritative source records it.
        digest_source: Where the digest is recorded, or why there is none.
        pinned_alternative: An image in this table that does the same job and has a verified
            digest: using this one unpinned is a choice, not a limit of what can be verified.
    """

    ref: str
    origin: str
    digest: str | None
    digest_source: str
    pinned_alternative: str | None = None


_NO_DIGEST = "no digest is published in any source readable here; not verified"
IMAGES: dict[str, ImageFact] = {
    fact.ref: fact
    for fact in (
        ImageFact(
            "registry.k8s.io/volume-nfs:0.8",
            "Kubernetes' 2016 NFS example image (gcr.io/google_containers/volume-nfs, "
            "kubernetes/kubernetes#34983)",
            None,
            "none found; a sibling image of that era (registry.k8s.io/nginx-slim:0.8) is refused "
            "as Docker schema 1, which containerd 2 no longer pulls (containerd#9765); its own "
            "manifest type is not verified",
            pinned_alternative="registry.k8s.io/e2e-test-images/volume/nfs:1.6.0",
        ),
        ImageFact(
            "registry.k8s.io/e2e-test-images/volume/nfs:1.6.0",
            "kubernetes/kubernetes test/images/volume/nfs (CentOS Stream 9; fixed in "
            "kubernetes#136445, promoted in kubernetes/k8s.io#9005)",
            "sha256:fd050af01687ef04d87bcef58b9e27f8e74cde52293113cfb35e63a0253e29c2",
            "kubernetes/k8s.io@e10ab5f9:registry.k8s.io/images/k8s-staging-e2e-test-images/"
            "images.yaml (the promoter manifest)",
        ),
        ImageFact(
            "quay.io/argoproj/workflow-controller:v4.1.0",
            "argoproj/argo-workflows@v4.1.0:Dockerfile (chart 2.0.1 default)",
            None,
            _NO_DIGEST + " (Argo signs images with cosign: release.yaml@v4.1.0:182-219)",
        ),
        ImageFact(
            "quay.io/argoproj/argocli:v4.1.0",
            "argoproj/argo-workflows@v4.1.0:Dockerfile (chart 2.0.1 default)",
            None,
            _NO_DIGEST,
        ),
        ImageFact(
            "quay.io/argoproj/argoexec:v4.1.0",
            "argoproj/argo-workflows@v4.1.0:Dockerfile (runs as root: no USER; -nonroot "
            "variant with executor.image.nonroot)",
            None,
            _NO_DIGEST,
        ),
        ImageFact(
            "quay.io/argoproj/argoexec:v4.1.0-nonroot",
            "argoproj/argo-workflows@v4.1.0:Dockerfile (USER 8737)",
            None,
            _NO_DIGEST,
        ),
        *(
            ImageFact(
                f"ghcr.io/kedacore/{name}:2.20.1",
                "kedacore/keda release 2.20.1 (chart 2.20.1 default)",
                None,
                "a third-party document lists a digest; not verified against a registry",
            )
            for name in ("keda", "keda-metrics-apiserver", "keda-admission-webhooks")
        ),
        ImageFact(
            "ghcr.io/dask/dask-kubernetes-operator:2026.3.0",
            "dask/dask-kubernetes operator Dockerfile (chart 2026.3.0 default)",
            None,
            _NO_DIGEST,
        ),
        ImageFact(
            "ghcr.io/rabbitmq/cluster-operator:2.21.1",
            "rabbitmq/cluster-operator release v2.21.1 (the manifest's operator)",
            None,
            _NO_DIGEST,
        ),
        ImageFact(
            RABBITMQ_DEFAULT_IMAGE,
            "Docker Official Image, the operator's default (cmd/main.go:75)",
            None,
            "a third-party test fixture lists a digest; not verified against a registry",
        ),
        ImageFact(
            "python:3.11-slim-bookworm",
            "Docker Official Image: the base workload images build on (DEFAULT_BASE_IMAGE)",
            None,
            _NO_DIGEST,
        ),
    )
}
"""Every third-party image a stack runs or builds on, by reference."""


# -- nodes ----------------------------------------------------------------------------------


def _tiered(total: float, tiers: tuple[tuple[float, float], ...], rest: float) -> float:
    """Reserve ``fraction`` of each successive ``size`` of ``total``, ``rest`` beyond."""
    reserved, left = 0.0, total
    for size, fraction in tiers:
        part = min(left, size)
        reserved += part * fraction
        left -= part
    return reserved + left * rest


_CPU_TIERS = ((1000.0, 0.06), (1000.0, 0.01), (2000.0, 0.005))


def gke_allocatable(vcpus: int, memory_gib: float) -> tuple[int, int]:
    """CPU (m) and memory (MiB) a GKE Standard node leaves to pods.

    CPU: 6% of the first core, 1% of the next, 0.5% of the next two, 0.25% above four.
    Memory: 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the next 112,
    2% above 128, plus 100 MiB eviction threshold (machines under 1 GiB: 255 MiB).
    """
    cpu = vcpus * 1000 - _tiered(vcpus * 1000, _CPU_TIERS, 0.0025)
    mib = memory_gib * 1024
    memory_tiers = ((4096.0, 0.25), (4096.0, 0.2), (8192.0, 0.1), (114688.0, 0.06))
    reserved = 255.0 if mib < 1024 else _tiered(mib, memory_tiers, 0.02)
    return int(cpu), int(mib - reserved - 100)


def nodeadm_allocatable(vcpus: int, memory_gib: float, max_pods: int) -> tuple[int, int]:
    """CPU (m) and memory (MiB) an EKS AL2023 node (nodeadm defaults) leaves to pods.

    CPU reserve as for GKE; kube-reserved memory ``11 * maxPods + 255`` MiB, plus the
    ``memory.available: 100Mi`` eviction threshold.
    """
    cpu = vcpus * 1000 - _tiered(vcpus * 1000, _CPU_TIERS, 0.0025)
    return int(cpu), int(memory_gib * 1024 - (11 * max_pods + 255) - 100)


@dataclass(frozen=True)
class NodeType:
    """A machine type a stack may run nodes on.

    Attributes:
        name: ``e2-standard-4``, ``m6i.large``.
        cloud: ``gke`` or ``eks``.
        vcpus: vCPUs.
        memory_gib: Memory.
        arch: The image platform its nodes run (``linux/amd64``).
        cpu_m: Allocatable CPU, millicores.
        memory_mib: Allocatable memory, MiB (an upper bound: the kernel reports a little
            less capacity than the nominal size).
        basis: The formula and its source.
    """

    name: str
    cloud: Literal["gke", "eks"]
    vcpus: int
    memory_gib: float
    arch: str
    cpu_m: int
    memory_mib: int
    basis: str


_GKE_BASIS = (
    "GKE plan-node-sizes 'Memory and CPU reservations' (Google's page could not be read here "
    "whole; the same tiers are quoted in Google's Anthos multi-cloud release notes and "
    "third-party copies; Google's example node of 4 vCPU shows allocatable cpu 3920m). "
    "Shape: Compute Engine machine types (N vCPU, 4N GB), not re-read here."
)


def _gke(name: str, vcpus: int) -> NodeType:
    cpu, memory = gke_allocatable(vcpus, vcpus * 4)
    return NodeType(name, "gke", vcpus, vcpus * 4, "linux/amd64", cpu, memory, _GKE_BASIS)


# maxPods = defaultMaxENIs * (ipv4AddressesPerInterface - 1) + 2 (nodeadm eni_max_pods.go).
_EKS_SHAPES = {
    "m6i.large": (2, 8, 3, 10),
    "m6i.xlarge": (4, 16, 4, 15),
    "m6i.2xlarge": (8, 32, 4, 15),
    "m6a.large": (2, 8, 3, 10),
    "m6a.xlarge": (4, 16, 4, 15),
    "m6a.2xlarge": (8, 32, 4, 15),
    "t3.medium": (2, 4, 3, 6),
    "t3.large": (2, 8, 3, 12),
    "t3.xlarge": (4, 16, 4, 15),
    "t3.2xlarge": (8, 32, 4, 15),
}
_EKS_BASIS = (
    "awslabs/amazon-eks-ami@v20260724:nodeadm/internal/kubelet/config.go L110-114 "
    "(evictionHard memory.available 100Mi), L274-287 and L410-444 (kube-reserved CPU tiers, "
    "memory 11*maxPods+255 MiB); maxPods from eni_max_pods.go L54-77 and instance-info.jsonl "
    "(defaultMaxENIs {enis}, ipv4AddressesPerInterface {ips}: {pods} pods). Managed node "
    "groups may set their own maxPods (not verified). Shape: EC2 instance types, not re-read."
)


def _eks(name: str) -> NodeType:
    vcpus, memory, enis, ips = _EKS_SHAPES[name]
    pods = enis * (ips - 1) + 2
    cpu, allocatable = nodeadm_allocatable(vcpus, memory, pods)
    basis = _EKS_BASIS.format(enis=enis, ips=ips, pods=pods)
    return NodeType(name, "eks", vcpus, memory, "linux/amd64", cpu, allocatable, basis)


NODE_TYPES: dict[str, NodeType] = {
    node.name: node
    for node in (
        *(_gke(f"e2-standard-{n}", n) for n in (2, 4, 8)),
        *(_gke(f"n2-standard-{n}", n) for n in (4, 8)),
        *(_eks(name) for name in _EKS_SHAPES),
    )
}
"""The node types the capacity check knows, by name."""


@dataclass(frozen=True)
class SystemPod:
    """A system pod that shares the nodes with what a stack runs.

    Attributes:
        name: Which pod.
        cloud: ``gke``, ``eks`` or ``minikube``.
        per_node: A DaemonSet pod (on every node), else once per cluster.
        cpu_m: CPU request, millicores.
        memory_mib: Memory request, MiB.
        basis: Where the numbers come from; "estimate" when no upstream source was readable.
    """

    name: str
    cloud: str
    per_node: bool
    cpu_m: int
    memory_mib: int
    basis: str


_KUBEADM = "kubernetes/kubernetes cmd/kubeadm (via the code index)"
_GKE_DS = (
    "a published `kubectl get daemonsets -A` listing of a GKE cluster's CPU requests "
    "(third-party, code index); memory: estimate, no source readable here"
)
SYSTEM_PODS: tuple[SystemPod, ...] = (
    # minikube: one node running kubeadm's control plane and CoreDNS (allocatable = capacity:
    # minikube sets no kube-reserved, kubernetes/minikube@v1.38.1 ktmpl/v1beta3.go:87-90).
    SystemPod("kube-apiserver", "minikube", False, 250, 0, f"{_KUBEADM}: ComponentResources(250m)"),
    SystemPod(
        "kube-controller-manager",
        "minikube",
        False,
        200,
        0,
        f"{_KUBEADM}: ComponentResources(200m)",
    ),
    SystemPod("kube-scheduler", "minikube", False, 100, 0, f"{_KUBEADM}: ComponentResources(100m)"),
    SystemPod("etcd", "minikube", False, 100, 100, f"{_KUBEADM}: etcd static pod requests"),
    SystemPod("coredns", "minikube", False, 100, 70, f"{_KUBEADM}: CoreDNS Deployment requests"),
    # The CNI the docs ask for to enforce NetworkPolicies (`minikube start --cni calico`):
    # calico-node requests 250m; calico-kube-controllers requests nothing.
    SystemPod(
        "calico-node",
        "minikube",
        True,
        250,
        0,
        "kubernetes/minikube@v1.38.1:pkg/minikube/cni/calico.yaml:7234-7235",
    ),
    # EKS (AL2023 managed nodes, the add-ons the stack installs).
    SystemPod(
        "aws-node",
        "eks",
        True,
        25,
        0,
        "aws/amazon-vpc-cni-k8s@v1.23.0:charts/aws-vpc-cni/values.yaml:190-192",
    ),
    SystemPod("kube-proxy", "eks", True, 100, 0, "estimate: the kube-proxy add-on's 100m CPU"),
    SystemPod(
        "ebs-csi-node",
        "eks",
        True,
        10,
        40,
        "kubernetes-sigs/aws-ebs-csi-driver@v1.64.0:charts/aws-ebs-csi-driver/values.yaml:415-418",
    ),
    SystemPod("eks-pod-identity-agent", "eks", True, 0, 0, "estimate: no requests known"),
    SystemPod("coredns (2 replicas)", "eks", False, 200, 140, f"{_KUBEADM}: 100m/70Mi each"),
    SystemPod(
        "ebs-csi-controller (2 replicas)",
        "eks",
        False,
        20,
        80,
        "kubernetes-sigs/aws-ebs-csi-driver@v1.64.0 chart: 10m/40Mi per controller container",
    ),
    # GKE Standard with Dataplane V2, the Filestore CSI driver and the GKE metadata server.
    SystemPod("anetd", "gke", True, 205, 200, _GKE_DS),
    SystemPod("fluentbit-gke", "gke", True, 105, 200, _GKE_DS),
    SystemPod("gke-metadata-server", "gke", True, 100, 100, _GKE_DS),
    SystemPod("filestore-node", "gke", True, 25, 50, _GKE_DS),
    SystemPod("gke-metrics-agent", "gke", True, 19, 60, _GKE_DS),
    SystemPod("pdcsi-node", "gke", True, 10, 20, _GKE_DS),
    SystemPod("kube-dns, konnectivity-agent, event-exporter", "gke", False, 300, 300, "estimate"),
)
"""System pods per cloud: what the nodes hold before any stack pod (estimates say so)."""

CLUSTER_STORAGE_CLASSES: dict[str, dict[str, str]] = {
    "minikube": {
        "standard": "kubernetes/minikube@v1.38.1:deploy/addons/storageclass/storageclass.yaml "
        "(default class, storage-provisioner addon, on by default)",
    },
    "gke": {
        "standard-rwo": "GKE: default class of the Compute Engine PD CSI driver (GKE docs, not "
        "re-read here)",
        "standard": "GKE: pd-standard class (GKE docs, not re-read here)",
        "premium-rwo": "GKE: pd-ssd class (GKE docs, not re-read here)",
    },
    "eks": {},
}
"""StorageClasses a cluster has without the stack creating them. EKS 1.30+ marks none as the
default (awsdocs/amazon-eks-user-guide kubernetes-versions-standard.adoc:62)."""

FILESTORE_CLASSES = ("standard-rwx", "premium-rwx", "enterprise-rwx", "zonal-rwx")
"""Classes GKE adds when the Filestore CSI driver is enabled (GKE Filestore CSI docs, not
re-read here): claims of them need ``addonsConfig.gcpFilestoreCsiDriverConfig.enabled``."""
EBS_DEFAULT_CLASS = "ebs-csi-default-sc"
"""The default class the aws-ebs-csi-driver add-on creates with ``defaultStorageClass.enabled``
(kubernetes-sigs/aws-ebs-csi-driver@v1.64.0:charts/aws-ebs-csi-driver/templates/
ebs-csi-default-sc.yaml; values.yaml:521-522 default false; add-on v1.31.0+)."""
