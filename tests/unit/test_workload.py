"""workstack.sdk.workload: workload.yaml and requirements are checked before anything is built."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workstack.sdk.workload import (
    EXTRAS,
    PATTERNS,
    WorkloadError,
    WorkloadSpec,
    load_entrypoint,
    load_workload,
    parse_requirements,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "workloads" / "word-count"
GOOD = {
    "name": "csv-clean",
    "pattern": "job-per-file",
    "entrypoint": "csv_clean:process",
    "extras": "[s3]",
}


def make_workload(
    folder: Path,
    *,
    yaml_text: str | None = None,
    requirements: str | None = "pandas>=2.1\n",
    **changes: str,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fields = GOOD | changes
    text = yaml_text
    if text is None:
        text = "".join(f"{key}: {value}\n" for key, value in fields.items())
    (folder / "workload.yaml").write_text(text)
    (folder / "csv_clean.py").write_text("def process(path):\n    return path\n")
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def test_the_fixture_loads() -> None:
    workload = load_workload(FIXTURE)
    assert workload.spec == WorkloadSpec(
        name="word-count", pattern="job-per-file", entrypoint="word_count:count_words"
    )
    assert workload.spec.module == "word_count"
    assert workload.spec.attribute == "count_words"
    assert workload.dependency_file == FIXTURE / "requirements.txt"
    assert workload.requirements == ("more-itertools>=10.0",)


def test_allowed_values_are_pinned() -> None:
    assert PATTERNS == ("job-per-file", "queue-workers", "dask", "pipeline", "command")
    assert EXTRAS == ("queue", "dask", "s3", "gcs")


@pytest.mark.parametrize(
    ("changes", "key", "allowed"),
    [
        ({"name": "CSV_clean"}, "name", "DNS-1123 label"),
        ({"name": "a" * 64}, "name", "at most 63 characters"),
        (
            {"pattern": "cron"},
            "pattern",
            "allowed: job-per-file, queue-workers, dask, pipeline, command",
        ),
        ({"entrypoint": "csv_clean.process"}, "entrypoint", "expected module:callable"),
        ({"entrypoint": "csv-clean:process"}, "entrypoint", "expected module:callable"),
        ({"entrypoint": "missing:process"}, "entrypoint", "module missing is not in the"),
        ({"extras": "[s3, deploy]"}, "extras", "allowed: queue, dask, s3, gcs"),
        ({"extras": "[s3, s3]"}, "extras", "list each extra once"),
        ({"extras": "s3"}, "extras", "expected a list"),
        (
            {"schedule": "daily"},
            "schedule",
            "allowed keys: name, pattern, entrypoint, command, extras",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(
    tmp_path: Path, changes: dict[str, str], key: str, allowed: str
) -> None:
    folder = make_workload(tmp_path / "w", **changes)
    with pytest.raises(WorkloadError) as caught:
        load_workload(folder)
    assert caught.value.key == key
    assert allowed in str(caught.value)
    assert str(folder / "workload.yaml") in str(caught.value)


@pytest.mark.parametrize("missing", ["name", "pattern", "entrypoint"])
def test_a_missing_key_is_required(tmp_path: Path, missing: str) -> None:
    text = "".join(f"{k}: {v}\n" for k, v in GOOD.items() if k != missing)
    folder = make_workload(tmp_path / "w", yaml_text=text)
    with pytest.raises(WorkloadError, match=rf"{missing}: \(missing\) is not allowed; required"):
        load_workload(folder)


def test_extras_may_be_left_out(tmp_path: Path) -> None:
    text = "name: a\npattern: dask\nentrypoint: csv_clean:process\n"
    assert load_workload(make_workload(tmp_path / "w", yaml_text=text)).spec.extras == ()


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("name: [unclosed\n", "expected valid YAML"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_workload_yaml_must_be_a_mapping(tmp_path: Path, text: str, allowed: str) -> None:
    with pytest.raises(WorkloadError, match=allowed):
        load_workload(make_workload(tmp_path / "w", yaml_text=text))


def test_missing_folder_and_missing_workload_yaml(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=r"folder: .* expected an existing folder"):
        load_workload(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkloadError, match=r"workload.yaml: \(missing\) .* needs one"):
        load_workload(tmp_path / "empty")


def test_requirements_comments_continuations_and_markers(tmp_path: Path) -> None:
    requirements = (
        "# analysis\n"
        "Pandas >= 2.1   # inline comment\n"
        "\n"
        "numpy>=1.26,\\\n"
        "  <3\n"
        "pyarrow; python_version >= '3.11'\n"
        "tool @ https://example.org/tool-1.0.tar.gz#sha256=abc\n"
    )
    folder = make_workload(tmp_path / "w", requirements=requirements)
    assert load_workload(folder).requirements == (
        "Pandas>=2.1",
        "numpy<3,>=1.26",
        'pyarrow; python_version >= "3.11"',
        "tool @ https://example.org/tool-1.0.tar.gz#sha256=abc",
    )


@pytest.mark.parametrize(
    ("line", "allowed"),
    [
        ("pandas>>2", "expected a PEP 508 requirement"),
        ("pandas==", "expected a PEP 508 requirement"),
        ("--index-url https://example.org/simple", "pip options are not supported"),
        ("-e git+https://example.org/x.git", "pip options are not supported"),
        ("pandas==2.1 --hash=sha256:abc", "pip options are not supported"),
        ("workstack[s3]", "ask for its extras in workload.yaml"),
        ("lib @ file:///home/me/lib", "local paths do not exist"),
    ],
)
def test_unusable_requirement_names_file_and_line(tmp_path: Path, line: str, allowed: str) -> None:
    folder = make_workload(tmp_path / "w", requirements=f"# deps\nscipy\n{line}\n")
    with pytest.raises(WorkloadError) as caught:
        load_workload(folder)
    assert caught.value.key == "requirements.txt:3"
    assert allowed in str(caught.value)


def test_includes_inside_the_folder_are_followed(tmp_path: Path) -> None:
    folder = make_workload(tmp_path / "w", requirements="-r base.txt\nscipy\n")
    (folder / "base.txt").write_text("numpy\n--requirement=more/extra.txt\n")
    (folder / "more").mkdir()
    (folder / "more" / "extra.txt").write_text("pandas\n")
    assert load_workload(folder).requirements == ("numpy", "pandas", "scipy")


@pytest.mark.parametrize(
    ("files", "allowed"),
    [
        ({"requirements.txt": "-r ../outside.txt\n"}, "inside the workload folder"),
        ({"requirements.txt": "-r missing.txt\n"}, "inside the workload folder"),
        ({"requirements.txt": "-r a.txt\n", "a.txt": "-r requirements.txt\n"}, "cycle"),
    ],
)
def test_bad_includes(tmp_path: Path, files: dict[str, str], allowed: str) -> None:
    (tmp_path / "outside.txt").write_text("numpy\n")
    folder = make_workload(tmp_path / "w", requirements=None)
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(WorkloadError, match=allowed):
        load_workload(folder)


def test_pyproject_dependencies_when_there_is_no_requirements_txt(tmp_path: Path) -> None:
    folder = make_workload(tmp_path / "w", requirements=None)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\ndependencies = ["pandas >=2", "pyarrow"]\n'
    )
    workload = load_workload(folder)
    assert workload.dependency_file == folder / "pyproject.toml"
    assert workload.requirements == ("pandas>=2", "pyarrow")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[project\n", "pyproject.toml"),
        ('[project]\ndependencies = "pandas"\n', "project.dependencies"),
        ('[project]\ndependencies = ["pandas>>2"]\n', "project.dependencies[0]"),
        ('[project]\ndynamic = ["dependencies"]\n', "project.dynamic"),
    ],
)
def test_bad_pyproject(tmp_path: Path, text: str, key: str) -> None:
    folder = make_workload(tmp_path / "w", requirements=None)
    (folder / "pyproject.toml").write_text(text)
    with pytest.raises(WorkloadError) as caught:
        load_workload(folder)
    assert caught.value.key == key


def test_no_dependency_file_means_no_requirements(tmp_path: Path) -> None:
    workload = load_workload(make_workload(tmp_path / "w", requirements=None))
    assert workload.dependency_file is None
    assert workload.requirements == ()


def test_parse_requirements_rejects_includes(tmp_path: Path) -> None:
    assert parse_requirements("a\n# b\nc>1\n", tmp_path / "r.txt") == ("a", "c>1")
    with pytest.raises(WorkloadError, match="pip options"):
        parse_requirements("-r other.txt\n", tmp_path / "r.txt")


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Entrypoints are imported by module name: forget them (and sys.path) after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.mark.usefixtures("isolated_imports")
def test_load_entrypoint_imports_from_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "word-count"
    shutil.copytree(FIXTURE, folder)
    (folder / "word_count.py").write_text(
        "from text_rules import normalise\n\n"
        "def count_words(text):\n    return [normalise(w) for w in text.split()]\n"
    )
    function = load_entrypoint(load_workload(folder))
    assert function("A b") == ["a", "b"]


@pytest.mark.usefixtures("isolated_imports")
@pytest.mark.parametrize(
    ("source", "entrypoint", "allowed"),
    [
        # A module name no other test imports: sys.modules would otherwise serve that one.
        ("absent = 3\n", "entry_probe:absent", "expected a callable"),
        ("x = 1\n", "entry_probe:nope", "has no attribute nope"),
    ],
)
def test_load_entrypoint_checks_the_attribute(
    tmp_path: Path, source: str, entrypoint: str, allowed: str
) -> None:
    folder = make_workload(tmp_path / "w", entrypoint=entrypoint)
    (folder / "entry_probe.py").write_text(source)
    with pytest.raises(WorkloadError, match=allowed):
        load_entrypoint(load_workload(folder))


COMMAND_CASES = [
    # (pattern, entrypoint, command, key, allowed)
    (
        "job-per-file",
        None,
        "python -m clc.preprocess {input}",
        "command",
        "exactly one of {output} or {output_dir}",
    ),
    (
        "job-per-file",
        None,
        "python -m clc.preprocess --out {output}",
        "command",
        "must contain {input}",
    ),
    (
        "job-per-file",
        None,
        "tool {input} {output} {outptu}",
        "command",
        "{outptu} is not a placeholder; allowed: {input}, {output}, {output_dir}",
    ),
    (
        "job-per-file",
        None,
        "tool {input} {output} {output_dir}",
        "command",
        "exactly one of {output} or {output_dir}",
    ),
    (
        "job-per-file",
        "csv_clean:process",
        "tool {input} {output}",
        "command",
        "give entrypoint or command, not both",
    ),
    ("job-per-file", None, "", "command", "expected a command line"),
    ("dask", None, "python bench.py", "command", "a dask workload needs an entrypoint"),
    ("queue-workers", None, "python w.py", "command", "command is for job-per-file and command"),
    ("command", None, None, "command", "required for a command workload"),
    ("command", "csv_clean:process", None, "command", "required for a command workload"),
    (
        "command",
        None,
        "python train.py {input}",
        "command",
        "{input} is not a placeholder; allowed: {inputs}, {outputs}",
    ),
    ("job-per-file", None, None, "entrypoint", "or a command instead"),
    ("pipeline", "pipeline.yml", None, "entrypoint", "no such file in the workload folder"),
    ("pipeline", "../pipeline.yaml", None, "entrypoint", "a path inside the workload folder"),
    ("pipeline", "pipeline.toml", None, "entrypoint", "or a Ploomber pipeline.yaml"),
]


@pytest.mark.parametrize(("pattern", "entrypoint", "command", "key", "allowed"), COMMAND_CASES)
def test_commands_and_pipeline_specs_are_checked_per_pattern(
    tmp_path: Path,
    pattern: str,
    entrypoint: str | None,
    command: str | None,
    key: str,
    allowed: str,
) -> None:
    lines = ["name: w\n", f"pattern: {pattern}\n"]
    if entrypoint is not None:
        lines.append(f"entrypoint: {entrypoint}\n")
    if command is not None:
        lines.append(f"command: {command!r}\n")
    folder = make_workload(tmp_path / "w", yaml_text="".join(lines))
    with pytest.raises(WorkloadError) as caught:
        load_workload(folder)
    assert caught.value.key == key
    assert allowed in str(caught.value), str(caught.value)


def test_a_script_workload_and_a_ploomber_pipeline_load(tmp_path: Path) -> None:
    script = make_workload(
        tmp_path / "clc",
        yaml_text="name: clc\npattern: job-per-file\n"
        "command: python -m clc.preprocess {input} --out-dir {output_dir}  # ${HOME} stays\n",
    )
    spec = load_workload(script).spec
    assert spec.is_command
    assert spec.entrypoint == ""
    assert spec.command == "python -m clc.preprocess {input} --out-dir {output_dir}"
    experiment = make_workload(
        tmp_path / "exp",
        yaml_text="name: exp\npattern: command\ncommand: python train.py --out {outputs}\n",
    )
    assert load_workload(experiment).spec.command == "python train.py --out {outputs}"
    pipeline = make_workload(
        tmp_path / "p", yaml_text="name: p\npattern: pipeline\nentrypoint: pipeline.yaml\n"
    )
    (pipeline / "pipeline.yaml").write_text("tasks: []\n")
    assert load_workload(pipeline).spec.is_pipeline_spec
