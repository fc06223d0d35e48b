"""Job-per-file on real files: the in-pod entrypoint and the local runner."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from workstack.sdk.files import EXIT_BAD_INPUT, FileJob, JobError, Status, run_index, run_local

from .conftest import S3Server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CSV_CLEAN = ROOT / "workloads" / "csv-clean"
WORKSTACK = str(Path(sys.executable).parent / "workstack")


@pytest.fixture(autouse=True)
def _workload_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(CSV_CLEAN))


def make_inputs(folder: Path, count: int, bad: tuple[int, ...] = ()) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for number in range(count):
        name = f"part-{number:04d}.csv"
        rows = [["Id", "Value"], [str(number), f"{number},5"], [str(number), f"{number},5"]]
        if number in bad:
            rows.append(["ragged", "row", "with", "extra", "fields"])
        with (folder / name).open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
        names.append(name)
    return names


def job(inputs: Path, outputs: Path) -> FileJob:
    return FileJob(input_url=str(inputs), output_url=str(outputs), function="csv_clean:process")


def test_every_input_is_processed_across_the_shards(tmp_path: Path) -> None:
    names = make_inputs(tmp_path / "in", 11)
    work = job(tmp_path / "in", tmp_path / "out")
    done = []
    for index in range(4):
        summary = run_index(work, index=index, shards=4)
        assert summary.exit_code == 0
        done += [o.key for o in summary.outcomes if o.status is Status.DONE]
    assert sorted(done) == names, "each file exactly once over all indexes"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names
    assert (tmp_path / "out" / "part-0003.csv").read_text().splitlines() == ["id,value", "3,3.5"]


def test_a_malformed_input_fails_only_its_index_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = make_inputs(tmp_path / "in", 9, bad=(4,))
    work = job(tmp_path / "in", tmp_path / "out")
    codes = {index: run_index(work, index=index, shards=3).exit_code for index in range(3)}
    assert codes == {0: 0, 1: EXIT_BAD_INPUT, 2: 0}, "part-0004 is in index 1 (4 % 3)"
    assert "part-0004.csv line 4: 5 fields, the header has 2" in caplog.text
    assert str(tmp_path / "in" / "part-0004.csv") in caplog.text
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [n for n in names if n != "part-0004.csv"], "its index-mates still ran"


def test_inputs_linked_out_of_the_input_root_are_refused(tmp_path: Path) -> None:
    """Issue 14.9: a symlinked input may point inside the input root only."""
    make_inputs(tmp_path / "in", 2)
    secret = tmp_path / "secret.csv"
    secret.write_text("Id,Value\n1,2\n")
    (tmp_path / "in" / "leak.csv").symlink_to(secret)
    (tmp_path / "in" / "environ.csv").symlink_to("/proc/self/environ")
    (tmp_path / "in" / "alias.csv").symlink_to(tmp_path / "in" / "part-0001.csv")
    summary = run_local(job(tmp_path / "in", tmp_path / "out"), jobs=1)
    status = {o.key: o.status for o in summary.outcomes}
    assert status == {
        "alias.csv": Status.DONE,
        "environ.csv": Status.BAD_INPUT,
        "leak.csv": Status.BAD_INPUT,
        "part-0000.csv": Status.DONE,
        "part-0001.csv": Status.DONE,
    }
    [leak] = [o for o in summary.outcomes if o.key == "leak.csv"]
    assert f"resolves to {secret}, outside the storage root" in leak.message
    assert not (tmp_path / "out" / "leak.csv").exists()
    assert not (tmp_path / "out" / "environ.csv").exists()
    assert summary.exit_code == EXIT_BAD_INPUT


def test_a_rerun_does_exactly_what_is_missing(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 20)
    work = job(tmp_path / "in", tmp_path / "out")
    first = run_local(work, jobs=2)
    assert first.count(Status.DONE) == 20
    (tmp_path / "out" / "part-0007.csv").unlink()
    (tmp_path / "out" / "part-0013.csv").unlink()
    second = run_local(work, jobs=2)
    assert sorted(o.key for o in second.outcomes if o.status is Status.DONE) == [
        "part-0007.csv",
        "part-0013.csv",
    ]
    assert second.count(Status.SKIPPED) == 18


SLOW_WORKLOAD = """
import time
from pathlib import Path

def process(source: Path, target: Path) -> None:
    with target.open("w") as handle:
        handle.write("first half of the output\\n")
        handle.flush()
        print("writing", flush=True)
        time.sleep(120)
        handle.write("second half\\n")
