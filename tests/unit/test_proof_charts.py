"""Charts against the facts table: values keys, tpl'd values, and who installs each CRD.

Each test builds a deployment that breaks one rule the way issue 12 found it broken (argo
values with ``useDefaultArtifactRepo``, a raw ``{{workflow.namespace}}`` under the tpl'd
``artifactRepository.gcs``, CRDs only a hook would install) and one that keeps it.
"""

from __future__ import annotations

import pytest

from workstack.components.manifests.argo import ARGO_CHART, ARGO_CHART_VERSION, ARGO_REPO
from workstack.components.manifests.dask import (
    DASK_OPERATOR_CHART,
    DASK_OPERATOR_REPO,
    DASK_OPERATOR_VERSION,
)
from workstack.offline import RegisteredResource
from workstack.proof.charts import (
    bundle_uses,
    crd_findings,
    raw_template,
    tpl_findings,
    value_findings,
)

from .synthetic import chart, context, deployment, k8s, provider_ref, res

MINIMAL_CRDS = {"crds": {"install": True, "full": False}}


def argo(values: dict[str, object], **extra: object) -> RegisteredResource:
    return chart("argo-chart", ARGO_REPO, ARGO_CHART, ARGO_CHART_VERSION, values, **extra)


def workflow_template(**kwargs: object) -> RegisteredResource:
    return k8s(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {},
        },
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("argo/{{workflow.namespace}}/{{pod.name}}", "{{workflow.namespace}}"),
        ('{{ "{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}" }}', None),
        ("{{ `{{pod.name}}` }}", None),
        ('{{- "{{pod.name}}" -}}', None),
        ('prefix {{ "{{a}}" }} then {{b}}', "{{b}}"),
        ("{{ .Release.Name }}-x", "{{ .Release.Name }}"),
        ('{{ "unterminated', '{{ "unterminated'),
        ("no braces at all", None),
    ],
)
def test_raw_template_accepts_only_string_literal_actions(text: str, raw: str | None) -> None:
    assert raw_template(text) == raw


def test_a_values_key_the_chart_does_not_have_is_reported() -> None:
    """argo-helm dropped useDefaultArtifactRepo in 2023 (PR #2002); Helm ignores it."""
    uses = bundle_uses(deployment(argo({"useDefaultArtifactRepo": True, **MINIMAL_CRDS})))
    [finding] = value_findings(uses)
    assert "'useDefaultArtifactRepo' does not exist in argo-workflows 2.0.1" in str(finding)


def test_known_keys_and_free_form_maps_pass() -> None:
    values = {
        **MINIMAL_CRDS,
        "controller": {"podSecurityContext": {"runAsNonRoot": True, "anything": {"x": 1}}},
        "artifactRepository": {"gcs": {"bucket": "b", "serviceAccountKeySecret": {"name": "s"}}},
    }
    assert value_findings(bundle_uses(deployment(argo(values)))) == []


def test_a_chart_version_missing_from_the_table_is_reported() -> None:
    uses = bundle_uses(deployment(chart("argo", ARGO_REPO, ARGO_CHART, "9.9.9")))
    [finding] = value_findings(uses)
    assert "argo-workflows@9.9.9 is not in the facts table" in str(finding)


def test_a_raw_argo_template_under_a_tpl_key_is_reported_and_an_escaped_one_is_not() -> None:
    """The chart runs artifactRepository.gcs through tpl; s3.keyFormat only through quote."""
    raw = {"artifactRepository": {"gcs": {"keyFormat": "argo/{{workflow.namespace}}"}}}
    [finding] = tpl_findings(bundle_uses(deployment(argo(raw))))
    assert "artifactRepository.gcs.keyFormat" in str(finding)
    assert '{{ "{{workflow.namespace}}" }}' in str(finding)
    escaped = {"artifactRepository": {"gcs": {"keyFormat": '{{ "argo/{{workflow.name}}" }}'}}}
    assert tpl_findings(bundle_uses(deployment(argo(escaped)))) == []
    s3 = {"artifactRepository": {"s3": {"keyFormat": "argo/{{workflow.name}}"}}}
    assert tpl_findings(bundle_uses(deployment(argo(s3)))) == []


