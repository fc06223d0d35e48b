"""Scripts as they are: argparse commands per file, sys.exit(), folder outputs, one-off commands.

Every test runs the real `workstack` command in a subprocess on real files, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from workstack.sdk.files import EXIT_BAD_INPUT, FileJob, Status, run_index, run_local
from workstack.sdk.storage import open_storage

from .conftest import S3Server

pytestmark = pytest.mark.integration

WORKSTACK = str(Path(sys.executable).parent / "workstack")

# The Luigi seed's script: `python -m clc.preprocess FILE`, an argparse main() that returns
# an exit status, with a module layout (a package) that only imports from its own folder.
PREPROCESS = '''
"""Preprocess one CSV file: lower-case its header, drop blank lines."""
import argparse
import sys
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("--out")
    parser.add_argument("--out-dir")
    args = parser.parse_args(argv)
    lines = [l for l in Path(args.source).read_text().splitlines() if l.strip()]
    if not lines or "," not in lines[0]:
        print(f"{args.source}: no header", file=sys.stderr)
        return 65
    if "crash" in lines[0]:
        raise RuntimeError("unexpected column")
    text = "\\n".join([lines[0].lower(), *lines[1:]]) + "\\n"
    if args.out:
        Path(args.out).write_text(text)
    else:  # the script names its own outputs
        stem = Path(args.source).stem
        Path(args.out_dir, f"{stem}.csv").write_text(text)
        Path(args.out_dir, f"{stem}.rows").write_text(str(len(lines) - 1))
    print(sys.executable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def make_script_workload(folder: Path, command: str, *, pattern: str = "job-per-file") -> Path:
    (folder / "clc").mkdir(parents=True)
    (folder / "clc" / "__init__.py").write_text("")
    (folder / "clc" / "preprocess.py").write_text(PREPROCESS)
    (folder / "workload.yaml").write_text(
        f"name: {folder.name}\npattern: {pattern}\ncommand: {command!r}\n"
    )
    return folder


def make_inputs(folder: Path, count: int, *, bad: tuple[int, ...] = ()) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for number in range(count):
        name = f"part-{number:02d}.csv"
        header = "no header here" if number in bad else "Id,Value"
        (folder / name).write_text(f"{header}\n{number},1\n\n{number},2\n")
        names.append(name)
    return names


def workstack(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WORKSTACK, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_an_argparse_script_runs_per_file_from_its_own_folder_with_this_python(
    tmp_path: Path,
) -> None:
    workload = make_script_workload(
        tmp_path / "clc-job", "python -m clc.preprocess {input} --out {output}"
    )
    make_inputs(tmp_path / "in", 5, bad=(3,))
    elsewhere = tmp_path / "somewhere-else"  # the caller's folder has no clc package
    elsewhere.mkdir()
    done = workstack(
        "run", str(workload), "--local", "--input", str(tmp_path / "in"), "--out",
        str(tmp_path / "out"), cwd=elsewhere,
    )  # fmt: skip
    assert done.returncode == EXIT_BAD_INPUT, done.stdout + done.stderr
    assert "5 files: 4 done, 0 skipped, 1 bad-input, 0 failed" in done.stdout
    assert "part-03.csv: no header" in done.stderr, "the script's own message names the file"
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["part-00.csv", "part-01.csv", "part-02.csv", "part-04.csv"]
    assert (tmp_path / "out" / "part-01.csv").read_text() == "id,value\n1,1\n1,2\n"


def test_a_script_that_names_its_own_outputs_gets_a_folder_per_input(tmp_path: Path) -> None:
    workload = make_script_workload(
        tmp_path / "clc-dir", "python -m clc.preprocess {input} --out-dir {output_dir}"
    )
    make_inputs(tmp_path / "in", 3)
    first = workstack(
        "run", str(workload), "--local", "--input", str(tmp_path / "in"), "--out",
        str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00", "part-01", "part-02"]
    assert sorted(p.name for p in (tmp_path / "out" / "part-02").iterdir()) == [
        "part-02.csv",
        "part-02.rows",
    ]
    again = workstack(
        "run", str(workload), "--local", "--input", str(tmp_path / "in"), "--out",
        str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    assert "3 files: 0 done, 3 skipped" in again.stdout, "a finished folder counts as done"


def test_folder_outputs_in_a_bucket_are_complete_or_absent(
    s3_server: S3Server, tmp_path: Path
) -> None:
    workload = make_script_workload(
        tmp_path / "clc-s3", "python -m clc.preprocess {input} --out-dir {output_dir}"
    )
    bucket = f"scripts-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    make_inputs(tmp_path / "in", 2)
    job = FileJob(
        input_url=str(tmp_path / "in"),
        output_url=f"s3://{bucket}/clean",
        command="python -m clc.preprocess {input} --out-dir {output_dir}",
        workdir=str(workload),
    )
    assert run_index(job, index=0, shards=1).count(Status.DONE) == 2
    stored = open_storage(f"s3://{bucket}/clean")
    assert stored.list() == [
        "part-00/part-00.csv",
        "part-00/part-00.rows",
        "part-01/part-01.csv",
        "part-01/part-01.rows",
    ]
    assert stored.read_text("part-01/part-01.rows") == "2"
    # A folder whose upload was interrupted (no completion marker) is not taken as done.
    stored.delete("part-01/.workstack-complete")
    rerun = run_index(job, index=0, shards=1)
    assert [o.status for o in rerun.outcomes] == [Status.SKIPPED, Status.DONE]


SYS_EXIT = """
import sys
from pathlib import Path


