"""The stacks' example workloads: images, patterns, security and config errors."""

from __future__ import annotations

from typing import Any

import pytest

from workstack.components.manifests.contract import StackContract, load_contract
from workstack.components.manifests.runs import RunRequest, build_run
from workstack.offline import Deployment, ProgramError
from workstack.policy import pod_templates, restricted_violations
from workstack.project import PulumiProject
from workstack.render import rendered_objects

from .harness import deploy
from .test_storage import MINIO, MINIO_SECRETS


@pytest.fixture(scope="module", params=["minikube", "gke", "eks"])
def stack(request: pytest.FixtureRequest, project: PulumiProject) -> tuple[str, Deployment]:
    return request.param, deploy(project, request.param)


def containers(deployment: Deployment) -> list[dict[str, Any]]:
    return [
        container
        for obj in rendered_objects(deployment)
        for template in pod_templates(obj)
        for container in template.spec["containers"]
    ]


def contract_of(deployment: Deployment) -> StackContract:
    return load_contract(deployment.outputs["contract"])


def run_of(deployment: Deployment, workload: str, **request: Any) -> dict[str, dict[str, Any]]:
    """The objects of a run built from the stack's contract, by kind/name."""
    objects = build_run(
        contract_of(deployment), RunRequest(workload=workload, run_id="r1", **request)
    )
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def test_each_pattern_is_deployed_and_no_run_is_started(
    stack: tuple[str, Deployment], assert_schema_valid: Any
) -> None:
    """Issue 16: `pulumi up` deploys the platform and templates; runs come from submit."""
    _, deployment = stack
    assert deployment.outputs["workloads"] == ["csv-clean", "dask-bench", "ml-basic", "simulations"]
    objects = rendered_objects(deployment)
    kinds = {(o["kind"], o["metadata"].get("name")) for o in objects}
    assert ("Deployment", "dask-bench-worker") in kinds
    assert ("WorkflowTemplate", "ml-basic") in kinds
    assert ("RabbitmqCluster", "rabbitmq") in kinds
    assert not [k for k in kinds if k[0] in ("Job", "Workflow")], "pulumi up starts no work"
    assert set(deployment.outputs["dask"]) == {"dask-bench"}
    contract = contract_of(deployment)
    patterns = {name: w.pattern for name, w in contract.workloads.items()}
    assert patterns == {
        "csv-clean": "job-per-file",
        "dask-bench": "dask",
        "ml-basic": "pipeline",
        "simulations": "queue-workers",
    }
    runs = [
        *run_of(deployment, "csv-clean", files=("a.csv", "b.csv")).values(),
        *run_of(deployment, "simulations").values(),
        *run_of(deployment, "dask-bench", config="run: {function: bench:run}\n").values(),
        *run_of(deployment, "ml-basic").values(),
    ]
    assert_schema_valid(runs)
    for obj in runs:
        assert obj["metadata"]["labels"]["workstack.dev/run"] == "r1"
        for template in pod_templates(obj):
            assert restricted_violations(template.spec) == [], template.source


def test_every_workload_pod_meets_the_restricted_profile(stack: tuple[str, Deployment]) -> None:
    _, deployment = stack
    for obj in rendered_objects(deployment):
        for template in pod_templates(obj):
            if template.exception is None:
                assert restricted_violations(template.spec) == [], template.source


def test_images_are_loaded_on_minikube_and_pushed_by_digest_elsewhere(
    stack: tuple[str, Deployment],
) -> None:
    name, deployment = stack
    images = deployment.of_type("docker-build:index:Image")
    assert len(images) == 4
    workload_containers = [c for c in containers(deployment) if "volume/nfs" not in c["image"]]
    if name == "minikube":
        assert all(image.inputs["push"] is False for image in images)
        assert all(c["imagePullPolicy"] == "Never" for c in workload_containers)
    else:
        assert all(image.inputs["push"] is True for image in images)
        assert all("@sha256:" in c["image"] for c in workload_containers), "pinned by digest"


