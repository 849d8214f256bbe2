"""Repository functions for the prediction log: idempotent batch inserts and label joins.

A batch of rows is stored as one Arrow record batch of their inputs, probabilities and routing
(`log_batches`, table ``prediction_batches``) plus one narrow row each in ``prediction_log`` with
what feedback and rollouts look rows up by, pointing into its batch by position.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.dialects import postgresql, sqlite

from matchday.store import log_batches
from matchday.store.database import Database
from matchday.store.records import LabelOutcome, PredictionRecord
from matchday.store.review_store import insert_items
from matchday.store.schema import PredictionBatchRow, PredictionRow, utcnow

_FIELDS = (
    "request_id",
    "entity_id",
    "deployment",
    "model",
    "version",
    "at",
    "prediction",
    "latency_seconds",
    "role",
    "error",
    "shadow_of",
)
_BLOBS_PER_QUERY = 200
_SIZES_PER_READ = 1000  # batches looked at per read: 500 rows each when busy, so 50,000 rows take 100
log = logging.getLogger(__name__)
ANSWER_ROLES = ("served", "failed_over")  # every row a version was asked to answer


@dataclass(frozen=True)
class ArmRow:
    """What a comparison of two versions reads from one logged row."""

    latency_seconds: float
    error: str | None
    prediction: Any
    label: Any
    labelled: bool


@dataclass(frozen=True)
class ShadowPair:
    """A mirrored row next to the answer the client got for the same input."""

    shadow_prediction: Any
    shadow_error: str | None
    shadow_latency_seconds: float
    primary_prediction: Any
    label: Any
    labelled: bool


@dataclass(frozen=True)
class LoggedRow:
    """What the monitoring loop reads of one logged row."""

    id: int
    deployment: str
    model: str
    version: int
    at: datetime
    inputs: dict[str, Any]
    prediction: Any
    probabilities: list[float] | None
    latency_seconds: float
    error: str | None
    label: Any
    label_at: datetime | None
    role: str


_LOGGED = (
    PredictionRow.id,
    PredictionRow.deployment,
    PredictionRow.model,
    PredictionRow.version,
    PredictionRow.at,
    PredictionRow.prediction,
    PredictionRow.latency_seconds,
    PredictionRow.error,
    PredictionRow.label,
    PredictionRow.label_at,
    PredictionRow.role,
    PredictionRow.batch_id,
    PredictionRow.position,
)


LOG_BATCH_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("deployment", pa.string()),
        ("model", pa.string()),
        ("version", pa.int64()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("prediction", pa.string()),
        ("latency_seconds", pa.float64()),
        ("error", pa.string()),
        ("role", pa.string()),
        ("batch_id", pa.int64()),
        ("position", pa.int64()),
    ]
)  # a bulk read's index columns (the prediction as its JSON text); `inputs` and `probabilities` follow


def _micros(dialect: str, column: Any) -> Any:
    """A time as the database holds it, without per-value processing: PostgreSQL's as microseconds
    since the epoch (exact, numeric, as a bigint), SQLite's "YYYY-MM-DD HH:MM:SS.ffffff" text (UTC)."""
    if dialect == "postgresql":
        return sa.cast(sa.func.extract("epoch", column) * 1_000_000, sa.BigInteger)
    return sa.type_coerce(column, sa.String)


_EXPORT = (
    PredictionRow.request_id,
    PredictionRow.entity_id,
    sa.cast(PredictionRow.label, sa.Text),
    PredictionRow.label_at,
    PredictionRow.label_source,
)  # what `batch_between` adds; the label as its JSON text


def _blobs(connection: sa.Connection, ids: list[int]) -> Iterator[tuple[int, bytes]]:
    """(id, data) of the stored batches of ``ids``, in no particular order. On PostgreSQL through
    psycopg the blobs come in binary: as text, ``bytea`` travels hex-encoded (twice the bytes, encoded
    by the server and decoded here), which took three quarters of the monitoring loop's read."""
    batches = cast(sa.Table, PredictionBatchRow.__table__)
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        raw: Any = connection.connection.dbapi_connection  # in the session's transaction
        with raw.cursor(binary=True) as cursor:
            cursor.execute(f"SELECT id, data FROM {batches.name} WHERE id = ANY(%s)", [ids])
            yield from ((int(batch_id), data) for batch_id, data in cursor)
        return
    for batch_id, data in connection.execute(sa.select(batches.c.id, batches.c.data).where(batches.c.id.in_(ids))):
        yield int(batch_id), data


