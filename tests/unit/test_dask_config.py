"""The Dask run config: the seed's shape, checked before anything starts."""

from __future__ import annotations

from typing import Any

import pytest

from workstack.sdk.callables import CallableError
from workstack.sdk.dask import DaskConfigError, DaskRunConfig, parse_config, run_function

SEED_LIKE: dict[str, Any] = {
    "run": {"function": "bench:run_benchmark", "args": {"datasets": 2}},
    "dask_cluster": {
        "workers": 4,
        "worker_config": {"resources": {"memory": "4G", "cpu": 2}, "image": "mydockerimage:latest"},
    },
    "output": {"path": "results/my_results.csv", "bucket": "my-s3-bucket"},
}


def test_the_seed_shape_is_accepted_with_its_meanings() -> None:
    config = parse_config(SEED_LIKE)
    assert config == DaskRunConfig(
        function="bench:run_benchmark",
        args={"datasets": 2},
        minimum=4,
        maximum=4,
        threads=2,
        memory="4G",
        output="s3://my-s3-bucket/results/my_results.csv",
        workers_given=True,
    )
    assert parse_config({"run": {"function": "m:f"}}).workers_given is False


def test_a_worker_range_means_adaptive() -> None:
    config = parse_config({**SEED_LIKE, "dask_cluster": {"workers": {"minimum": 1, "maximum": 5}}})
    assert (config.minimum, config.maximum) == (1, 5)


BAD = [
    (
        {"dask_cluster": {"workers": {"minimum": 5, "maximum": 2}}},
        "dask_cluster.workers.minimum: 5 is not allowed; it must not exceed maximum (2)",
    ),
    (
        {"dask_cluster": {"workers": 0}},
        "dask_cluster.workers: 0 is not allowed; expected an integer >= 1",
    ),
    ({"dask_cluster": {"workers": {"minimum": 1}}}, "dask_cluster.workers.maximum: None"),
    ({"runn": {}}, "runn: unknown key; allowed: dask_cluster, output, run"),
    (
        {"run": {"function": "bench:run_benchmark", "argz": {}}},
        "run.argz: unknown key; allowed: args, function",
    ),
    (
        {"output": {"path": "r.csv", "key": "AKIA...", "secret_key": "x"}},
        "output.key: credentials are refused",
    ),
    (
        {"dask_cluster": {"worker_config": {"setup": {"pip_packages": ["x"]}}}},
        "worker_config.setup: installing at run time is not supported",
    ),
    (
        {"dask_cluster": {"worker_config": {"resources": {"gpu": 1}}}},
        "resources.gpu: unknown key; allowed: cpu, memory",
    ),
    ({"output": {"path": "results.xlsx"}}, "expected a name ending in .csv or .parquet"),
    ({"output": {"bucket": "b"}}, "output.bucket: given without output.path"),
    ({"run": {"args": {}}}, "run.function: missing"),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_bad_configs_name_the_key(changes: dict[str, Any], message: str) -> None:
    config = {**SEED_LIKE, **changes}
    if "function" not in config["run"] and "runn" not in changes:
        config["run"] = changes["run"]
    with pytest.raises(DaskConfigError) as caught:
        parse_config(config)
    assert message in str(caught.value)


def test_unknown_function_path_fails_before_any_cluster_starts() -> None:
    with pytest.raises(CallableError, match="module 'no_such_module' cannot be imported"):
        run_function({"run": {"function": "no_such_module:run"}})
    with pytest.raises(CallableError, match="expected module:function"):
        run_function({"run": {"function": "not a path"}})