def test_workloads_use_the_nfs_mount_by_default(project: PulumiProject) -> None:
    job = run_of(deploy(project, "minikube"), "csv-clean")["Job/csv-clean-r1"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[2:6] == ["--input", "/data/csv-clean/inputs", "--output", "/data/csv-clean/outputs"]


def test_a_bucket_only_stack_points_workloads_at_the_bucket(project: PulumiProject) -> None:
    deployment = deploy(project, "minikube", storage="bucket", secrets=MINIO_SECRETS, **MINIO)
    job = run_of(deployment, "csv-clean")["Job/csv-clean-r1"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    # The bucket exists already and may serve other stacks: this one works under its namespace.
    assert container["args"][3] == "s3://workstack-data/workstack/csv-clean/inputs"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WORKSTACK_BUCKET_URL"] == "s3://workstack-data/workstack"


BAD = [
    (
        {"workloads": '["csv-clean", "fraud-detect"]'},
        [
            "workstack:workloads: 'fraud-detect'",
            "known workloads: asreview-makita, clc-preprocess, csv-clean, dask-bench, "
            "experiment, ml-basic, ml-ploomber, simulations",
        ],
    ),
    ({"workloads": '["csv-clean", "csv-clean"]'}, ["list each workload once"]),
    ({"jobShards": "0"}, ["workstack:jobShards: 0", "integer between 1 and 100000"]),
    ({"jobParallelism": "-2"}, ["workstack:jobParallelism: -2"]),
    ({"daskMaxWorkers": "4"}, ["workstack:daskMode: 'plain'", "needs mode operator"]),
    (
        {"daskMaxWorkers": "1", "daskWorkers": "3", "daskMode": "operator"},
        ["workstack:daskWorkers: 3", "must not exceed workstack:daskMaxWorkers (1)"],
    ),
    ({"daskMode": "yarn"}, ["workstack:daskMode: 'yarn'", "allowed: plain, operator"]),
    ({"queueMode": "forever"}, ["workstack:queueMode: 'forever'", "allowed: jobs, keda"]),
    ({"queueWorkers": "0"}, ["workstack:queueWorkers: 0", "between 1 and 10000"]),
    ({"rabbitmqReplicas": "2"}, ["workstack:rabbitmqReplicas: 2", "quorum queues need"]),
]


@pytest.mark.parametrize(("changes", "fragments"), BAD)
def test_bad_workload_config(
    project: PulumiProject, changes: dict[str, str], fragments: list[str]
) -> None:
    with pytest.raises(ProgramError) as caught:
        deploy(project, "minikube", **changes)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)
    assert caught.value.deployment.resources == []


def test_docker_host_is_for_minikube_only(project: PulumiProject) -> None:
    with pytest.raises(
        ProgramError, match=r"workstack:dockerHost: 'ssh://docker@127\.0\.0\.1:2222'"
    ) as caught:
        deploy(project, "gke", dockerHost="ssh://docker@127.0.0.1:2222")
    assert caught.value.deployment.resources == []


def test_queue_workers_get_the_stacks_broker_and_storage(project: PulumiProject) -> None:
    deployment = deploy(project, "minikube", queueWorkers="3")
    objects = {o["metadata"]["name"]: o for o in run_of(deployment, "simulations").values()}
    workers = objects["simulations-r1-workers"]["spec"]
    assert workers["parallelism"] == 3
    [container] = workers["template"]["spec"]["containers"]
    assert container["args"][4:6] == ["--storage", "/data/simulations"]
    assert container["env"][-1]["valueFrom"]["secretKeyRef"] == {
        "name": "rabbitmq-default-user",
        "key": "url",
    }
    tasker = objects["simulations-r1-tasker"]["spec"]["template"]["spec"]["containers"][0]
    assert tasker["args"][tasker["args"].index("--from") + 1] == "simulations.plan:stages"
    # The tasker names its run by the run id and the workers obey only that run's stops, so
    # two runs on one queue set cannot stop each other's workers.
    for pod in (tasker, container):
        assert {"name": "WORKSTACK_RUN_ID", "value": "r1"} in pod["env"]
    assert deployment.outputs["rabbitmq"] == {
        "management": "kubectl port-forward -n workstack svc/rabbitmq 15672:15672"
    }


def test_keda_mode_from_the_stack_config(project: PulumiProject) -> None:
    deployment = deploy(project, "gke", queueMode="keda", queueWorkers="8")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered_objects(deployment)}
    assert {
        ("ScaledJob", "simulations-workers"),
        ("TriggerAuthentication", "simulations-broker"),
    } <= kinds
    assert ("Job", "simulations-workers") not in kinds
    [scaled] = [o for o in rendered_objects(deployment) if o["kind"] == "ScaledJob"]
    [worker] = scaled["spec"]["jobTargetRef"]["template"]["spec"]["containers"]
    assert "WORKSTACK_RUN_ID" not in {e["name"] for e in worker["env"]}, "a service has no run"