def process(source: Path, target: Path) -> None:
    number = int(source.stem.split("-")[1])
    if number % 7 == 3:
        sys.exit(3)            # an unexpected failure
    if number % 7 == 5:
        sys.exit(65)           # the code says: bad input
    if number % 7 == 6:
        sys.exit("no rows")    # a message
    target.write_text(source.read_text().upper())
    if number % 7 == 1:
        sys.exit(0)            # argparse-style success
"""


def test_sys_exit_fails_only_its_file_and_the_summary_is_printed(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "exits.py").write_text(SYS_EXIT)
    (tmp_path / "code" / "workload.yaml").write_text(
        "name: exits\npattern: job-per-file\nentrypoint: exits:process\n"
    )
    make_inputs(tmp_path / "in", 49)
    done = workstack(
        "run", str(tmp_path / "code"), "--local", "--input", str(tmp_path / "in"), "--out",
        str(tmp_path / "out"), "--workers", "2", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    # 49 files, 7 of each residue: 3 and 6 fail, 5 is bad input, the rest are done.
    assert "49 files: 28 done, 0 skipped, 7 bad-input, 14 failed" in done.stdout
    assert "called sys.exit(3)" in done.stderr
    assert "called sys.exit('no rows')" in done.stderr
    assert len(list((tmp_path / "out").iterdir())) == 28


def test_the_pod_command_survives_sys_exit_and_a_dead_worker(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "exits.py").write_text(SYS_EXIT)
    make_inputs(tmp_path / "in", 8)
    index = workstack(
        "files", "run", "--function", "exits:process", "--input", str(tmp_path / "in"),
        "--output", str(tmp_path / "out"), "--shards", "1", "--index", "0", cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "code")},
    )  # fmt: skip
    assert index.returncode == 1, index.stderr
    assert "index 0: 8 files: 5 done, 0 skipped, 1 bad-input, 2 failed" in index.stderr

    (tmp_path / "code" / "dies.py").write_text(
        "import os\n\ndef process(source, target):\n"
        "    if source.name == 'part-02.csv':\n        os._exit(9)\n"
        "    target.write_text('ok')\n"
    )
    sys.path.insert(0, str(tmp_path / "code"))
    try:
        job = FileJob(
            input_url=str(tmp_path / "in"),
            output_url=str(tmp_path / "dies"),
            function="dies:process",
        )
        summary = run_local(job, jobs=2, import_paths=[str(tmp_path / "code")])
    finally:
        sys.path.remove(str(tmp_path / "code"))
    assert len(summary.outcomes) == 8, "every file has an outcome"
    assert summary.count(Status.FAILED) >= 1
    assert summary.exit_code == 1
    assert "a worker process died" in next(
        o.message for o in summary.outcomes if o.key == "part-02.csv"
    )


def test_a_main_taking_argv_is_refused_before_any_file_with_a_pointer_to_command(
    tmp_path: Path,
) -> None:
    workload = make_script_workload(tmp_path / "clc-main", "true {input} {output}")
    (workload / "workload.yaml").write_text(
        "name: clc-main\npattern: job-per-file\nentrypoint: clc.preprocess:main\n"
    )
    make_inputs(tmp_path / "in", 50)
    done = workstack(
        "run", str(workload), "--local", "--input", str(tmp_path / "in"), "--out",
        str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "clc.preprocess:main(argv=None) cannot be called as function(input, output)" in (
        done.stderr
    )
    assert "command: python -m <module> {input} --out {output}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_files_command_takes_a_command_glob_and_suffix(tmp_path: Path) -> None:
    workload = make_script_workload(tmp_path / "clc-cli", "true {input} {output}")
    make_inputs(tmp_path / "in", 3)
    (tmp_path / "in" / "notes.txt").write_text("not a csv")
    done = workstack(
        "files", "run", "--command", "python -m clc.preprocess {input} --out {output}",
        "--glob", "*.csv", "--suffix", ".clean", "--input", str(tmp_path / "in"), "--output",
        str(tmp_path / "out"), "--shards", "1", "--index", "0", cwd=workload,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "part-00.clean",
        "part-01.clean",
        "part-02.clean",
    ]
    bad = workstack(
        "files", "run", "--command", "python -m clc.preprocess {input} --out {ouptut}",
        "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o2"), "--shards", "1",
        "--index", "0", cwd=workload,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "{ouptut} is not a placeholder; allowed: {input}, {output}, {output_dir}" in bad.stderr


EXPERIMENT = """
import json, os, sys
from pathlib import Path

