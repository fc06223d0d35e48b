"""The offline proof on the real stacks and the off-defaults fixtures.

Each test applies one check of ``workstack.proof`` to the renders and expects no finding.
Where today's code breaks the rule, the test is ``xfail(strict=True)`` with the violation in
the reason: the lead's fixes for issue 12 turn each into a pass, and strict xfail then fails
until the marker is removed. The checks' own tests (synthetic deployments that break each
rule) are in tests/unit/test_proof_*.py.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workstack.components import (
    GkeCluster,
    GkeClusterArgs,
    SpecError,
    WorkloadIdentity,
    WorkloadIdentityArgs,
)
from workstack.env import preview_config, preview_stack_name
from workstack.offline import Deployment, ProgramError, run_function, run_program
from workstack.project import PulumiProject, StackSettings, load_project
from workstack.proof import Finding, StackContext, collisions
from workstack.proof.capacity import capacity_findings
from workstack.proof.charts import bundle_uses, crd_findings, tpl_findings, value_findings
from workstack.proof.graph import ResourceGraph
from workstack.proof.images import image_findings, platform_findings
from workstack.proof.names import name_findings
from workstack.proof.ordering import (
    claim_findings,
    cluster_reference_findings,
    nfs_destroy_findings,
    nfs_servers,
    provider_findings,
)

from .harness import offdefaults_settings

DEFAULTS = ("minikube", "gke", "eks")
OFFDEFAULTS = tuple(f"offdefaults-{cloud}" for cloud in DEFAULTS)
ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _render(name: str) -> tuple[Deployment, StackContext]:
    project = load_project(ROOT)
    if name.startswith("offdefaults-"):
        settings = offdefaults_settings(project, name.removeprefix("offdefaults-"))
    else:
        settings = project.read_stack(name)
    deployment = run_program(project, name, settings)
    return deployment, StackContext.of(name, deployment, settings.values)


def cases(stacks: tuple[str, ...], known: dict[str, str]) -> list[object]:
    """One case per stack; today's known violations marked strict xfail with their reason."""
    return [
        pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=known[s])) if s in known else s
        for s in stacks
    ]


def shown(findings: list[Finding]) -> str:
    return "\n".join(str(f) for f in findings)


@pytest.mark.parametrize(
    "stack",
    DEFAULTS + OFFDEFAULTS,
)
def test_every_chart_value_key_exists_in_the_pinned_chart(stack: str) -> None:
    """Every chart is in the facts table and every values key it gets exists at its version."""
    deployment, _ = _render(stack)
    assert bundle_uses(deployment), "the stacks install at least the Argo chart"
    assert value_findings(bundle_uses(deployment)) == [], shown(
        value_findings(bundle_uses(deployment))
    )


@pytest.mark.parametrize(
    "stack",
    DEFAULTS + OFFDEFAULTS,
)
def test_values_rendered_through_tpl_hold_no_raw_template(stack: str) -> None:
    deployment, _ = _render(stack)
    found = tpl_findings(bundle_uses(deployment))
    assert found == [], shown(found)


@pytest.mark.parametrize(
    "stack",
    DEFAULTS + OFFDEFAULTS,
)
def test_every_custom_resource_has_its_crd_installed_by_what_pulumi_applies(stack: str) -> None:
    deployment, context = _render(stack)
    found = crd_findings(deployment, bundle_uses(deployment), context)
    assert found == [], shown(found)


@pytest.mark.parametrize("stack", DEFAULTS + OFFDEFAULTS)
def test_cloud_resources_that_name_a_cluster_wait_for_it(stack: str) -> None:
    deployment, _ = _render(stack)
    found = cluster_reference_findings(deployment, ResourceGraph.of(deployment))
    assert found == [], shown(found)


@pytest.mark.parametrize("stack", DEFAULTS + OFFDEFAULTS)
def test_every_kubernetes_object_uses_the_cluster_provider_and_it_waits_for_the_nodes(
    stack: str,
) -> None:
    deployment, _ = _render(stack)
    graph = ResourceGraph.of(deployment)
    assert graph.of_type("pulumi:providers:kubernetes")
    found = provider_findings(deployment, graph)
    assert found == [], shown(found)


@pytest.mark.parametrize("stack", DEFAULTS + OFFDEFAULTS)
def test_every_claim_waits_for_what_provides_its_storage_class(stack: str) -> None:
    deployment, context = _render(stack)
    found = claim_findings(deployment, ResourceGraph.of(deployment), context)
    assert found == [], shown(found)


@pytest.mark.parametrize("stack", DEFAULTS + OFFDEFAULTS)
def test_what_mounts_the_nfs_share_is_destroyed_before_its_server(stack: str) -> None:
    """Before, the Dask cluster and the KEDA ScaledJob did not depend on the NfsStorage: the
    engine could delete the NFS server first, and their pods hung unmounting."""
    deployment, _ = _render(stack)
    found = nfs_destroy_findings(deployment, ResourceGraph.of(deployment))
    assert found == [], shown(found)


