"""The prediction log's writer: the request path only enqueues; one thread writes in batches.

Nothing is lost: rows that cannot reach the database go to a local spool file and are replayed
when it is back; a full queue spills to the spool instead of blocking; `close` drains everything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matchday.monitoring.spool import REPLAY_CHUNK, Spool, read_rows
from matchday.store import PredictionLogStore, StoreError, StoreUnavailable

log = logging.getLogger(__name__)


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

    def __init__(self, store: PredictionLogStore, spool_dir: Path, *, max_queue: int = 50_000,
                 batch_size: int = 500, flush_interval: float = 0.05, retry_seconds: float = 1.0) -> None:
        self.store = store
        self.spool = Spool(spool_dir)
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_seconds = retry_seconds
        self._queue: deque[tuple[float, dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._busy = 0  # rows taken from the queue and not yet written or spooled
        self._stopping = False
        self._written = 0
        self._rejected = 0
        self._db_ok = True
        self._thread = threading.Thread(target=self._run, name="matchday-prediction-log", daemon=True)

    # -- the request side -------------------------------------------------------------------
    def start(self) -> None:
        self._adopt_orphans()
        self._thread.start()

    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Enqueue rows; never blocks on the database. A full queue spills to the spool file."""
        now = time.monotonic()
        with self._cond:
            if len(self._queue) + len(rows) > self.max_queue:
                self.spool.append(rows)  # durable, just not yet in the database
                self._cond.notify()
                return
            self._queue.extend((now, r) for r in rows)
            self._cond.notify()

    def stats(self) -> WriterStats:
        with self._cond:
            lag = time.monotonic() - self._queue[0][0] if self._queue else 0.0
            return WriterStats(len(self._queue) + self._busy, lag, self.spool.rows, self._written, self._db_ok,
                               self._rejected)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row submitted so far is in the database (True) or the timeout passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._queue or self._busy or self.spool.rows:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Stop after draining: rows go to the database, or to the spool if it is unreachable."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._cond:  # anything the thread could not finish goes to the spool
            leftover = [r for _, r in self._queue]
            self._queue.clear()
        if leftover:
            self.spool.append(leftover)
        self.spool.close()

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._stopping and not (self.spool.rows and self._db_ok):
                    self._cond.wait(self.flush_interval if not self.spool.rows else self.retry_seconds)
                if self._stopping and not self._queue:
                    break
                batch = [self._queue.popleft()[1] for _ in range(min(self.batch_size, len(self._queue)))]
                self._busy = len(batch)
            try:
                self._write(batch)
            except Exception:  # a bug of ours must not lose rows or stop the writer
                log.exception("prediction log: unexpected error; the batch goes to the spool")
                self.spool.append(batch)
            finally:
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()
        if self.spool.rows:
            self._replay_own()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        if self.spool.rows:
            self._replay_own()
        if not batch:
            return
        if self.spool.rows:  # still down: keep order simple and durability certain
            self.spool.append(batch)
            return
        try:
            self._written += self._insert(batch)
            self._db_ok = True
        except StoreUnavailable as exc:
            if self._db_ok:
                log.warning("prediction log: database unreachable, spooling to %s (%s)", self.spool.path, exc)
            self._db_ok = False
            self.spool.append(batch)

    def _replay_own(self) -> None:
        try:
            replayed = self.spool.replay(self._insert)
        except StoreUnavailable:
            self._db_ok = False
            if not self._stopping:
                time.sleep(self.retry_seconds)
            return
        self._written += replayed
        self._db_ok = True
        log.info("prediction log: database back, spooled rows replayed (%d new)", replayed)

    def _insert(self, rows: list[dict[str, Any]]) -> int:
        """Insert rows; a row the database refuses (not an outage) is set aside, not retried forever.

        Refused rows go to ``rejected-*.jsonl`` beside the spool with the database's reason, so
        one bad row neither blocks the log nor disappears.
        """
        try:
            return self.store.insert(rows)
        except StoreUnavailable:
            raise
        except StoreError as exc:
            if len(rows) == 1:
                self._reject(rows[0], exc)
                return 0
        written = 0
        for row in rows:  # find the culprit(s); rows already in are skipped by the idempotent insert
            try:
                written += self.store.insert([row])
            except StoreUnavailable:
                raise
            except StoreError as exc:
                self._reject(row, exc)
        return written

    def _reject(self, row: dict[str, Any], exc: StoreError) -> None:
        import orjson

        path = self.spool.directory / f"rejected-{self.spool.path.stem.removeprefix('prediction-log-')}.jsonl"
        with open(path, "ab") as handle:
            handle.write(orjson.dumps({"error": str(exc), "row": row}, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        self._rejected += 1
        log.error("prediction log: the database refused row %s (%s); kept in %s", row.get("request_id"), exc, path.name)

    def _adopt_orphans(self) -> None:
        """Replay spool files left by writers that died; keep those the database refuses for now."""
        for path, handle in self.spool.orphans():
            try:
                rows = read_rows(path)
                for i in range(0, len(rows), REPLAY_CHUNK):
                    self._written += self._insert(rows[i : i + REPLAY_CHUNK])
                path.unlink()
                log.info("prediction log: replayed %d rows from %s", len(rows), path.name)
            except StoreUnavailable:
                self._db_ok = False
            finally:
                handle.close()
