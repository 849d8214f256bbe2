"""The device's telemetry buffer: every prediction and label, kept in SQLite until the server has them.

SQLite in WAL mode (an append does not wait on a reader; ``synchronous=NORMAL`` by default: a power cut
may lose the last appends, never corrupt the file; ``durable=True`` syncs every append). Bounded by a
row count, a byte count (the rows' stored sizes, not the file's) and an age. When an append would pass
a bound, the policy decides: ``drop_oldest`` makes room (the oldest *predictions* first; labels, which
are scarcer and say more, only when no prediction is left) and counts what it dropped; ``refuse_new``
raises `BufferFull` and keeps every row it has.

A prediction the server refused (a 422 naming its seq: it does not fit its version's signature, its
time is ahead of the server's clock) is *set aside*, with the server's reason and the labels of it, in
the ``refused`` tables: no longer sent, not lost, counted against the bounds (and, under ``drop_oldest``,
the first rows dropped: the server will not take them as they are). `refused` lists them for an operator;
`requeue_refused` sends them again (the server's side fixed), `delete_refused` lets them go.

Ids are AUTOINCREMENT, never reused, so an acknowledgement names rows unambiguously; the buffer's
``epoch`` (random, created with the file) keeps the request ids of a recreated buffer distinct.
One process owns a buffer file at a time.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from matchday_edge.errors import BufferError, BufferFull
from matchday_edge.rows import decode_inputs, decode_probabilities

OnFull = Literal["drop_oldest", "refuse_new"]
ON_FULL_POLICIES: tuple[OnFull, ...] = ("drop_oldest", "refuse_new")
_ROW_OVERHEAD = 48  # bytes counted per row beside its text: ids, times, SQLite's record header
_EXPIRE_EVERY = 1.0  # seconds between checks for rows past the age bound
CHECKPOINT_EVERY = 0.5  # seconds between the background thread's WAL checkpoints

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    model TEXT NOT NULL, version INTEGER NOT NULL,
    inputs BLOB NOT NULL, encoding TEXT NOT NULL,
    prediction TEXT NOT NULL, probabilities BLOB, latency REAL NOT NULL,
    size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS predictions_at ON predictions (at);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    label TEXT NOT NULL, size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS labels_at ON labels (at);
CREATE INDEX IF NOT EXISTS labels_seq ON labels (seq);
CREATE TABLE IF NOT EXISTS refused (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    model TEXT NOT NULL, version INTEGER NOT NULL,
    inputs BLOB NOT NULL, encoding TEXT NOT NULL,
    prediction TEXT NOT NULL, probabilities BLOB, latency REAL NOT NULL,
    size INTEGER NOT NULL, reason TEXT NOT NULL, refused_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS refused_at ON refused (at);
CREATE TABLE IF NOT EXISTS refused_labels (
    id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, at REAL NOT NULL, label TEXT NOT NULL, size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS refused_labels_seq ON refused_labels (seq);
"""
_MAX_REASON = 2000  # characters of the server's reason kept with a refused row
_PREDICTION_COLUMNS = "seq, at, model, version, inputs, encoding, prediction, probabilities, latency"
_TABLES = ("predictions", "labels", "refused", "refused_labels")  # every table whose rows count against the bounds
FORMAT = 1  # PRAGMA user_version of a buffer file this runtime writes (the refused tables were added to it)


@dataclass(frozen=True)
class PendingPrediction:
    """A buffered prediction as stored (`matchday_edge.rows` turns it into the protocol's JSON)."""

    seq: int
    at: float  # epoch seconds
    model: str
    version: int
    inputs: bytes
    encoding: str
    prediction: str  # JSON
    probabilities: bytes | None
    latency: float


@dataclass(frozen=True)
class PendingLabel:
    id: int
    seq: int
    at: float
    label: str  # JSON


@dataclass(frozen=True)
class RefusedPrediction:
    """A prediction the server refused, set aside with its reason (and the labels given it), for an operator."""

    seq: int
    at: datetime
    model: str
    version: int
    inputs: dict[str, Any]
    prediction: Any
    probabilities: list[float] | None
    reason: str  # the server's, naming what is wrong with the row
    refused_at: datetime
    labels: list[Any]


