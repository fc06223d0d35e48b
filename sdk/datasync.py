"""Files in and out of a storage folder as a tar stream: both ends of ``workstack data``.

``workstack data push|pull|ls`` on a laptop reach a stack's NFS storage through a short-lived
pod that mounts the claim, over the Kubernetes API's exec stream, the way ``kubectl cp`` does:
a tar archive on the command's stdin or stdout. The pod runs ``workstack data manifest``,
``receive`` or ``send`` (this module); the laptop runs the same code on its side, so a local
folder behind a local process is a faithful stand-in for the pod in tests.

Every file is written atomically (a hidden temp file beside it, synced, then renamed), so an
interrupted transfer leaves complete files and no partial one; a file whose size and sha256
already match is not sent again, which makes a transfer resumable. Hidden files (a part
starting with ``.``) are never listed or sent, as in :mod:`workstack.sdk.storage`.

Exit statuses of the in-pod commands (:data:`EXIT_CODES`): 0 done; 2 bad arguments or a path
that leaves the root; 65 the stream ended early or is not a tar archive (an interrupted
transfer); 73 permission denied; 74 disk full or another I/O error.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from workstack.sdk.errors import WorkstackError

__all__ = [
    "EXIT_BAD_ARGS",
    "EXIT_CODES",
    "EXIT_DENIED",
    "EXIT_INTERRUPTED",
    "EXIT_IO",
    "DataError",
    "FileEntry",
    "ReceiveSummary",
    "check_relative",
    "receive",
    "scan",
    "write_tar",
]

EXIT_BAD_ARGS = 2
EXIT_INTERRUPTED = 65  # EX_DATAERR: the archive is cut short or not an archive
EXIT_DENIED = 73  # EX_CANTCREAT
EXIT_IO = 74  # EX_IOERR: disk full, and any other I/O failure
EXIT_CODES = {
    EXIT_BAD_ARGS: "bad arguments",
    EXIT_INTERRUPTED: "the stream was interrupted",
    EXIT_DENIED: "permission denied",
    EXIT_IO: "disk full or an I/O error",
}
SHA256_HEADER = "WORKSTACK.sha256"
"""PAX header carrying a member's sha256: the receiver checks what it wrote against it."""

_CHUNK = 1 << 20
_TEMP_SUFFIX = ".part"


