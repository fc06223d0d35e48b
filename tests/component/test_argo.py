"""Argo: the exported Workflow, the install component and pipelines deployed to it."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from workstack.components import (
    ArgoPipeline,
    ArgoPipelineArgs,
    ArgoWorkflows,
    ArgoWorkflowsArgs,
    BucketStorage,
    BucketStorageArgs,
    EksCluster,
    EksClusterArgs,
    GkeCluster,
    GkeClusterArgs,
    MinikubeCluster,
    MinikubeClusterArgs,
    NfsStorage,
    NfsStorageArgs,
    SpecError,
)
from workstack.components.manifests.argo import (
    ARGO_CHART_VERSION,
    ArgoExportSpec,
    build_argo_workflow,
)
from workstack.components.manifests.storage import nfs_pod_storage
from workstack.offline import Deployment, ProgramError, run_function
from workstack.policy import pod_templates, restricted_violations
from workstack.render import duplicate_names, rendered_objects
from workstack.schemas import validate_objects
from workstack.sdk.pipeline import load_pipeline

ROOT = Path(__file__).resolve().parents[2]
ML_BASIC = ROOT / "workloads" / "ml-basic"
IMAGE = "registry.example/ml-basic:77aa"


@pytest.fixture(autouse=True)
def _pipeline_importable() -> Iterator[None]:
    sys.path.insert(0, str(ML_BASIC))
    yield
    sys.path.remove(str(ML_BASIC))


def exported(kind: str = "Workflow") -> dict[str, Any]:
    return build_argo_workflow(
        ArgoExportSpec(
            pipeline=load_pipeline("ml:build"),
            entrypoint="ml:build",
            image=IMAGE,
            namespace="workstack",
            data_url="/data/ml-basic",
            kind=kind,
            storage=(nfs_pod_storage("shared-data"),),
        )
    )


def test_export_validates_against_the_argo_crd_and_matches_golden(
    assert_schema_valid: Any, golden: Callable[[str, Any], None]
) -> None:
    workflow = exported()
    result = assert_schema_valid([workflow])
    assert result.checked == 1
    golden("argo-ml-basic", workflow)
    assert_schema_valid([exported("WorkflowTemplate")])


def test_the_dag_and_retries_are_as_declared() -> None:
    spec = exported()["spec"]
    dag = next(t for t in spec["templates"] if t["name"] == "pipeline")["dag"]
    assert {t["name"]: t.get("dependencies", []) for t in dag["tasks"]} == {
        "get": [],
        "features": ["get"],
        "join": ["get", "features"],
        "fit": ["join"],
    }
    templates = {t["name"]: t for t in spec["templates"]}
    assert templates["fit"]["retryStrategy"] == {"limit": 2, "retryPolicy": "OnFailure"}
    assert "retryStrategy" not in templates["get"]
    fit = templates["fit"]["container"]
    assert fit["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert fit["args"] == [
        "pipeline",
        "step",
        "--entrypoint",
        "ml:build",
        "--step",
        "fit",
        "--data",
        "/data/ml-basic",
    ]
    assert spec["serviceAccountName"] == "argo-workflow"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}} in spec[
        "volumes"
    ]


def test_only_argos_executor_gets_an_api_token() -> None:
    """Issue 14.10: the step's code runs without the service account's API token."""
    spec = exported()["spec"]
    assert spec["automountServiceAccountToken"] is False
    # Argo refuses automount false without an executor service account (v4.1.0
    # workflowpod.go: "executor.serviceAccountName must not be empty ..."), and mounts that
    # account's token Secret into its init and wait containers only.
    assert spec["executor"] == {"serviceAccountName": "argo-workflow"}


def test_step_pods_stay_until_the_workflow_ttl_for_their_logs() -> None:
    """``workstack logs`` reads a finished step's log from its pod: no podGC deletes it first;
    the TTL deletes the Workflow and, by owner reference, its pods."""
    spec = exported()["spec"]
    assert "podGC" not in spec
    assert spec["ttlStrategy"]["secondsAfterCompletion"] > 0


def test_the_executor_token_secret_is_made_after_its_service_account(
    assert_schema_valid: Any,
) -> None:
    deployment = deploy("minikube")
    [token] = [r for r in deployment.resources if r.name == "argo-executor-token"]
    secret = token.inputs
    assert_schema_valid([secret])
    assert secret["type"] == "kubernetes.io/service-account-token"
    # The name Argo looks up (util/secrets/secret_name.go TokenName) and the account the
    # token controller fills it for; it deletes such a Secret whose account is missing.
    assert secret["metadata"]["name"] == "argo-workflow.service-account-token"
    assert secret["metadata"]["annotations"] == {
        "kubernetes.io/service-account.name": "argo-workflow"
    }
    assert token.waits_for("argo-workflow-identity-service-account")


def test_every_step_pod_meets_the_restricted_profile() -> None:
    templates = pod_templates(exported())
    assert len(templates) == 4
    for template in templates:
        assert restricted_violations(template.spec) == [], template.source


def deploy(cloud: str, **pipeline_changes: Any) -> Deployment:
    return run_function(_program(cloud, ("ml-basic", ML_BASIC), **pipeline_changes))


def _program(
    cloud: str, *pipelines: tuple[str, Path], **pipeline_changes: Any
) -> Callable[[], None]:
    def program() -> None:
        if cloud == "gke":
            cluster: Any = GkeCluster(
                "c", GkeClusterArgs(project="proj-123456", location="us-east1", cluster_name="ml")
            )
        elif cloud == "eks":
            cluster = EksCluster("c", EksClusterArgs(cluster_name="ml"))
        else:
            cluster = MinikubeCluster("c", MinikubeClusterArgs())
        nfs = NfsStorage("nfs", NfsStorageArgs(cluster=cluster))
        bucket = (
            BucketStorage("bucket", BucketStorageArgs(cluster=cluster))
            if cloud != "minikube"
            else None
        )
        argo = ArgoWorkflows("argo", ArgoWorkflowsArgs(cluster=cluster, bucket=bucket))
        for name, folder in pipelines:
            ArgoPipeline(
                name,
                ArgoPipelineArgs(
                    **(
                        {
                            "argo": argo,
                            "cluster": cluster,
                            "image": IMAGE,
                            "workload_dir": str(folder),
                            "data_url": f"/data/{name}",
                            "storage": (nfs.pod_storage,),
                        }
                        | pipeline_changes
                    )
                ),
            )

    return program


def test_argo_install_is_pinned_namespaced_and_restricted() -> None:
    deployment = deploy("minikube")
    [chart] = deployment.of_type("kubernetes:helm.sh/v4:Chart")
    inputs = chart.inputs
    assert (inputs["chart"], inputs["version"], inputs["name"]) == (
        "argo-workflows",
        ARGO_CHART_VERSION,
        "argo-workflows",
    )
    values = inputs["values"]
    assert values["singleNamespace"] is True
    assert values["createAggregateRoles"] is False
    # The chart's default (crds.full) installs CRDs from a hook Job that helm.v4.Chart skips.
    assert values["crds"] == {"install": True, "full": False, "keep": False}
    assert "useDefaultArtifactRepo" not in values, "removed from the chart in 2023"
    assert "workflowNamespaces" not in values["controller"], "ignored with singleNamespace"
    assert values["executor"]["securityContext"]["runAsNonRoot"] is True
    assert "artifactRepository" not in values
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered_objects(deployment)}
    assert ("Role", "argo-workflow-argo-step") in kinds
    assert ("ServiceAccount", "argo-workflow") in kinds
    assert ("WorkflowTemplate", "ml-basic") in kinds
    role = next(o for o in rendered_objects(deployment) if o["kind"] == "Role")
    assert role["rules"] == [
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtaskresults"],
            "verbs": ["create", "patch"],
        }
    ]


@pytest.mark.parametrize(("cloud", "kind"), [("gke", "gcs"), ("eks", "s3")])
def test_artifacts_go_to_the_stack_bucket_through_identity(cloud: str, kind: str) -> None:
    deployment = deploy(cloud)
    [chart] = deployment.of_type("kubernetes:helm.sh/v4:Chart")
    repository = chart.inputs["values"]["artifactRepository"]
    assert set(repository) == {"archiveLogs", kind}
    assert "accessKeySecret" not in repository[kind]
    assert "serviceAccountKeySecret" not in repository[kind]
    if kind == "s3":
        assert repository["s3"]["useSDKCreds"] is True
        assert repository["s3"]["region"] == "us-east-1", "the cluster's region"
        assert repository["s3"]["keyFormat"].startswith("argo/{{workflow.namespace}}")
    else:
        # The chart runs the whole gcs map through Helm's tpl: Argo's braces are escaped.
        assert repository["gcs"]["keyFormat"] == (
            '{{ "argo/{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}" }}'
        )
    grants = [
        r.name
        for r in deployment.resources
        if r.type
        in ("gcp:storage/bucketIAMMember:BucketIAMMember", "aws:iam/rolePolicy:RolePolicy")
    ]
    assert grants == ["bucket-access-argo-workflow"], "the workflow identity may use the bucket"


def test_a_pipeline_can_run_on_deploy(assert_schema_valid: Any) -> None:
    deployment = deploy("minikube", kind="Workflow")
    [workflow] = [o for o in rendered_objects(deployment) if o["kind"] == "Workflow"]
    assert workflow["metadata"]["name"] == "ml-basic"
    assert_schema_valid([workflow])


def _copy_workload(source: Path, target: Path, **changes: str) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((target / "workload.yaml").read_text()) | changes
    (target / "workload.yaml").write_text(yaml.safe_dump(spec))
    return target


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"entrypoint": "ml:nothing"}, "workload_dir", "has no 'nothing'"),
        ({"data_url": "/home/me/data"}, "data_url", "pods see only /data"),
        ({"kind": "CronWorkflow"}, "kind", "allowed: WorkflowTemplate, Workflow"),
    ],
)
def test_bad_pipeline_arguments(
    tmp_path: Path, changes: dict[str, Any], field: str, message: str
) -> None:
    if "entrypoint" in changes:
        folder = _copy_workload(ML_BASIC, tmp_path / "ml", entrypoint=changes.pop("entrypoint"))
        changes["workload_dir"] = str(folder)
    with pytest.raises(ProgramError) as caught:
        deploy("minikube", **changes)
    error = caught.value.error
    assert isinstance(error, SpecError)
    assert error.field == field
    assert message in str(error)


def test_two_pipelines_with_the_same_module_names_keep_their_own_steps(tmp_path: Path) -> None:
    """Both workloads have ml.py and tasks.py: each DAG is read from its own folder."""
    other = _copy_workload(ML_BASIC, tmp_path / "ml-other", name="ml-other")
    ml = (other / "ml.py").read_text()
    (other / "ml.py").write_text(ml.replace('name="ml-basic"', 'name="ml-other"'))
    tasks = (other / "tasks.py").read_text()
    (other / "tasks.py").write_text(tasks + "\n\ndef extra(inputs, outputs):\n    pass\n")
    extra = '            Step(name="extra", function="tasks:extra", upstream=("fit",)),\n'
    source = (other / "ml.py").read_text()
    end = "        ),\n    )\n"
    (other / "ml.py").write_text(source.replace(end, extra + end))
    before = set(sys.modules)
    deployment = run_function(_program("minikube", ("ml-basic", ML_BASIC), ("ml-other", other)))
    assert set(sys.modules) == before, "no workload module was imported into this process"
    templates = {
        o["metadata"]["name"]: [t["name"] for t in o["spec"]["templates"]]
        for o in rendered_objects(deployment)
        if o["kind"] == "WorkflowTemplate"
    }
    assert "extra" not in templates["ml-basic"]
    assert templates["ml-other"] == [*templates["ml-basic"], "extra"]


def test_two_templates_with_one_name_fail_the_render(tmp_path: Path, crd_catalog: Any) -> None:
    copy = _copy_workload(ML_BASIC, tmp_path / "ml-copy", name="ml-copy")  # same pipeline name
    deployment = run_function(_program("minikube", ("ml-basic", ML_BASIC), ("ml-copy", copy)))
    objects = rendered_objects(deployment)
    expected = "WorkflowTemplate/ml-basic in namespace workstack is defined 2 times"
    assert duplicate_names(objects) == [expected]
    assert expected in validate_objects(objects, crd_catalog).errors


def test_export_command_writes_what_argo_submit_takes(
    tmp_path: Path, assert_schema_valid: Any
) -> None:
    from typer.testing import CliRunner

    from workstack.main import app

    out = tmp_path / "argo.yaml"
    runner = CliRunner()
    result = runner.invoke(
        app, ["export", "argo", str(ML_BASIC), "--image", IMAGE, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(out.read_text())
    assert document == exported()
    assert_schema_valid([document])
    wrong = runner.invoke(
        app,
        [
            "export",
            "argo",
            str(ROOT / "workloads" / "csv-clean"),
            "--image",
            IMAGE,
            "--out",
            str(out),
        ],
    )
    assert wrong.exit_code == 2
    assert "is a job-per-file workload; export argo needs a pipeline" in wrong.stderr
