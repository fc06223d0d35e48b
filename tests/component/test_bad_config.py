"""Invalid stack config fails before any resource is registered, naming key and allowed values."""

from __future__ import annotations

import pytest

from workstack.offline import ProgramError
from workstack.project import PulumiProject

from .harness import REMOVE, deploy

# (stack, config changes, fragments the error message must contain)
BAD_CONFIGS = [
    ("minikube", {"cloud": "azure"}, ["workstack:cloud: 'azure'", "allowed: minikube, gke, eks"]),
    (
        "gke",
        {"nodeMin": "5", "nodeMax": "3"},
        ["workstack:nodeMin: 5", "must not exceed workstack:nodeMax (3)"],
    ),
    ("eks", {"nodeMax": "0"}, ["workstack:nodeMax: 0", "integer between 1 and 1000"]),
    ("gke", {"nodeMin": "two"}, ["workstack:nodeMin: 'two'", "expected an integer"]),
    ("gke", {"nodeSpot": "maybe"}, ["workstack:nodeSpot: 'maybe'", "expected true or false"]),
    (
        "minikube",
        {"namespace": "Work_Stack"},
        ["workstack:namespace: 'Work_Stack'", "DNS-1123 label"],
    ),
    (
        "gke",
        {"gcp__project": REMOVE},
        ["gcp:project: (missing)", "required when workstack:cloud is gke"],
    ),
    ("gke", {"gcp__region": REMOVE, "gcp__zone": REMOVE}, ["gcp:region or gcp:zone: (missing)"]),
    (
        "eks",
        {"aws__region": REMOVE},
        ["aws:region: (missing)", "required when workstack:cloud is eks"],
    ),
    (
        "minikube",
        {"nodeCount": "3"},
        ["workstack:nodeCount: '3'", "unknown key; known: bucketAccessKeyId, bucketEndpoint"],
    ),
    (
        "gke",
        {"clusterName": "9lives"},
        ["workstack:clusterName: '9lives'", "must start with a letter"],
    ),
    ("gke", {"clusterName": "x" * 41}, ["workstack:clusterName:", "at most 40 characters"]),
    (
        "gke",
        {"gkeReleaseChannel": "NIGHTLY"},
        ["workstack:gkeReleaseChannel: 'NIGHTLY'", "allowed: RAPID, REGULAR, STABLE, EXTENDED"],
    ),
    ("gke", {"gcp__zone": "europe"}, ["gcp:zone: 'europe'", "a zone such as europe-west1-b"]),
    (
        "eks",
        {"eksIdentity": "static-keys"},
        ["workstack:eksIdentity: 'static-keys'", "allowed: pod-identity, irsa"],
    ),
    (
        "eks",
        {"eksAdminArns": '["root"]'},
        ["workstack:eksAdminArns: 'root'", "IAM user or role ARN"],
    ),
    (
        "eks",
        {"eksAdminArns": "admin"},
        ["workstack:eksAdminArns: 'admin'", "expected a list of strings"],
    ),
    ("eks", {"eksVersion": "latest"}, ["workstack:eksVersion: 'latest'", "a version such as 1.33"]),
    (
        "eks",
        {"eksSubnetIds": '["subnet-1"]'},
        ["workstack:eksSubnetIds:", "needs workstack:eksVpcId"],
    ),
    (
        "minikube",
        {"kubeContext": " "},
        ["workstack:kubeContext: ' '", "expected a non-empty string"],
    ),
]


@pytest.mark.parametrize(("stack", "changes", "fragments"), BAD_CONFIGS)
def test_bad_config_fails_before_anything_is_registered(
    project: PulumiProject, stack: str, changes: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(ProgramError) as caught:
        deploy(project, stack, **changes)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert caught.value.deployment.resources == []


def test_several_problems_are_reported_together(project: PulumiProject) -> None:
    with pytest.raises(ProgramError) as caught:
        deploy(project, "gke", nodeMin="x", nodeMax="y", colour="red")
    message = str(caught.value)
    assert "workstack:nodeMin" in message
    assert "workstack:nodeMax" in message
    assert "workstack:colour" in message
