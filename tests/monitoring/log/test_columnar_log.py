"""The columnar prediction log: one Arrow batch per flush, an existing JSON log migrated and readable,
batches that disagree on a feature's type, and a damaged batch that loses no row."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from matchday.monitoring.log.columns import LogColumns
from matchday.store import Database, PredictionLogStore
from matchday.store.schema import UTCDateTime

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def rows(n: int, start: int = 0, **inputs: Any) -> list[dict[str, Any]]:
    return [
        {
            "request_id": str(uuid.uuid4()),
            "entity_id": f"e{i}",
            "deployment": "fraud",
            "model": "fraud",
            "version": 1,
            "at": T0 + timedelta(seconds=i),
            "inputs": {"amount": float(i), "merchant": "food"} | inputs,
            "prediction": i % 2,
            "probabilities": [0.4, 0.6],
            "latency_seconds": 0.002,
            "routing": {"plan": "single", "arm": "primary"},
            "role": "served",
        }
        for i in range(start, start + n)
    ]


def count(db: Database, table: str) -> int:
    with db.session() as s:
        return int(s.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_flush_is_one_batch_and_a_replay_adds_none(database_url: str) -> None:
    db = Database(database_url)
    store = PredictionLogStore(db)
    logged = rows(300)
    assert store.insert(logged) == 300
    assert count(db, "prediction_batches") == 1
    assert store.insert(logged) == 0  # replayed after an ambiguous commit: skipped, and no orphan payload
    assert count(db, "prediction_batches") == 1
    assert store.insert(logged[:10] + rows(5, start=300)) == 5
    assert count(db, "prediction_batches") == 2
    got = store.get(logged[7]["request_id"])
    assert got is not None and got.inputs == logged[7]["inputs"] and got.probabilities == [0.4, 0.6]
    assert got.routing == {"plan": "single", "arm": "primary"}


def test_the_bulk_read_is_arrow_columns(database_url: str) -> None:
    store = PredictionLogStore(Database(database_url))
    store.insert(rows(50))
    table = store.batch_after(0, 1000)
    assert pa.types.is_struct(table.column("inputs").type)
    assert pa.types.is_list(table.column("probabilities").type)
    columns = LogColumns.from_table(table, ["amount", "merchant"], 2)
    assert columns.inputs.column("amount").to_pylist() == [float(i) for i in range(50)]
    assert columns.probabilities is not None and columns.probabilities.shape == (50, 2)


def test_batches_that_disagree_on_a_feature_read_as_one_column(database_url: str) -> None:
    store = PredictionLogStore(Database(database_url))
    store.insert(rows(3))  # amount: float
    store.insert(rows(3, start=3, amount="n/a"))  # amount: text
    store.insert([r | {"inputs": {"merchant": "travel", "extra": 7}} for r in rows(2, start=6)])  # no amount
    table = store.batch_after(0, 100)
    inputs = LogColumns.from_table(table, None, 2).inputs
    assert inputs.column_names == ["amount", "extra", "merchant"]
    assert inputs.column("amount").to_pylist() == ["0.0", "1.0", "2.0", "n/a", "n/a", "n/a", None, None]
    assert inputs.column("extra").to_pylist() == [None] * 6 + [7, 7]
    objects = LogColumns.from_rows(store.rows_after(0, 100), None, 2).inputs
    assert objects.column("amount").to_pylist() == inputs.column("amount").to_pylist()


def test_a_damaged_batch_loses_no_row_and_says_which(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(database_url)
    store = PredictionLogStore(db)
    first, second = rows(4), rows(4, start=4)
    store.insert(first)
    store.insert(second)
    with db.session(write=True) as s:
        s.execute(
            sa.text("UPDATE prediction_batches SET data = :d WHERE id = (SELECT min(id) FROM prediction_batches)"),
            {"d": b"not arrow at all"},
        )
    with caplog.at_level(logging.ERROR):
        table = store.batch_after(0, 100)
    assert table.num_rows == 8  # every row still there: counted, its prediction and latency intact
    assert "unreadable" in caplog.text and "batch" in caplog.text
    assert table.column("prediction").to_pylist() == [i % 2 for i in range(8)]
    recent = store.recent("fraud", limit=8)
    assert [r.inputs for r in recent[:4]] == [r["inputs"] for r in reversed(second)]
    assert [r.inputs for r in recent[4:]] == [{}] * 4


def _old_log_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "request_id": str(uuid.uuid4()),
            "entity_id": None,
            "deployment": "fraud",
            "model": "fraud",
            "version": 2,
            "at": T0 + timedelta(milliseconds=i),
            "inputs": json.dumps({"amount": i * 1.5, "merchant": "food"}),
            "prediction": json.dumps(i % 2),
            "probabilities": json.dumps([0.5, 0.5]) if i % 3 else None,
            "latency_seconds": 0.001,
            "routing": json.dumps({"arm": "primary"}),
            "role": "served",
            "label": json.dumps(1) if i % 2 else None,
            "label_at": T0 if i % 2 else None,
        }
        for i in range(n)
    ]


def test_an_existing_json_log_migrates_and_stays_readable(empty_database_url: str) -> None:
    db = Database(empty_database_url, migrate=False)
    db.upgrade("0004")
    old = _old_log_rows(12_000)  # more than one conversion chunk
    typed = {"at": UTCDateTime(), "label_at": UTCDateTime()}
    table = sa.table("prediction_log", *(sa.column(c, typed.get(c)) for c in old[0]))
    with db.session(write=True) as s:
        s.execute(sa.insert(table), old)
    db.upgrade()
    store = PredictionLogStore(db)
    assert store.count("fraud") == 12_000
    got = store.get(old[4]["request_id"])
    assert got is not None
    assert got.inputs == {"amount": 6.0, "merchant": "food"} and got.probabilities == [0.5, 0.5]
    assert got.routing == {"arm": "primary"} and got.prediction == 0
    assert store.get(old[3]["request_id"]).probabilities is None  # type: ignore[union-attr]
    table = store.batch_after(0, 20_000)
    cols = LogColumns.from_table(table, ["amount", "merchant"], 2)
    assert cols.inputs.column("amount").to_pylist() == [i * 1.5 for i in range(12_000)]
    assert int(cols.has_probabilities.sum()) == 8000
    assert count(db, "prediction_batches") == 3
    store.insert(rows(2))  # and new rows land beside the converted ones
    assert store.count("fraud") == 12_002


def test_the_monitoring_read_takes_whole_batches_and_each_row_once(database_url: str) -> None:
    store = PredictionLogStore(Database(database_url))
    first = rows(5)
    store.insert(first)
    store.insert(first[3:] + rows(4, start=5))  # a replay that straddles: two rows already logged, four new
    ids, table, more = store.batches_after(0, 1000)
    assert len(ids) == 2 and not more
    assert table.num_rows == 9 and len(set(table.column("id").to_pylist())) == 9
    assert sorted(table.column("id").to_pylist()) == sorted(
        int(i) for i in store.batch_after(0).column("id").to_pylist()
    )
    ids, table, more = store.batches_after(0, 5)  # at most five rows: the first batch only, and more to come
    assert len(ids) == 1 and more and table.num_rows == 5
    assert store.batches_after(ids[-1], 5)[1].num_rows == 4
