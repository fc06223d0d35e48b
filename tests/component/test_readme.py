"""The README's own-program example runs as written (offline, under Pulumi's mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workstack.offline import run_function

ROOT = Path(__file__).resolve().parents[2]


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using the components in your own program", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


def test_the_components_example_deploys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # its workload_dir is relative to the program's folder
    deployment = run_function(lambda: exec(_example(), {}))
    [job] = deployment.of_type("kubernetes:batch/v1:Job")
    assert job.inputs["metadata"]["name"] == "clean-2026-11-29"
    assert job.inputs["spec"]["completions"] == 50
    assert job.ignore_changes == ("spec",)
