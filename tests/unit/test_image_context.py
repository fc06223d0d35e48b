"""Build contexts: content-hash tags, the dependency hash, exclusions and the Dockerfile."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from workstack.images import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_EXCLUDES,
    ContextError,
    IgnoreRules,
    find_source,
    generate_context,
    host_platform,
    plan_context,
)
from workstack.images.context import BuildContext
from workstack.sdk.workload import WorkloadError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "workloads" / "word-count"


@pytest.fixture
def workload(tmp_path: Path) -> Path:
    """A private copy of the fixture workload, with the clutter a real folder has."""
    folder = tmp_path / "src" / "word-count"
    shutil.copytree(FIXTURE, folder)
    for junk in ("__pycache__/word_count.cpython-311.pyc", ".git/HEAD", ".venv/bin/python"):
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_text("junk")
    (folder / "stray.pyc").write_bytes(b"\0")
    return folder


def generate(folder: Path, out: Path, **options: object) -> BuildContext:
    return generate_context(folder, out, **options)  # type: ignore[arg-type]


def files(context: BuildContext) -> list[str]:
    return sorted(
        path.relative_to(context.path).as_posix()
        for path in context.path.rglob("*")
        if path.is_file()
    )


def test_layout_and_exclusions(workload: Path, tmp_path: Path) -> None:
    context = generate(workload, tmp_path / "ctx")
    assert files(context) == [
        "Dockerfile",
        "app/requirements.txt",
        "app/text_rules.py",
        "app/word_count.py",
        "app/workload.yaml",
        "deps/requirements.txt",
        "workstack/workstack-0.1.0-py3-none-any.whl",
    ]
    # data/, caches, .git, .venv, *.pyc, the .dockerignore and what it names (notes/) are out.
    assert context.tag == plan_context(workload).tag
    assert len(context.tag) == 20
    assert context.image_ref() == f"workstack/word-count:{context.tag}"


def test_tag_is_stable_across_generations_and_copies(workload: Path, tmp_path: Path) -> None:
    first = generate(workload, tmp_path / "one")
    again = generate(workload, tmp_path / "one")
    # A copy elsewhere, written later, with other permissions and timestamps.
    copy = tmp_path / "elsewhere" / "deeper" / "word-count"
    shutil.copytree(workload, copy)
    for path in copy.rglob("*"):
        if path.is_file():
            path.chmod(0o600)
            os.utime(path, (1_000_000_000, 1_000_000_000))
    moved = generate(copy, tmp_path / "two")
    assert first.tag == again.tag == moved.tag
    assert first.dependency_hash == again.dependency_hash == moved.dependency_hash


@pytest.mark.parametrize(
    "change",
    ["word_count.py", "text_rules.py", "workload.yaml", "new_module.py", "exec-bit"],
)
def test_any_code_change_changes_the_tag_but_not_the_dependency_hash(
    workload: Path, tmp_path: Path, change: str
) -> None:
    before = generate(workload, tmp_path / "ctx")
    deps_stage = before.dockerfile.read_text().split("\n\n# The image:")[0]
    if change == "exec-bit":
        (workload / "text_rules.py").chmod(0o755)
    else:
        with (workload / change).open("a") as handle:
            handle.write("\n# one more line\n")
    after = generate(workload, tmp_path / "ctx")
    assert after.tag != before.tag
    assert after.dependency_hash == before.dependency_hash
    # The dependency stage and what it reads are byte for byte the same.
    assert after.dockerfile.read_text().split("\n\n# The image:")[0] == deps_stage
    assert (after.path / "deps").is_dir()


def test_dependency_hash_follows_requirements_not_their_formatting(
    workload: Path, tmp_path: Path
) -> None:
    base = generate(workload, tmp_path / "ctx")
    (workload / "requirements.txt").write_text(
        "# reordered, reformatted, commented\nmore-itertools >= 10.0  # same\n"
    )
    reformatted = generate(workload, tmp_path / "ctx")
    assert reformatted.dependency_hash == base.dependency_hash
    (workload / "requirements.txt").write_text("more-itertools>=10.1\n")
    changed = generate(workload, tmp_path / "ctx")
    assert changed.dependency_hash != base.dependency_hash


def test_base_image_is_part_of_both_hashes(workload: Path, tmp_path: Path) -> None:
    default = generate(workload, tmp_path / "ctx")
    other = generate(workload, tmp_path / "ctx", base_image="example.org/py:3.11")
    assert DEFAULT_BASE_IMAGE == "python:3.11-slim-bookworm"
    assert default.base_image == DEFAULT_BASE_IMAGE
    assert other.tag != default.tag
    assert other.dependency_hash != default.dependency_hash
    assert "ARG BASE_IMAGE=example.org/py:3.11\n" in other.dockerfile.read_text()


def test_dockerfile_layers_and_runtime_settings(workload: Path, tmp_path: Path) -> None:
    context = generate(workload, tmp_path / "ctx")
    text = context.dockerfile.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# Generated by workstack")
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in lines
    # Dependencies before workstack before code, so a code change reuses both.
    order = [
        text.index("COPY deps/ /tmp/workstack-deps/"),
        text.index("COPY --from=deps /opt/venv /opt/venv"),
        text.index("COPY workstack/ /tmp/workstack-dist/"),
        text.index("COPY app/ /app/"),
    ]
    assert order == sorted(order)
    assert "python3 -m venv /opt/venv" in text
    assert "USER 10001:10001" in lines
    assert 'ENTRYPOINT ["workstack", "pod"]' in lines
    assert "WORKDIR /app" in lines
    assert "WORKSTACK_WORKLOAD=/app/workload.yaml" in text
    assert "PYTHONPATH=/app" in text
    assert "--no-index --find-links" not in text.split("# The image:")[0]
    assert f'dev.workstack.dependency-hash="{context.dependency_hash}"' in text
    assert context.network is None


def test_requirements_hold_workload_and_core_runtime_never_deploy(
    workload: Path, tmp_path: Path
) -> None:
    context = generate(workload, tmp_path / "ctx")
    lines = (context.path / "deps" / "requirements.txt").read_text().splitlines()
    wanted = [line for line in lines if not line.startswith("#")]
    assert wanted == sorted(wanted, key=str.lower)
    assert "more-itertools>=10.0" in wanted
    assert {"fsspec~=2026.9.0", "pyyaml~=6.0", "typer~=0.29.2"} <= set(wanted)
    assert not [line for line in wanted if "pulumi" in line]


def test_extras_add_their_requirements(workload: Path, tmp_path: Path) -> None:
    yaml_path = workload / "workload.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("extras: []", "extras: [s3]"))
    context = generate(workload, tmp_path / "ctx")
    assert "s3fs~=2026.9.0" in (context.path / "deps" / "requirements.txt").read_text()
    source = find_source()
    assert source.runtime_requirements(["s3"]) == (
        *source.runtime_requirements([]),
        "s3fs~=2026.9.0",
    )


def test_stack_extras_join_the_workloads_and_change_both_hashes(workload: Path) -> None:
    """A stack with bucket storage asks for s3 or gcs on top of the workload's extras."""
    plain = plan_context(workload)
    with_gcs = plan_context(workload, extras=("gcs",))
    both = plan_context(workload, extras=["gcs", "s3", "gcs"])
    requirements = {
        plan.extras: next(f for f in plan.files if f.path == "deps/requirements.txt").content
        for plan in (plain, with_gcs, both)
    }
    assert list(requirements) == [(), ("gcs",), ("gcs", "s3")]
    assert b"gcsfs~=2026.10.1" in requirements[("gcs",)]
    assert b"gcsfs" not in requirements[()]
    assert b"s3fs~=2026.9.0" in requirements[("gcs", "s3")]
    assert len({plain.tag, with_gcs.tag, both.tag}) == 3
    assert len({plain.dependency_hash, with_gcs.dependency_hash, both.dependency_hash}) == 3


