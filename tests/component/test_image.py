"""WorkloadImage under Pulumi's mocks: push to GKE's and EKS's registries, load for minikube."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest

from workstack.components import (
    EksCluster,
    EksClusterArgs,
    GkeCluster,
    GkeClusterArgs,
    ImageRef,
    MinikubeCluster,
    MinikubeClusterArgs,
    SpecError,
    WorkloadImage,
    WorkloadImageArgs,
)
from workstack.images import generate_context, plan_context, rendering
from workstack.offline import (
    Deployment,
    ProgramError,
    RegisteredResource,
    Secret,
    run_function,
    run_program,
)
from workstack.project import load_project

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "workloads" / "word-count"
IMAGE = "docker-build:index:Image"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default context folder is relative to where the program runs."""
    monkeypatch.chdir(tmp_path)


def deploy(cloud: str, **image_args: Any) -> Deployment:
    def program() -> None:
        if cloud == "gke":
            cluster: Any = GkeCluster(
                "ml",
                GkeClusterArgs(project="my-project", location="europe-west1", cluster_name="ml"),
            )
        elif cloud == "eks":
            cluster = EksCluster("ml", EksClusterArgs(cluster_name="ml"))
        else:
            cluster = MinikubeCluster("ml", MinikubeClusterArgs())
        image = WorkloadImage(
            "words",
            WorkloadImageArgs(workload_dir=str(FIXTURE), registry=cluster.registry, **image_args),
        )
        pulumi.export("ref", image.ref)
        pulumi.export("image_name", image.image_name)
        pulumi.export("digest", image.digest)
        pulumi.export("tag", image.tag)
        pulumi.export("pull_policy", image.pull_policy)

    return run_function(program, write_contexts=True)  # as `pulumi up` would


def only(deployment: Deployment, type_token: str) -> RegisteredResource:
    found = deployment.of_type(type_token)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def expected_tag() -> str:
    return generate_context(FIXTURE, Path("expected")).tag


def test_gke_pushes_to_artifact_registry_with_the_deployers_token() -> None:
    deployment = deploy("gke")
    image = only(deployment, IMAGE)
    tag = expected_tag()
    ref = f"europe-west1-docker.pkg.dev/my-project/ml-images/word-count:{tag}"
    assert image.name == "words-image"
    assert image.inputs["tags"] == [ref]
    assert image.inputs["push"] is True
    assert image.inputs.get("load") is False
    registries = image.inputs["registries"]
    assert isinstance(registries, Secret)
    assert registries.value == [
        {
            "address": "europe-west1-docker.pkg.dev",
            "username": "oauth2accesstoken",
            "password": "offline-google-token",
        }
    ]
    assert image.inputs["context"] == {"location": ".workstack/images/word-count"}
    assert image.inputs["dockerfile"] == {"location": ".workstack/images/word-count/Dockerfile"}
    assert image.inputs["buildArgs"] == {"BASE_IMAGE": "python:3.11-slim-bookworm"}
    # Built for the nodes (amd64 by default), not for whatever machine runs pulumi up.
    assert image.inputs["platforms"] == ["linux/amd64"]
    outputs = deployment.outputs
    assert outputs["tag"] == tag
    assert outputs["image_name"] == ref
    assert outputs["ref"] == f"{ref}@{outputs['digest']}"
    assert outputs["digest"].startswith("sha256:")
    assert outputs["pull_policy"] == "IfNotPresent"
    assert Path(".workstack/images/word-count/Dockerfile").is_file()


def test_eks_pushes_to_ecr_with_an_authorization_token() -> None:
    deployment = deploy("eks")
    image = only(deployment, IMAGE)
    tag = expected_tag()
    # One ECR repository per cluster: the workload name goes into the tag.
    ref = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-images:word-count-{tag}"
    assert image.inputs["tags"] == [ref]
    assert image.inputs["push"] is True
    assert image.inputs["registries"].value == [
        {
            "address": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "username": "AWS",
            "password": "offline-ecr-token",
        }
    ]
    assert deployment.outputs["ref"] == f"{ref}@{deployment.outputs['digest']}"


