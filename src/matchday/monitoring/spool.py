"""An append-only local file that holds logged rows while the database is unreachable.

Each writer owns one spool file and holds an exclusive lock on it for its life; a file nobody
holds belongs to a process that died, and the next writer to start adopts and replays it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

REPLAY_CHUNK = 1000


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"prediction-log-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._handle: IO[bytes] = open(self.path, "ab+")
        fcntl.flock(self._handle, fcntl.LOCK_EX)
        self._lock = threading.Lock()  # the request path may spill while the writer replays
        self.rows = 0

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write rows durably (flushed and fsynced) before returning."""
        data = b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in rows)
        with self._lock:
            self._handle.write(data)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.rows += len(rows)

    def replay(self, insert: Callable[[list[dict[str, Any]]], int]) -> int:
        """Hand every spooled row to ``insert`` in chunks, then drop them from the file.

        The database is called without the lock held, so the request path can keep spilling;
        rows appended meanwhile stay. An error from ``insert`` keeps every row.
        """
        with self._lock:
            self._handle.flush()
            size = os.fstat(self._handle.fileno()).st_size
            rows = list(_rows(self.path, size))
        written = sum(insert(rows[i : i + REPLAY_CHUNK]) for i in range(0, len(rows), REPLAY_CHUNK))
        with self._lock:
            self._drop_prefix(size)
            self.rows -= len(rows)
        return written

    def _drop_prefix(self, size: int) -> None:
        """Keep only what follows byte ``size``: a new file, locked, then renamed over the old one."""
        with open(self.path, "rb") as old:
            old.seek(size)
            tail = old.read()
        fresh = self.path.with_name(self.path.name + ".tmp")
        handle: IO[bytes] = open(fresh, "ab+")
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(tail)
        handle.flush()
        os.fsync(handle.fileno())
        os.replace(fresh, self.path)
        previous, self._handle = self._handle, handle
        previous.close()

    def close(self) -> None:
        """Release the file; an empty one is removed, a non-empty one waits to be adopted."""
        empty = self.rows == 0
        if empty:
            self.path.unlink(missing_ok=True)
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()

    def orphans(self) -> Iterator[tuple[Path, IO[bytes]]]:
        """Spool files of dead writers, each locked for the caller (who must close the handle)."""
        for path in sorted(self.directory.glob("prediction-log-*.jsonl")):  # not the .tmp of a rewrite
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
            yield path, handle


def _rows(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as handle:
        data = handle.read() if limit is None else handle.read(limit)
        for line in data.splitlines(keepends=True):
            if line.endswith(b"\n"):  # a torn last line (crash mid-write) was never acknowledged
                yield orjson.loads(line)


def read_rows(path: Path) -> list[dict[str, Any]]:
    return list(_rows(path))
