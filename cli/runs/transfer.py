"""Moving folders between this machine and a stack's storage: NFS through a pod, or a bucket.

A stack's NFS storage is reached through a pod that mounts the claim: a :class:`Runner` starts
``workstack data manifest|receive|send`` there (:class:`PodRunner`, over the exec stream) and
:class:`NfsFolder` streams a tar archive through it, as ``kubectl cp`` does. The same code
runs against a local folder behind local processes (:class:`LocalRunner`), which is how the
tests exercise it. A bucket is reached directly with fsspec and the user's own credentials
(:class:`BucketFolder`).

Both skip files whose size and digest match on the other side, so a transfer that was
interrupted is resumed by running it again; files arrive whole or not at all.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from workstack.runs.errors import (
    DeniedError,
    RunsError,
    UnreachableError,
    UsageError,
)
from workstack.sdk.datasync import (
    EXIT_BAD_ARGS,
    EXIT_DENIED,
    EXIT_INTERRUPTED,
    EXIT_IO,
    DataError,
    FileEntry,
    check_relative,
    parse_entries,
    receive,
    scan,
    write_tar,
)

__all__ = [
    "BucketFolder",
    "Channel",
    "LocalRunner",
    "NfsFolder",
    "Progress",
    "RemoteFolder",
    "Runner",
    "TransferResult",
    "local_entries",
]

_CHUNK = 1 << 20
_IDLE_SECONDS = 300.0  # no byte in either direction for this long: the stream is dead


class Channel(Protocol):
    """A ``workstack data`` command running on the storage's side."""

    def write(self, data: bytes) -> None:
        """Send bytes to its stdin."""
        ...

    def close_stdin(self) -> None:
        """End its stdin."""
        ...

    def read(self, timeout: float = 1.0) -> bytes | None:
        """Some stdout; b"" when it ended, None if nothing came within ``timeout``."""
        ...

    def wait(self, timeout: float = 60.0) -> tuple[int | None, str]:
        """Its exit status (None if unknown: the stream broke) and its stderr."""
        ...

    def close(self) -> None:
        """Drop it."""
        ...


class Runner(Protocol):
    """Starts ``workstack data <args>`` where the storage is mounted."""

    def start(self, args: Sequence[str]) -> Channel:
        """Start the command."""
        ...


class Progress(Protocol):
    """Where a transfer reports its bytes."""

    def begin(self, label: str, total: int, files: int) -> None:
        """A transfer of ``files`` files, ``total`` bytes, starts."""
        ...

    def advance(self, count: int) -> None:
        """``count`` more bytes went through."""
        ...

    def end(self) -> None:
        """It is over."""
        ...


