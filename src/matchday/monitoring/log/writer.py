"""The prediction log's writer: the request path only enqueues; two threads take it from there.

Every row reaches a local journal (the spool file, fsynced) within one flush interval of its
answer, whatever the database is doing, so a kill -9 loses at most the rows of the last interval;
a second thread ships journaled rows to the database in batches and the shipped prefix of the
file is dropped. While the database is away rows wait in the journal and are shipped when it is
back; a full queue spills to the journal instead of growing; `close` drains everything; a row the
database refuses (not an outage) is set aside in ``rejected-*.jsonl`` with the reason.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from matchday.monitoring.log.spool import REPLAY_CHUNK, Spool, encoding_error, read_rows, same_file, set_aside
from matchday.store import PredictionLogStore, StoreUnavailable

log = logging.getLogger(__name__)

ORPHAN_RETRY_SECONDS = 30.0
COMPACT_BYTES = 1 << 18  # drop the journal's shipped prefix once it holds this much


@dataclass(frozen=True)
class WriterStats:
    queue_depth: int
    lag_seconds: float
    spooled_rows: int
    written_rows: int
    database_available: bool
    rejected_rows: int = 0


class LogWriter(Protocol):
    """What the server writes the log through: this module's writer, or `LogProcess` in front of one."""

    def start(self) -> None: ...
    def submit(self, rows: Sequence[dict[str, Any]]) -> None: ...
    def flush(self, timeout: float = 10.0) -> bool: ...
    def stats(self) -> WriterStats: ...
    def close(self, timeout: float = 30.0) -> None: ...


@dataclass
class _Journaled:
    """Rows in the journal between two logical offsets, not yet shipped; ``rows`` is None once
    they were let go from memory (a long outage) and must be read back from the file."""

    start: int
    end: int
    count: int
    rows: list[dict[str, Any]] | None