@pytest.mark.parametrize("extra", ["no-such-extra", "deploy", "dev"])
def test_extras_that_images_never_get_are_refused(workload: Path, extra: str) -> None:
    with pytest.raises(ContextError, match=rf"extras: '{extra}' is not allowed; .*s3, gcs"):
        plan_context(workload, extras=(extra,))


def test_workstack_wheel_is_built_by_its_backend_from_the_source_tree(
    workload: Path, tmp_path: Path
) -> None:
    first = generate(workload, tmp_path / "a")
    second = generate(workload, tmp_path / "b")
    wheel = first.path / "workstack" / "workstack-0.1.0-py3-none-any.whl"
    # Cached by fingerprint: every context on this machine gets the same bytes.
    assert wheel.read_bytes() == (second.path / "workstack" / wheel.name).read_bytes()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "workstack/sdk/workload.py" in names
        assert "workstack/images/context.py" in names
        assert "workstack/components/image.py" in names
        assert "workstack/py.typed" in names
        assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert "Generator: setuptools" in archive.read("workstack-0.1.0.dist-info/WHEEL").decode()
        metadata = archive.read("workstack-0.1.0.dist-info/METADATA").decode()
        assert "Name: workstack" in metadata
        assert "Quickstart" not in metadata  # the README is not packed
        entry_points = archive.read("workstack-0.1.0.dist-info/entry_points.txt").decode()
        assert "workstack = workstack.main:main" in entry_points


