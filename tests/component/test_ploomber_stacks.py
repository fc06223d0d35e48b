"""A Ploomber project listed in a stack's workloads renders, for every stack, with no changes."""

from __future__ import annotations

from typing import Any

import pytest

from workstack.project import PulumiProject
from workstack.render import rendered_objects

from .harness import deploy


@pytest.mark.parametrize("stack", ["minikube", "gke", "eks"])
def test_the_ploomber_example_renders_as_a_workflow_template(
    project: PulumiProject, stack: str, assert_schema_valid: Any
) -> None:
    deployment = deploy(project, stack, workloads='["ml-ploomber"]')
    objects = rendered_objects(deployment)
    assert_schema_valid(objects)
    template = next(
        o
        for o in objects
        if o["kind"] == "WorkflowTemplate" and o["metadata"]["name"] == "ml-ploomber"
    )
    steps = {t["name"]: t for t in template["spec"]["templates"] if "container" in t}
    assert sorted(steps) == ["features", "fit", "get", "join"]
    assert steps["fit"]["container"]["args"][:4] == [
        "pipeline", "step", "--entrypoint", "pipeline.yaml",
    ]  # fmt: skip
    dag = next(t for t in template["spec"]["templates"] if "dag" in t)["dag"]
    assert {t["name"]: sorted(t.get("dependencies", [])) for t in dag["tasks"]} == {
        "get": [], "features": ["get"], "join": ["features", "get"], "fit": ["join"],
    }  # fmt: skip