def test_ecr_names_go_into_the_tag() -> None:
    deployment = deploy("eks", repository="csv")
    tag = only(deployment, IMAGE).inputs["tags"][0]
    assert tag.endswith(f"/ml-images:csv-{expected_tag()}")

    def program() -> None:
        cluster = EksCluster("ml", EksClusterArgs(cluster_name="ml"))
        WorkloadImage(
            "words",
            WorkloadImageArgs(
                workload_dir=str(FIXTURE), registry=cluster.registry, repository="team/csv"
            ),
        )

    with pytest.raises(ProgramError) as caught:
        run_function(program)
    assert isinstance(caught.value.error, SpecError)
    assert caught.value.error.field == "repository"
    assert "must not contain '/'" in str(caught.value.error)


def test_minikube_loads_into_its_engine_without_a_registry() -> None:
    deployment = deploy("minikube", docker_host="ssh://docker@127.0.0.1:32772")
    image = only(deployment, IMAGE)
    tag = expected_tag()
    assert image.inputs["tags"] == [f"workstack/word-count:{tag}"]
    assert image.inputs["push"] is False
    assert image.inputs["load"] is True
    assert "registries" not in image.inputs
    engine = only(deployment, "pulumi:providers:docker-build")
    assert engine.name == "words-docker"
    assert engine.inputs["host"] == "ssh://docker@127.0.0.1:32772"
    assert image.provider is not None
    assert "words-docker" in image.provider
    assert deployment.outputs["ref"] == f"workstack/word-count:{tag}"
    assert deployment.outputs["pull_policy"] == "Never"


def test_minikube_without_docker_host_uses_the_environments_engine() -> None:
    deployment = deploy("minikube")
    assert deployment.of_type("pulumi:providers:docker-build") == []
    assert only(deployment, IMAGE).provider is None


def test_offline_builds_run_with_network_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fetching wheels is real pip, tested in tests/unit/test_wheelhouse.py and the Docker
    # integration tests; here only what the component hands to docker-build matters.
    wheelhouse = tmp_path / "wh"
    wheelhouse.mkdir()
    (wheelhouse / "stand-in-1.0-py3-none-any.whl").write_bytes(b"wheel")

    def resolve(requirements: bytes, **_: object) -> list[str]:
        return ["stand-in-1.0-py3-none-any.whl"]

    monkeypatch.setattr("workstack.images.context.resolve_wheels", resolve)
    built: list[Path | None] = []
    monkeypatch.setattr(
        "workstack.images.source.WorkstackSource.wheel",
        lambda self, **options: built.append(options.get("wheelhouse")) or _any_wheel(tmp_path),
    )
    deployment = deploy("gke", offline=True, wheelhouse=str(wheelhouse))
    assert only(deployment, IMAGE).inputs["network"] == "none"
    dockerfile = Path(".workstack/images/word-count/Dockerfile").read_text()
    assert "--no-index --find-links /tmp/workstack-deps/wheels" in dockerfile
    assert Path(".workstack/images/word-count/deps/wheels/stand-in-1.0-py3-none-any.whl").is_file()
    # workstack's wheel is built with the build backend from the wheelhouse too, no index.
    assert built == [wheelhouse]


def _any_wheel(folder: Path) -> Path:
    wheel = folder / "workstack-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"stand-in")
    return wheel


def test_rendering_writes_nothing_and_gives_the_same_tag(tmp_path: Path) -> None:
    """Before: `workstack render` wrote a build context per image under ./.workstack/."""
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    def program() -> None:
        with rendering():
            cluster = GkeCluster(
                "ml",
                GkeClusterArgs(project="my-project", location="europe-west1", cluster_name="ml"),
            )
            image = WorkloadImage(
                "words", WorkloadImageArgs(workload_dir=str(FIXTURE), registry=cluster.registry)
            )
            pulumi.export("tag", image.tag)

    deployment = run_function(program)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert deployment.outputs["tag"] == plan_context(FIXTURE).tag == expected_tag()
    image = only(deployment, IMAGE)
    assert image.inputs["context"] == {"location": ".workstack/images/word-count"}


def test_platform_and_stack_extras_reach_the_build_and_the_tag() -> None:
    deployment = deploy("eks", platform="linux/arm64", extras=("s3",))
    image = only(deployment, IMAGE)
    assert image.inputs["platforms"] == ["linux/arm64"]
    tag = plan_context(FIXTURE, platform="linux/arm64", extras=("s3",)).tag
    assert deployment.outputs["tag"] == tag != expected_tag()
    requirements = Path(".workstack/images/word-count/deps/requirements.txt").read_text()
    assert "s3fs~=2026.9.0" in requirements
    dockerfile = Path(".workstack/images/word-count/Dockerfile").read_text()
    assert 'dev.workstack.platform="linux/arm64"' in dockerfile