"""


def test_a_killed_process_never_leaves_a_half_written_output(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "slow.py").write_text(SLOW_WORKLOAD)
    make_inputs(tmp_path / "in", 1)
    command = [
        WORKSTACK,
        "files",
        "run",
        "--function",
        "slow:process",
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--shards",
        "1",
        "--index",
        "0",
    ]
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "code")}
    writer = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    visible = [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")]
    assert visible == [], "only a hidden temp file may remain"
    # The rerun does the file (the leftover temp file is never mistaken for an output).
    rerun = subprocess.run(
        [*command[:3], "--function", "csv_clean:process", *command[5:]],
        env={**os.environ, "PYTHONPATH": str(CSV_CLEAN)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert (tmp_path / "out" / "part-0000.csv").read_text().startswith("id,value")


def test_the_in_pod_command_reads_its_index_from_kubernetes(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 4, bad=(1,))
    results = {}
    for index in range(2):
        completed = subprocess.run(
            [
                WORKSTACK,
                "files",
                "run",
                "--function",
                "csv_clean:process",
                "--input",
                str(tmp_path / "in"),
                "--output",
                str(tmp_path / "out"),
                "--shards",
                "2",
            ],
            env={**os.environ, "PYTHONPATH": str(CSV_CLEAN), "JOB_COMPLETION_INDEX": str(index)},
            capture_output=True,
            text=True,
            check=False,
        )
        results[index] = completed.returncode
    assert results == {0: 0, 1: EXIT_BAD_INPUT}


def test_command_templates_and_their_bad_input_code(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 3)
    (tmp_path / "in" / "part-0001.csv").write_text("broken")
    command = "grep -q Id {input} && cp {input} {output} || exit 65"
    work = FileJob(
        input_url=str(tmp_path / "in"), output_url=str(tmp_path / "out"), command=command
    )
    summary = run_index(work, index=0, shards=1)
    assert [o.status for o in summary.outcomes] == [Status.DONE, Status.BAD_INPUT, Status.DONE]
    assert summary.exit_code == EXIT_BAD_INPUT


def test_frozen_manifest_pins_the_inputs(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 3)
    manifest = tmp_path / "manifest.txt"
    subprocess.run(
        [
            WORKSTACK,
            "files",
            "manifest",
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
            "--to",
            str(manifest),
        ],
        check=True,
        capture_output=True,
    )
    make_inputs(tmp_path / "in", 5)  # two more arrive after the manifest was frozen
    work = FileJob(
        input_url=str(tmp_path / "in"),
        output_url=str(tmp_path / "out"),
        function="csv_clean:process",
        manifest_url=str(manifest),
    )
    assert work.inputs() == ["part-0000.csv", "part-0001.csv", "part-0002.csv"]


def test_inputs_and_outputs_in_a_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    from workstack.sdk.storage import open_storage

    bucket = f"files-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    source = open_storage(f"s3://{bucket}/raw")
    for name in make_inputs(tmp_path / "in", 5):
        source.upload(tmp_path / "in" / name, name)
    work = FileJob(
        input_url=f"s3://{bucket}/raw",
        output_url=f"s3://{bucket}/clean",
        function="csv_clean:process",
    )
    assert run_local(work, jobs=2).count(Status.DONE) == 5
    assert open_storage(f"s3://{bucket}/clean").read_text("part-0002.csv").splitlines() == [
        "id,value",
        "2,2.5",
    ]
    assert run_index(work, index=0, shards=1).count(Status.SKIPPED) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "0", "--index", "0"], "shards 0 is not allowed; expected 1 or more"),
        (["--shards", "2", "--index", "2"], "index 2 is not allowed; expected 0 to 1"),
        (["--shards", "1", "--index", "0", "--output", "IN"], "is the input location"),
        (["--shards", "1", "--index", "0", "--output", "IN/clean"], "lies inside the input"),
        (
            ["--shards", "1", "--index", "0", "--input", "ftp://host/x"],
            "scheme 'ftp'; allowed: s3://, gs://",
        ),
        (["--shards", "1", "--index", "0", "--function", "csv_clean:nothing"], "has no 'nothing'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    make_inputs(tmp_path / "in", 1)
    base = {
        "--input": str(tmp_path / "in"),
        "--output": str(tmp_path / "out"),
        "--function": "csv_clean:process",
    }
    given = dict(
        zip(args[::2], [a.replace("IN", str(tmp_path / "in")) for a in args[1::2]], strict=True)
    )
    flags = [item for pair in ({**base, **given}).items() for item in pair]
    completed = subprocess.run(
        [WORKSTACK, "files", "run", *flags],
        env={**os.environ, "PYTHONPATH": str(CSV_CLEAN)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr
    assert not (tmp_path / "out").exists(), "nothing is written for bad arguments"


def test_job_needs_exactly_one_of_function_and_command(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="exactly one of function"):
        FileJob(input_url=str(tmp_path), output_url=str(tmp_path / "o"))
