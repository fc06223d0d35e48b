"""Every stack key reaches what it should change: proven on the registered resources.

Each cloud has a stack file that sets every key it accepts away from its default
(tests/fixtures/offdefaults/). Its render is pinned by a golden file, and each key is then
reverted alone: if nothing the program registers changes, the key is not wired to anything,
whatever the defaults hide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.config import PROJECT, SETTINGS_MODELS, project_keys
from workstack.components import EksClusterArgs, GkeClusterArgs, MinikubeClusterArgs
from workstack.components.manifests.settings import StackKey, stack_keys
from workstack.offline import Deployment, Secret, run_program
from workstack.project import PulumiProject, go_json
from workstack.render import rendered_objects, summary_lines, to_yaml

from .harness import offdefaults_config, with_project_defaults

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "offdefaults"
CLOUDS = ("minikube", "gke", "eks")
# Keys of a cloud's models that its fixture cannot move off their default, and why.
_IN_CLOUD = dict.fromkeys(
    ("bucketEndpoint", "bucketAccessKeyId", "bucketSecretAccessKey"),
    "refused on GKE and EKS: pods reach the bucket through workload identity",
) | {"dockerHost": "GKE and EKS push images to their registry; only minikube loads them"}
NOT_SETTABLE = {
    "minikube": {
        "nfsMode": "managed NFS needs GKE or EKS",
        "bucketVersioning": "minikube's bucket exists already; workstack does not manage it",
    },
    "gke": _IN_CLOUD,
    "eks": _IN_CLOUD,
}
_CLUSTER_MODELS = {"minikube": MinikubeClusterArgs, "gke": GkeClusterArgs, "eks": EksClusterArgs}
# Pattern settings do not depend on the cloud: their wiring is proven on minikube alone.
PATTERN_PREFIXES = ("job", "queue", "rabbitmq", "dask")
# A key reverted alone can break a rule it shares with another key (concurrency <= prefetch).
# For those, the test changes the key to another valid value, or first reverts its
# companions in both renders, so that only the key itself differs between them.
ALTERNATIVES = {
    ("minikube", "bucketName"): "another-bucket",
    ("minikube", "bucketEndpoint"): "http://other-minio.minio:9000",
    ("minikube", "bucketAccessKeyId"): "another-access-key",
    ("minikube", "bucketSecretAccessKey"): "another-secret-key",
    ("gke", "nfsSize"): "3Ti",  # the default, 10Gi, is below Filestore's smallest instance
    ("gke", "storage"): "bucket",
    ("eks", "storage"): "bucket",
    ("minikube", "storage"): "bucket",
    ("minikube", "queuePrefetch"): "3",
    ("minikube", "daskWorkerCpuLimit"): "1600m",
}
COMPANIONS = {
    "storage": ("nfsMode", "nfsSize"),
    "daskMode": ("daskMaxWorkers",),
    "eksVpcId": ("eksSubnetIds",),
    # Where operators serve matters only to a stack that installs them.
    "operatorScope": ("installOperators",),
}


def _fixture(cloud: str) -> tuple[dict[str, str], list[str]]:
    return offdefaults_config(cloud)


def _engine(value: Any) -> str:
    return value if isinstance(value, str) else go_json(value)


def _render(
    project: PulumiProject, cloud: str, values: dict[str, str], secrets: list[str]
) -> Deployment:
    settings = with_project_defaults(project, values, secrets)
    return run_program(project, f"offdefaults-{cloud}", settings)


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return {"secret": _plain(value.value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _canonical(deployment: Deployment) -> str:
    """Everything the program registered, secrets included, in a stable form."""
    resources = [
        {
            "type": r.type,
            "name": r.name,
            "parent": r.parent,
            "provider": r.provider,
            "protect": r.protect,
            "retain_on_delete": r.retain_on_delete,
            "depends_on": sorted(r.depends_on),
            "inputs": _plain(r.inputs),
        }
        for r in deployment.resources
    ]
    resources.sort(key=lambda r: (r["type"], r["name"]))
    outputs = _plain(deployment.outputs)
    return json.dumps({"resources": resources, "outputs": outputs}, sort_keys=True, default=str)


def _applicable(cloud: str) -> list[StackKey]:
    values, _ = _fixture(cloud)
    return [key for key in project_keys() if f"{PROJECT}:{key.name}" in values]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_fixtures_set_every_key_away_from_its_default(cloud: str) -> None:
    from stacks.config import parse_stack_config

    values, secrets = _fixture(cloud)
    config = parse_stack_config(f"offdefaults-{cloud}", values, secret_keys=secrets)
    assert config.cloud == cloud
    models = [m for m in SETTINGS_MODELS if m not in _CLUSTER_MODELS.values()]
    models.append(_CLUSTER_MODELS[cloud])
    expected = {key.name for model in models for key in stack_keys(model)}
    expected -= {"cloud", *NOT_SETTABLE[cloud]}
    set_here = {key.name for key in _applicable(cloud)} - {"cloud"}
    assert expected - set_here == set(), "add these keys to the fixture, away from the default"
    assert set_here - expected == set(), "the fixture sets keys its cloud does not take"
    for key in _applicable(cloud):
        raw = values[f"{PROJECT}:{key.name}"]
        if key.name != "cloud":
            assert raw != _engine(key.default), f"{key.name} is at its default in the fixture"


def _cases() -> list[tuple[str, str]]:
    cases = []
    for cloud in CLOUDS:
        for key in _applicable(cloud):
            if key.name == "cloud":
                continue
            if key.name.startswith(PATTERN_PREFIXES) and cloud != "minikube":
                continue
            cases.append((cloud, key.name))
    return cases


@pytest.mark.parametrize(("cloud", "name"), _cases())
def test_every_key_reaches_the_resources(project: PulumiProject, cloud: str, name: str) -> None:
    values, secrets = _fixture(cloud)
    for companion in COMPANIONS.get(name, ()):
        values.pop(f"{PROJECT}:{companion}", None)
    before = _canonical(_render(project, cloud, values, secrets))
    full = f"{PROJECT}:{name}"
    if (cloud, name) in ALTERNATIVES:
        values[full] = ALTERNATIVES[(cloud, name)]
    else:
        values.pop(full)
        secrets = [s for s in secrets if s != full]
    after = _canonical(_render(project, cloud, values, secrets))
    assert after != before, f"{full} changes nothing the {cloud} stack registers"


_IMAGE_TAG = re.compile(r"(?<=[:-])[0-9a-f]{20}\b")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _stable(text: str) -> str:
    """Image tags and digests hash workstack's own code; the golden keeps their shape only."""
    return _DIGEST.sub("sha256:<digest>", _IMAGE_TAG.sub("<content-hash>", text))


@pytest.mark.parametrize("cloud", CLOUDS)
def test_offdefaults_render_golden(
    project: PulumiProject, cloud: str, golden: Callable[[str, Any], None]
) -> None:
    values, secrets = _fixture(cloud)
    deployment = _render(project, cloud, values, secrets)
    text = to_yaml(rendered_objects(deployment)) + "".join(
        f"# {line}\n" for line in summary_lines(deployment)
    )
    golden(f"offdefaults-{cloud}", _stable(text))


def test_renders_are_deterministic(project: PulumiProject) -> None:
    """The differential test means something only if the same config renders the same."""
    values, secrets = _fixture("minikube")
    first = _canonical(_render(project, "minikube", values, secrets))
    assert _canonical(_render(project, "minikube", values, secrets)) == first