def _batch_columns(dialect: str, extra: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    """The log's columns as the database holds them: no per-value JSON or datetime processing."""
    text = partial(sa.cast, type_=sa.Text)  # (SQLite's JSON columns have numeric affinity: a scalar is a number)
    extra = tuple(_micros(dialect, c) if c is PredictionRow.label_at else c for c in extra)
    columns = (
        PredictionRow.id,
        PredictionRow.deployment,
        PredictionRow.model,
        PredictionRow.version,
        _micros(dialect, PredictionRow.at).label("at"),
        text(PredictionRow.prediction).label("prediction"),
        PredictionRow.latency_seconds,
        PredictionRow.error,
        PredictionRow.role,
        PredictionRow.batch_id,
        PredictionRow.position,
        *extra,
    )
    if dialect == "postgresql":
        return columns
    # ... and SQLite's text of a REAL has 15 digits: the number itself, to be written out in full
    return (*columns, sa.case((sa.func.typeof(PredictionRow.prediction) == "real", PredictionRow.prediction)))


def _batch_table(rows: Sequence[Sequence[Any]], dialect: str) -> pa.Table:
    if not rows:
        return LOG_BATCH_SCHEMA.empty_table()
    columns = list(zip(*rows))
    arrays = []
    for field, values in zip(LOG_BATCH_SCHEMA, columns):
        if field.name == "at":
            raw = pa.array(values, type=pa.int64() if dialect == "postgresql" else pa.string())
            arrays.append(
                raw.cast(pa.timestamp("us")).cast(field.type)
                if dialect != "postgresql"
                else raw.view(pa.timestamp("us", tz="UTC"))
            )
        else:
            arrays.append(pa.array(values, type=field.type))
    if len(columns) in (len(LOG_BATCH_SCHEMA) + 1, len(LOG_BATCH_SCHEMA) + len(_EXPORT) + 1):
        real = pa.array(columns[-1], type=pa.float64())  # SQLite: a REAL prediction in its shortest exact form
        if real.null_count < len(real):
            i = LOG_BATCH_SCHEMA.get_field_index("prediction")
            arrays[i] = pc.if_else(real.is_valid(), real.cast(pa.string()), arrays[i])
    return pa.Table.from_arrays(arrays, schema=LOG_BATCH_SCHEMA)


def _ids(values: Iterable[int | None]) -> np.ndarray:
    return np.fromiter((-1 if v is None else v for v in values), dtype=np.int64)


class PredictionLogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def warm(self) -> None:
        """Connect, and load what encoding the first batch loads, so a fresh writer's first rows are not
        the slow ones. Nothing is written."""
        log_batches.encode([], [])
        with self.db.session() as s:
            s.execute(sa.select(PredictionRow.id).limit(1)).all()

    def insert(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert logged rows; a ``request_id`` already present is skipped, so replays are safe.

        One transaction: the batch and the rows pointing into it land together or not at all. The
        batch is written last, with the ids the database gave its rows (the monitoring loop reads
        batches, not rows, and needs them).
        """
        if not rows:
            return 0
        values = []
        for position, row in enumerate(rows):
            v = {k: row.get(k) for k in _FIELDS}
            v["role"] = v["role"] or "served"
            v["source"] = (row.get("routing") or {}).get("source")
            if isinstance(v["at"], str):
                v["at"] = datetime.fromisoformat(v["at"])
            v["position"] = position
            values.append(v)
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        table = PredictionRow.__table__
        statement = (
            dialect.insert(table)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(table.c.request_id, table.c.id)
        )
        batches = cast(sa.Table, PredictionBatchRow.__table__)  # a Table, as __tablename__ made it; typed FromClause
        with self.db.session(write=True) as s:
            connection = s.connection()
            batch_id = connection.execute(
                sa.insert(batches).values(created_at=utcnow(), rows=0, data=b"").returning(batches.c.id)
            ).scalar_one()
            for v in values:
                v["batch_id"] = batch_id
            written = dict(connection.execute(statement, values).all())
            if not written:  # every row was already logged (a replay): no batch
                connection.execute(sa.delete(batches).where(batches.c.id == batch_id))
                return 0
            data = log_batches.encode(rows, [written.get(v["request_id"]) for v in values])
            connection.execute(sa.update(batches).where(batches.c.id == batch_id).values(rows=len(written), data=data))
            # rows a person is to review are queued with them: a logged row and its review item land together
            insert_items(
                connection,
                [
                    {
                        **row["review"],
                        "request_id": row["request_id"],
                        "deployment": row["deployment"],
                        "model": row["model"],
                        "version": row["version"],
                        "created_at": v["at"],
                        "inputs": row.get("inputs") or {},
                        "suggestion": row.get("prediction"),
                        "probabilities": row.get("probabilities"),
                    }
                    for row, v in zip(rows, values, strict=True)
                    if row.get("review") and v["request_id"] in written
                ],
            )
            return len(written)

    @staticmethod
    def _decoded(s: sa.orm.Session, ids: Sequence[int]) -> Iterator[tuple[int, pa.Table | None]]:
        """Each stored batch of ``ids`` decoded, or None (logged) where its blob is unreadable."""
        for start in range(0, len(ids), _BLOBS_PER_QUERY):
            chunk = [int(i) for i in ids[start : start + _BLOBS_PER_QUERY]]
            for batch_id, data in _blobs(s.connection(), chunk):
                try:
                    yield int(batch_id), log_batches.decode(data)
                except log_batches.CorruptLogBatch as exc:  # its rows still count; their inputs read as missing
                    log.error(
                        "prediction log: batch %d is unreadable (%s); its rows' inputs read as missing", batch_id, exc
                    )
                    yield int(batch_id), None

    def _payloads(self, s: sa.orm.Session, batch_ids: np.ndarray, positions: np.ndarray) -> pa.Table:
        """The inputs, probabilities and routing of rows ``(batch_ids[i], positions[i])``, in that order."""
        wanted = [int(b) for b in np.unique(batch_ids) if b >= 0]
        decoded = {batch_id: table for batch_id, table in self._decoded(s, wanted) if table is not None}
        return log_batches.gather(decoded, batch_ids, positions)

    def apply_labels(
        self, deployment: str, labels: Iterable[tuple[str, str, Any]], source: str = "feedback"
    ) -> list[LabelOutcome]:
        """Join ground truth to logged rows by ``("request_id", id, label)`` or ``("entity_id", key, label)``.

        An entity key labels the most recent prediction made for it (by time, then insertion).
        """
        items = list(labels)
        now = utcnow()
        found: dict[int, tuple[int, str]] = {}  # position -> (row id, request id)
        with self.db.session(write=True) as s:
            by_request = [(i, key) for i, (kind, key, _) in enumerate(items) if kind == "request_id"]
            for start in range(0, len(by_request), 500):  # one query per 500 request ids, not one per label
                chunk = by_request[start : start + 500]
                rows = dict(
                    s.execute(
                        sa.select(PredictionRow.request_id, PredictionRow.id).where(
                            PredictionRow.deployment == deployment,
                            PredictionRow.request_id.in_([key for _, key in chunk]),
                        )
                    ).all()
                )
                for i, key in chunk:
                    if key in rows:
                        found[i] = (rows[key], key)
            by_entity = [(i, key) for i, (kind, key, _) in enumerate(items) if kind != "request_id"]
            for start in range(
                0, len(by_entity), 500
            ):  # one query per 500 keys: a batch job's labels come by the thousand
                chunk = by_entity[start : start + 500]
                latest: dict[str | None, tuple[datetime, int, str]] = {}
                for row_id, request_id, entity, at in s.execute(
                    sa.select(
                        PredictionRow.id, PredictionRow.request_id, PredictionRow.entity_id, PredictionRow.at
                    ).where(
                        PredictionRow.deployment == deployment,
                        PredictionRow.entity_id.in_({key for _, key in chunk}),
                        PredictionRow.role == "served",
                        PredictionRow.error.is_(None),
                    )
                ):
                    if entity not in latest or (at, row_id) > latest[entity][:2]:
                        latest[entity] = (at, row_id, request_id)
                for i, key in chunk:
                    if key in latest:
                        found[i] = (latest[key][1], latest[key][2])
            updates = [
                {"id": row_id, "label": items[i][2], "label_at": now, "label_source": source}
                for i, (row_id, _) in found.items()
            ]
            if updates:  # by primary key, in one executemany; a later label for the same row wins
                s.execute(sa.update(PredictionRow), updates)
        return [LabelOutcome(kind, key, found[i][1] if i in found else None) for i, (kind, key, _) in enumerate(items)]

    def count(
        self, deployment: str | None = None, roles: tuple[str, ...] | None = ("served",), errors: bool | None = False
    ) -> int:
        """Rows logged; by default those whose prediction a client got (no shadows, no failures)."""
        with self.db.session() as s:
            query = sa.select(sa.func.count()).select_from(PredictionRow)
            if deployment is not None:
                query = query.where(PredictionRow.deployment == deployment)
            if roles is not None:
                query = query.where(PredictionRow.role.in_(roles))
            if errors is not None:
                query = query.where(PredictionRow.error.isnot(None) if errors else PredictionRow.error.is_(None))
            return s.scalar(query) or 0

    def arm_window(
        self,
        deployment: str,
        model: str,
        version: int,
        since: datetime,
        roles: tuple[str, ...] = ANSWER_ROLES,
        limit: int = 50_000,
    ) -> tuple[int, int, list[ArmRow]]:
        """Rows one version answered since ``since``: (all, failed, the newest ``limit`` rows)."""
        where = (
            PredictionRow.deployment == deployment,
            PredictionRow.model == model,
            PredictionRow.version == version,
            PredictionRow.at >= since,
            PredictionRow.role.in_(roles),
            PredictionRow.source.is_(None),  # a batch job's or a device's rows are not the arm's traffic
        )
        with self.db.session() as s:
            total, failed = s.execute(
                sa.select(sa.func.count(), sa.func.count(PredictionRow.error)).where(*where)
            ).one()
            rows = s.execute(
                sa.select(
                    PredictionRow.latency_seconds,
                    PredictionRow.error,
                    PredictionRow.prediction,
                    PredictionRow.label,
                    PredictionRow.label_at,
                )
                .where(*where)
                .order_by(PredictionRow.id.desc())
                .limit(limit)
            ).all()
        return total or 0, failed or 0, [ArmRow(r[0], r[1], r[2], r[3], r[4] is not None) for r in rows]

    def arm_calls(
        self, deployment: str, model: str, version: int, since: datetime, roles: tuple[str, ...] = ANSWER_ROLES
    ) -> tuple[int, int]:
        """Requests (not rows) one version answered since ``since``, and how many of them failed.

        The rows of one request share their timestamp and fail together, so errors are counted by
        request: ten failed rows of one request are one failure, not ten.
        """
        where = (
            PredictionRow.deployment == deployment,
            PredictionRow.model == model,
            PredictionRow.version == version,
            PredictionRow.at >= since,
            PredictionRow.role.in_(roles),
            PredictionRow.source.is_(None),  # a batch job's or a device's rows are not the arm's traffic
        )
        failed_at = sa.case((PredictionRow.error.isnot(None), PredictionRow.at))
        with self.db.session() as s:
            calls, failed = s.execute(
                sa.select(sa.func.count(sa.distinct(PredictionRow.at)), sa.func.count(sa.distinct(failed_at))).where(
                    *where
                )
            ).one()
        return calls or 0, failed or 0

    def shadow_pairs(
        self, deployment: str, model: str, version: int, since: datetime, limit: int = 50_000
    ) -> tuple[int, int, list[ShadowPair]]:
        """A shadow version's rows since ``since`` joined to the primary's answers: (all, failed, pairs)."""
        shadow = sa.orm.aliased(PredictionRow)
        primary = sa.orm.aliased(PredictionRow)
        where = (
            shadow.deployment == deployment,
            shadow.model == model,
            shadow.version == version,
            shadow.at >= since,
            shadow.role == "shadow",
        )
        # one statement: the counts (window functions, over every row before the limit) and the pairs
        # see the same rows; two statements saw rows land in between (more pairs than rows counted)
        with self.db.session() as s:
            rows = s.execute(
                sa.select(
                    shadow.prediction,
                    shadow.error,
                    shadow.latency_seconds,
                    primary.prediction,
                    primary.label,
                    primary.label_at,
                    primary.id,
                    sa.func.count().over(),
                    sa.func.count(shadow.error).over(),
                )
                .outerjoin(primary, primary.request_id == shadow.shadow_of)
                .where(*where)
                .order_by(shadow.id.desc())
                .limit(limit)
            ).all()
        total, failed = (rows[0][7], rows[0][8]) if rows else (0, 0)
        return (
            total,
            failed,
            [ShadowPair(r[0], r[1], r[2], r[3], r[4], r[5] is not None) for r in rows if r[6] is not None],
        )

    def recent(
        self,
        deployment: str,
        limit: int = 100,
        roles: tuple[str, ...] | None = ("served",),
        errors: bool | None = False,
    ) -> list[PredictionRecord]:
        """Newest first; by default the answers clients got (no shadows, no failures), like `count`."""
        query = sa.select(PredictionRow).where(PredictionRow.deployment == deployment)
        if roles is not None:
            query = query.where(PredictionRow.role.in_(roles))
        if errors is not None:
            query = query.where(PredictionRow.error.isnot(None) if errors else PredictionRow.error.is_(None))
        with self.db.session() as s:
            return self._records(s, list(s.scalars(query.order_by(PredictionRow.id.desc()).limit(limit))))

    def rows_after(self, after_id: int, limit: int = 50_000) -> list[LoggedRow]:
        """Rows with an id above ``after_id``, in id order (the monitoring loop's cursor), every role."""
        with self.db.session() as s:
            rows = s.execute(
                sa.select(*_LOGGED).where(PredictionRow.id > after_id).order_by(PredictionRow.id).limit(limit)
            ).all()
            return self._logged(s, rows, inputs=True)

    def batch_after(self, after_id: int, limit: int = 50_000) -> pa.Table:
        """`rows_after` as columns (`LOG_BATCH_SCHEMA`, the prediction typed, then ``inputs`` as a struct,
        ``probabilities`` and ``routing``), each row taken out of its batch: reads by row id (the
        monitoring loop reads whole batches, `batches_after`)."""
        return self._batch(
            sa.select(*_batch_columns(self.db.dialect))
            .where(PredictionRow.id > after_id)
            .order_by(PredictionRow.id)
            .limit(limit)
        )

    def batch_in_ranges(self, ranges: Sequence[tuple[int, int]]) -> pa.Table:
        """The rows with ids in any of the ``[lo, hi]`` ranges, as `batch_after` reads them."""
        if not ranges:
            return self._batch(None)
        condition = sa.or_(*[PredictionRow.id.between(lo, hi) for lo, hi in ranges])
        return self._batch(sa.select(*_batch_columns(self.db.dialect)).where(condition).order_by(PredictionRow.id))

    def batches_after(self, after: int, max_rows: int = 50_000) -> tuple[list[int], pa.Table, bool]:
        """Whole batches with an id above ``after``, in id order, up to ``max_rows`` rows (at least one
        batch): their ids, their written rows as one table (`log_batches`' columns), and whether more
        batches follow. The monitoring loop's read."""
        with self.db.session() as s:
            sizes = s.execute(
                sa.select(PredictionBatchRow.id, PredictionBatchRow.rows)
                .where(PredictionBatchRow.id > after)
                .order_by(PredictionBatchRow.id)
                .limit(_SIZES_PER_READ + 1)
            ).all()
            ids: list[int] = []
            total = 0
            for batch_id, rows in sizes:
                if ids and total + rows > max_rows:
                    break
                ids.append(int(batch_id))
                total += rows
            found, table = self._whole_batches(s, ids)
            return found, table, len(ids) < len(sizes)

    def batch_of_row(self, row_id: int) -> int | None:
        """The batch of the last row with an id up to ``row_id`` (where a row cursor resumes as a batch one)."""
        with self.db.session() as s:
            return s.scalar(
                sa.select(PredictionRow.batch_id)
                .where(PredictionRow.id <= row_id)
                .order_by(PredictionRow.id.desc())
                .limit(1)
            )

    def batches_in(self, ids: Sequence[int]) -> tuple[list[int], pa.Table]:
        """The batches of these ids that exist now (a gap the cursor passed, committed since)."""
        with self.db.session() as s:
            return self._whole_batches(s, list(ids))

    def _whole_batches(self, s: sa.orm.Session, ids: list[int]) -> tuple[list[int], pa.Table]:
        """The stored batches of ``ids`` (in id order) and their written rows as one table."""
        tables: dict[int, pa.Table] = {}
        for batch_id, table in self._decoded(s, ids):
            if table is not None:
                tables[batch_id] = log_batches.logged(table)
            else:  # its rows from the index, their inputs missing
                query = (
                    sa.select(*_batch_columns(self.db.dialect))
                    .where(PredictionRow.batch_id == batch_id)
                    .order_by(PredictionRow.id)
                )
                tables[batch_id] = self._read_index(s, query)
        found = sorted(tables)
        if not tables:
            return found, self._read_index(s, None)
        ordered = [tables[i] for i in found]
        first = ordered[0].schema
        # one chunk per column: every compute over the rows after this then runs once, not once per stored
        # batch (the 100 chunks of a read cost the monitoring loop more than this copy)
        if len(ordered) > 1 and all(t.schema.equals(first) for t in ordered):  # concat's usual case, without
            return found, pa.concat_tables(ordered).combine_chunks()  # hashing every schema
        return found, log_batches.concat(ordered).combine_chunks()

    def batch_between(
        self,
        deployment: str,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int = 0,
        limit: int = 50_000,
    ) -> pa.Table:
        """One deployment's rows logged in [since, until) past ``after_id``, as `batch_after` reads them,
        with each row's request id, entity id, routing, label and when it came (the export's read)."""
        where = [PredictionRow.deployment == deployment, PredictionRow.id > after_id]
        if since is not None:
            where.append(PredictionRow.at >= since)
        if until is not None:
            where.append(PredictionRow.at < until)
        return self._batch(
            sa.select(*_batch_columns(self.db.dialect, _EXPORT)).where(*where).order_by(PredictionRow.id).limit(limit),
            export=True,
        )

    def labelled_between(self, deployment: str, since: datetime, until: datetime, limit: int) -> pa.Table:
        """The newest ``limit`` labelled answers of ``deployment`` predicted in [since, until), oldest first,
        as `batch_between` reads them (with the label's JSON text and its source): what retraining learns from."""
        where: tuple[Any, ...] = (
            PredictionRow.deployment == deployment,
            PredictionRow.at >= since,
            PredictionRow.at < until,
            PredictionRow.label_at.isnot(None),
            PredictionRow.role.in_(ANSWER_ROLES),
            PredictionRow.error.is_(None),
        )
        with self.db.session() as s:
            floor = s.scalar(
                sa.select(PredictionRow.id).where(*where).order_by(PredictionRow.id.desc()).offset(limit - 1).limit(1)
            )
        if floor is not None:
            where = (*where, PredictionRow.id >= floor)
        return self._batch(
            sa.select(*_batch_columns(self.db.dialect, _EXPORT)).where(*where).order_by(PredictionRow.id), export=True
        )

    def count_labelled(
        self,
        deployment: str,
        *,
        labelled_since: datetime | None = None,
        labelled_until: datetime | None = None,
        predicted_since: datetime | None = None,
        predicted_until: datetime | None = None,
    ) -> int:
        """Answers of ``deployment`` with a label, optionally one that arrived in [labelled_since,
        labelled_until) on a row predicted in [predicted_since, predicted_until)."""
        query = sa.select(sa.func.count()).where(
            PredictionRow.deployment == deployment,
            PredictionRow.label_at.isnot(None),
            PredictionRow.role.in_(ANSWER_ROLES),
        )
        for column, low, high in (
            (PredictionRow.label_at, labelled_since, labelled_until),
            (PredictionRow.at, predicted_since, predicted_until),
        ):
            if low is not None:
                query = query.where(column >= low)
            if high is not None:
                query = query.where(column < high)
        with self.db.session() as s:
            return s.scalar(query) or 0

    def _batch(self, query: sa.Select[Any] | None, *, export: bool = False) -> pa.Table:
        with self.db.session() as s:
            rows = self._fetch(s, query)
            table = self._with_payload(s, _batch_table(rows, self.db.dialect))
        if not export:
            return table
        n = len(LOG_BATCH_SCHEMA)
        request_ids, entity_ids, labels, label_at, sources = (
            (list(c) for c in zip(*(r[n : n + 5] for r in rows))) if rows else ([], [], [], [], [])
        )
        label_times = (
            pa.array(label_at, type=pa.string()).cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
            if self.db.dialect != "postgresql"
            else pa.array(label_at, type=pa.int64()).view(pa.timestamp("us", tz="UTC"))
        )
        return (
            table.append_column("request_id", pa.array(request_ids, type=pa.string()))
            .append_column("entity_id", pa.array(entity_ids, type=pa.string()))
            .append_column("label", pa.array(labels, type=pa.string()))
            .append_column("label_at", label_times)
            .append_column("label_source", pa.array(sources, type=pa.string()))
        )

    @staticmethod
    def _fetch(s: sa.orm.Session, query: sa.Select[Any] | None) -> Sequence[Any]:
        if query is None:
            return []
        result = s.connection().execute(query)
        # the driver's tuples as they are: no column here needs SQLAlchemy's processing, and skipping
        # its row objects is a third of the read at a million rows
        rows = result.cursor.fetchall() if result.cursor is not None else []
        result.close()
        return rows

    def _with_payload(self, s: sa.orm.Session, table: pa.Table) -> pa.Table:
        """Index columns with the prediction typed, and each row's inputs and probabilities from its batch."""
        payload = self._payloads(s, table.column("batch_id").to_numpy(), table.column("position").to_numpy())
        i = table.schema.get_field_index("prediction")
        return (
            table.set_column(i, "prediction", log_batches.parse_json(table.column("prediction")))
            .append_column("inputs", payload.column("inputs"))
            .append_column("probabilities", payload.column("probabilities"))
            .append_column("routing", payload.column("routing"))
        )

    def _read_index(self, s: sa.orm.Session, query: sa.Select[Any] | None) -> pa.Table:
        return self._with_payload(s, _batch_table(self._fetch(s, query), self.db.dialect))

    def labelled_rows(
        self,
        deployment: str,
        model: str,
        version: int,
        start: datetime,
        end: datetime,
        roles: tuple[str, ...] = ANSWER_ROLES,
        *,
        inputs: bool = True,
    ) -> list[LoggedRow]:
        """One version's labelled rows predicted in [start, end), to recompute a window's performance.

        ``inputs=False`` leaves the inputs out (an empty dict): reading them is most of the cost.
        """
        with self.db.session() as s:
            rows = s.execute(
                sa.select(*_LOGGED)
                .where(
                    PredictionRow.deployment == deployment,
                    PredictionRow.model == model,
                    PredictionRow.version == version,
                    PredictionRow.at >= start,
                    PredictionRow.at < end,
                    PredictionRow.label_at.isnot(None),
                    PredictionRow.role.in_(roles),
                )
                .order_by(PredictionRow.id)
            ).all()
            return self._logged(s, rows, inputs=inputs)

    def labelled_ids_since(self, since: datetime) -> list[tuple[str, str, int, int, datetime, datetime]]:
        """(deployment, model, version, id, at, label_at) of rows labelled at or after ``since``."""
        with self.db.session() as s:
            rows = s.execute(
                sa.select(
                    PredictionRow.deployment,
                    PredictionRow.model,
                    PredictionRow.version,
                    PredictionRow.id,
                    PredictionRow.at,
                    PredictionRow.label_at,
                ).where(PredictionRow.label_at >= since, PredictionRow.role.in_(ANSWER_ROLES))
            ).all()
        return [cast(tuple[str, str, int, int, datetime, datetime], tuple(r)) for r in rows]  # label_at: not null here

    def labelled_rows_between_ids(self, deployment: str, model: str, version: int, lo: int, hi: int) -> list[LoggedRow]:
        """One version's labelled rows with ids in [lo, hi] (a window by count), without their inputs."""
        with self.db.session() as s:
            rows = s.execute(
                sa.select(*_LOGGED)
                .where(
                    PredictionRow.deployment == deployment,
                    PredictionRow.model == model,
                    PredictionRow.version == version,
                    PredictionRow.id.between(lo, hi),
                    PredictionRow.label_at.isnot(None),
                    PredictionRow.role.in_(ANSWER_ROLES),
                )
                .order_by(PredictionRow.id)
            ).all()
            return self._logged(s, rows, inputs=False)

    def get(self, request_id: str) -> PredictionRecord | None:
        with self.db.session() as s:
            row = s.scalar(sa.select(PredictionRow).where(PredictionRow.request_id == request_id))
            return None if row is None else self._records(s, [row])[0]

    def request_ids(self, deployment: str | None = None) -> list[str]:
        with self.db.session() as s:
            query = sa.select(PredictionRow.request_id)
            if deployment is not None:
                query = query.where(PredictionRow.deployment == deployment)
            return list(s.scalars(query))

    def logged_request_ids(self, request_ids: Sequence[str]) -> set[str]:
        """Which of ``request_ids`` are logged already (a replayed journal skips them before its insert)."""
        found: set[str] = set()
        with self.db.session() as s:
            for start in range(0, len(request_ids), 500):
                chunk = list(request_ids[start : start + 500])
                found.update(s.scalars(sa.select(PredictionRow.request_id).where(PredictionRow.request_id.in_(chunk))))
        return found

    def _logged(self, s: sa.orm.Session, rows: Sequence[Any], *, inputs: bool) -> list[LoggedRow]:
        """`LoggedRow` objects of index rows (`_LOGGED`), their inputs and probabilities from their batches."""
        if not rows:
            return []
        payload = self._payloads(s, _ids(r[11] for r in rows), _ids(r[12] for r in rows))
        values = payload.column("inputs").to_pylist() if inputs else [None] * len(rows)
        probabilities = payload.column("probabilities").to_pylist()
        return [
            LoggedRow(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                log_batches.as_dict(v) if inputs else {},
                r[5],
                p,
                r[6],
                r[7],
                r[8],
                r[9],
                r[10],
            )
            for r, v, p in zip(rows, values, probabilities)
        ]

    def _records(self, s: sa.orm.Session, rows: Sequence[PredictionRow]) -> list[PredictionRecord]:
        payload = self._payloads(s, _ids(r.batch_id for r in rows), _ids(r.position for r in rows))
        inputs, probabilities, routing = (payload.column(c).to_pylist() for c in ("inputs", "probabilities", "routing"))
        return [
            PredictionRecord(
                request_id=r.request_id,
                entity_id=r.entity_id,
                deployment=r.deployment,
                model=r.model,
                version=r.version,
                at=r.at,
                inputs=log_batches.as_dict(i),
                prediction=r.prediction,
                probabilities=p,
                latency_seconds=r.latency_seconds,
                routing=log_batches.as_dict(rt),
                label=r.label,
                label_at=r.label_at,
                role=r.role,
                error=r.error,
                shadow_of=r.shadow_of,
                label_source=r.label_source,
            )
            for r, i, p, rt in zip(rows, inputs, probabilities, routing)
        ]
