"""The prediction log's writer: the request path only enqueues; one thread writes in batches.

Nothing is lost: rows that cannot reach the database go to a local spool file and are replayed
when it is back; a full queue spills to the spool instead of growing; `close` drains everything;
a row the database refuses (not an outage) is set aside in ``rejected-*.jsonl`` with the reason.
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
from typing import Any

import orjson

from matchday.monitoring.log.spool import REPLAY_CHUNK, Spool, read_rows, same_file
from matchday.store import PredictionLogStore, StoreUnavailable

log = logging.getLogger(__name__)

ORPHAN_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class WriterStats:
    queue_depth: int
    lag_seconds: float
    spooled_rows: int
    written_rows: int
    database_available: bool
    rejected_rows: int = 0


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
        self._busy = 0  # rows taken from the queue and not yet written or spooled
        self._submitted = 0  # rows handed to submit()
        self._settled = 0  # rows that reached the database or were set aside as refused
        self._stopping = False
        self._flushing = 0  # callers waiting in `flush`
        self._written = 0
        self._rejected = 0
        self._db_ok = True
        self._next_orphan_check = 0.0
        self._next_retry = 0.0  # while the database is away: when to try it again
        self._thread = threading.Thread(target=self._run, name="matchday-prediction-log", daemon=True)

    # -- the request side -------------------------------------------------------------------
    def start(self) -> None:
        self._adopt_orphans()
        self._thread.start()

    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Enqueue rows; never waits on the database. A full queue spills to the spool file."""
        now = time.monotonic()
        with self._cond:
            self._submitted += len(rows)
            if len(self._queue) + len(rows) > self.max_queue:
                self.spool.append(rows)  # durable, just not yet in the database
            else:
                self._queue.extend((now, r) for r in rows)
            self._cond.notify()

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
            self._flushing += 1  # the writer writes what it holds now, without waiting for more
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
        """Stop after draining: rows go to the database, or to the spool if it is unreachable."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._cond:  # what the thread did not take goes to the spool
            leftover = [r for _, r in self._queue]
            self._queue.clear()
        if leftover:
            self.spool.append(leftover)
        if self._thread.is_alive():  # still busy with a slow database: it will spool its batch itself
            log.warning(
                "prediction log: writer still busy after %.0fs; its spool %s stays for the next start",
                timeout,
                self.spool.path.name,
            )
            return
        self.spool.close()

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                self._gather()
                if self._stopping and not self._queue:
                    break
                batch = [self._queue.popleft()[1] for _ in range(min(self.batch_size, len(self._queue)))]
                self._busy = len(batch)
            try:
                self._write(batch)
            except Exception:  # a bug of ours must not lose rows or stop the writer
                log.exception("prediction log: unexpected error; the batch goes to the spool")
                self._spool_or_reject(batch)
            finally:
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()
            if self._db_ok and time.monotonic() >= self._next_orphan_check:
                self._adopt_orphans()
        if self.spool.rows and self._db_ok:
            self._replay_own()

    def _gather(self) -> None:
        """Wait (holding ``_cond``) until a batch is due: ``batch_size`` rows, or the oldest queued for
        ``flush_interval``, or a `flush`, a stop, a replay to try, or an idle interval. Rows arriving
        one by one share a transaction instead of one each (a row a request at one connection)."""
        while not self._stopping and not self._flushing:
            if self._queue:
                age = time.monotonic() - self._queue[0][0]
                if len(self._queue) >= self.batch_size or age >= self.flush_interval:
                    return
                self._cond.wait(self.flush_interval - age)
            elif self.spool.rows and self._retry_due():
                return
            else:
                self._cond.wait(self.flush_interval)
                if not self._queue:
                    return  # idle: a turn for the replay and the orphan checks

    def _retry_due(self) -> bool:
        return self._db_ok or time.monotonic() >= self._next_retry

    def _write(self, batch: list[dict[str, Any]]) -> None:
        """Into the database, or (while it is away) into the spool within one flush interval: a row
        never waits in memory for a retry, so a kill -9 loses at most the rows of the last interval."""
        if self.spool.rows and self._retry_due() and not (self._stopping and not self._db_ok):
            self._replay_own()
        if not batch:
            return
        if self.spool.rows or (self._stopping and not self._db_ok):  # still down: straight to the spool
            self.spool.append(batch)
            return
        try:
            self._written += self._insert(batch)
            self._db_ok = True
        except StoreUnavailable as exc:
            if self._db_ok:
                log.warning("prediction log: database unreachable, spooling to %s (%s)", self.spool.path, exc)
            self._unavailable()
            self.spool.append(batch)

    def _unavailable(self) -> None:
        self._db_ok = False
        self._next_retry = time.monotonic() + self.retry_seconds

    def _replay_own(self) -> None:
        handed = 0

        def insert(rows: list[dict[str, Any]]) -> int:
            nonlocal handed
            handed += len(rows)
            return self._insert(rows, settle=False)

        try:
            replayed = self.spool.replay(insert)
        except StoreUnavailable:
            self._unavailable()
            return
        self._written += replayed
        self._db_ok = True
        self._settle(handed)  # only now: `flush` returns with the spool and the counts up to date
        log.info("prediction log: database back, spooled rows replayed (%d new)", replayed)

    def _insert(self, rows: list[dict[str, Any]], settle: bool = True) -> int:
        """Insert rows; a row the database refuses (not an outage) is set aside, not retried forever.

        ``settle`` counts the rows towards `flush` (not for rows of other, dead writers).
        """
        try:
            written = self.store.insert(rows)
        except StoreUnavailable:
            raise
        except Exception as exc:
            if len(rows) == 1:
                self._reject(rows[0], exc)
                if settle:
                    self._settle(1)
                return 0
            written = 0
            for row in rows:  # find the culprit(s); rows already in are skipped by the idempotent insert
                written += self._insert([row], settle)
            return written
        if settle:
            self._settle(len(rows))
        return written

    def _settle(self, n: int) -> None:
        with self._cond:
            self._settled += n
            self._cond.notify_all()

    def _spool_or_reject(self, batch: list[dict[str, Any]]) -> None:
        try:
            self.spool.append(batch)
        except Exception as exc:  # not even serialisable: keep what we can say about each row
            for row in batch:
                self._reject(row, exc)
            self._settle(len(batch))

    def _reject(self, row: dict[str, Any], exc: BaseException) -> None:
        path = self.spool.directory / f"rejected-{self.spool.path.stem.removeprefix('prediction-log-')}.jsonl"
        try:
            line = orjson.dumps({"error": str(exc), "row": row}, option=orjson.OPT_SERIALIZE_NUMPY, default=repr)
        except Exception:
            line = orjson.dumps({"error": str(exc), "row": repr(row)})
        with open(path, "ab") as handle:
            handle.write(line + b"\n")
        self._rejected += 1
        log.error("prediction log: the database refused row %s (%s); kept in %s", row.get("request_id"), exc, path.name)

    def _adopt_orphans(self) -> None:
        """Replay spool files left by writers that died; keep those the database refuses for now."""
        self._next_orphan_check = time.monotonic() + ORPHAN_RETRY_SECONDS
        for path, handle in self.spool.orphans():
            try:
                rows = read_rows(path)
                for i in range(0, len(rows), REPLAY_CHUNK):
                    self._written += self._insert(rows[i : i + REPLAY_CHUNK], settle=False)
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