out = Path(sys.argv[2])
(out / "model").mkdir()
(out / "model" / "weights.txt").write_text("w=1\\n")
count = sum(1 for _ in Path(sys.argv[1]).rglob("*.csv"))
(out / "metrics.json").write_text(json.dumps({"inputs": count, "python": sys.executable,
                                              "cwd": os.getcwd()}))
if os.environ.get("FAIL_AFTER_WRITING"):
    sys.exit(4)
"""


def test_a_command_workload_runs_once_and_publishes_its_output_folder(tmp_path: Path) -> None:
    workload = tmp_path / "experiment"
    workload.mkdir()
    (workload / "train.py").write_text(EXPERIMENT)
    (workload / "workload.yaml").write_text(
        "name: experiment\npattern: command\ncommand: python train.py {inputs} {outputs}\n"
    )
    make_inputs(workload / "data", 3)
    out = tmp_path / "results"
    failed = workstack(
        "run", str(workload), "--local", "--out", str(out), cwd=tmp_path,
        env={"FAIL_AFTER_WRITING": "1"},
    )  # fmt: skip
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert not out.exists(), "a failed run publishes nothing"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temp left"

    done = workstack("run", str(workload), "--local", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = (out / "metrics.json").read_text()
    assert '"inputs": 3' in metrics
    assert f'"python": "{Path(sys.executable).parent}/python' in metrics, "this venv's python"
    assert f'"cwd": "{workload}"' in metrics, "run in the workload's folder, as in /app"
    assert (out / "model" / "weights.txt").read_text() == "w=1\n", "folders inside outputs"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    again = workstack("run", str(workload), "--local", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0
    assert "skipped: outputs of an earlier run are at" in again.stdout
    (out / "stale.txt").write_text("from an older run")
    forced = workstack("run", str(workload), "--local", "--out", str(out), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert not (out / "stale.txt").exists(), "--force replaces the folder, never merges"


def test_the_command_pod_entry_reads_a_bucket_and_refuses_bad_locations(
    s3_server: S3Server, tmp_path: Path
) -> None:
    workload = tmp_path / "experiment"
    workload.mkdir()
    (workload / "train.py").write_text(EXPERIMENT)
    bucket = f"once-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    inputs = open_storage(f"s3://{bucket}/exp/inputs")
    for name in make_inputs(tmp_path / "in", 2):
        inputs.upload(tmp_path / "in" / name, f"raw/{name}")
    command = "python train.py {inputs} {outputs}"
    done = workstack(
        "command", "run", "--command", command, "--inputs", f"s3://{bucket}/exp/inputs",
        "--outputs", f"s3://{bucket}/exp/outputs", cwd=workload,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = open_storage(f"s3://{bucket}/exp/outputs")
    assert outputs.list() == ["metrics.json", "model/weights.txt"]
    assert '"inputs": 2' in outputs.read_text("metrics.json")
    for args, message in [
        (["--outputs", f"s3://{bucket}/exp/inputs/out"], "lies inside, the inputs"),
        (["--outputs", f"s3://{bucket}"], "expected a folder inside a folder or bucket"),
        (["--outputs", f"s3://{bucket}/exp"], "holds the inputs"),
        (["--outputs", str(tmp_path / "o"), "--inputs", str(tmp_path / "nope")], "no such folder"),
    ]:
        given = dict(zip(args[::2], args[1::2], strict=True))
        flags = {"--inputs": f"s3://{bucket}/exp/inputs", **given}
        bad = workstack(
            "command", "run", "--command", command,
            *[item for pair in flags.items() for item in pair], cwd=workload,
        )  # fmt: skip
        assert bad.returncode == 2, bad.stderr
        assert message in bad.stderr
        assert "Traceback" not in bad.stderr


def test_a_command_that_needs_inputs_says_so_locally(tmp_path: Path) -> None:
    workload = tmp_path / "exp2"
    workload.mkdir()
    (workload / "workload.yaml").write_text(
        "name: exp2\npattern: command\ncommand: python train.py {inputs} {outputs}\n"
    )
    done = workstack("run", str(workload), "--local", cwd=tmp_path)
    assert done.returncode == 2
    assert "--input is needed: the command uses {inputs} and exp2 has no data/ folder" in (
        done.stderr
    )


def test_a_pipeline_command_step_runs_in_the_workload_folder(tmp_path: Path) -> None:
    workload = tmp_path / "pipe"
    workload.mkdir()
    (workload / "helper.py").write_text(
        "import sys, pathlib\npathlib.Path(sys.argv[1]).mkdir()\n"
        "(pathlib.Path(sys.argv[1]) / 'a.txt').write_text(sys.executable)\n"
    )
    (workload / "steps.py").write_text(
        textwrap.dedent(
            """
            from workstack.sdk.pipeline import Pipeline, Step

            def build():
                return Pipeline(name="pipe", steps=(
                    Step(name="make", command="python helper.py {outputs[results]}",
                         outputs={"results": "results"}),
                    Step(name="count", command="ls {inputs[results]} > {outputs[listing]}",
                         inputs={"results": "results"}, outputs={"listing": "listing.txt"}),
                ))
            """
        )
    )
    (workload / "workload.yaml").write_text(
        "name: pipe\npattern: pipeline\nentrypoint: steps:build\n"
    )
    done = workstack("run", str(workload), "--local", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        (tmp_path / "out" / "results" / "a.txt")
        .read_text()
        .startswith(str(Path(sys.executable).parent))
    )
    assert (tmp_path / "out" / "listing.txt").read_text() == "a.txt\n"
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []
    assert (
        "0 step(s) ran, 2 up to date"
        in workstack(
            "run", str(workload), "--local", "--out", str(tmp_path / "out"), cwd=tmp_path
        ).stdout
    )


def test_run_local_selects_inputs_with_glob_and_names_outputs_with_suffix(tmp_path: Path) -> None:
    workload = make_script_workload(
        tmp_path / "clc-glob", "python -m clc.preprocess {input} --out {output}"
    )
    make_inputs(tmp_path / "in", 2)
    (tmp_path / "in" / "readme.txt").write_text("no header")
    done = workstack(
        "run", str(workload), "--local", "--input", str(tmp_path / "in"), "--out",
        str(tmp_path / "out"), "--glob", "*.csv", "--suffix", ".clean", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 files: 2 done" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "part-00.clean",
        "part-01.clean",
    ]
    wrong = workstack(
        "run", str(workload), "--local", "--input", str(tmp_path / "in"), "--suffix", "parquet",
        cwd=tmp_path,
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "suffix 'parquet' is not allowed; expected an extension such as .parquet" in wrong.stderr


def test_inputs_that_would_share_an_output_are_refused_before_any_file(tmp_path: Path) -> None:
    workload = make_script_workload(
        tmp_path / "clc-same", "python -m clc.preprocess {input} --out-dir {output_dir}"
    )
    make_inputs(tmp_path / "in", 2)
    (tmp_path / "in" / "part-01.txt").write_text("Id,Value\n1,1\n")
    done = workstack(
        "run", str(workload), "--local", "--input", str(tmp_path / "in"), "--out",
        str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "inputs 'part-01.csv' and 'part-01.txt' would both write 'part-01'" in done.stderr
    assert not (tmp_path / "out").exists()
    selected = workstack(
        "run", str(workload), "--local", "--input", str(tmp_path / "in"), "--out",
        str(tmp_path / "out"), "--glob", "*.csv", cwd=tmp_path,
    )  # fmt: skip
    assert selected.returncode == 0, selected.stderr
