"""An append-only local file that holds logged rows while the database is unreachable.

Each writer owns one spool file and holds an exclusive lock on it for its life; a file nobody
holds belongs to a process that died, and the next writer adopts and replays it. Files are
created under a name the adopters do not look at, locked, and only then renamed into view.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

REPLAY_CHUNK = 1000
_PATTERN = "prediction-log-*.jsonl"
log = logging.getLogger(__name__)


def _locked_file(path: Path) -> tuple[IO[bytes], Path]:
    """A new file at ``path``, locked before any adopter can see it."""
    hidden = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.new")
    handle: IO[bytes] = open(hidden, "ab+")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle, hidden


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"prediction-log-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        handle, hidden = _locked_file(self.path)
        os.replace(hidden, self.path)
        self._handle: IO[bytes] = handle
        self._lock = threading.Lock()  # the request path may spill while the writer replays
        self._closed = False
        self.rows = 0

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write rows durably (flushed and fsynced) before returning."""
        data = b"".join(_line(r) for r in rows)
        with self._lock:
            if self._closed:
                raise RuntimeError("the spool is closed")
            self._handle.write(data)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.rows += len(rows)

    def replay(self, insert: Callable[[list[dict[str, Any]]], int]) -> int:
        """Hand every spooled row to ``insert`` in chunks, then drop them from the file.

        Neither the parse nor the database call holds the lock, so the request path can keep
        spilling; rows appended meanwhile stay. An error from ``insert`` keeps every row.
        """
        with self._lock:
            self._handle.flush()
            size = os.fstat(self._handle.fileno()).st_size
        rows = list(_rows(self.path, size))  # appends only ever go after ``size``
        written = sum(insert(rows[i : i + REPLAY_CHUNK]) for i in range(0, len(rows), REPLAY_CHUNK))
        with self._lock:
            self._drop_prefix(size)
            self.rows = max(self.rows - len(rows), 0)
        return written

    def _drop_prefix(self, size: int) -> None:
        """Keep only what follows byte ``size``: a new locked file renamed over the old one."""
        with open(self.path, "rb") as old:
            old.seek(size)
            tail = old.read()
        handle, hidden = _locked_file(self.path)
        handle.write(tail)
        handle.flush()
        os.fsync(handle.fileno())
        os.replace(hidden, self.path)
        previous, self._handle = self._handle, handle
        previous.close()

    def close(self) -> None:
        """Release the file; an empty one is removed, a non-empty one waits to be adopted."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.rows == 0:
                self.path.unlink(missing_ok=True)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()

    def orphans(self) -> Iterator[tuple[Path, IO[bytes]]]:
        """Spool files of dead writers, each locked for the caller (who must close the handle)."""
        for path in sorted(self.directory.glob(_PATTERN)):
            if path == self.path:
                continue
            try:
                handle = open(path, "rb+")
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()  # a live writer owns it
                continue
            if not same_file(handle, path):  # replaced by its live owner while we waited
                handle.close()
                continue
            yield path, handle


def same_file(handle: IO[bytes], path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _line(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str) + b"\n"


def _rows(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as handle:
        data = handle.read() if limit is None else handle.read(limit)
    bad = []
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):  # a torn last line (crash mid-write) was never acknowledged
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError:
            bad.append(line)
    if bad:  # never silently: keep them beside the spool for a human to look at
        corrupt = path.with_name(f"corrupt-{path.name}")
        with open(corrupt, "ab") as out:
            out.writelines(bad)
        log.error("prediction log: %d unreadable line(s) in %s kept in %s", len(bad), path.name, corrupt.name)


def read_rows(path: Path) -> list[dict[str, Any]]:
    return list(_rows(path))
