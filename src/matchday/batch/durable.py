"""Renames that survive a power loss on a local disk: the file's bytes are flushed before the rename
and the folder's entry after it, so a manifest never names a part whose file is truncated.

On other fsspec file systems (object stores, HDFS...) the store's own rename (or copy) is used as it
is: fsync has no meaning there, and an object store writes an object whole or not at all.
"""

from __future__ import annotations

import os

import fsspec
import fsspec.implementations.local


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, fsspec.implementations.local.LocalFileSystem)


def sync_file(path: str) -> None:
    """Flush a written (and closed) file's bytes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(path: str) -> None:
    """Flush a folder's entries (a rename into it) to the disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_durably(fs: fsspec.AbstractFileSystem, temporary: str, final: str) -> None:
    """Move ``temporary`` (written and closed) to ``final``: fsync the file, rename, fsync the folder."""
    if not is_local(fs):
        fs.mv(temporary, final)
        return
    sync_file(temporary)
    os.replace(temporary, final)
    sync_folder(os.path.dirname(final) or ".")
