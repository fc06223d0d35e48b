"""workstack.sdk.storage against a real filesystem and a real S3-compatible server (moto)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from workstack.sdk.storage import Storage, StorageError, open_storage

from .conftest import S3Server

pytestmark = pytest.mark.integration

KEYS = ["b.csv", "a/2.csv", "a/10.csv", "A.csv", "a/1.csv", "z/deep/x.csv", "é.csv"]

SLOW_WRITER = """
import sys, time
from workstack.sdk.storage import open_storage
storage = open_storage(sys.argv[1])
with storage.writer(sys.argv[2]) as handle:
    handle.write(b"half of the data ")
    handle.flush()
    print("writing", flush=True)
    time.sleep(120)
    handle.write(b"and the rest")
"""


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_storage(tmp_path / "root")
    s3: S3Server = request.getfixturevalue("s3_server")
    bucket = f"ws-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    return open_storage(f"s3://{bucket}/prefix")


def test_listing_is_sorted_by_key_and_recursive(storage: Storage) -> None:
    for key in KEYS:
        storage.write_text(key, key)
    assert storage.list() == sorted(KEYS)
    assert storage.list() == [
        "A.csv",
        "a/1.csv",
        "a/10.csv",
        "a/2.csv",
        "b.csv",
        "z/deep/x.csv",
        "é.csv",
    ]
    assert storage.list("a") == ["a/1.csv", "a/10.csv", "a/2.csv"]
    assert storage.list("missing") == []


def test_round_trip_exists_and_delete(storage: Storage) -> None:
    storage.write_bytes("x/data.bin", b"\x00\x01")
    assert storage.exists("x/data.bin")
    assert storage.read_bytes("x/data.bin") == b"\x00\x01"
    assert not storage.exists("x/other.bin")
    storage.delete("x/data.bin")
    storage.delete("x/data.bin")
    assert not storage.exists("x/data.bin")


def test_missing_file_error_names_the_url(storage: Storage) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"prefix/nope\.csv: no such file|root/nope\.csv: no such file"
    ):
        storage.read_text("nope.csv")


def _write_then_fail(storage: Storage, key: str) -> None:
    with storage.writer(key) as handle:
        handle.write(b"new but incomplete")
        raise RuntimeError("task failed mid-write")


def test_failed_write_leaves_nothing_behind(storage: Storage) -> None:
    storage.write_text("out.csv", "old")
    with pytest.raises(RuntimeError):
        _write_then_fail(storage, "out.csv")
    with pytest.raises(RuntimeError):
        _write_then_fail(storage, "fresh.csv")
    assert storage.read_text("out.csv") == "old"
    assert storage.list() == ["out.csv"]


@pytest.mark.parametrize("existing", [False, True])
def test_killed_writer_never_leaves_a_partial_file(storage: Storage, existing: bool) -> None:
    if existing:
        storage.write_text("result.csv", "previous complete result")
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, storage.url, "result.csv"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    if existing:
        assert storage.read_text("result.csv") == "previous complete result"
        assert storage.list() == ["result.csv"]
    else:
        assert not storage.exists("result.csv")
        assert storage.list() == []


def test_child_storage_shares_the_backend(storage: Storage) -> None:
    storage.write_text("run-1/a.txt", "a")
    child = storage.child("run-1")
    assert child.list() == ["a.txt"]
    assert child.url == storage.url + "/run-1"


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../../b", "dir/"])
def test_bad_keys_are_rejected(storage: Storage, key: str) -> None:
    with pytest.raises(StorageError, match="expected a relative path"):
        storage.write_text(key, "x")


def test_bad_urls_name_what_is_allowed() -> None:
    with pytest.raises(StorageError, match=r"scheme 'azure'; allowed: s3://, gs://, file://"):
        open_storage("azure://container/x")
    with pytest.raises(StorageError, match="names no bucket"):
        open_storage("s3://")


def test_gcs_url_maps_to_gcsfs_without_network() -> None:
    storage = open_storage("gs://my-bucket/some/prefix/")
    assert storage.protocol == "gcs"
    assert storage.url == "gs://my-bucket/some/prefix"
    assert storage.path("a.csv") == "gs://my-bucket/some/prefix/a.csv"


def test_local_paths_and_file_urls_are_the_same_storage(tmp_path: Path) -> None:
    assert open_storage(f"file://{tmp_path}").url == open_storage(tmp_path).url == str(tmp_path)
