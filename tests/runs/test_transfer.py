"""Data transfers to NFS through the in-pod commands, run here as local processes on a folder.

The same NfsFolder code talks to a pod over the exec stream (tests/runs/test_kube_api.py);
here the pod's mount is a temporary folder and `workstack data ...` runs as a subprocess.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from workstack.runs.errors import DeniedError, RunsError, UsageError
from workstack.runs.transfer import Channel, LocalRunner, NfsFolder
from workstack.sdk.datasync import FileEntry


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


FILES = {
    "a.csv": b"x,y\n1,2\n",
    "nested/b.csv": b"z\n" * 1000,
    "nested/deeper/c.bin": os.urandom(300_000),
}


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    root = tmp_path / "mount"
    root.mkdir()
    return root


def test_push_then_pull_round_trip(tmp_path: Path, mount: Path) -> None:
    local = tmp_path / "in"
    make_tree(local, FILES)
    folder = NfsFolder(LocalRunner(), str(mount), url="nfs://shared-data")
    pushed = folder.push(local, "wl/inputs")
    assert (pushed.sent, pushed.skipped) == (3, 0)
    for name, data in FILES.items():
        assert (mount / "wl/inputs" / name).read_bytes() == data
    listed = folder.list("wl/inputs")
    assert [e.path for e in listed] == sorted(FILES)
    assert listed[0] == FileEntry("a.csv", 8, hashlib.sha256(FILES["a.csv"]).hexdigest())

    out = tmp_path / "out"
    pulled = folder.pull("wl/inputs", out)
    assert pulled.sent == 3
    for name, data in FILES.items():
        assert (out / name).read_bytes() == data
    # No temp file is left on either side.
    assert not [p for p in [*mount.rglob(".*"), *out.rglob(".*")]]


def test_a_second_push_sends_only_what_changed(tmp_path: Path, mount: Path) -> None:
    local = tmp_path / "in"
    make_tree(local, FILES)
    folder = NfsFolder(LocalRunner(), str(mount))
    folder.push(local, "x")
    (local / "a.csv").write_bytes(b"x,y\n9,9\n")  # same size, other content
    again = folder.push(local, "x")
    assert (again.sent, again.skipped) == (1, 2)
    assert (mount / "x/a.csv").read_bytes() == b"x,y\n9,9\n"
    assert folder.push(local, "x").sent == 0


def test_a_single_file_is_pushed_under_its_name(tmp_path: Path, mount: Path) -> None:
    local = tmp_path / "one.txt"
    local.write_text("one")
    NfsFolder(LocalRunner(), str(mount)).push(local, "dest")
    assert (mount / "dest/one.txt").read_text() == "one"


class _Breaking:
    """A runner whose stream breaks after ``limit`` bytes sent, as a dropped connection does."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inner = LocalRunner()

    def start(self, args: Sequence[str]) -> Channel:
        channel = self.inner.start(args)
        limit = self.limit if args[0] == "receive" else None
        return _BreakingChannel(channel, limit)


class _BreakingChannel:
    def __init__(self, inner: Channel, limit: int | None) -> None:
        self.inner, self.limit, self.sent = inner, limit, 0

    def write(self, data: bytes) -> None:
        if self.limit is not None and self.sent + len(data) > self.limit:
            self.inner.write(data[: self.limit - self.sent])
            self.inner.close_stdin()  # the far side sees the stream end mid-archive
            from workstack.runs.errors import UnreachableError

            raise UnreachableError("connection reset by peer")
        self.sent += len(data)
        self.inner.write(data)

    def close_stdin(self) -> None:
        self.inner.close_stdin()

    def read(self, timeout: float = 1.0) -> bytes | None:
        return self.inner.read(timeout)

    def wait(self, timeout: float = 60.0) -> tuple[int | None, str]:
        return self.inner.wait(timeout)

    def close(self) -> None:
        self.inner.close()


def test_an_interrupted_push_keeps_whole_files_and_resumes(tmp_path: Path, mount: Path) -> None:
    local = tmp_path / "in"
    make_tree(local, FILES)
    broken = NfsFolder(_Breaking(limit=40_000), str(mount))
    with pytest.raises(RunsError, match=r"interrupted.*run the same command again"):
        broken.push(local, "r")
    # a.csv and nested/b.csv fit in the first 40 kB; the large file never arrived in part.
    arrived = sorted(
        p.relative_to(mount / "r").as_posix() for p in (mount / "r").rglob("*") if p.is_file()
    )
    assert arrived == ["a.csv", "nested/b.csv"]
    resumed = NfsFolder(LocalRunner(), str(mount)).push(local, "r")
    assert (resumed.sent, resumed.skipped) == (1, 2)
    assert (mount / "r/nested/deeper/c.bin").read_bytes() == FILES["nested/deeper/c.bin"]


def test_pull_of_nothing_and_push_of_nothing_are_usage_errors(tmp_path: Path, mount: Path) -> None:
    folder = NfsFolder(LocalRunner(), str(mount))
    with pytest.raises(UsageError, match="nothing is stored under"):
        folder.pull("missing", tmp_path / "out")
    with pytest.raises(UsageError, match="does not exist"):
        folder.push(tmp_path / "no-such-folder", "x")
    with pytest.raises(UsageError, match="not allowed"):
        folder.push(tmp_path, "../escape")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission")
def test_permission_denied_on_the_storage(tmp_path: Path, mount: Path) -> None:
    local = tmp_path / "in"
    make_tree(local, FILES)
    (mount / "ro").mkdir()
    (mount / "ro").chmod(0o555)
    with pytest.raises(DeniedError, match="permission denied"):
        NfsFolder(LocalRunner(), str(mount)).push(local, "ro")


def test_permission_denied_is_reported_as_such(tmp_path: Path, mount: Path) -> None:
    """The in-pod side's exit 73 (its EACCES), whoever runs it."""
    local = tmp_path / "in"
    make_tree(local, {"a.csv": b"1"})
    fake = tmp_path / "fake-workstack"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = manifest ]; then exit 0; fi\n'
        "cat > /dev/null; echo 'error: permission denied writing /data/x/a.csv' >&2; exit 73\n"
    )
    fake.chmod(0o755)
    folder = NfsFolder(LocalRunner([str(fake)]), "/data")
    with pytest.raises(DeniedError, match="permission denied pushing to /data/x"):
        folder.push(local, "x")


def test_disk_full_is_reported_as_such(tmp_path: Path) -> None:
    local = tmp_path / "in"
    make_tree(local, {"a.csv": b"1"})
    fake = tmp_path / "fake-workstack"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = manifest ]; then exit 0; fi\n'
        "cat > /dev/null; echo 'error: disk full writing /data/x/a.csv: [Errno 28] No space "
        "left on device' >&2; exit 74\n"
    )
    fake.chmod(0o755)
    with pytest.raises(RunsError, match="disk full"):
        NfsFolder(LocalRunner([str(fake)]), "/data").push(local, "x")
