"""Job-per-file: program evaluation against the number of files, and the local runner's speed."""

from __future__ import annotations

import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from workstack.components import MinikubeCluster, MinikubeClusterArgs, NfsStorage, NfsStorageArgs
from workstack.components._objects import create_object
from workstack.components.job_per_file import JobPerFile, JobPerFileArgs
from workstack.components.manifests.jobs import JobSettings, build_indexed_job
from workstack.components.manifests.pods import ContainerSpec
from workstack.offline import run_function

TITLE = "Job-per-file"
ROOT = Path(__file__).resolve().parents[2]
CSV_CLEAN = ROOT / "workloads" / "csv-clean"
REPEATS = 5
IMAGE = "registry.example/csv-clean:bench"


def _median_seconds(action: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _files(count: int) -> tuple[str, ...]:
    return tuple(f"day-{n:06d}.csv" for n in range(count))


def _indexed(count: int) -> Callable[[], object]:
    def program() -> None:
        cluster = MinikubeCluster("dev", MinikubeClusterArgs())
        nfs = NfsStorage("nfs", NfsStorageArgs(cluster=cluster))
        JobPerFile(
            "clean",
            JobPerFileArgs(
                cluster=cluster,
                image=IMAGE,
                input_url="/data/raw",
                output_url="/data/clean",
                function="csv_clean:process",
                storage=(nfs.pod_storage,),
                files=_files(count),
            ),
        )

    return lambda: run_function(program)


def _job_per_file(count: int) -> Callable[[], object]:
    """What the seed did: one Job per file (here with the same pod spec as workstack's)."""

    def program() -> None:
        import pulumi

        cluster = MinikubeCluster("dev", MinikubeClusterArgs())
        nfs = NfsStorage("nfs", NfsStorageArgs(cluster=cluster))
        opts = pulumi.ResourceOptions(provider=cluster.provider)
        one = JobSettings(shards=1, parallelism=1)
        for number, name in enumerate(_files(count)):
            container = ContainerSpec(
                name="work", image=IMAGE, args=("files", "run", "--input", f"/data/raw/{name}")
            )
            job = build_indexed_job(
                name=f"clean-{number}",
                namespace="workstack",
                instance="clean",
                container=container,
                settings=one,
                storage=(nfs.pod_storage,),
            )
            create_object(f"clean-{number}", job, opts)

    return lambda: run_function(program)


def _evaluation() -> str:
    _indexed(10)()  # warm up: the first run imports the providers' modules
    small = _median_seconds(_indexed(10))
    large = _median_seconds(_indexed(10_000))
    per_file = _median_seconds(_job_per_file(10_000), repeats=1)
    return (
        "### Program evaluation (offline, Pulumi mocks)\n\n"
        f"Median of {REPEATS} runs of the stack program with a `JobPerFile` holding a frozen list "
        "of N files (cluster, NFS storage, Job and ConfigMap: the same objects for any N); the "
        "one-Job-per-file rendering registers a Job per file, as the seed's Luigi pipeline did "
        "(one run).\n\n"
        "| program | seconds | ratio |\n| --- | ---: | ---: |\n"
        f"| workstack, 10 files | {small:.3f} | 1.00 |\n"
        f"| workstack, 10,000 files | {large:.3f} | {large / small:.2f} (goal <= 1.5) |\n"
        f"| one Job per file, 10,000 files | {per_file:.3f} | {per_file / small:.1f} |\n"
    )


def _write_inputs(folder: Path, count: int) -> None:
    folder.mkdir()
    for number in range(count):
        with (folder / f"part-{number:05d}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Order ID", "Customer Name", "Unit Price (EUR)", "Quantity"])
            for row in range(20):
                writer.writerow([number * 100 + row, f" customer {row} ", f"{row},5", "n/a"])


_ONE_FILE = """import sys
from pathlib import Path

from csv_clean import process

process(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def _local_runner() -> str:
    count, jobs = 2000, 2
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        _write_inputs(base / "in", count)
        (base / "clean_one.py").write_text(_ONE_FILE)
        env = {**os.environ, "PYTHONPATH": str(CSV_CLEAN)}

        def workstack_pool() -> None:
            shutil.rmtree(base / "out", ignore_errors=True)
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from workstack.sdk.files import FileJob, run_local; import sys; "
                    f"s = run_local(FileJob(input_url={str(base / 'in')!r}, "
                    f"output_url={str(base / 'out')!r}, function='csv_clean:process'), "
                    f"jobs={jobs}); sys.exit(s.exit_code)",
                ],
                env=env,
                check=True,
            )

        def gnu_parallel() -> None:
            shutil.rmtree(base / "out-parallel", ignore_errors=True)
            (base / "out-parallel").mkdir()
            subprocess.run(
                f"ls {base / 'in'} | parallel --will-cite -j{jobs} {sys.executable} "
                f"{base / 'clean_one.py'} {base / 'in'}/{{}} {base / 'out-parallel'}/{{}}",
                shell=True,
                env=env,
                check=True,
            )

        ours = _median_seconds(workstack_pool, repeats=3)
        theirs = _median_seconds(gnu_parallel, repeats=3)
        same = sorted(p.name for p in (base / "out").iterdir()) == sorted(
            p.name for p in (base / "out-parallel").iterdir()
        )
        assert same, "both runs must produce the same outputs"
    return (
        "### Local runner\n\n"
        f"{count} small CSV files (21 lines each) cleaned by `workloads/csv-clean`, {jobs} "
        "processes, median of 3 runs: `workstack.sdk.files.run_local` (a pool that imports "
        "the workload once per worker, skips nothing: outputs start empty) against GNU "
        "`parallel` starting Python once per file on the same function.\n\n"
        "| runner | seconds | files/s | speed-up |\n| --- | ---: | ---: | ---: |\n"
        f"| GNU parallel, a process per file | {theirs:.2f} | {count / theirs:.0f} | 1.00 |\n"
        f"| workstack local runner | {ours:.2f} | {count / ours:.0f} | {theirs / ours:.1f} "
        "(goal > 1) |\n"
    )


def run() -> str:
    """Measure both and return the Markdown section."""
    return _evaluation() + "\n" + _local_runner()