class DataError(WorkstackError):
    """A transfer failed; ``exit_code`` says how (see :data:`EXIT_CODES`).

    Attributes:
        exit_code: The in-pod command's exit status for this failure.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, order=True)
class FileEntry:
    """One file of a listing: its key relative to the root, size and digests.

    ``sha256`` is computed for local folders and NFS; object stores give ``md5`` (an S3 ETag of
    a single-part upload, a GCS md5Hash) instead. Two entries are the same file when their
    sizes match and so does a digest both have.
    """

    path: str
    size: int
    sha256: str | None = None
    md5: str | None = None

    def same_as(self, other: FileEntry) -> bool:
        """Whether ``other`` holds the same content (size, and a digest both know)."""
        if self.size != other.size:
            return False
        if self.sha256 and other.sha256:
            return self.sha256 == other.sha256
        if self.md5 and other.md5:
            return self.md5 == other.md5
        return False

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})

    @staticmethod
    def from_json(line: str) -> FileEntry:
        """Parse a line written by :meth:`to_json`.

        Raises:
            DataError: The line is not such an entry.
        """
        try:
            data = json.loads(line)
            return FileEntry(
                path=check_relative(data["path"]),
                size=int(data["size"]),
                sha256=data.get("sha256"),
                md5=data.get("md5"),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"unreadable listing line {line[:200]!r}: {error}", EXIT_IO) from None


def check_relative(path: object) -> str:
    """Return ``path`` if it is a relative POSIX path that stays inside its root.

    Raises:
        DataError: Absolute, empty, with ``..`` or a hidden part.
    """
    text = str(path)
    parts = PurePosixPath(text).parts
    if (
        not isinstance(path, str)
        or not text
        or text.startswith("/")
        or ".." in parts
        or any(part.startswith(".") for part in parts)
    ):
        raise DataError(
            f"path {path!r} is not allowed; expected a relative path such as 'a/b.csv' without "
            "'..' or hidden parts",
            EXIT_BAD_ARGS,
        )
    return str(PurePosixPath(text))


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in PurePosixPath(relative).parts)


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _os_errors(action: str) -> Iterator[None]:
    """Turn an OSError into a :class:`DataError` whose exit status says what happened."""
    try:
        yield
    except DataError:
        raise
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise DataError(f"permission denied {action}: {error}", EXIT_DENIED) from None
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(f"disk full {action}: {error}", EXIT_IO) from None
        raise DataError(f"I/O error {action}: {error}", EXIT_IO) from None


def scan(root: Path, prefix: str = "", *, md5: bool = False) -> list[FileEntry]:
    """Every file under ``root/prefix`` with its size and sha256 (and md5), sorted by key.

    Keys are relative to ``root``. A missing folder has no files.

    Raises:
        DataError: A file cannot be read (permission denied, I/O error).
    """
    base = root / check_relative(prefix) if prefix else root
    if base.is_file():
        candidates = [base]
    elif base.is_dir():
        candidates = [p for p in base.rglob("*") if p.is_file() and not p.is_symlink()]
    else:
        return []
    entries = []
    with _os_errors(f"reading {base}"):
        for path in candidates:
            key = path.relative_to(root).as_posix()
            if _hidden(key):
                continue
            entries.append(
                FileEntry(
                    path=key,
                    size=path.stat().st_size,
                    sha256=_digest(path, "sha256"),
                    md5=_digest(path, "md5") if md5 else None,
                )
            )
    return sorted(entries)


def write_tar(
    root: Path,
    entries: Iterable[FileEntry],
    out: IO[bytes],
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> int:
    """Write the files ``entries`` name, from under ``root``, as a tar stream to ``out``.

    Each member carries its sha256 (when the entry has one) in a PAX header, so the receiver
    checks what it wrote. Returns the number of content bytes written.

    Raises:
        DataError: A file cannot be read.
    """
    sent = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            source = root / check_relative(entry.path)
            with _os_errors(f"reading {source}"), source.open("rb") as handle:
                info = tarfile.TarInfo(entry.path)
                info.size = os.fstat(handle.fileno()).st_size
                info.mode = 0o644
                info.mtime = int(os.fstat(handle.fileno()).st_mtime)
                if entry.sha256:
                    info.pax_headers = {SHA256_HEADER: entry.sha256}
                archive.addfile(info, _Counting(handle, on_bytes))
                sent += info.size
    return sent


class _Counting(io.RawIOBase):
    """A reader that reports how many bytes went through it."""

    def __init__(self, inner: IO[bytes], on_bytes: Callable[[int], None] | None) -> None:
        self._inner = inner
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        if data and self._on_bytes is not None:
            self._on_bytes(len(data))
        return data


@dataclass(frozen=True)
class ReceiveSummary:
    """What :func:`receive` wrote."""

    files: int
    bytes: int

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps(asdict(self))


def receive(
    root: Path,
    stream: IO[bytes],
    *,
    expected: Mapping[str, FileEntry] | None = None,
    count: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> ReceiveSummary:
    """Read a tar stream and write each regular file atomically under ``root``.

    A stream cut at a member boundary looks like a shorter archive to ``tarfile``, so the
    sender says how many files it sends (``count``); fewer is an interrupted stream.

    A member's content is checked against its sha256 (from its PAX header, else from
    ``expected``) before it is renamed into place; anything else than regular files and
    folders is refused. Files written before a failure stay (they are complete); the file
    being written when the stream breaks is removed.

    Raises:
        DataError: The stream ended early or is no tar archive (65), a path leaves the root
            or a checksum differs (2 or 74), permission denied (73), disk full (74).
    """
    files = written = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if member.isdir():
                    continue
                name = check_relative(member.name)
                if not member.isfile():
                    raise DataError(
                        f"{name}: only regular files are transferred (not links or devices)",
                        EXIT_BAD_ARGS,
                    )
                source = archive.extractfile(member)
                assert source is not None, "a regular file always has content"
                want = member.pax_headers.get(SHA256_HEADER)
                if want is None and expected is not None and name in expected:
                    want = expected[name].sha256
                _write_atomic(root / name, source, want, on_bytes)
                files += 1
                written += member.size
    except (tarfile.ReadError, EOFError) as error:
        raise DataError(
            f"the stream ended early or is not a tar archive after {files} file(s) ({error}); "
            "files received so far are complete: run the same command again to resume",
            EXIT_INTERRUPTED,
        ) from None
    if count is not None and files < count:
        raise DataError(
            f"the stream ended after {files} of {count} file(s); files received so far are "
            "complete: run the same command again to resume",
            EXIT_INTERRUPTED,
        )
    return ReceiveSummary(files=files, bytes=written)


def _write_atomic(
    target: Path, source: IO[bytes], sha256: str | None, on_bytes: Callable[[int], None] | None
) -> None:
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{_TEMP_SUFFIX}")
    with _os_errors(f"writing {target}"):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            digest = hashlib.sha256()
            with temp.open("wb") as handle:
                for chunk in iter(lambda: source.read(_CHUNK), b""):
                    handle.write(chunk)
                    digest.update(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                handle.flush()
                os.fsync(handle.fileno())
            if sha256 is not None and digest.hexdigest() != sha256:
                raise DataError(
                    f"{target}: content differs from what was sent (sha256 {digest.hexdigest()}, "
                    f"expected {sha256}); the file changed during the transfer or was corrupted",
                    EXIT_IO,
                )
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)


def parse_entries(lines: Iterable[str]) -> list[FileEntry]:
    """Entries from JSON lines (blank lines ignored)."""
    return [FileEntry.from_json(line) for line in lines if line.strip()]


def read_request(line: bytes) -> list[str]:
    """The paths a ``send`` is asked for: one JSON list on one line.

    Raises:
        DataError: Not a JSON list of relative paths.
    """
    try:
        data: Any = json.loads(line.decode("utf-8"))
    except ValueError as error:
        raise DataError(f"expected a JSON list of paths on stdin: {error}", EXIT_BAD_ARGS) from None
    if not isinstance(data, list):
        raise DataError("expected a JSON list of paths on stdin", EXIT_BAD_ARGS)
    return [check_relative(item) for item in data]
