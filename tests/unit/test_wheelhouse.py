"""Offline mode's wheelhouse with real pip, from local wheels only (no index, no network)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from workstack.images import WheelhouseError
from workstack.images import wheelhouse as module
from workstack.images.wheelhouse import fill_context_wheels


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> str:
    """Write a minimal valid pure-Python wheel and return its file name."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files = {
        f"{name}/__init__.py": b"",
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256="
        f"{base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}\n"
        for path, data in files.items()
    )
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    file_name = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(folder / file_name, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return file_name


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    house = tmp_path / "wheelhouse"
    make_wheel(house, "alpha", "1.0", requires=("beta>=2",))
    make_wheel(house, "beta", "2.1")
    make_wheel(house, "unused", "0.1")
    return house


def test_copies_exactly_the_resolved_set_without_a_network(
    wheelhouse: Path, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha\n")
    names = fill_context_wheels(
        requirements, tmp_path / "ctx", wheelhouse=wheelhouse, download=False
    )
    assert names == ["alpha-1.0-py3-none-any.whl", "beta-2.1-py3-none-any.whl"]
    assert sorted(p.name for p in (tmp_path / "ctx").iterdir()) == names
    assert (wheelhouse / ".workstack-resolved").is_dir()


def test_a_remembered_resolution_runs_no_pip(
    wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha\n")
    first = fill_context_wheels(requirements, tmp_path / "a", wheelhouse=wheelhouse, download=False)

    def no_pip(args: list[str], *, hermetic: bool) -> None:
        raise AssertionError(f"pip ran: {args}")

    monkeypatch.setattr(module, "_pip", no_pip)
    again = fill_context_wheels(requirements, tmp_path / "b", wheelhouse=wheelhouse)
    assert again == first
    assert (tmp_path / "b" / first[0]).read_bytes() == (wheelhouse / first[0]).read_bytes()


def test_a_missing_wheel_fails_with_pips_reason(wheelhouse: Path, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha\ngamma>=1\n")
    with pytest.raises(WheelhouseError, match="gamma"):
        fill_context_wheels(requirements, tmp_path / "ctx", wheelhouse=wheelhouse, download=False)
