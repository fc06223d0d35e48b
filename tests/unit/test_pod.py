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