@dataclass(frozen=True)
class BufferStats:
    predictions: int
    labels: int
    bytes: int
    dropped_predictions: int
    dropped_labels: int
    expired: int
    refused: int = 0  # predictions set aside (the server refused them)
    refused_labels: int = 0  # labels set aside with them
    dropped_refused: int = 0  # set-aside predictions (and their labels) dropped to make room


@dataclass(frozen=True)
class NewPrediction:
    """A row to append: its time (epoch seconds), the bundle's model and version, and what `rows` encoded."""

    at: float
    model: str
    version: int
    inputs: bytes
    encoding: str
    prediction: str
    probabilities: bytes | None
    latency: float

    @property
    def size(self) -> int:
        """The bytes it counts against the buffer's bound."""
        return len(self.inputs) + len(self.prediction) + len(self.probabilities or b"") + _ROW_OVERHEAD


class TelemetryBuffer:
    """Predictions and labels awaiting the server, bounded, in one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        device: str,
        max_rows: int = 1_000_000,
        max_bytes: int = 256 * 2**20,
        max_age_seconds: float = 30 * 86400,
        on_full: OnFull = "drop_oldest",
        durable: bool = False,
    ) -> None:
        if on_full not in ON_FULL_POLICIES:
            raise ValueError(f"on_full must be one of {', '.join(ON_FULL_POLICIES)}, not {on_full!r}")
        if max_rows < 1 or max_bytes < 1 or max_age_seconds <= 0:
            raise ValueError("max_rows, max_bytes and max_age_seconds must be positive")
        if not device or not isinstance(device, str):
            raise ValueError("a device id is needed: the name it was registered with (matchday edge devices add)")
        self.path = Path(path)
        self.max_rows, self.max_bytes, self.max_age_seconds = max_rows, max_bytes, max_age_seconds
        self.on_full: OnFull = on_full
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        (found,) = self._db.execute("PRAGMA user_version").fetchone()
        if found not in (0, FORMAT):
            self._db.close()
            raise BufferError(f"{self.path} is a buffer of format {found}; this runtime reads format {FORMAT}")
        with self._transaction():
            self._db.execute(f"PRAGMA user_version = {FORMAT}")
            for statement in _statements(_SCHEMA):
                self._db.execute(statement)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (secrets.token_hex(16),))
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('device', ?)", (device,))
            for key in ("dropped_predictions", "dropped_labels", "dropped_refused", "expired"):
                self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, '0')", (key,))
            owner = self._meta("device")
        if owner != device:
            self._db.close()
            raise BufferError(
                f"{self.path} is the telemetry buffer of device {owner!r}, not {device!r}: "
                "give each device id its own buffer file"
            )
        self.device = device
        self.epoch = self._meta("epoch")
        self._rows, self._bytes = 0, 0
        self._recount()
        self._last_expiry = 0.0
        # SQLite checkpoints the WAL into the file (and syncs it) inside a commit every 1000 pages: a few ms
        # on one prediction in ~300. A thread of its own does it instead, off the prediction's path.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="telemetry-checkpoint", daemon=True)
        self._checkpointer.start()

    # -- appending --------------------------------------------------------------------------
    def append_predictions(self, rows: Sequence[NewPrediction]) -> list[int]:
        """Append ``rows`` in one transaction; their sequence numbers, in order."""
        sizes = [r.size for r in rows]
        total = sum(sizes)
        with self._lock:
            if len(rows) == 1 and not self._expiry_due() and self._fits(1, total):
                # the common case, one prediction with room for it: one statement is its own transaction
                seqs = [self._insert(rows[0], sizes[0])]
            else:
                with self._transaction():
                    self._expire_if_due()
                    self._make_room(len(rows), total)
                    seqs = [self._insert(row, size) for row, size in zip(rows, sizes)]
            self._rows += len(rows)
            self._bytes += total
        return seqs

    def _insert(self, row: NewPrediction, size: int) -> int:
        cursor = self._db.execute(
            "INSERT INTO predictions (at, model, version, inputs, encoding, prediction, probabilities, latency, size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.at,
                row.model,
                row.version,
                row.inputs,
                row.encoding,
                row.prediction,
                row.probabilities,
                row.latency,
                size,
            ),
        )
        return int(cursor.lastrowid or 0)

    def _fits(self, rows: int, size: int) -> bool:
        return self._rows + rows <= self.max_rows and self._bytes + size <= self.max_bytes

    def append_label(self, seq: int, label_json: str, at: float) -> int:
        """Record ground truth for prediction ``seq`` (it need not be buffered any more: it may be synced)."""
        size = len(label_json) + _ROW_OVERHEAD
        with self._lock, self._transaction():
            if not 1 <= seq <= self._last_seq():
                raise BufferError(f"no prediction {seq} was made on this buffer (its last is {self._last_seq()})")
            self._expire_if_due()
            self._make_room(1, size)
            cursor = self._db.execute(
                "INSERT INTO labels (seq, at, label, size) VALUES (?, ?, ?, ?)",
                (seq, at, label_json, size),
            )
            if self._db.execute("SELECT 1 FROM refused WHERE seq = ?", (seq,)).fetchone():
                self._move_labels("labels", "refused_labels", [seq])  # its prediction was set aside: so is it
            self._rows += 1
            self._bytes += size
        return int(cursor.lastrowid or 0)

    def _make_room(self, rows: int, size: int) -> None:
        """Within the transaction: drop the oldest rows (predictions first) so ``rows``/``size`` fit, or refuse."""
        if rows > self.max_rows or size > self.max_bytes:
            raise BufferError(
                f"{rows} rows of {size} bytes cannot fit a buffer bounded at {self.max_rows} rows and "
                f"{self.max_bytes} bytes: append fewer at a time"
            )
        excess_rows = self._rows + rows - self.max_rows
        excess_bytes = self._bytes + size - self.max_bytes
        if excess_rows <= 0 and excess_bytes <= 0:
            return
        if self.on_full == "refuse_new":
            raise BufferFull(
                f"the telemetry buffer is full ({self._rows} rows, {self._bytes} bytes; bounds {self.max_rows} rows, "
                f"{self.max_bytes} bytes) and its policy is refuse_new: sync it to the server to make room"
            )
        excess_rows, excess_bytes = self._drop_refused(excess_rows, excess_bytes)
        if excess_rows <= 0 and excess_bytes <= 0:
            return
        for table, key, counter in (("predictions", "seq", "dropped_predictions"), ("labels", "id", "dropped_labels")):
            dropped_rows = dropped_bytes = 0
            last = None
            for ident, row_size in self._db.execute(f"SELECT {key}, size FROM {table} ORDER BY {key}"):
                if dropped_rows >= excess_rows and dropped_bytes >= excess_bytes:
                    break
                dropped_rows += 1
                dropped_bytes += row_size
                last = ident
            if last is not None:
                self._db.execute(f"DELETE FROM {table} WHERE {key} <= ?", (last,))
                self._add_meta(counter, dropped_rows)
                self._rows -= dropped_rows
                self._bytes -= dropped_bytes
                excess_rows -= dropped_rows
                excess_bytes -= dropped_bytes
            if excess_rows <= 0 and excess_bytes <= 0:
                return

    def _drop_refused(self, excess_rows: int, excess_bytes: int) -> tuple[int, int]:
        """Within the transaction: the oldest set-aside predictions, each with its labels, until the excess is
        gone or none is left; the excess that remains. Labels left there by a prediction the age bound took
        go with the first one after them, and count as dropped rows."""
        labels = self._db.execute(
            "SELECT seq, COUNT(*), SUM(size) FROM refused_labels GROUP BY seq ORDER BY seq"
        ).fetchall()
        dropped_rows = dropped_bytes = dropped = taken = 0
        last = None
        for seq, row_size in self._db.execute("SELECT seq, size FROM refused ORDER BY seq").fetchall():
            if dropped_rows >= excess_rows and dropped_bytes >= excess_bytes:
                break
            while taken < len(labels) and labels[taken][0] <= seq:  # its labels, and orphans before it
                dropped_rows += labels[taken][1]
                dropped_bytes += labels[taken][2]
                taken += 1
            dropped_rows += 1
            dropped_bytes += row_size
            dropped += 1
            last = seq
        if last is None:
            return excess_rows, excess_bytes
        rows = size = 0
        for table in ("refused", "refused_labels"):  # the counts move by what is deleted, exactly
            (count, total) = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM {table} WHERE seq <= ?", (last,)
            ).fetchone()
            self._db.execute(f"DELETE FROM {table} WHERE seq <= ?", (last,))
            rows += count
            size += total
        self._add_meta("dropped_refused", dropped)
        self._rows -= rows
        self._bytes -= size
        return excess_rows - rows, excess_bytes - size

    # -- age --------------------------------------------------------------------------------
    def expire(self, now: float | None = None) -> int:
        """Delete rows older than the age bound; how many went."""
        with self._lock, self._transaction():
            return self._expire(time.time() if now is None else now)

    def _expiry_due(self) -> bool:
        return time.time() - self._last_expiry >= _EXPIRE_EVERY

    def _expire_if_due(self) -> None:
        if self._expiry_due():
            self._expire(time.time())

    def _expire(self, now: float) -> int:
        self._last_expiry = now
        cutoff = now - self.max_age_seconds
        gone = 0
        for table in _TABLES:
            count, size = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM {table} WHERE at < ?", (cutoff,)
            ).fetchone()
            if count:
                self._db.execute(f"DELETE FROM {table} WHERE at < ?", (cutoff,))
                self._rows -= count
                self._bytes -= size
                gone += count
        if gone:
            self._add_meta("expired", gone)
        return gone

    # -- syncing ----------------------------------------------------------------------------
    def marks(self) -> tuple[int, int]:
        """The last prediction seq and label id assigned so far: a sync sends nothing newer than these."""
        with self._lock:
            return self._last_seq(), self._last_id("labels")

    def pending(
        self,
        limit: int,
        after_seq: int = 0,
        after_label: tuple[int, int] = (0, 0),
        upto: tuple[int, int] | None = None,
    ) -> tuple[list[PendingPrediction], list[PendingLabel]]:
        """The oldest ``limit`` predictions past ``after_seq`` and up to ``upto``'s marks, and at most ``limit``
        labels the server can apply now, in (seq, id) order past ``after_label`` (a (seq, id) cursor).

        A label goes with its prediction or after it, never before: the server settles a label whose
        prediction it does not hold as unmatched, and the device would delete it. So a label is sent only
        if its prediction is in these predictions (seq past ``after_seq``, up to the last one here) or no
        longer buffered (acknowledged, dropped, expired; set-aside ones take their labels with them). One
        on a prediction sent earlier and not acknowledged waits for the next sync, as its prediction does.
        """
        top_seq, top_label = upto or (2**63 - 1, 2**63 - 1)
        label_seq, label_id = after_label
        with self._lock:
            predictions = [
                PendingPrediction(*row)
                for row in self._db.execute(
                    "SELECT seq, at, model, version, inputs, encoding, prediction, probabilities, latency "
                    "FROM predictions WHERE seq > ? AND seq <= ? "
                    "ORDER BY seq LIMIT ?",
                    (after_seq, top_seq, limit),
                )
            ]
            # every prediction up to here is sent (in this batch or before it); none past it yet
            high = predictions[-1].seq if predictions else top_seq
            labels = [
                PendingLabel(*row)
                for row in self._db.execute(
                    "SELECT id, seq, at, label FROM labels "
                    "WHERE seq >= ? AND seq <= ? AND (seq > ? OR id > ?) AND id <= ? "
                    "AND (seq > ? OR NOT EXISTS (SELECT 1 FROM predictions p WHERE p.seq = labels.seq)) "
                    "ORDER BY seq, id LIMIT ?",
                    (label_seq, high, label_seq, label_id, top_label, after_seq, limit),
                )
            ]
        return predictions, labels

    def acknowledge(self, seqs: Iterable[int], label_ids: Iterable[int]) -> tuple[int, int]:
        """Delete exactly these rows (the server holds them now); how many of each were deleted."""
        deleted = []
        with self._lock, self._transaction():
            for table, key, ids in (("predictions", "seq", list(seqs)), ("labels", "id", list(label_ids))):
                count = 0
                for chunk, marks in _in_chunks(ids):
                    (size,) = self._db.execute(
                        f"SELECT COALESCE(SUM(size), 0) FROM {table} WHERE {key} IN ({marks})", chunk
                    ).fetchone()
                    cursor = self._db.execute(f"DELETE FROM {table} WHERE {key} IN ({marks})", chunk)
                    count += cursor.rowcount
                    self._bytes -= size
                self._rows -= count
                deleted.append(count)
        return deleted[0], deleted[1]

    def set_aside(self, reasons: Mapping[int, str], now: float | None = None) -> tuple[int, int]:
        """Move the predictions ``reasons`` names (seq -> the server's reason), and every label of them, out of
        what is sent into the ``refused`` tables; how many predictions and labels moved."""
        seqs = list(reasons)
        at = time.time() if now is None else now
        with self._lock, self._transaction():
            moved = 0
            for seq in seqs:
                reason = reasons[seq][:_MAX_REASON]
                cursor = self._db.execute(
                    f"INSERT OR REPLACE INTO refused ({_PREDICTION_COLUMNS}, size, reason, refused_at) "
                    f"SELECT {_PREDICTION_COLUMNS}, size + ?, ?, ? FROM predictions WHERE seq = ?",
                    (len(reason.encode()), reason, at, seq),
                )
                if cursor.rowcount:
                    moved += 1
                    self._bytes += len(reason.encode())
            self._delete_chunks("predictions", "seq", seqs)
            labels = self._move_labels("labels", "refused_labels", seqs)
        return moved, labels

    def refused(self, limit: int | None = None) -> list[RefusedPrediction]:
        """The predictions set aside (oldest first, at most ``limit``), each with the server's reason and its labels."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_PREDICTION_COLUMNS}, reason, refused_at FROM refused ORDER BY seq LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
            labels: dict[int, list[Any]] = {}
            for seq, label in self._db.execute("SELECT seq, label FROM refused_labels ORDER BY id"):
                labels.setdefault(seq, []).append(json.loads(label))
        out = []
        for seq, at, model, version, inputs, encoding, prediction, probabilities, _, reason, refused_at in rows:
            try:
                decoded = decode_inputs(inputs, encoding, self.columns(model, version))
            except BufferError:  # written by another runtime: shown as stored
                decoded = {"(packed)": inputs.hex()}
            out.append(
                RefusedPrediction(
                    seq=seq,
                    at=datetime.fromtimestamp(at, UTC),
                    model=model,
                    version=version,
                    inputs=decoded,
                    prediction=json.loads(prediction),
                    probabilities=decode_probabilities(probabilities),
                    reason=reason,
                    refused_at=datetime.fromtimestamp(refused_at, UTC),
                    labels=labels.get(seq, []),
                )
            )
        return out

    def requeue_refused(self, seqs: Iterable[int] | None = None) -> int:
        """Put set-aside predictions (all, or ``seqs``) and their labels back to be sent by the next sync (the
        server's side was fixed: the version registered, its signature mended); how many predictions went back."""
        with self._lock, self._transaction():
            chosen = self._refused_seqs(seqs)
            for chunk, marks in _in_chunks(chosen):
                (reasons,) = self._db.execute(
                    f"SELECT COALESCE(SUM(LENGTH(CAST(reason AS BLOB))), 0) FROM refused WHERE seq IN ({marks})", chunk
                ).fetchone()
                self._db.execute(
                    f"INSERT INTO predictions ({_PREDICTION_COLUMNS}, size) "
                    f"SELECT {_PREDICTION_COLUMNS}, size - LENGTH(CAST(reason AS BLOB)) FROM refused "
                    f"WHERE seq IN ({marks})",
                    chunk,
                )
                self._bytes -= reasons
            self._delete_chunks("refused", "seq", chosen)
            self._move_labels("refused_labels", "labels", chosen)
        return len(chosen)

    def delete_refused(self, seqs: Iterable[int] | None = None) -> int:
        """Let set-aside predictions (all, or ``seqs``) and their labels go, once an operator has seen them."""
        with self._lock, self._transaction():
            chosen = self._refused_seqs(seqs)
            rows, size = self._delete_chunks("refused", "seq", chosen)
            if seqs is None:  # every one, with the labels of those the age bound took
                chosen = [int(s) for (s,) in self._db.execute("SELECT DISTINCT seq FROM refused_labels")]
            label_rows, label_size = self._delete_chunks("refused_labels", "seq", chosen)
            self._rows -= rows + label_rows
            self._bytes -= size + label_size
        return rows

    def _refused_seqs(self, seqs: Iterable[int] | None) -> list[int]:
        held = [int(s) for (s,) in self._db.execute("SELECT seq FROM refused ORDER BY seq")]
        if seqs is None:
            return held
        wanted = set(seqs)
        return [s for s in held if s in wanted]

    def _move_labels(self, source: str, target: str, seqs: list[int]) -> int:
        """Within the transaction: the labels of ``seqs`` moved between ``labels`` and ``refused_labels``."""
        moved = 0
        for chunk, marks in _in_chunks(seqs):
            self._db.execute(
                f"INSERT INTO {target} (id, seq, at, label, size) "
                f"SELECT id, seq, at, label, size FROM {source} WHERE seq IN ({marks})",
                chunk,
            )
            moved += self._db.execute(f"DELETE FROM {source} WHERE seq IN ({marks})", chunk).rowcount
        return moved

    def _delete_chunks(self, table: str, key: str, ids: list[int]) -> tuple[int, int]:
        """Within the transaction: delete rows of ``table`` whose ``key`` is in ``ids``; how many, of what size."""
        count = size = 0
        for chunk, marks in _in_chunks(ids):
            (found,) = self._db.execute(
                f"SELECT COALESCE(SUM(size), 0) FROM {table} WHERE {key} IN ({marks})", chunk
            ).fetchone()
            count += self._db.execute(f"DELETE FROM {table} WHERE {key} IN ({marks})", chunk).rowcount
            size += found
        return count, size

    def remember_columns(self, model: str, version: int, columns: list[tuple[str, str]]) -> None:
        """Keep a version's input columns (name, type) beside its rows: packed inputs are read with them."""
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"columns/{model}/{version}", json.dumps(columns))
            )

    def columns(self, model: str, version: int) -> list[tuple[str, str]]:
        with self._lock:
            stored = self._meta(f"columns/{model}/{version}")
        if not stored:
            raise BufferError(
                f"the buffer does not know {model}:{version}'s inputs (it was written by another runtime)"
            )
        return [(str(name), str(kind)) for name, kind in json.loads(stored)]

    # -- reading ----------------------------------------------------------------------------
    def stats(self) -> BufferStats:
        with self._lock:
            (predictions,) = self._db.execute("SELECT COUNT(*) FROM predictions").fetchone()
            (labels,) = self._db.execute("SELECT COUNT(*) FROM labels").fetchone()
            (refused,) = self._db.execute("SELECT COUNT(*) FROM refused").fetchone()
            (refused_labels,) = self._db.execute("SELECT COUNT(*) FROM refused_labels").fetchone()
            return BufferStats(
                predictions=int(predictions),
                labels=int(labels),
                bytes=self._bytes,
                dropped_predictions=int(self._meta("dropped_predictions")),
                dropped_labels=int(self._meta("dropped_labels")),
                expired=int(self._meta("expired")),
                refused=int(refused),
                refused_labels=int(refused_labels),
                dropped_refused=int(self._meta("dropped_refused") or 0),
            )

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._checkpointer.join()
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:  # another connection reads: the WAL stays, whole, for the next open
                pass
            self._db.close()

    def _checkpoint_loop(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            while not self._closed.wait(CHECKPOINT_EVERY):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:  # busy or gone: the next round, or close(), checkpoints
                    pass
        finally:
            db.close()

    # -- helpers ----------------------------------------------------------------------------
    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._recount)

    def _meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else ""

    def _add_meta(self, key: str, amount: int) -> None:
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = ?", (amount, key))

    def _last_seq(self) -> int:
        return self._last_id("predictions")

    def _last_id(self, table: str) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        return int(row[0]) if row else 0

    def _recount(self) -> None:
        """The running totals from the tables (on open, and after a rolled-back transaction moved them)."""
        rows = size = 0
        for table in _TABLES:
            count, total = self._db.execute(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM {table}").fetchone()
            rows += count
            size += total
        self._rows, self._bytes = rows, size


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on an exception (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection, on_rollback: Callable[[], None]) -> None:
        self.db = db
        self.on_rollback = on_rollback

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.db.execute("COMMIT")
            return
        self.db.execute("ROLLBACK")
        self.on_rollback()


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _in_chunks(ids: list[int]) -> Iterator[tuple[list[int], str]]:
    """``ids`` 500 at a time, each with its ``?,?,...`` placeholders: SQLite caps a statement's parameters."""
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        yield chunk, ",".join("?" * len(chunk))