class _Quiet:
    def begin(self, label: str, total: int, files: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def end(self) -> None:
        pass


@dataclass(frozen=True)
class TransferResult:
    """What a push or pull did.

    Attributes:
        sent: Files transferred.
        skipped: Files already there with the same size and digest.
        bytes: Bytes transferred.
    """

    sent: int
    skipped: int
    bytes: int

    def line(self) -> str:
        """One line for the user."""
        return (
            f"{self.sent} file(s) transferred ({_size(self.bytes)}), {self.skipped} already "
            "there (same size and checksum)"
        )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover - the loop always returns


def local_entries(local: Path, *, md5: bool = False) -> tuple[Path, list[FileEntry]]:
    """The folder a local path stands for and its files (a file stands for itself).

    Raises:
        UsageError: The path does not exist.
    """
    if local.is_file():
        entry = scan(local.parent, local.name, md5=md5)
        return local.parent, entry
    if not local.is_dir():
        raise UsageError(f"local path {str(local)!r} does not exist; expected a folder or file")
    return local, scan(local, md5=md5)


def _relative(remote: str) -> str:
    text = remote.strip("/")
    if not text:
        return ""
    try:
        return check_relative(text)
    except DataError as error:
        raise UsageError(f"remote {remote!r}: {error}") from None


def _todo(wanted: list[FileEntry], present: dict[str, FileEntry]) -> list[FileEntry]:
    return [e for e in wanted if not (e.path in present and e.same_as(present[e.path]))]


class RemoteFolder(Protocol):
    """A storage root data commands push to, pull from and list."""

    url: str

    def list(self, remote: str = "") -> list[FileEntry]:
        """Files under ``remote`` (keys relative to it)."""
        ...

    def push(self, local: Path, remote: str, progress: Progress | None = None) -> TransferResult:
        """Copy a local folder (or file) to ``remote``."""
        ...

    def pull(self, remote: str, local: Path, progress: Progress | None = None) -> TransferResult:
        """Copy ``remote`` into a local folder."""
        ...


# -- NFS, through a runner ------------------------------------------------------------------


class _ChannelWriter(io.RawIOBase):
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._channel.write(chunk)
        return len(chunk)


class _ChannelReader(io.RawIOBase):
    def __init__(self, channel: Channel, idle: float) -> None:
        self._channel = channel
        self._idle = idle
        self._buffer = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        quiet_since = time.monotonic()
        while not self._buffer and not self._ended:
            data = self._channel.read(timeout=1.0)
            if data is None:
                if time.monotonic() - quiet_since > self._idle:
                    raise UnreachableError(f"nothing arrived for {self._idle:g} s")
                continue
            if data == b"":
                self._ended = True
            self._buffer = data
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _read_all(channel: Channel, idle: float) -> bytes:
    return _ChannelReader(channel, idle).read()


class NfsFolder:
    """A folder of the stack's NFS storage, reached through ``workstack data`` at ``root``.

    Args:
        runner: Starts the in-pod commands (a pod mounting the claim, or a local process).
        root: The storage root as the runner sees it (``/data`` in the pod).
        url: How the user names it (``nfs://<claim>``), for messages.
        idle: Seconds without traffic after which a stream counts as broken.
    """

    def __init__(
        self, runner: Runner, root: str, *, url: str | None = None, idle: float = _IDLE_SECONDS
    ) -> None:
        self._runner = runner
        self._root = root.rstrip("/") or "/"
        self.url = url or self._root
        self._idle = idle

    def _at(self, remote: str) -> str:
        relative = _relative(remote)
        return f"{self._root}/{relative}" if relative else self._root

    def _finish(self, channel: Channel, doing: str, done: int = 0, total: int = 0) -> str:
        """Wait for the command; its stdout is returned, a failure raised in the user's terms."""
        output = _read_all(channel, self._idle)
        status, stderr = channel.wait()
        if status == 0:
            return output.decode("utf-8", "replace")
        raise _failure(status, stderr, doing, done, total)

    def list(self, remote: str = "") -> list[FileEntry]:
        """Files under ``remote`` with size and sha256, keys relative to ``remote``."""
        channel = self._runner.start(["manifest", self._at(remote)])
        channel.close_stdin()
        text = self._finish(channel, f"listing {self.url}/{_relative(remote)}")
        try:
            return parse_entries(text.splitlines())
        except DataError as error:
            raise RunsError(f"listing {self.url}: {error}") from None

    def push(self, local: Path, remote: str, progress: Progress | None = None) -> TransferResult:
        """Copy ``local`` to ``remote``, skipping files already there; resumable.

        Raises:
            UsageError: ``local`` does not exist, or ``remote`` is not a relative path.
            DeniedError: The storage refused to write (permission denied).
            RunsError: Disk full, or the stream broke (the message says how to resume).
        """
        folder, entries = local_entries(local)
        present = {e.path: e for e in self.list(remote)}
        todo = _todo(entries, present)
        result = TransferResult(len(todo), len(entries) - len(todo), sum(e.size for e in todo))
        if not todo:
            return result
        view = progress or _Quiet()
        view.begin(f"push {local} -> {self.url}/{_relative(remote)}", result.bytes, len(todo))
        target = self._at(remote)
        channel = self._runner.start(["receive", target, "--files", str(len(todo))])
        doing = f"pushing to {self.url}/{_relative(remote)}"
        try:
            try:
                write_tar(folder, todo, _ChannelWriter(channel), on_bytes=view.advance)  # type: ignore[arg-type]
                channel.close_stdin()
            except (UnreachableError, OSError) as error:
                # The other side may have stopped first (disk full, denied): its status says why.
                status, stderr = channel.wait(timeout=10)
                raise _failure(status, stderr or str(error), doing, 0, len(todo)) from None
            except DataError as error:
                channel.close()
                raise UsageError(f"reading {local}: {error}") from None
            self._finish(channel, doing, 0, len(todo))
        finally:
            view.end()
        return result

    def pull(self, remote: str, local: Path, progress: Progress | None = None) -> TransferResult:
        """Copy ``remote`` into the folder ``local``, skipping files already there; resumable.

        Raises:
            UsageError: Nothing is stored at ``remote``.
            DeniedError: The local folder or the storage refused (permission denied).
            RunsError: Disk full here, or the stream broke (run the same command again).
        """
        entries = self.list(remote)
        if not entries:
            raise UsageError(f"nothing is stored under {self.url}/{_relative(remote)}")
        local.mkdir(parents=True, exist_ok=True)
        present = {e.path: e for e in scan(local)}
        todo = _todo(entries, present)
        result = TransferResult(len(todo), len(entries) - len(todo), sum(e.size for e in todo))
        if not todo:
            return result
        view = progress or _Quiet()
        view.begin(f"pull {self.url}/{_relative(remote)} -> {local}", result.bytes, len(todo))
        channel = self._runner.start(["send", self._at(remote)])
        doing = f"pulling {self.url}/{_relative(remote)}"
        try:
            channel.write(json.dumps([e.path for e in todo]).encode() + b"\n")
            channel.close_stdin()
            try:
                receive(
                    local,
                    _ChannelReader(channel, self._idle),  # type: ignore[arg-type]
                    expected={e.path: e for e in todo},
                    count=len(todo),
                    on_bytes=view.advance,
                )
            except (DataError, UnreachableError) as error:
                status, stderr = channel.wait(timeout=10)
                if status not in (0, None):
                    raise _failure(status, stderr, doing, 0, len(todo)) from None
                if isinstance(error, DataError) and error.exit_code in (EXIT_DENIED, EXIT_IO):
                    raise _local_failure(error, local) from None
                raise _failure(None, str(error), doing, 0, len(todo)) from None
            self._finish(channel, doing, 0, len(todo))
        finally:
            view.end()
        return result


def _failure(status: int | None, stderr: str, doing: str, done: int, total: int) -> RunsError:
    detail = stderr.strip().removeprefix("error: ")[-1000:]
    if status == EXIT_DENIED:
        return DeniedError(f"permission denied {doing}: {detail}")
    if status == EXIT_IO:
        return RunsError(f"{doing} failed (disk full or an I/O error on the storage): {detail}")
    if status == EXIT_BAD_ARGS:
        return UsageError(f"{doing}: {detail}")
    if status == EXIT_INTERRUPTED or status is None:
        return RunsError(
            f"{doing} was interrupted ({detail or 'the stream broke'}); the files that arrived "
            "are complete: run the same command again to send only the rest"
        )
    return RunsError(f"{doing} failed (exit {status}): {detail}")


def _local_failure(error: DataError, local: Path) -> RunsError:
    if error.exit_code == EXIT_DENIED:
        return DeniedError(f"permission denied writing into {local}: {error}")
    return RunsError(f"writing into {local} failed (disk full or an I/O error): {error}")


class LocalRunner:
    """Runs ``workstack data ...`` as a local process: a local folder stands for the pod's."""

    def __init__(self, executable: Sequence[str] | None = None) -> None:
        self._executable = list(executable or [sys.executable, "-m", "workstack"])

    def start(self, args: Sequence[str]) -> Channel:
        """Start the command with pipes for stdin, stdout and stderr."""
        process = subprocess.Popen(
            [*self._executable, "data", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        return _ProcessChannel(process)


class _ProcessChannel:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        import threading

        self._process = process
        self._stderr = bytearray()
        # Drained on a thread, so a chatty stderr never blocks the process.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self._process.stderr is not None
        for chunk in iter(lambda: self._process.stderr.read(4096), b""):  # type: ignore[union-attr]
            self._stderr += chunk

    def write(self, data: bytes) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(data)
        except (BrokenPipeError, ValueError) as error:
            raise UnreachableError(f"the data command stopped reading: {error}") from None

    def close_stdin(self) -> None:
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()

    def read(self, timeout: float = 1.0) -> bytes | None:
        import os
        import select

        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        if not ready:
            return None
        return os.read(self._process.stdout.fileno(), _CHUNK)

    def wait(self, timeout: float = 60.0) -> tuple[int | None, str]:
        try:
            status = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            status = None
        self._reader.join(timeout=5)
        return status, self._stderr.decode("utf-8", "replace")

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


# -- buckets, with fsspec ---------------------------------------------------------------------


class BucketFolder:
    """A bucket (or a prefix of one) reached with fsspec and the user's own credentials.

    Files are compared by size and md5: S3 reports it as the ETag of single-part uploads, GCS
    as md5Hash. Uploads and downloads are whole-file: an object appears complete or not at all.
    """

    def __init__(self, url: str, *, endpoint_url: str | None = None) -> None:
        from workstack.sdk.storage import StorageError, open_storage

        try:
            self._storage = open_storage(url, endpoint_url=endpoint_url)
        except StorageError as error:
            raise UsageError(str(error)) from None
        if self._storage.protocol == "file":
            raise UsageError(f"{url!r} is not a bucket URL (s3://... or gs://...)")
        self.url = self._storage.url
        self._fs: Any = self._storage._fs
        self._native = self.url.split("://", 1)[1]

    def _guard(self, doing: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except PermissionError as error:
            raise DeniedError(
                f"permission denied {doing}: {error}; check your cloud credentials "
                "(`aws sts get-caller-identity`, `gcloud auth application-default login`)"
            ) from None
        except FileNotFoundError as error:
            raise UsageError(f"{doing}: {error} (does the bucket exist?)") from None
        except OSError as error:
            raise UnreachableError(f"{doing}: {error}") from None
        except Exception as error:
            name = type(error).__name__
            if "Credentials" in name or "Auth" in name:
                raise DeniedError(
                    f"{doing}: no usable cloud credentials ({error}); run `aws configure` or "
                    "`gcloud auth application-default login`"
                ) from None
            if "Endpoint" in name or "Connect" in name or "Timeout" in name:
                raise UnreachableError(f"{doing}: {error}") from None
            raise

    def _upload(self, source: str, target: str, key: str) -> None:
        self._guard(f"uploading {key}", lambda: self._fs.put_file(source, target))

    def _download(self, source: str, target: str, key: str) -> None:
        self._guard(f"downloading {key}", lambda: self._fs.get_file(source, target))

    def _key(self, remote: str) -> str:
        relative = _relative(remote)
        return f"{self._native}/{relative}" if relative else self._native

    def list(self, remote: str = "") -> list[FileEntry]:
        """Objects under ``remote`` with size and md5, keys relative to ``remote``."""
        base = self._key(remote)
        found = self._guard(
            f"listing {self.url}/{_relative(remote)}",
            lambda: self._fs.find(base, withdirs=False, detail=True),
        )
        entries = []
        for path, info in found.items():
            key = path[len(base) + 1 :] if path != base else PurePosixPath(path).name
            if not key or any(part.startswith(".") for part in PurePosixPath(key).parts):
                continue
            entries.append(FileEntry(path=key, size=int(info.get("size") or 0), md5=_md5(info)))
        return sorted(entries)

    def push(self, local: Path, remote: str, progress: Progress | None = None) -> TransferResult:
        """Upload ``local`` to ``remote``, skipping objects with the same size and md5."""
        folder, entries = local_entries(local, md5=True)
        present = {e.path: e for e in self.list(remote)}
        todo = _todo(entries, present)
        result = TransferResult(len(todo), len(entries) - len(todo), sum(e.size for e in todo))
        view = progress or _Quiet()
        view.begin(f"push {local} -> {self.url}/{_relative(remote)}", result.bytes, len(todo))
        base = self._key(remote)
        try:
            for entry in todo:
                self._upload(str(folder / entry.path), f"{base}/{entry.path}", entry.path)
                view.advance(entry.size)
        finally:
            view.end()
        return result

    def pull(self, remote: str, local: Path, progress: Progress | None = None) -> TransferResult:
        """Download ``remote`` into ``local``, skipping files with the same size and md5."""
        entries = self.list(remote)
        if not entries:
            raise UsageError(f"nothing is stored under {self.url}/{_relative(remote)}")
        local.mkdir(parents=True, exist_ok=True)
        present = {e.path: e for e in scan(local, md5=True)}
        todo = _todo(entries, present)
        result = TransferResult(len(todo), len(entries) - len(todo), sum(e.size for e in todo))
        view = progress or _Quiet()
        view.begin(f"pull {self.url}/{_relative(remote)} -> {local}", result.bytes, len(todo))
        base = self._key(remote)
        try:
            for entry in todo:
                target = local / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                temp = target.with_name(f".{target.name}.part")
                source = f"{base}/{entry.path}"
                try:
                    self._download(source, str(temp), entry.path)
                    temp.replace(target)
                finally:
                    temp.unlink(missing_ok=True)
                view.advance(entry.size)
        finally:
            view.end()
        return result


def _md5(info: dict[str, Any]) -> str | None:
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if etag and "-" not in etag and len(etag) == 32:
        return etag  # a single-part S3 upload: the ETag is the md5
    md5 = info.get("md5Hash")
    if md5:
        return base64.b64decode(md5).hex()
    return None