def test_operators_are_installed_once_for_several_workloads(project: PulumiProject) -> None:
    """Two Dask and two queue workloads in operator and KEDA mode share one chart of each."""
    import dataclasses

    from stacks.config import parse_stack_config
    from stacks.program import compose
    from workstack.offline import run_function

    settings = project.read_stack("minikube")
    values = dict(settings.values) | {
        "workstack:daskMode": "operator",
        "workstack:queueMode": "keda",
        "workstack:workloads": '["dask-bench", "simulations"]',
    }
    config = parse_stack_config("minikube", values)
    twins = tuple(
        dataclasses.replace(w, spec=dataclasses.replace(w.spec, name=f"{w.spec.name}-2"))
        for w in config.workloads
    )
    config = dataclasses.replace(config, workloads=config.workloads + twins)
    deployment = run_function(lambda: compose(config))
    charts = sorted(c.inputs["chart"] for c in deployment.of_type("kubernetes:helm.sh/v4:Chart"))
    assert charts == ["dask-kubernetes-operator", "keda"]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered_objects(deployment)}
    assert {("ScaledJob", "simulations-workers"), ("ScaledJob", "simulations-2-workers")} <= kinds
    by_name = {r.name: r for r in deployment.resources if r.type.startswith("workstack:workload:")}
    # Depending on a component means depending on its children: here the charts.
    assert by_name["simulations-2"].waits_for("simulations-keda")
    assert by_name["dask-bench-2"].waits_for("dask-bench-operator")
    # The first waits for nothing but the NFS share it mounts (destroyed after it).
    assert by_name["simulations"].depends_on
    assert all("NfsStorage" in urn for urn in by_name["simulations"].depends_on)


@pytest.mark.parametrize("stack", ["minikube", "gke", "eks"])
def test_the_seed_examples_deploy_and_run_from_every_stack(
    project: PulumiProject, stack: str, assert_schema_valid: Any
) -> None:
    """Issue 17: the argparse script, the one-off experiment and the Ploomber project render
    for every stack, and their runs are built from the contract like any other."""
    deployment = deploy(project, stack, workloads='["clc-preprocess", "experiment", "ml-ploomber"]')
    assert_schema_valid(rendered_objects(deployment))
    contract = contract_of(deployment)
    assert {n: w.pattern for n, w in contract.workloads.items()} == {
        "clc-preprocess": "job-per-file",
        "experiment": "command",
        "ml-ploomber": "pipeline",
    }
    script = run_of(deployment, "clc-preprocess", files=("a.txt",))["Job/clc-preprocess-r1"]
    args = script["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--command") + 1] == contract.workloads["clc-preprocess"].command
    experiment = run_of(deployment, "experiment")["Job/experiment-r1"]
    container = experiment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["command", "run", "--command"]
    assert experiment["spec"]["completions"] == 1
    runs = [
        *run_of(deployment, "clc-preprocess", files=("a.txt",)).values(),
        experiment,
        *run_of(deployment, "ml-ploomber").values(),
    ]
    assert_schema_valid(runs)
    for obj in runs:
        for template in pod_templates(obj):
            assert restricted_violations(template.spec) == [], template.source
