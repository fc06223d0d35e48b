"""Dask: what ``run_function`` costs over calling the same work with a plain Client."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

TITLE = "Dask run_function overhead"
ROOT = Path(__file__).resolve().parents[2]
REPEATS = 7
ARGS = {"datasets": 8, "rows": 200_000}


def run() -> str:
    """Alternate both ways of running the same benchmark on one local cluster; medians."""
    sys.path.insert(0, str(ROOT / "workloads" / "dask-bench"))
    from bench import run_benchmark  # type: ignore[import-not-found]
    from distributed import Client, LocalCluster

    from workstack.sdk.dask import run_function

    plain, ours = [], []
    with (
        tempfile.TemporaryDirectory() as folder,
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
    ):
        address = cluster.scheduler_address
        config = {
            "run": {"function": "bench:run_benchmark", "args": ARGS},
            "dask_cluster": {"address": address},
            "output": {"path": f"{folder}/ours.csv"},
        }
        for repeat in range(REPEATS + 1):
            started = time.perf_counter()
            with Client(address) as client, client.as_current():
                frame = run_benchmark(**ARGS)
            frame.to_csv(f"{folder}/plain.csv", index=False)
            plain_seconds = time.perf_counter() - started

            started = time.perf_counter()
            run_function(config)
            ours_seconds = time.perf_counter() - started
            if repeat:  # the first round warms up worker imports
                plain.append(plain_seconds)
                ours.append(ours_seconds)
    base, measured = statistics.median(plain), statistics.median(ours)
    return (
        f"`workloads/dask-bench` ({ARGS['datasets']} datasets x 4 models, "
        f"{ARGS['rows']:,} rows each) on one local cluster of 2 worker processes, result "
        f"written to CSV both ways; median of {REPEATS} alternating runs after a warm-up.\n\n"
        "| way | seconds | ratio |\n| --- | ---: | ---: |\n"
        f"| plain `distributed.Client` + `to_csv` | {base:.3f} | 1.00 |\n"
        f"| `workstack.sdk.dask.run_function(config)` | {measured:.3f} | "
        f"{measured / base:.3f} (goal <= 1.1) |\n"
    )
