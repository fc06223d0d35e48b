"""The images' entrypoint maps each pattern to its command."""

from workstack.sdk.pod import command_for
from workstack.sdk.workload import WorkloadSpec


def spec(pattern: str) -> WorkloadSpec:
    return WorkloadSpec(name="w", pattern=pattern, entrypoint="mod:fn")


def test_each_pattern_runs_its_command_with_the_entrypoint() -> None:
    assert command_for(spec("job-per-file"), ["--shards", "4"]) == [
        "files",
        "run",
        "--function",
        "mod:fn",
        "--shards",
        "4",
    ]
    assert command_for(spec("queue-workers"), ["worker"]) == ["queue", "worker"]
    assert command_for(spec("dask"), ["run.yaml"]) == ["dask", "run", "run.yaml"]
    assert command_for(spec("pipeline"), ["--step", "fit"]) == [
        "pipeline",
        "step",
        "--entrypoint",
        "mod:fn",
        "--step",
        "fit",
    ]


def test_a_tasker_publishes_the_entrypoints_tasks_unless_told_otherwise() -> None:
    queue = spec("queue-workers")
    assert command_for(queue, ["tasker", "--storage", "/data/s"]) == [
        "queue", "tasker", "--from", "mod:fn", "--storage", "/data/s",
    ]  # fmt: skip
    for given in (["--file", "jobs.txt"], ["-f", "jobs.txt"], ["--from=other:stages"]):
        assert command_for(queue, ["tasker", *given]) == ["queue", "tasker", *given]


def test_a_command_workload_passes_its_command_line() -> None:
    script = WorkloadSpec(
        name="w", pattern="job-per-file", command="python -m clc.preprocess {input} --out {output}"
    )
    assert command_for(script, ["--shards", "2"]) == [
        "files", "run", "--command", "python -m clc.preprocess {input} --out {output}",
        "--shards", "2",
    ]  # fmt: skip
    once = WorkloadSpec(name="w", pattern="command", command="python train.py {outputs}")
    assert command_for(once, ["--outputs", "/data/w/outputs"]) == [
        "command", "run", "--command", "python train.py {outputs}", "--outputs", "/data/w/outputs",
    ]  # fmt: skip
    spec_pipeline = WorkloadSpec(name="w", pattern="pipeline", entrypoint="pipeline.yaml")
    assert command_for(spec_pipeline, ["--step", "get"])[:4] == [
        "pipeline", "step", "--entrypoint", "pipeline.yaml",
    ]  # fmt: skip