def test_same_workload_same_inputs_so_no_rebuild() -> None:
    """docker-build rebuilds only when its inputs or the context's content hash change."""
    first = only(deploy("gke"), IMAGE).inputs
    second = only(deploy("gke"), IMAGE).inputs
    assert first == second


def test_children_are_named_after_the_component() -> None:
    deployment = deploy("minikube", docker_host="unix:///run/docker.sock")
    component = only(deployment, "workstack:image:WorkloadImage")
    assert component.name == "words"
    names = [
        r.name
        for r in deployment.resources
        if r.type.startswith(("docker-build", "pulumi:providers:docker"))
    ]
    assert names
    assert all(name.startswith("words-") for name in names)


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"workload_dir": "nowhere"}, "workload_dir", "expected an existing folder"),
        ({"base_image": "Bad Image"}, "base_image", "expected an image reference"),
        ({"docker_host": "192.0.2.49:2376"}, "docker_host", "unix://, tcp://, ssh://"),
        ({"wheelhouse": "/tmp/wh"}, "wheelhouse", "set offline=True"),
        ({"repository": "team/app:1"}, "repository", "without registry or tag"),
        ({"context_dir": " "}, "context_dir", "expected a folder path"),
        ({"platform": "linux/386"}, "platform", "one of linux/amd64, linux/arm64"),
        ({"platform": "amd64"}, "platform", "one of linux/amd64, linux/arm64"),
        ({"extras": ("s4",)}, "extras", "one of s3, gcs, queue, dask"),
        ({"extras": ("deploy",)}, "extras", "one of s3, gcs, queue, dask"),
        ({"extras": "s3"}, "extras", "expected a tuple of extras"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(
    changes: dict[str, Any], field: str, allowed: str
) -> None:
    def program() -> None:
        WorkloadImage("words", WorkloadImageArgs(**({"workload_dir": str(FIXTURE)} | changes)))

    with pytest.raises(ProgramError) as caught:
        run_function(program)
    error = caught.value.error
    assert isinstance(error, SpecError)
    assert error.field == field
    assert allowed in str(error)
    assert caught.value.deployment.resources == []


def test_a_context_that_cannot_be_generated_registers_nothing(tmp_path: Path) -> None:
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")

    def program() -> None:
        WorkloadImage(
            "words", WorkloadImageArgs(workload_dir=str(FIXTURE), context_dir=str(foreign))
        )

    with pytest.raises(ProgramError) as caught:
        run_function(program, write_contexts=True)
    assert "refusing to replace it" in str(caught.value.error)
    assert caught.value.deployment.resources == []


@pytest.mark.parametrize(
    ("reference", "policy"),
    [
        ("python:3.11-slim", "IfNotPresent"),
        ("europe-west1-docker.pkg.dev/p/r/app:1.0", "IfNotPresent"),
        ("localhost:5000/app", "Always"),
        ("app:latest", "Always"),
        ("app@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_image_ref_of_a_reference(reference: str, policy: str) -> None:
    def program() -> None:
        image = ImageRef.of(reference)
        assert image.pull_policy == policy
        pulumi.export("ref", image.ref)

    assert run_function(program).outputs["ref"] == reference


def test_image_ref_of_a_workload_image_and_of_nonsense() -> None:
    def program() -> None:
        built = WorkloadImage("words", WorkloadImageArgs(workload_dir=str(FIXTURE)))
        image = ImageRef.of(built)
        assert image.pull_policy == "Never"
        pulumi.export("ref", image.ref)

    assert run_function(program).outputs["ref"].startswith("workstack/word-count:")
    with pytest.raises(SpecError, match="image: 'Not An Image'"):
        ImageRef.of("Not An Image")


@pytest.mark.parametrize("stack", ["minikube", "gke", "eks"])
def test_rendering_a_whole_stack_writes_nothing(
    tmp_path: Path, stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`workstack render` runs the program through run_program: every workload image is
    planned (tagged), none is written (here: nothing appears in the working folder)."""
    monkeypatch.chdir(tmp_path)
    project = load_project(ROOT)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    deployment = run_program(project, stack)
    images = deployment.of_type(IMAGE)
    assert images, "the stack builds workload images"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (ROOT / "stacks" / ".workstack").exists()
