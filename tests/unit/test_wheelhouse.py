"""Offline mode's wheelhouse with real pip, from local wheels only (no index, no network)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from workstack.images import WheelhouseError
from workstack.images import wheelhouse as module
from workstack.images.wheelhouse import resolve_wheels


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


def test_names_exactly_the_resolved_set_without_a_network(wheelhouse: Path, tmp_path: Path) -> None:
    names = resolve_wheels(b"alpha\n", wheelhouse=wheelhouse, download=False)
    assert names == ["alpha-1.0-py3-none-any.whl", "beta-2.1-py3-none-any.whl"]
    assert (wheelhouse / ".workstack-resolved").is_dir()


def test_a_remembered_resolution_runs_no_pip(
    wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = resolve_wheels(b"alpha\n", wheelhouse=wheelhouse, download=False)

    def no_pip(args: list[str], *, hermetic: bool) -> None:
        raise AssertionError(f"pip ran: {args}")

    monkeypatch.setattr(module, "_pip", no_pip)
    assert resolve_wheels(b"alpha\n", wheelhouse=wheelhouse) == first


def test_rendering_only_looks_up_a_remembered_resolution(
    wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pip(args: list[str], *, hermetic: bool) -> None:
        raise AssertionError(f"pip ran: {args}")

    monkeypatch.setattr(module, "_pip", no_pip)
    entries = sorted(wheelhouse.rglob("*"))
    assert resolve_wheels(b"alpha\n", wheelhouse=wheelhouse, resolve=False) is None
    assert sorted(wheelhouse.rglob("*")) == entries  # nothing written
    monkeypatch.undo()
    names = resolve_wheels(b"alpha\n", wheelhouse=wheelhouse, download=False)
    assert resolve_wheels(b"alpha\n", wheelhouse=wheelhouse, resolve=False) == names


def test_a_missing_wheel_fails_with_pips_reason(wheelhouse: Path, tmp_path: Path) -> None:
    with pytest.raises(WheelhouseError, match="gamma"):
        resolve_wheels(b"alpha\ngamma>=1\n", wheelhouse=wheelhouse, download=False)
