"""`workstack render`: offline, complete, valid YAML; secrets masked; bad input exits 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml
from typer.testing import CliRunner

from workstack.main import app
from workstack.offline import Secret, run_function
from workstack.render import SECRET, present, rendered_objects, summary_lines

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.mark.parametrize("stack", ["minikube", "gke", "eks"])
def test_render_prints_yaml_then_summary_comments(stack: str) -> None:
    result = runner.invoke(app, ["render", "--stack", stack, "--project", str(ROOT), "--validate"])
    # The exit code also reflects the offline proof: see test_render_validate_runs_the_proof.
    assert result.exit_code in (0, 1), result.output
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = [d["kind"] for d in documents]
    assert kinds[:2] == ["Namespace", "Namespace"], "namespaces come first"
    assert {"ServiceAccount", "PersistentVolumeClaim", "Deployment"} <= set(kinds)
    assert "# Cloud resources" in result.stdout
    assert "# Helm charts" in result.stdout
    assert '#   kubeconfig: "[secret]"' in result.stdout
    assert "objects, 0 errors" in result.stderr, "every object is schema-valid"


def test_render_gke_lists_cloud_resources_with_key_properties() -> None:
    result = runner.invoke(app, ["render", "--stack", "gke", "--project", str(ROOT)])
    assert "gcp:container/cluster:Cluster  cluster-cluster" in result.stdout
    assert "deletionProtection=true" in result.stdout
    assert "gcp:container/nodePool:NodePool  cluster-pool" in result.stdout


def test_render_out_writes_one_file_per_object(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["render", "-s", "minikube", "--project", str(ROOT), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files[0] == "001-namespace-workstack.yaml"
    assert any(name.endswith("-persistentvolumeclaim-workstack-shared-data.yaml") for name in files)
    assert any(name.endswith("-workflowtemplate-workstack-ml-basic.yaml") for name in files)
    documents = [yaml.safe_load(p.read_text()) for p in sorted(tmp_path.iterdir())]
    assert len(files) == len(set(files)) == len(documents)
    assert all(doc["kind"] and doc["metadata"]["name"] for doc in documents)


def test_unknown_stack_exits_2_and_lists_stacks() -> None:
    result = runner.invoke(app, ["render", "--stack", "azure", "--project", str(ROOT)])
    assert result.exit_code == 2
    assert "stack 'azure' has no config file" in result.stderr
    assert "stacks: eks, gke, minikube" in result.stderr


def test_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    shutil.copytree(
        ROOT / "stacks", tmp_path / "stacks", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "stacks" / "Pulumi.broken.yaml").write_text(
        "config:\n  workstack:cloud: gke\n  workstack:nodeMin: 9\n  gcp:project: my-project-1\n"
        "  gcp:region: us-east1\n"
    )
    result = runner.invoke(app, ["render", "--stack", "broken", "--project", str(tmp_path)])
    assert result.exit_code == 2
    assert (
        "workstack:nodeMin: 9 is not allowed; must not exceed workstack:nodeMax (3)"
        in result.stderr
    )
    assert "---" not in result.stdout, "nothing may be rendered for an invalid config"


def test_console_command_renders_the_minikube_stack() -> None:
    completed = subprocess.run(
        [Path(sys.executable).parent / "workstack", "render", "--stack", "minikube"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "kind: Namespace" in completed.stdout


def test_secrets_are_masked_but_keys_stay_visible() -> None:
    def program() -> None:
        k8s.core.v1.Secret(
            "creds",
            metadata={"name": "broker", "namespace": "ws"},
            string_data=pulumi.Output.secret({"username": "u", "password": "hunter2"}),
        )
        pulumi.export("token", pulumi.Output.secret("t0k3n"))

    deployment = run_function(program)
    [secret] = rendered_objects(deployment)
    assert secret["stringData"] == {"username": SECRET, "password": SECRET}
    assert deployment.outputs["token"] == Secret("t0k3n")
    assert "hunter2" not in "\n".join(summary_lines(deployment))
    assert "t0k3n" not in "\n".join(summary_lines(deployment))


def test_present_masks_nested_values() -> None:
    assert present({"a": [Secret("x"), 1], "b": Secret(3)}) == {"a": [SECRET, 1], "b": SECRET}


@pytest.mark.parametrize("stack", ["minikube", "gke", "eks"])
def test_render_validate_passes_for_every_default_stack(stack: str) -> None:
    """The goal of issue 12: `workstack render --validate` passes, as `pulumi up` would."""
    result = runner.invoke(app, ["render", "--stack", stack, "--project", str(ROOT), "--validate"])
    assert result.exit_code == 0, result.stderr


def test_render_validate_runs_the_proof_and_exits_1_on_its_errors() -> None:
    from workstack.offline import run_program
    from workstack.project import load_project
    from workstack.proof import StackContext, check_deployment

    project = load_project(ROOT)
    deployment = run_program(project, "eks")
    findings = check_deployment(
        deployment, StackContext.of("eks", deployment, project.read_stack("eks").values)
    )
    errors = [f for f in findings if f.severity == "error"]
    result = runner.invoke(app, ["render", "--stack", "eks", "--project", str(ROOT), "--validate"])
    for finding in findings:
        mark = "INVALID" if finding.severity == "error" else "WARNING"
        assert f"# {mark} {finding}" in result.stderr
    assert f"# offline proof: {len(errors)} errors, {len(findings) - len(errors)} warnings" in (
        result.stderr
    )
    assert result.exit_code == (1 if errors else 0)
    plain = runner.invoke(app, ["render", "--stack", "eks", "--project", str(ROOT)])
    assert "offline proof" not in plain.stderr, "the proof runs with --validate only"


def test_the_demo_render_check_passes_for_minikube() -> None:
    """`workstack demo` ends with this check: it fails while the minikube stack cannot come up."""
    from workstack.demo import render_check
    from workstack.project import load_project

    check = render_check(load_project(ROOT), "minikube")
    assert check.errors == []
    assert check.proof_errors == [], "\n".join(str(f) for f in check.proof_errors)
    # stacks/Pulumi.minikube.yaml promises that one run of each workload fits its node
    # too, with the system pods (calico-node included: the CNI docs/deploying.md asks for).
    crowded = [f for f in check.proof if f.check == "capacity"]
    assert crowded == [], "\n".join(str(f) for f in crowded)
