"""One small API over local folders (NFS mounts included), ``s3://`` and ``gs://``.

Files are addressed by keys relative to a root (``open_storage("s3://bucket/run-1")``), listed
in a deterministic order, and written atomically: a reader sees the old file, or none, or the
complete new one, never a part. That is what makes reruns and redelivered tasks safe.

Credentials are never passed in: S3 uses the standard AWS chain (EKS Pod Identity, IRSA, or the
environment), GCS the Google default credentials (GKE Workload Identity, or the environment).
An S3-compatible endpoint is given by ``endpoint_url`` or ``AWS_ENDPOINT_URL_S3``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from workstack.sdk.errors import WorkstackError

__all__ = ["FOLDER_MARKER", "Storage", "StorageError", "normalize_url", "open_storage"]

Protocol = Literal["file", "s3", "gcs"]
_SCHEMES: dict[str, Protocol] = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "file": "file"}
_EXTRAS = {"s3": ("s3fs", "s3"), "gcs": ("gcsfs", "gcs")}
_TEMP_SUFFIX = ".tmp"
FOLDER_MARKER = ".workstack-complete"
"""Uploaded last into a folder published to an object store: the folder is complete."""


class StorageError(WorkstackError, ValueError):
    """A storage URL or key is not usable; the message says what is allowed."""


def _check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or ".." in parts or key.endswith("/"):
        raise StorageError(
            f"storage key {key!r} is not allowed; expected a relative path such as 'a/b.csv' "
            "without '..'"
        )
    return key


def _hidden(relative: str) -> bool:
    """Hidden files (any part starting with '.') are never listed: temp files are among them."""
    return any(part.startswith(".") for part in PurePosixPath(relative).parts)


class Storage:
    """Files under one root location, addressed by relative keys.

    Use :func:`open_storage` to make one.
    """

    def __init__(self, protocol: Protocol, root: str, fs: Any = None) -> None:
        self.protocol = protocol
        self._root = root.rstrip("/")
        # The fsspec filesystem for object stores; local files use the os module directly.
        self._fs: Any = fs

    @property
    def url(self) -> str:
        """The root, as a URL (``s3://bucket/prefix``, ``gs://...``) or an absolute path."""
        if self.protocol == "file":
            return self._root
        scheme = "gs" if self.protocol == "gcs" else "s3"
        return f"{scheme}://{self._root}"

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    def path(self, key: str) -> str:
        """Full URL (or local path) of ``key``."""
        return f"{self.url}/{_check_key(key)}"

    def _native(self, key: str) -> str:
        return f"{self._root}/{_check_key(key)}"

    def _local_input(self, key: str) -> Path:
        """The local path of ``key`` to read, refused if it leaves the root.

        A key that (or, for a folder, a link inside which) resolves outside the root is
        refused: an input symlinked to ``/proc/self/environ`` or a credentials file would
        otherwise be read and published as an output.

        Raises:
            StorageError: The key leaves the root through a symbolic link.
        """
        path = Path(self._native(key))
        root = Path(self._root).resolve()
        links = [path]
        if path.is_dir() and not path.is_symlink():
            links += [p for p in path.rglob("*") if p.is_symlink()]
        for link in links:
            resolved = link.resolve()
            if not resolved.is_relative_to(root):
                raise StorageError(
                    f"{link} resolves to {resolved}, outside the storage root {root}; inputs "
                    "must be files under the root (a symbolic link may point only inside it)"
                )
        return path

    def child(self, prefix: str) -> Storage:
        """A storage rooted at ``prefix`` under this one."""
        return Storage(self.protocol, self._native(prefix), self._fs)

    def list(self, prefix: str = "") -> list[str]:
        """Keys of the files under ``prefix`` (a folder relative to the root), sorted.

        The order is plain string order of the keys, the same on every machine and for every
        backend, so a listing can be split into shards deterministically. Hidden files and
        folders (a part starting with '.') are left out; so are in-progress writes.
        """
        base = self._native(prefix) if prefix else self._root
        if self.protocol == "file":
            root = Path(base)
            if not root.is_dir():
                return []
            found = (
                str(path.relative_to(self._root).as_posix())
                for path in root.rglob("*")
                if path.is_file()
            )
        else:
            found = (
                path[len(self._root) + 1 :]
                for path in self._fs.find(base, withdirs=False)
                if path.startswith(self._root + "/")
            )
        return sorted(key for key in found if not _hidden(key))

    def exists(self, key: str) -> bool:
        """Whether a complete file is stored at ``key``."""
        if self.protocol == "file":
            return Path(self._native(key)).is_file()
        return bool(self._fs.isfile(self._native(key)))

    def open(self, key: str) -> IO[bytes]:
        """Open ``key`` for reading (binary).

        Raises:
            FileNotFoundError: Naming the full URL of the missing file.
        """
        try:
            if self.protocol == "file":
                return self._local_input(key).open("rb")
            handle: IO[bytes] = self._fs.open(self._native(key), "rb")
            return handle
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path(key)}: no such file") from None

    def read_bytes(self, key: str) -> bytes:
        """The content of ``key``."""
        with self.open(key) as handle:
            return handle.read()

    def read_text(self, key: str) -> str:
        """The content of ``key``, decoded as UTF-8."""
        return self.read_bytes(key).decode("utf-8")

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        """Write ``key`` atomically: it appears complete when the block exits, or not at all.

        Locally (and on NFS) the data goes to a hidden temp file beside the target, is synced,
        then renamed over it. For object stores it is staged in a local temp file and uploaded
        once the block has finished; an exception, or the process being killed, uploads
        nothing.
        """
        _check_key(key)
        if self.protocol == "file":
            target = Path(self._native(key))
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
            try:
                with temp.open("wb") as handle:
                    yield handle
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)
            return
        with tempfile.NamedTemporaryFile(suffix=_TEMP_SUFFIX) as staged:
            yield staged
            staged.flush()
            self._fs.put_file(staged.name, self._native(key))

    @contextlib.contextmanager
    def staged(self, key: str, *, folder: bool = False) -> Iterator[Path]:
        """A local path to write ``key`` to; it is published atomically when the block exits.

        For code that writes by path (pandas, command-line tools). The block writes a file at
        the path, or creates a folder there and writes files into it (``folder=True``: the
        path is an empty folder already). The path has the key's own name (tools that choose
        a format by extension work), inside a hidden scratch folder beside the target that is
        removed afterwards, whatever happens. Locally (NFS included) the result is renamed
        over the target: a file in one rename; a folder replacing an older one in two (the
        old one is moved aside first), never merged with it. For object stores the file, or
        every file of the folder and then a completion marker, is uploaded at the end.
        Nothing is published if the block raises, or if nothing was written.

        Raises:
            FileNotFoundError: The block finished without writing a file (or any file into
                the folder).
        """
        _check_key(key)
        if self.protocol == "file":
            target = Path(self._native(key))
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
            scratch.mkdir()
            try:
                temp = scratch / target.name
                if folder:
                    temp.mkdir()
                yield temp
                _require_written(temp, self.path(key))
                _sync(temp)
                if target.exists() or target.is_symlink():
                    # Replacing: move the old one aside (it is removed with the scratch folder).
                    os.replace(target, scratch / f".old-{target.name}")
                os.replace(temp, target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        with tempfile.TemporaryDirectory() as scratch_name:
            temp = Path(scratch_name) / PurePosixPath(key).name
            if folder:
                temp.mkdir()
            yield temp
            _require_written(temp, self.path(key))
            if temp.is_file():
                self._fs.put_file(str(temp), self._native(key))
                return
            for path in sorted(p for p in temp.rglob("*") if p.is_file()):
                relative = path.relative_to(temp).as_posix()
                self._fs.put_file(str(path), f"{self._native(key)}/{relative}")
            # Written last: a folder without it is an interrupted upload, not an output.
            self._fs.pipe_file(f"{self._native(key)}/{FOLDER_MARKER}", b"")

    def has(self, key: str) -> bool:
        """Whether a complete file, or a complete folder from :meth:`staged`, is at ``key``.

        That is what a finished output looks like, whichever of the two it is.
        """
        _check_key(key)
        if self.protocol == "file":
            path = Path(self._native(key))
            return path.is_file() or (path.is_dir() and any(path.iterdir()))
        native = self._native(key)
        return bool(self._fs.isfile(native) or self._fs.isfile(f"{native}/{FOLDER_MARKER}"))

    @contextlib.contextmanager
    def fetched(self, key: str) -> Iterator[Path]:
        """A local path holding ``key`` (a file, or a folder of files) for the block.

        Local files and folders (NFS included) are used in place; objects are downloaded to a
        temp file or folder that is removed afterwards.

        Raises:
            FileNotFoundError: Naming the full URL of the missing file.
            StorageError: A local key leaves the root through a symbolic link.
        """
        _check_key(key)
        if self.protocol == "file":
            path = Path(self._native(key))
            if not path.exists():
                raise FileNotFoundError(f"{self.path(key)}: no such file")
            yield self._local_input(key)
            return
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / PurePosixPath(key).name
            native = self._native(key)
            if self._fs.isfile(native):
                self._fs.get_file(native, str(local))
            else:
                keys = self.child(key).list()
                if not keys:
                    raise FileNotFoundError(f"{self.path(key)}: no such file")
                for relative in keys:
                    (local / relative).parent.mkdir(parents=True, exist_ok=True)
                    self._fs.get_file(f"{native}/{relative}", str(local / relative))
            yield local

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` to ``key`` atomically."""
        with self.writer(key) as handle:
            handle.write(data)

    def write_text(self, key: str, text: str) -> None:
        """Write ``text`` (UTF-8) to ``key`` atomically."""
        self.write_bytes(key, text.encode("utf-8"))

    def upload(self, local: Path, key: str) -> None:
        """Copy a local file to ``key`` atomically."""
        with local.open("rb") as source, self.writer(key) as target:
            shutil.copyfileobj(source, target, length=1 << 20)

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is already gone."""
        if self.protocol == "file":
            Path(self._native(key)).unlink(missing_ok=True)
        elif self._fs.exists(self._native(key)):
            self._fs.rm_file(self._native(key))


def _require_written(path: Path, url: str) -> None:
    if path.is_file():
        return
    if path.is_dir():
        if any(p.is_file() for p in path.rglob("*")):
            return
        raise FileNotFoundError(f"nothing was written into the folder for {url}")
    raise FileNotFoundError(f"nothing was written for {url}")


def _sync(path: Path) -> None:
    """Flush a file, or every file of a folder, to disk before it is renamed into place."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        with file.open("rb+") as handle:
            os.fsync(handle.fileno())


def _filesystem(protocol: str, endpoint_url: str | None) -> Any:
    module, extra = _EXTRAS[protocol]
    try:
        import fsspec

        __import__(module)
    except ModuleNotFoundError:
        raise StorageError(
            f"{protocol} storage needs the {module} package: pip install 'workstack[{extra}]'"
        ) from None
    options: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
    if protocol == "s3":
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
    return fsspec.filesystem(protocol, **options)


def _parse(url: str | os.PathLike[str]) -> tuple[Protocol, str]:
    """Split a storage URL into its protocol and root, checking both; touches nothing."""
    text = os.fspath(url)
    scheme, separator, rest = text.partition("://")
    if not separator:
        return "file", str(Path(text).resolve())
    protocol = _SCHEMES.get(scheme)
    if protocol is None:
        raise StorageError(
            f"storage URL {text!r} has scheme {scheme!r}; allowed: s3://, gs://, file:// "
            "or a local path"
        )
    if protocol == "file":
        return "file", str(Path(rest).resolve())
    if not rest.strip("/"):
        raise StorageError(f"storage URL {text!r} names no bucket; expected {scheme}://bucket/...")
    return protocol, rest.strip("/")


def normalize_url(url: str | os.PathLike[str]) -> str:
    """The canonical form of a storage URL (``gs://b/p``, ``s3://b/p`` or an absolute path).

    Two URLs name the same location exactly when their normal forms are equal, and one lies
    inside the other when its normal form starts with the other's plus ``/``.

    Raises:
        StorageError: The scheme is not supported or no bucket is named.
    """
    protocol, root = _parse(url)
    return Storage(protocol, root).url


def open_storage(url: str | os.PathLike[str], *, endpoint_url: str | None = None) -> Storage:
    """Open the storage rooted at ``url``.

    Args:
        url: ``s3://bucket[/prefix]``, ``gs://bucket[/prefix]``, ``file:///path`` or a local
            path (an NFS mount is a local path).
        endpoint_url: An S3-compatible endpoint; defaults to ``AWS_ENDPOINT_URL_S3`` (or
            ``AWS_ENDPOINT_URL``) from the environment, else AWS.

    Raises:
        StorageError: The URL's scheme is not supported, it names no bucket, or the package
            the scheme needs is not installed.
    """
    protocol, root = _parse(url)
    if protocol == "file":
        return Storage("file", root)
    return Storage(protocol, root, _filesystem(protocol, endpoint_url))
