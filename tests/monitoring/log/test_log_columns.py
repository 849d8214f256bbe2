"""The monitoring loop's reads (whole Arrow batches, and rows taken out of their batches by id) must
give the same columns, and so the same window summaries, as reading every row as Python objects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from matchday.monitoring.log.columns import LogColumns
from matchday.monitoring.windows.summary import VersionReference, summarize_columns
from matchday.store import Database, PredictionLogStore

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
FEATURES = ["amount", "count", "merchant", "flag", "note", "absent"]


def row(i: int, **change: Any) -> dict[str, Any]:
    out = {
        "request_id": str(uuid.uuid4()),
        "entity_id": None,
        "deployment": "fraud",
        "model": "fraud",
        "version": 1,
        "at": T0 + timedelta(microseconds=333_333 * i),
        "latency_seconds": 0.001 * (i % 7 + 1),
        "inputs": {
            "amount": 10.5 * i + 0.1,
            "count": i,
            "merchant": ["food", "travel", "é"][i % 3],
            "flag": i % 2 == 0,
            "note": 'two\nlines "quoted"' if i % 4 == 0 else None,
        },
        "prediction": i % 2,
        "probabilities": [0.3, 0.7] if i % 2 else [0.8, 0.2],
        "routing": {},
        "role": "served",
    }
    out.update(change)
    return out


def tricky_rows() -> list[dict[str, Any]]:
    rows = [row(i) for i in range(40)]
    rows[3]["inputs"] = {"amount": None, "merchant": "food"}  # missing and null features
    rows[5]["inputs"] = {}
    rows[7]["prediction"], rows[7]["probabilities"] = None, None  # a null answer
    rows[9]["prediction"] = 1.0  # the same label as 1 after a JSON round trip
    rows[11]["probabilities"] = [0.1, 0.2, 0.7]  # the wrong width: no probabilities for this row
    rows[13]["error"], rows[13]["prediction"], rows[13]["probabilities"] = "boom", None, None
    rows[15]["inputs"]["amount"] = 1.5e100  # large, and a float the database keeps as REAL
    rows[17]["inputs"]["amount"] = -0.123456789012345678
    rows[19]["at"] = rows[18]["at"]  # one request's two rows share a timestamp
    rows[21]["inputs"]["count"] = 2.5  # ints and a float in one feature: a float column
    rows[23]["prediction"] = 0.1234567890123456789  # a float prediction keeps its 17 digits
    return rows


def regression_rows() -> list[dict[str, Any]]:
    rows = [row(i, prediction=0.1 * i + 1e-9, probabilities=None) for i in range(20)]
    rows[2]["prediction"] = "n/a"  # not a number: NaN, as logged
    rows[4]["prediction"] = True
    return rows


@pytest.fixture(params=["batches", "rows"])
def store(database_url: str, request: pytest.FixtureRequest) -> PredictionLogStore:
    store = PredictionLogStore(Database(database_url))
    store.read = request.param  # type: ignore[attr-defined]
    return store


def both(store: PredictionLogStore, features: list[str] | None, classes: int | None) -> tuple[LogColumns, LogColumns]:
    if store.read == "batches":  # type: ignore[attr-defined]
        table = store.batches_after(0, 1000)[1]  # the monitoring loop's read
    else:
        table = store.batch_after(0, 1000)  # rows out of their batches (gaps, late labels)
    bulk = LogColumns.from_table(table, features, classes)
    objects = LogColumns.from_rows(store.rows_after(0, 1000), features, classes)
    return bulk, objects


def assert_same(bulk: LogColumns, objects: LogColumns) -> None:
    np.testing.assert_array_equal(bulk.ids, objects.ids)
    np.testing.assert_array_equal(bulk.at, objects.at)
    np.testing.assert_array_equal(bulk.latency.values, objects.latency.values)
    np.testing.assert_array_equal(bulk.failed, objects.failed)
    assert bulk.inputs.column_names == objects.inputs.column_names
    for name in bulk.inputs.column_names:
        a, b = bulk.inputs.column(name), objects.inputs.column(name)
        assert a.type == b.type, name
        assert a.to_pylist() == b.to_pylist(), name
    assert [bulk.labels[c] for c in bulk.codes] == [objects.labels[c] for c in objects.codes]
    np.testing.assert_array_equal(bulk.values.values, objects.values.values)
    np.testing.assert_array_equal(bulk.has_probabilities, objects.has_probabilities)
    if bulk.probabilities is None or objects.probabilities is None:
        assert bulk.probabilities is None and objects.probabilities is None
    else:
        np.testing.assert_array_equal(bulk.probabilities, objects.probabilities)


def test_bulk_read_parses_to_the_same_columns_as_objects(store: PredictionLogStore) -> None:
    store.insert(tricky_rows())
    bulk, objects = both(store, FEATURES, 2)
    assert_same(bulk, objects)
    assert bulk.inputs.column("absent").null_count == 40 and bulk.inputs.column("count").type == pa.float64()
    assert bulk.values.values[23] == 0.1234567890123456789
    ref = VersionReference("classification", ["0", "1"], FEATURES, None)
    assert summarize_columns(bulk, ref, texts=["note"]) == summarize_columns(objects, ref, texts=["note"])
    every = np.arange(len(bulk))
    part = every[every % 3 == 0]
    assert summarize_columns(bulk.take(part), ref) == summarize_columns(objects.take(part), ref)
    # without a reference: every key seen, in name order
    bulk, objects = both(store, None, None)
    assert bulk.inputs.column_names == ["amount", "count", "flag", "merchant", "note"]
    assert_same(bulk, objects)


def test_a_feature_of_mixed_types_is_compared_as_text_by_both_reads(store: PredictionLogStore) -> None:
    rows = [row(i) for i in range(6)]
    rows[2]["inputs"]["merchant"] = 7  # Arrow's JSON reader refuses the column: read per row instead
    store.insert(rows)
    bulk, objects = both(store, FEATURES, 2)
    assert_same(bulk, objects)
    assert bulk.inputs.column("merchant").to_pylist()[2] == "7"


def test_regression_predictions_read_alike(store: PredictionLogStore) -> None:
    store.insert(regression_rows())
    bulk, objects = both(store, FEATURES, None)
    assert_same(bulk, objects)
    assert np.isnan(bulk.values.values[2]) and np.isnan(bulk.values.values[4])
    ref = VersionReference("regression", None, FEATURES, None)
    assert summarize_columns(bulk, ref) == summarize_columns(objects, ref)


def test_rows_across_batches_read_alike(store: PredictionLogStore) -> None:
    rows = tricky_rows()
    for start in range(0, len(rows), 7):  # six flushes
        store.insert(rows[start : start + 7])
    store.insert(rows[:3])  # a replay: no batch, and no row twice
    bulk, objects = both(store, FEATURES, 2)
    assert len(bulk) == 40
    assert_same(bulk, objects)


def test_an_empty_read_is_an_empty_table(store: PredictionLogStore) -> None:
    assert store.batches_after(0)[1].num_rows == 0
    assert store.batch_after(0).num_rows == 0
    assert store.batch_in_ranges([]).num_rows == 0
