"""Content hashes of build contexts: what the image tag and the dependency hash are made of.

A hash covers, for every regular file in sorted order of its relative ``/``-separated path:
the path, its mode (only ``644`` or ``755`` can occur in a generated context) and its bytes.
Timestamps, owners, the absolute location and the order the file system lists entries in
play no part, so the same inputs give the same hash on every machine.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "HASH_LENGTH",
    "hash_entries",
    "hash_parts",
    "hash_tree",
    "normalised_mode",
    "tree_entries",
]

HASH_LENGTH = 20
"""Hex digits kept of the SHA-256: 80 bits, short enough for a tag, far from colliding."""

# Bumped whenever what goes into a hash changes, so old and new hashes never coincide.
_SCHEME = b"workstack-context-v2\0"
_CHUNK = 1 << 20


def normalised_mode(mode: int) -> int:
    """``0o755`` if any execute bit is set, else ``0o644``: umask and owner do not matter."""
    return 0o755 if mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) else 0o644


def tree_entries(root: Path) -> list[tuple[str, Path]]:
    """Every regular file below ``root`` as ``(relative posix path, absolute path)``, sorted.

    Raises:
        ValueError: ``root`` holds a symlink or special file; generated contexts never do.
    """
    entries: list[tuple[str, Path]] = []
    for folder, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(folder, name)
            if path.is_symlink():
                raise ValueError(f"{path}: symlinks are not allowed in a build context")
        for name in filenames:
            path = Path(folder, name)
            if not stat.S_ISREG(path.lstat().st_mode):
                raise ValueError(f"{path}: only regular files are allowed in a build context")
            entries.append((path.relative_to(root).as_posix(), path))
    entries.sort(key=lambda entry: entry[0])
    return entries


def hash_parts(
    files: Iterable[tuple[str, int, bytes | Path]], *, extra: Iterable[tuple[str, bytes]] = ()
) -> str:
    """Hash files given as ``(relative path, mode, content)`` and named in-memory parts.

    Args:
        files: The content is the bytes themselves or a file to read them from.
        extra: Named byte strings hashed after the files (e.g. one stage of a Dockerfile).

    Returns:
        The first :data:`HASH_LENGTH` hex digits of the SHA-256.
    """
    digest = hashlib.sha256(_SCHEME)
    for relative, mode, content in files:
        size = len(content) if isinstance(content, bytes) else content.stat().st_size
        digest.update(f"file\0{relative}\0{normalised_mode(mode):o}\0{size}\0".encode())
        if isinstance(content, bytes):
            digest.update(content)
            continue
        with content.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    for name, part in extra:
        digest.update(f"part\0{name}\0{len(part)}\0".encode())
        digest.update(part)
    return digest.hexdigest()[:HASH_LENGTH]


def hash_entries(
    files: Iterable[tuple[str, Path]], *, extra: Iterable[tuple[str, bytes]] = ()
) -> str:
    """:func:`hash_parts` of files on disk, as :func:`tree_entries` lists them."""
    return hash_parts(
        ((relative, path.stat().st_mode, path) for relative, path in files), extra=extra
    )


def hash_tree(
    root: Path,
    *,
    include: Callable[[str], bool] | None = None,
    extra: Iterable[tuple[str, bytes]] = (),
) -> str:
    """Hash the files below ``root`` (those ``include`` accepts, if given) and ``extra``."""
    entries = tree_entries(root)
    if include is not None:
        entries = [entry for entry in entries if include(entry[0])]
    return hash_entries(entries, extra=extra)
