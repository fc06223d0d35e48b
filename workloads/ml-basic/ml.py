"""The ml-basic pipeline, in the spirit of Ploomber's example: get, features, join, fit."""

from __future__ import annotations

from workstack.sdk.pipeline import Pipeline, Step


def build() -> Pipeline:
    """The DAG: get, features, join, fit; join also reads the output of get directly."""
    return Pipeline(
        name="ml-basic",
        steps=(
            Step(name="get", function="tasks:get", outputs={"raw": "raw/iris.csv"}),
            Step(
                name="features",
                function="tasks:features",
                inputs={"raw": "raw/iris.csv"},
                outputs={"features": "features.csv"},
            ),
            Step(
                name="join",
                function="tasks:join",
                inputs={"raw": "raw/iris.csv", "features": "features.csv"},
                outputs={"joined": "join.csv"},
            ),
            Step(
                name="fit",
                function="tasks:fit",
                inputs={"joined": "join.csv"},
                outputs={"model": "model.json", "metrics": "metrics.json"},
                retries=2,
                cpu="500m",
                memory="1Gi",
            ),
        ),
    )
