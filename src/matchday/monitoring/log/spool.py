"""The writer's journal: an append-only local file every logged row reaches before the database.

Each writer owns one spool file and holds an exclusive lock on it for its life; a file nobody
holds belongs to a process that died, and the next writer adopts and replays it (rows already in
the database are skipped by the idempotent insert). Files are created under a name the adopters
do not look at, locked, and only then renamed into view. Offsets are logical (bytes ever
appended), so they stay valid when the shipped prefix is dropped.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

REPLAY_CHUNK = 1000  # rows an adopted file is inserted in
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
        self._lock = threading.Lock()  # the request path may spill while the writer journals
        self._closed = False
        self._base = 0  # the logical offset of the file's first byte (what was dropped before it)
        self._size = 0  # bytes in the file now
        self.rows = 0  # rows in the file not yet in the database (see `shipped`)

    @property
    def end(self) -> int:
        """The logical offset just past the last row appended."""
        with self._lock:
            return self._base + self._size

    @property
    def held_bytes(self) -> int:
        return self._size

    def append(self, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Write rows durably (flushed and fsynced) before returning their logical (start, end)."""
        data = b"".join(_line(r) for r in rows)
        with self._lock:
            if self._closed:
                raise RuntimeError("the spool is closed")
            self._handle.write(data)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            start = self._base + self._size
            self._size += len(data)
            self.rows += len(rows)
            return start, start + len(data)

    def read(self, start: int, end: int) -> list[dict[str, Any]]:
        """The rows appended between two logical offsets (not yet dropped)."""
        with self._lock:
            if start < self._base:
                raise ValueError(f"offset {start} was dropped (the file starts at {self._base})")
            self._handle.flush()
            data = os.pread(self._handle.fileno(), end - start, start - self._base)
        return list(_parse(data, self.path))

    def shipped(self, rows: int) -> None:
        """Count rows as in the database: a file whose rows are all shipped is removed at `close`."""
        with self._lock:
            self.rows = max(self.rows - rows, 0)

    def drop_through(self, offset: int) -> None:
        """Forget everything before logical ``offset`` (shipped): a new locked file holding only
        the tail, renamed over the old one, so an adopter never replays what is long in."""
        with self._lock:
            keep = offset - self._base
            if keep <= 0:
                return
            self._handle.flush()
            tail = os.pread(self._handle.fileno(), self._size - keep, keep)
            handle, hidden = _locked_file(self.path)
            handle.write(tail)
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(hidden, self.path)
            previous, self._handle = self._handle, handle
            previous.close()
            self._base, self._size = offset, len(tail)

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


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS  # rows as the journal writes them


def _line(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=_OPTIONS, default=str) + b"\n"


def dumps_rows(rows: Sequence[dict[str, Any]]) -> bytes:
    """Rows as one JSON array, encoded as the journal encodes each row."""
    return orjson.dumps(rows, option=_OPTIONS, default=str)


def encoding_error(row: dict[str, Any]) -> Exception | None:
    """Why ``row`` cannot be written as JSON (even as text: a row that holds itself), or None."""
    try:
        _line(row)
    except Exception as exc:
        return exc
    return None


def _parse(data: bytes, path: Path) -> Iterator[dict[str, Any]]:
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


def set_aside(path: Path, row: dict[str, Any], exc: BaseException) -> None:
    """Keep a row that cannot be logged, with the reason, in ``path`` (JSON lines) for a human to look at."""
    try:
        line = orjson.dumps({"error": str(exc), "row": row}, option=orjson.OPT_SERIALIZE_NUMPY, default=repr)
    except Exception:
        line = orjson.dumps({"error": str(exc), "row": repr(row)})
    with open(path, "ab") as handle:
        handle.write(line + b"\n")


def read_rows(path: Path) -> list[dict[str, Any]]:
    return list(_parse(path.read_bytes(), path))
