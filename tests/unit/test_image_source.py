"""Which workstack goes into images, and what identifies it (workstack.images.source).

A plain editable install, a regular install from a source tree, an installed wheel file and
an index install each give images a workstack; the fingerprint that goes into the tag comes
from the sources and the metadata that shape the wheel, never from wheel bytes."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from workstack.images import SourceError, WorkstackSource, find_source, plan_context

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "workloads" / "word-count"

PYPROJECT = """\
[build-system]
requires = ["setuptools==84.2.1"]
build-backend = "setuptools.build_meta"

[project]
name = "workstack"
version = "0.2.0"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["pyyaml~=6.0"]

[project.optional-dependencies]
s3 = ["s3fs~=2026.9.0"]
dev = ["workstack[s3]", "pytest==9.2.0"]

[tool.setuptools]
packages = ["workstack", "workstack.sdk"]

[tool.setuptools.package-dir]
"workstack" = "cli"
"workstack.sdk" = "sdk"

[tool.setuptools.package-data]
"workstack" = ["py.typed"]

[tool.ruff]
line-length = 100
"""


def installed(
    tmp_path: Path, direct_url: dict[str, object] | None
) -> importlib.metadata.Distribution:
    """A workstack dist-info as pip leaves it, with ``direct_url.json`` when given."""
    info = tmp_path / "site" / "workstack-0.2.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.4\nName: workstack\nVersion: 0.2.0\nRequires-Dist: pyyaml~=6.0\n"
        'Provides-Extra: s3\nRequires-Dist: s3fs~=2026.9.0; extra == "s3"\n'
    )
    (info / "WHEEL").write_text("Wheel-Version: 1.0\n")
    (info / "RECORD").write_text(
        "workstack/__init__.py,sha256=AAAA,10\n"
        "workstack/__pycache__/__init__.cpython-311.pyc,,\n"
        "../../../bin/workstack,sha256=BBBB,200\n"
        "workstack-0.2.0.dist-info/INSTALLER,sha256=CCCC,4\n"
        "workstack-0.2.0.dist-info/RECORD,,\n"
    )
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    return importlib.metadata.PathDistribution(info)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for folder in ("cli", "sdk"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text(f'"""{folder}."""\n')
    (root / "cli" / "main.py").write_text("def main() -> None:\n    print('hi')\n")
    (root / "cli" / "py.typed").write_text("")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "README.md").write_text("# workstack\n\nQuickstart...\n")
    return root


def tree_source(root: Path, tmp_path: Path) -> WorkstackSource:
    """The source of an editable install of ``root`` (each call gets a dist-info of its own)."""
    url = {"url": root.as_uri(), "dir_info": {"editable": True}}
    return find_source(installed(Path(tempfile.mkdtemp(dir=tmp_path)), url))


def test_the_running_workstack_is_its_source_tree_under_a_plain_editable_install() -> None:
    """Before: a plain `pip install -e .` failed with "cannot find the workstack packages"."""
    source = find_source()
    assert source.kind == "tree"
    assert source.location == ROOT
    assert source.version == "0.1.0"
    files = dict(source.files)
    assert "cli/images/context.py" in files
    assert "components/image.py" in files
    assert "sdk/workload.py" in files
    assert "cli/py.typed" in files
    assert files["README.md"] != (ROOT / "README.md").read_bytes()  # a stand-in
    assert plan_context(FIXTURE).runtime == source


def test_fingerprint_follows_the_package_files_and_the_metadata_that_shape_the_wheel(
    tree: Path, tmp_path: Path
) -> None:
    base = tree_source(tree, tmp_path).fingerprint
    assert tree_source(tree, tmp_path).fingerprint == base
    # Not: the README (a stand-in is built), other tools' settings, files no package ships.
    (tree / "README.md").write_text("# workstack\n\nRewritten.\n")
    pyproject = tree / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace("line-length = 100", "line-length = 88"))
    (tree / "cli" / "notes.txt").write_text("not package data")
    (tree / "docs").mkdir()
    (tree / "docs" / "x.md").write_text("docs")
    assert tree_source(tree, tmp_path).fingerprint == base
    # Yes: code, package data, dependencies, the version, the build backend.
    changes = [
        lambda: (tree / "cli" / "main.py").write_text("def main() -> None:\n    print('yo')\n"),
        lambda: (tree / "sdk" / "new.py").write_text("X = 1\n"),
        lambda: (tree / "cli" / "py.typed").write_text("partial\n"),
        lambda: pyproject.write_text(PYPROJECT.replace("pyyaml~=6.0", "pyyaml~=6.1")),
        lambda: pyproject.write_text(PYPROJECT.replace('"0.2.0"', '"0.2.1"')),
        lambda: pyproject.write_text(PYPROJECT.replace("84.2.1", "84.3.0")),
    ]
    seen = {base}
    for change in changes:
        change()
        fingerprint = tree_source(tree, tmp_path).fingerprint
        assert fingerprint not in seen
        seen.add(fingerprint)


def test_a_copy_of_the_tree_elsewhere_has_the_same_fingerprint(tree: Path, tmp_path: Path) -> None:
    copy = tmp_path / "other" / "place"
    shutil.copytree(tree, copy)
    for path in copy.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    assert tree_source(copy, tmp_path).fingerprint == tree_source(tree, tmp_path).fingerprint


def test_requirements_and_extras_come_from_the_tree(tree: Path, tmp_path: Path) -> None:
    source = tree_source(tree, tmp_path)
    assert source.provided_extras == ("s3", "dev")
    assert source.image_extras() == ("s3",)
    assert source.runtime_requirements([]) == ("pyyaml~=6.0",)
    assert source.runtime_requirements(["s3"]) == ("pyyaml~=6.0", "s3fs~=2026.9.0")
    with pytest.raises(SourceError, match="extras: 'dev' is not allowed"):
        source.runtime_requirements(["dev"])


def test_the_wheel_is_built_by_the_backend_without_writing_into_the_tree(
    tree: Path, tmp_path: Path
) -> None:
    source = tree_source(tree, tmp_path)
    before = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*"))
    wheel = source.wheel(cache=tmp_path / "cache")
    assert wheel is not None
    assert wheel.name == "workstack-0.2.0-py3-none-any.whl"
    assert wheel.parent.name == source.fingerprint
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*")) == before
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"workstack/main.py", "workstack/py.typed", "workstack/sdk/__init__.py"} <= names
        assert "workstack/notes.txt" not in names
        metadata = archive.read("workstack-0.2.0.dist-info/METADATA").decode()
        assert "Quickstart" not in metadata
    assert source.wheel(cache=tmp_path / "cache") == wheel  # cached: built once


def test_an_index_install_installs_the_same_version_from_the_index(tmp_path: Path) -> None:
    source = find_source(installed(tmp_path, None))
    assert source.kind == "index"
    assert source.requirement == "workstack==0.2.0"
    assert source.wheel() is None  # online: the build fetches it
    plan = plan_context(FIXTURE, runtime=source)
    dockerfile = next(f for f in plan.files if f.path == "Dockerfile").content
    assert isinstance(dockerfile, bytes)
    assert b"pip install --no-deps workstack==0.2.0" in dockerfile
    assert b"COPY workstack/" not in dockerfile
    assert plan.runtime_file is None
    # The fingerprint is the RECORD's hashes, without what the installer made.
    other = installed(tmp_path / "again", None)
    record = Path(str(other.locate_file("workstack-0.2.0.dist-info/RECORD")))
    record.write_text(record.read_text().replace("BBBB", "ZZZZ").replace("CCCC", "YYYY"))
    assert find_source(other).fingerprint == source.fingerprint
    record.write_text(record.read_text().replace("AAAA", "XXXX"))
    assert find_source(other).fingerprint != source.fingerprint


def test_an_installed_wheel_file_goes_in_as_it_is(tmp_path: Path) -> None:
    wheel = tmp_path / "dist" / "workstack-0.2.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"PK")
    source = find_source(installed(tmp_path, {"url": wheel.as_uri(), "archive_info": {}}))
    assert source.kind == "wheel"
    assert source.wheel() == wheel
    assert plan_context(FIXTURE, runtime=source).runtime_file == f"workstack/{wheel.name}"


@pytest.mark.parametrize(
    ("direct_url", "message"),
    [
        (
            {"url": "file:///nowhere/checkout", "dir_info": {}},
            "which holds no pyproject.toml any more",
        ),
        (
            {"url": "file:///nowhere/workstack-0.2.0-py3-none-any.whl", "archive_info": {}},
            "which is gone",
        ),
        (
            {"url": "https://example.org/workstack.git", "vcs_info": {"vcs": "git"}},
            "only from a source tree",
        ),
    ],
)
def test_installs_images_cannot_reproduce_are_explained(
    tmp_path: Path, direct_url: dict[str, object], message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        find_source(installed(tmp_path, direct_url))


def test_a_regular_install_from_a_copied_tree_gives_the_same_tag(tmp_path: Path) -> None:
    """`pip install .` (not editable) works for image contexts, and a checkout elsewhere
    gives the same tag as this editable one: the tag hashes sources, not install layouts."""
    checkout = tmp_path / "elsewhere" / "workstack"
    for relative, content in find_source().files:
        (checkout / relative).parent.mkdir(parents=True, exist_ok=True)
        (checkout / relative).write_bytes(content)
    target = tmp_path / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"),
            "--target",
            str(target),
            str(checkout),
        ],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    probe = (
        "import json, workstack; from workstack.images import find_source, plan_context; "
        f"s = find_source(); p = plan_context({str(FIXTURE)!r}); "
        "print(json.dumps([workstack.__file__, s.kind, str(s.location), p.tag]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    module, kind, location, tag = json.loads(result.stdout)
    assert Path(module).is_relative_to(target)  # the regular install ran, not this checkout
    assert (kind, location) == ("tree", str(checkout))
    assert tag == plan_context(FIXTURE).tag


def test_workstack_code_changes_the_tag_and_its_readme_does_not(tree: Path, tmp_path: Path) -> None:
    before = plan_context(FIXTURE, runtime=tree_source(tree, tmp_path))
    (tree / "README.md").write_text("# workstack\n\nNew words.\n")
    assert plan_context(FIXTURE, runtime=tree_source(tree, tmp_path)).tag == before.tag
    (tree / "sdk" / "__init__.py").write_text('"""sdk, changed."""\n')
    after = plan_context(FIXTURE, runtime=tree_source(tree, tmp_path))
    assert after.tag != before.tag
    # Only workstack's layer changes: the dependencies are the same.
    assert after.dependency_hash == before.dependency_hash