def test_a_crd_only_a_hook_installs_is_missing() -> None:
    """argo-workflows 2.0.1 defaults to crds.full=true: a pre-install hook Job, never run."""
    installer = argo({})
    found = crd_findings(
        deployment(installer, workflow_template(waits=[installer])),
        bundle_uses(deployment(installer)),
        context("minikube"),
    )
    [finding] = found
    assert "installed only by a Helm hook" in str(finding)
    assert "WorkflowTemplate/p" in str(finding)


def test_crds_from_templates_count_when_the_resource_waits_for_the_chart() -> None:
    installer = argo(MINIMAL_CRDS)
    ok = deployment(installer, workflow_template(waits=[installer]))
    assert crd_findings(ok, bundle_uses(ok), context("minikube")) == []
    early = deployment(installer, workflow_template())
    [finding] = crd_findings(early, bundle_uses(early), context("minikube"))
    assert "does not wait for" in str(finding)


def test_a_crds_dir_does_not_count_with_skip_crds() -> None:
    cluster = k8s(
        {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskCluster",
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {},
        },
    )
    operator = chart("op", DASK_OPERATOR_REPO, DASK_OPERATOR_CHART, DASK_OPERATOR_VERSION)
    waiting = res(cluster.type, cluster.name, cluster.inputs, waits=[operator],
                  provider=provider_ref())  # fmt: skip
    ok = deployment(operator, waiting)
    assert crd_findings(ok, bundle_uses(ok), context("gke")) == []
    skipped = chart(
        "op", DASK_OPERATOR_REPO, DASK_OPERATOR_CHART, DASK_OPERATOR_VERSION, skipCrds=True
    )
    bad = deployment(skipped, waiting)
    assert len(crd_findings(bad, bundle_uses(bad), context("gke"))) == 1


def test_custom_resources_a_bundle_itself_creates_need_their_crds_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cluster-operator.yml v2.22.x held cert-manager Issuer and Certificates (#2187)."""
    import dataclasses

    from workstack.components.manifests import upstream
    from workstack.components.manifests.rabbitmq import RABBITMQ_OPERATOR_MANIFEST

    key = f"manifest:{RABBITMQ_OPERATOR_MANIFEST}"
    manifest = res(
        "kubernetes:yaml/v2:ConfigFile",
        "rabbitmq-operator",
        {"file": RABBITMQ_OPERATOR_MANIFEST},
        provider=provider_ref(),
    )
    pinned = crd_findings(deployment(manifest), bundle_uses(deployment(manifest)), context("eks"))
    assert pinned == [], "the pinned release (v2.21.1) needs no cert-manager"
    like_2_22 = dataclasses.replace(
        upstream.BUNDLES[key],
        custom_resources=("cert-manager.io/Issuer", "cert-manager.io/Certificate"),
    )
    monkeypatch.setitem(upstream.BUNDLES, key, like_2_22)
    manifest = res(
        "kubernetes:yaml/v2:ConfigFile",
        "rabbitmq-operator",
        {"file": RABBITMQ_OPERATOR_MANIFEST},
        provider=provider_ref(),
    )
    found = crd_findings(deployment(manifest), bundle_uses(deployment(manifest)), context("eks"))
    assert sorted(f.subject.rsplit(" ", 1)[-1] for f in found) == [
        "cert-manager.io/Certificate",
        "cert-manager.io/Issuer",
    ]


def test_crds_the_cluster_provides_are_not_required() -> None:
    from workstack.proof import StackContext

    given = StackContext("s", "minikube", provided_crds=frozenset({"argoproj.io/WorkflowTemplate"}))
    alone = deployment(workflow_template())
    assert crd_findings(alone, [], given) == []
    assert len(crd_findings(alone, [], context("minikube"))) == 1


def test_install_operators_off_declares_the_operators_crds_provided() -> None:
    from workstack.proof import StackContext

    off = StackContext.of("s", deployment(), {"workstack:installOperators": "false"})
    assert {"rabbitmq.com/RabbitmqCluster", "keda.sh/ScaledJob"} <= off.provided_crds
    # Argo's CRDs are cluster-wide too: the stack that installs the operators owns them.
    assert "argoproj.io/WorkflowTemplate" in off.provided_crds
    assert StackContext.of("s", deployment(), {}).provided_crds == frozenset()