def test_planning_writes_nothing_and_reads_each_workload_file_once(
    workload: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    original = Path.read_bytes

    def counting(self: Path) -> bytes:
        if self.is_relative_to(workload):
            reads.append(self)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    monkeypatch.chdir(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    plan = plan_context(workload)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert plan.tag == plan_context(workload).tag
    reads.clear()
    context = plan.write(tmp_path / "ctx")
    assert reads == []  # written from the bytes that were hashed
    assert context.tag == plan.tag
    written = sorted(p.relative_to(context.path).as_posix() for p in context.path.rglob("*"))
    assert [f.path for f in plan.files if f.path.startswith("app/")] == [
        p for p in written if p.startswith("app/") and (context.path / p).is_file()
    ]
    for file in plan.files:
        assert isinstance(file.content, bytes)
        assert (context.path / file.path).read_bytes() == file.content
    reads.clear()
    plan_context(workload)
    assert sorted(reads) == sorted(set(reads)), "a workload file was read twice"


def test_platform_is_part_of_the_tag_and_named_in_the_image(workload: Path) -> None:
    amd = plan_context(workload)
    arm = plan_context(workload, platform="linux/arm64")
    assert amd.platform == "linux/amd64"
    assert arm.tag != amd.tag
    assert arm.dependency_hash != amd.dependency_hash
    dockerfile = next(f for f in arm.files if f.path == "Dockerfile").content
    assert isinstance(dockerfile, bytes)
    assert b'dev.workstack.platform="linux/arm64"' in dockerfile


def test_a_platform_that_nodes_do_not_run_is_refused(workload: Path) -> None:
    with pytest.raises(
        ContextError,
        match=r"platform: 'linux/386' is not allowed; one of linux/amd64, linux/arm64",
    ):
        plan_context(workload, platform="linux/386")
    other = "linux/arm64" if host_platform() == "linux/amd64" else "linux/amd64"
    with pytest.raises(ContextError, match="offline wheels are resolved for the machine"):
        plan_context(workload, platform=other, offline=True)


def test_ignore_rules_follow_dockerignore_semantics() -> None:
    rules = IgnoreRules([*DEFAULT_EXCLUDES, "*.md", "docs/**/*.tmp", "/logs/", "!data/keep.csv"])
    assert rules.excluded("data/x.csv")
    assert not rules.excluded("data/keep.csv")
    assert not rules.excluded("pkg/data/x.csv")  # 'data' is anchored at the root
    assert rules.excluded("a/b/__pycache__/m.cpython-311.pyc")
    assert rules.excluded("a/.git/config")
    assert rules.excluded("README.md")
    assert not rules.excluded("docs/README.md")  # '*' stays within one segment
    assert rules.excluded("docs/a/b/c.tmp")
    assert rules.excluded("docs/c.tmp")  # '**/' also matches no folder
    assert rules.excluded("logs/today.txt")
    assert not rules.excluded("word_count.py")
    assert rules.has_includes
    assert "!data/keep.csv" in rules.patterns


def test_a_workload_dockerignore_can_bring_data_back(workload: Path, tmp_path: Path) -> None:
    (workload / ".dockerignore").write_text("notes\n!data/sample.txt\n")
    assert "app/data/sample.txt" in files(generate(workload, tmp_path / "ctx"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_image": "Not An Image"}, "base_image: 'Not An Image' is not allowed"),
        ({"wheelhouse": "/tmp/wh"}, "only in offline mode"),
    ],
)
def test_bad_options(
    workload: Path, tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ContextError, match=message):
        generate(workload, tmp_path / "ctx", **options)
    assert not (tmp_path / "ctx").exists()


def test_output_must_not_be_in_the_workload_or_a_foreign_folder(
    workload: Path, tmp_path: Path
) -> None:
    with pytest.raises(ContextError, match="must not be inside the workload folder"):
        generate(workload, workload / "ctx")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ContextError, match="refusing to replace it"):
        generate(workload, foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_regenerating_replaces_stale_files(workload: Path, tmp_path: Path) -> None:
    generate(workload, tmp_path / "ctx")
    (workload / "text_rules.py").unlink()
    (workload / "word_count.py").write_text("def count_words(text):\n    return {}\n")
    context = generate(workload, tmp_path / "ctx")
    assert "app/text_rules.py" not in files(context)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ctx")]


def test_bad_workload_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    with pytest.raises(WorkloadError):
        generate(tmp_path / "w", tmp_path / "ctx")
    assert not (tmp_path / "ctx").exists()