class PredictionLogWriter:
    """Batches rows from any thread into the store; see the module docstring for the guarantees."""

    def __init__(
        self,
        store: PredictionLogStore,
        spool_dir: Path,
        *,
        max_queue: int = 50_000,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        retry_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.spool = Spool(spool_dir)
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_seconds = retry_seconds
        self._queue: deque[tuple[float, dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._journal_lock = threading.Lock()  # the journal thread and a spilling request, in order
        self._pending: deque[_Journaled] = deque()  # journaled, not yet shipped, in journal order
        self._held = 0  # rows of `_pending` still in memory
        self._busy = 0  # rows taken from the queue and not yet journaled
        self._submitted = 0  # rows handed to submit()
        self._settled = 0  # rows that reached the database or were set aside as refused
        self._stopping = False
        self._journal_done = False
        self._flushing = 0  # callers waiting in `flush`
        self._written = 0
        self._rejected = 0
        self._db_ok = True
        self._next_orphan_check = 0.0
        self._next_retry = 0.0  # while the database is away: when to try it again
        self._journal_thread = threading.Thread(target=self._run_journal, name="matchday-log-journal", daemon=True)
        self._ship_thread = threading.Thread(target=self._run_shipper, name="matchday-log-shipper", daemon=True)

    # -- the request side -------------------------------------------------------------------
    def start(self) -> None:
        self._adopt_orphans()
        self._journal_thread.start()
        self._ship_thread.start()

    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Enqueue rows; never waits on the database. A full queue spills to the journal."""
        now = time.monotonic()
        with self._cond:
            self._submitted += len(rows)
            spill = len(self._queue) + len(rows) > self.max_queue
            if not spill:
                self._queue.extend((now, r) for r in rows)
                self._cond.notify_all()
        if spill:
            self._journal(list(rows))  # durable, just not yet in the database

    def journal(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows to the journal now (on disk when this returns) and queue them for the database:
        for a caller that must know its rows are durable before it lets go of them (`LogProcess`)."""
        with self._cond:
            self._submitted += len(rows)
        self._journal(list(rows))

    def adopt_orphans(self) -> None:
        """Ship the spool files of writers that are gone now, not at the next periodic look."""
        self._adopt_orphans()

    def stats(self) -> WriterStats:
        with self._cond:
            lag = time.monotonic() - self._queue[0][0] if self._queue else 0.0
            return WriterStats(
                len(self._queue) + self._busy, lag, self.spool.rows, self._written, self._db_ok, self._rejected
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the rows submitted before this call are in the database (or set aside as refused)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._flushing += 1  # the journal takes what it holds now, without waiting for more
            self._cond.notify_all()
            try:
                while self._settled < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(min(remaining, 0.05))
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Stop after draining: rows go to the database, or stay in the journal if it is unreachable."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in (self._journal_thread, self._ship_thread):
            if thread.is_alive():
                thread.join(max(deadline - time.monotonic(), 0.0))
        with self._cond:  # what the journal thread did not take (it is stuck) goes to the journal now
            leftover = [r for _, r in self._queue]
            self._queue.clear()
        if leftover:
            self.spool.append(leftover)
        if self._journal_thread.is_alive() or self._ship_thread.is_alive():
            log.warning(
                "prediction log: writer still busy after %.0fs; its spool %s stays for the next start",
                timeout,
                self.spool.path.name,
            )
            return
        self.spool.close()

    # -- the journal thread -----------------------------------------------------------------
    def _run_journal(self) -> None:
        while True:
            with self._cond:
                self._gather()
                if self._stopping and not self._queue:
                    break
                batch = [self._queue.popleft()[1] for _ in range(min(self.batch_size, len(self._queue)))]
                self._busy = len(batch)
            try:
                self._journal(batch)
            except OSError:  # the disk: keep the rows in memory and try again, loudly
                log.exception("prediction log: cannot write the journal %s; retrying", self.spool.path)
                with self._cond:
                    self._queue.extendleft((time.monotonic(), r) for r in reversed(batch))
                time.sleep(self.retry_seconds)
            finally:
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()
        with self._cond:
            self._journal_done = True
            self._cond.notify_all()

    def _gather(self) -> None:
        """Wait (holding ``_cond``) until a batch is due: ``batch_size`` rows, or the oldest queued for
        ``flush_interval``, or a `flush` or a stop. Rows arriving one by one share a journal write
        and a transaction instead of one each (a row a request at one connection)."""
        while not self._stopping and not self._flushing:
            if self._queue:
                age = time.monotonic() - self._queue[0][0]
                if len(self._queue) >= self.batch_size or age >= self.flush_interval:
                    return
                self._cond.wait(self.flush_interval - age)
            else:
                self._cond.wait()

    def _journal(self, rows: list[dict[str, Any]]) -> None:
        """Append rows to the journal and hand them to the shipper, in journal order."""
        if not rows:
            return
        with self._journal_lock:
            try:
                start, end = self.spool.append(rows)
            except OSError:
                raise
            except Exception:  # a row orjson cannot write even as text: set it aside, keep the rest
                kept = [row for row in rows if self._writable(row)]
                if len(kept) == len(rows):
                    raise
                self._settle(len(rows) - len(kept))
                start, end = self.spool.append(kept)
                rows = kept
            with self._cond:
                self._pending.append(_Journaled(start, end, len(rows), rows))
                self._held += len(rows)
                for entry in self._pending:  # a long outage: the oldest wait on disk only
                    if self._held <= self.max_queue:
                        break
                    if entry.rows is not None:
                        entry.rows = None
                        self._held -= entry.count
                self._cond.notify_all()

    def _writable(self, row: dict[str, Any]) -> bool:
        error = encoding_error(row)
        if error is not None:
            self._reject(row, error)
        return error is None

    # -- the shipper thread -----------------------------------------------------------------
    def _run_shipper(self) -> None:
        while True:
            with self._cond:
                entries = self._due()
            if entries is None:
                break
            if entries:
                self._ship(entries)
            if self._db_ok and time.monotonic() >= self._next_orphan_check:
                self._adopt_orphans()

    def _due(self) -> list[_Journaled] | None:
        """Wait (holding ``_cond``) for journaled rows to ship: up to ``batch_size`` of them, or []
        for a turn of the orphan checks, or None when stopped with nothing more to do."""
        while True:
            down_at_stop = self._stopping and not self._db_ok
            if self._pending and not down_at_stop and (self._db_ok or time.monotonic() >= self._next_retry):
                taken: list[_Journaled] = []
                count = 0
                for entry in self._pending:
                    if taken and count + entry.count > self.batch_size:
                        break
                    taken.append(entry)
                    count += entry.count
                return taken
            if self._journal_done and (not self._pending or down_at_stop):
                return None
            if self._pending and not self._db_ok:  # wait for the retry
                self._cond.wait(max(self._next_retry - time.monotonic(), 0.001))
            elif not self._cond.wait(1.0) and not self._pending:
                return []

    def _ship(self, entries: list[_Journaled]) -> None:
        rows: list[dict[str, Any]] = []
        for entry in entries:
            rows.extend(entry.rows if entry.rows is not None else self.spool.read(entry.start, entry.end))
        try:
            written = self._insert(rows)
        except StoreUnavailable as exc:
            if self._db_ok:
                log.warning("prediction log: database unreachable, rows wait in %s (%s)", self.spool.path, exc)
            self._unavailable()
            return
        except Exception:  # a bug of ours must not lose rows or stop the shipper: they stay journaled
            log.exception("prediction log: unexpected error shipping rows; they stay in %s", self.spool.path)
            self._unavailable()
            return
        if not self._db_ok:
            log.info("prediction log: database back, journaled rows shipped")
        self._db_ok = True
        self._written += written
        with self._cond:
            for entry in entries:
                self._pending.popleft()
                if entry.rows is not None:
                    self._held -= entry.count
            caught_up = not self._pending
        self.spool.shipped(len(rows))
        self._settle(len(rows))
        if (caught_up and self.spool.held_bytes >= COMPACT_BYTES) or self.spool.held_bytes >= 64 * COMPACT_BYTES:
            self.spool.drop_through(entries[-1].end)

    def _unavailable(self) -> None:
        self._db_ok = False
        self._next_retry = time.monotonic() + self.retry_seconds

    def _insert(self, rows: list[dict[str, Any]]) -> int:
        """Insert rows; a row the database refuses (not an outage) is set aside, not retried forever."""
        try:
            return self.store.insert(rows)
        except StoreUnavailable:
            raise
        except Exception as exc:
            if len(rows) == 1:
                self._reject(rows[0], exc)
                return 0
            # find the culprit(s); rows already in are skipped by the idempotent insert
            return sum(self._insert([row]) for row in rows)

    def _settle(self, n: int) -> None:
        with self._cond:
            self._settled += n
            self._cond.notify_all()

    def _reject(self, row: dict[str, Any], exc: BaseException) -> None:
        path = self.spool.directory / f"rejected-{self.spool.path.stem.removeprefix('prediction-log-')}.jsonl"
        set_aside(path, row, exc)
        self._rejected += 1
        log.error("prediction log: the database refused row %s (%s); kept in %s", row.get("request_id"), exc, path.name)

    def _adopt_orphans(self) -> None:
        """Replay spool files left by writers that died; keep those the database refuses for now."""
        self._next_orphan_check = time.monotonic() + ORPHAN_RETRY_SECONDS
        for path, handle in self.spool.orphans():
            try:
                rows = read_rows(path)
                for i in range(0, len(rows), REPLAY_CHUNK):
                    chunk = rows[i : i + REPLAY_CHUNK]  # mostly shipped already: only the rest is stored again
                    known = self.store.logged_request_ids([r["request_id"] for r in chunk])
                    self._written += self._insert([r for r in chunk if r["request_id"] not in known])
                if same_file(handle, path):
                    path.unlink()
                log.info("prediction log: replayed %d rows from %s", len(rows), path.name)
            except StoreUnavailable:
                self._unavailable()
            finally:
                handle.close()


def json_safe(value: Any) -> Any:
    """A model output as plain JSON: NaN and infinities become null, numpy scalars Python numbers.

    >>> json_safe([1.0, float("nan"), {"a": float("inf")}])
    [1.0, None, {'a': None}]
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return json_safe(value.item())
    try:
        number = float(value)  # Decimal, Fraction
    except (TypeError, ValueError):
        return str(value)
    return json_safe(number)
