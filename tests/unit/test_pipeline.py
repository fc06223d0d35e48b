"""Pipeline declarations: the DAG and every way it can be declared wrong."""

from __future__ import annotations

import pytest

from workstack.sdk.pipeline import Pipeline, PipelineError, Step


def step(
    name: str, reads: tuple[str, ...] = (), writes: tuple[str, ...] = (), **extra: object
) -> Step:
    return Step(
        name=name,
        function="tasks:noop",
        inputs={f"i{n}": path for n, path in enumerate(reads)},
        outputs={f"o{n}": path for n, path in enumerate(writes)},
        **extra,  # type: ignore[arg-type]
    )


def test_dependencies_come_from_inputs_and_upstream() -> None:
    pipeline = Pipeline(
        name="p",
        steps=(
            step("fit", reads=("join.csv",), writes=("model.json",)),
            step("join", reads=("raw.csv", "features.csv"), writes=("join.csv",)),
            step("features", reads=("raw.csv",), writes=("features.csv",)),
            step("get", writes=("raw.csv",)),
            step("report", upstream=("fit",)),
        ),
    )
    assert pipeline.dependencies(pipeline.step("join")) == ("features", "get")
    assert pipeline.dependencies(pipeline.step("report")) == ("fit",)
    order = [s.name for s in pipeline.order()]
    assert order.index("get") < order.index("features") < order.index("join") < order.index("fit")
    assert order.index("fit") < order.index("report")


def test_a_cycle_is_named_step_by_step() -> None:
    with pytest.raises(PipelineError, match=r"dependency cycle: a -> b -> c -> a"):
        Pipeline(
            name="p",
            steps=(
                step("a", reads=("c.csv",), writes=("a.csv",)),
                step("b", reads=("a.csv",), writes=("b.csv",)),
                step("c", reads=("b.csv",), writes=("c.csv",)),
            ),
        )


def test_a_step_depending_on_itself_is_a_cycle() -> None:
    with pytest.raises(PipelineError, match="dependency cycle: a -> a"):
        Pipeline(name="p", steps=(step("a", upstream=("a",)),))


def test_an_unknown_upstream_step_is_named() -> None:
    with pytest.raises(
        PipelineError, match="step 'fit' depends on unknown step 'trian'; steps: train, fit"
    ):
        Pipeline(name="p", steps=(step("train"), step("fit", upstream=("trian",))))


def test_two_writers_of_one_output_are_named() -> None:
    with pytest.raises(
        PipelineError, match=r"steps 'clean' and 'dedupe' both write 'data/clean\.csv'"
    ):
        Pipeline(
            name="p",
            steps=(
                step("clean", writes=("data/clean.csv",)),
                step("dedupe", writes=("data/clean.csv",)),
            ),
        )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Pipeline(name="p", steps=(step("a"), step("a"))),
            "steps ['a'] are declared more than once",
        ),
        (lambda: Pipeline(name="p", steps=()), "has no steps"),
        (lambda: Step(name="Fit_Model", function="t:f"), "step name 'Fit_Model' is not allowed"),
        (lambda: Step(name="fit"), "exactly one of function, command or script"),
        (
            lambda: Step(name="fit", function="t:f", outputs={"m": "/abs/model.json"}),
            "must be a relative path",
        ),
        (
            lambda: Step(name="fit", function="t:f", inputs={"m": "../up.csv"}),
            "must be a relative path",
        ),
        (lambda: Step(name="fit", function="t:f", retries=99), "retries 99 must be 0 to 20"),
        (lambda: Pipeline(name="ML", steps=(step("a"),)), "pipeline name 'ML' is not allowed"),
    ],
)
def test_bad_declarations(build: object, message: str) -> None:
    with pytest.raises(PipelineError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build()  # type: ignore[operator]


def test_unknown_step_lookup_lists_the_steps() -> None:
    pipeline = Pipeline(name="p", steps=(step("a"), step("b")))
    with pytest.raises(PipelineError, match="has no step 'c'; steps: a, b"):
        pipeline.step("c")
