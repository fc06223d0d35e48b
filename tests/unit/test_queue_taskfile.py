"""Task files: the format, and errors that name the line and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from workstack.sdk.queue import Task, TaskFileError, load_task_files
from workstack.sdk.queue.taskfile import parse_task_lines, to_task

GOOD = """\
# simulations, part 2 and 3
python simulate.py --seed 1

  python simulate.py --seed 2
{"call": "sims.metrics:summarize", "args": ["part2"], "id": "summary-2"}
@stage part3
{"command": ["python", "simulate.py", "--phase", "3"], "timeout": 600}
"""


def test_parses_stages_commands_and_json_tasks(tmp_path: Path) -> None:
    path = tmp_path / "part2.txt"
    path.write_text(GOOD)
    first, second = load_task_files([path])
    assert first.name == "part2"  # tasks before any @stage: named after the file
    assert [t.command for t in first.tasks[:2]] == [
        "python simulate.py --seed 1",
        "python simulate.py --seed 2",
    ]
    assert first.tasks[2] == Task(call="sims.metrics:summarize", args=["part2"], id="summary-2")
    assert second.name == "part3"
    assert second.tasks[0] == Task(command=["python", "simulate.py", "--phase", "3"], timeout=600)


def test_several_files_are_stages_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("echo b\n")
    (tmp_path / "a.txt").write_text("echo a\n")
    stages = load_task_files([tmp_path / "b.txt", tmp_path / "a.txt"])
    assert [s.name for s in stages] == ["b", "a"]


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "jobs.txt"
    path.write_text(
        "echo ok\n"  # 1
        "{not json\n"  # 2
        '{"call": "m:f", "retries": 3}\n'  # 3
        "@include other.txt\n"  # 4
        "@stage bad name\n"  # 5
        "[1, 2]\n"  # 6: a shell command, allowed
        '["a"]\n'  # 7: also a shell command
        '{"command": "x", "args": [1]}\n'  # 8
        "echo ok\n"  # 9: same as line 1
        "@stage empty\n"  # 10
        "@stage jobs\n"  # 11: 'jobs' was started by line 1
        "echo z\n"  # 12
    )
    with pytest.raises(TaskFileError) as caught:
        load_task_files([path])
    problems = caught.value.problems
    where = f"{path}:"
    assert problems[0].startswith(f"{where}2: invalid JSON")
    assert "a shell command, a JSON task object, '@stage NAME'" in problems[0]
    allowed = "allowed: command, call, args, kwargs, id, timeout, outputs, env, shell, on_error"
    assert problems[1] == f"{where}3: task has unknown field(s) ['retries']; {allowed}"
    assert problems[2] == f"{where}4: directive '@include' is not allowed; only '@stage NAME'"
    assert problems[3].startswith(f"{where}5: stage name 'bad name' is not allowed")
    assert problems[4].startswith(f"{where}8: args/kwargs: not allowed with command")
    assert problems[5].startswith(f"{where}9: task id ")
    assert f"already used on {where}1" in problems[5]
    assert f"{where}10: stage 'empty' has no tasks" in problems
    assert (
        f"{where}11: stage 'jobs' already started on line 1; stage names must be unique" in problems
    )
    assert "nothing was published" in str(caught.value)


def test_a_file_whose_name_is_no_stage_name_must_start_a_stage(tmp_path: Path) -> None:
    path = tmp_path / "my jobs.txt"
    path.write_text("echo a\n")
    with pytest.raises(TaskFileError, match="start the file with '@stage NAME'"):
        load_task_files([path])
    path.write_text("@stage main\necho a\n")
    assert load_task_files([path])[0].name == "main"


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="no task file given"):
        load_task_files([])
    with pytest.raises(TaskFileError, match=r"missing\.txt: no such file"):
        load_task_files([tmp_path / "missing.txt"])
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TaskFileError, match="cannot be read as UTF-8"):
        load_task_files([tmp_path / "bin.txt"])
    (tmp_path / "one.txt").write_text("@stage s\necho 1\n")
    (tmp_path / "two.txt").write_text("@stage s\necho 2\n")
    with pytest.raises(TaskFileError, match="stage 's' appears in more than one file"):
        load_task_files([tmp_path / "one.txt", tmp_path / "two.txt"])


def test_ids_are_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("echo same\n")
    (tmp_path / "two.txt").write_text("echo same\n")
    with pytest.raises(TaskFileError, match=r"two.txt:1: task id .* already used on .*one.txt:1"):
        load_task_files([tmp_path / "one.txt", tmp_path / "two.txt"])


def test_many_problems_are_summarized() -> None:
    with pytest.raises(TaskFileError) as caught:
        parse_task_lines(["{"] * 30, source="f", default_stage="s")
    assert len(caught.value.problems) == 30
    assert "... and 10 more" in str(caught.value)


def test_to_task_accepts_strings_mappings_and_tasks() -> None:
    assert to_task("echo 1") == Task(command="echo 1")
    assert to_task({"call": "m:f", "args": [1]}) == Task(call="m:f", args=[1])
    with pytest.raises(Exception, match="unknown field"):
        to_task({"cmd": "x"})
    with pytest.raises(Exception, match="expected a Task, a shell command string or a mapping"):
        to_task(42)  # type: ignore[arg-type]


def test_makitas_split_files_are_stages_named_after_each_part(tmp_path: Path) -> None:
    part2 = tmp_path / "jobs.sh.part2"
    part2.write_text(
        "python -m asreview simulate data/a.csv -o output/sim_a_0.asreview --seed 1\n"
        "python -m asreview simulate data/a.csv -o output/sim_a_1.asreview --seed 2\n"
    )
    part3 = tmp_path / "jobs.sh.part3"
    part3.write_text("python -m asreview metrics output/sim_a_0.asreview -o m0.json\n")
    stages = load_task_files([part2, part3])
    assert [s.name for s in stages] == ["jobs.sh.part2", "jobs.sh.part3"]
    first = stages[0].tasks[0]
    assert (first.shell, first.on_error) == ("bash", "continue")


def test_a_shell_script_runs_as_bash_would(tmp_path: Path) -> None:
    script = tmp_path / "jobs.sh"
    script.write_text(
        "\n# version 1.1\nmkdir output\nmkdir output/a \\\n  output/b\nset -e\n"
        "set -o pipefail\npython run.py | tee log\nset +e\necho done\n"
    )
    [stage] = load_task_files([script])
    assert stage.name == "jobs.sh"
    commands = [(t.command, t.on_error) for t in stage.tasks]
    assert commands == [
        ("mkdir output", "continue"),
        ("mkdir output/a   output/b", "continue"),
        ("set -e\nset -o pipefail\npython run.py | tee log", "fail"),
        ("set -e\nset -o pipefail\nset +e\necho done", "continue"),
    ]


def test_shell_lines_that_cannot_run_on_their_own_are_errors(tmp_path: Path) -> None:
    script = tmp_path / "jobs.sh"
    script.write_text("cd data\nexport SEED=3\nA=1\nfor f in *.csv; do\n  echo $f\ndone\necho ok\n")
    with pytest.raises(TaskFileError) as caught:
        load_task_files([script])
    problems = caught.value.problems
    assert problems[0].startswith(f"{script}:1: 'cd data' changes the folder")
    assert problems[1].startswith(f"{script}:2: 'export SEED=3' sets a variable")
    assert "--env NAME=value" in problems[1]
    assert problems[2].startswith(f"{script}:3: 'A=1' sets a variable")
    assert problems[3].startswith(f"{script}:4: 'for f in *.csv; do' is not a complete command")