def test_the_nfs_destroy_rule_has_something_to_check_on_minikube() -> None:
    deployment, _ = _render("minikube")
    assert nfs_servers(deployment), "the minikube stack serves NFS in the cluster"


@pytest.mark.parametrize("stack", DEFAULTS)
def test_what_a_default_stack_runs_at_once_fits_its_nodes(stack: str) -> None:
    """Issue 12 item 7: before, minikube's 2-CPU node and EKS's one m6i.large held neither the
    platform nor the runs. Now the stack files size the nodes (and the minikube requests)."""
    deployment, context = _render(stack)
    found = capacity_findings(deployment, context)
    assert found == [], shown(found)


@pytest.mark.parametrize("stack", DEFAULTS + OFFDEFAULTS)
def test_globally_scoped_names_are_valid_for_their_service(stack: str) -> None:
    deployment, _ = _render(stack)
    found = name_findings(deployment)
    assert found == [], shown(found)


def test_a_user_program_never_gets_a_google_id_google_refuses() -> None:
    """Issue 12: ids shorter than 6 characters are refused by Google. Either the component
    refuses the input before anything is created, or every id it makes is valid."""

    def program() -> None:
        cluster = GkeCluster(
            "c",
            GkeClusterArgs(project="my-project", location="europe-west1", cluster_name="ws-c"),
        )
        WorkloadIdentity("id", WorkloadIdentityArgs(cluster=cluster, service_account="ab"))

    try:
        found = name_findings(run_function(program))
    except ProgramError as refused:
        # Refused with a message naming the input is the other correct outcome.
        found = (
            [] if isinstance(refused.error, SpecError) else [Finding("names", "?", str(refused))]
        )
    assert found == [], shown(found)


def _copy(stack: str, name: str) -> Deployment:
    project = load_project(ROOT)
    return run_program(project, name, project.read_stack(stack))


def _config(stack: str) -> dict[str, str]:
    return dict(_render(stack)[1].config)


# A second stack on one minikube is configured as docs/stacks.md says: a namespace of its
# own, and the cluster-wide operators and CRDs left to the first (installOperators).
SECOND_ON_SHARED_CLUSTER = {"workstack:namespace": "second", "workstack:installOperators": "false"}


@pytest.mark.parametrize("stack", DEFAULTS)
def test_two_stacks_of_the_project_share_no_global_name(stack: str) -> None:
    """``<stack>`` and a copy of its config named ``<stack>2``."""
    second = _config(stack) | (SECOND_ON_SHARED_CLUSTER if stack == "minikube" else {})
    project = load_project(ROOT)
    copy = run_program(project, f"{stack}2", StackSettings(second))
    renders = {stack: _render(stack)[0], f"{stack}2": copy}
    found = collisions(renders, {stack: _config(stack), f"{stack}2": second})
    assert found == [], shown(found)


def _preview(project: PulumiProject, template: str, branch: str) -> Deployment:
    """A preview exactly as ``workstack env up`` configures it (cli/env.py)."""
    config = preview_config(
        project,
        template,
        branch=branch,
        owner="test",
        now=datetime(2026, 1, 1, tzinfo=UTC),
        ttl=timedelta(hours=24),
    )
    stack = preview_stack_name(branch)
    return run_program(project, stack, StackSettings(config))


@pytest.mark.parametrize("stack", DEFAULTS)
def test_previews_share_no_global_name_with_each_other_or_their_template(
    project: PulumiProject, stack: str
) -> None:
    renders = {
        stack: _render(stack)[0],
        "feature/login": _preview(project, stack, "feature/login"),
        "feature/search": _preview(project, stack, "feature/search"),
    }
    found = collisions(renders, dict.fromkeys(renders, _config(stack)))
    assert found == [], shown(found)


@pytest.mark.parametrize("stack", DEFAULTS + OFFDEFAULTS)
def test_every_third_party_image_is_in_the_image_table(stack: str) -> None:
    deployment, _ = _render(stack)
    found = [f for f in image_findings(deployment) if "not in the image table" in f.message]
    assert found == [], shown(found)


@pytest.mark.parametrize("stack", DEFAULTS + OFFDEFAULTS)
def test_every_image_that_can_be_pinned_is_pinned(stack: str) -> None:
    """Errors only: images no source gives a digest for are warnings (listed in the table)."""
    deployment, _ = _render(stack)
    found = [f for f in image_findings(deployment) if f.severity == "error"]
    assert found == [], shown(found)


@pytest.mark.parametrize("stack", DEFAULTS + OFFDEFAULTS)
def test_workload_images_name_the_nodes_platform(stack: str) -> None:
    deployment, context = _render(stack)
    assert deployment.of_type("docker-build:index:Image")
    found = platform_findings(deployment, context)
    assert found == [], shown(found)
