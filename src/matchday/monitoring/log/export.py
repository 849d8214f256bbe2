"""`matchday log export`: a deployment's logged predictions as one Parquet file, a row per prediction.

For notebooks, warehouses and retraining: the columns a data scientist expects (ids, time, version,
each input, the prediction, a probability per class, the label where one was joined), read from
the log's Arrow batches in chunks, never as Python objects per row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from matchday.monitoring.log.columns import parse_probabilities
from matchday.store import MIXED_PREDICTIONS, PredictionLogStore, parse_json

FIXED = ("request_id", "entity_id", "logged_at", "model", "version", "source")
CHUNK_ROWS = 50_000
ClassesOf = Callable[[str, int], Sequence[Any] | None]


@dataclass(frozen=True)
class ExportSummary:
    rows: int
    path: Path
    columns: list[str]


def export_log(
    store: PredictionLogStore,
    deployment: str,
    output: Path,
    classes_of: ClassesOf,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ExportSummary:
    """Write the rows deployment ``deployment`` logged in [since, until) to ``output`` (Parquet).

    ``classes_of(model, version)`` names a classifier's classes, for its probability columns.
    """
    parts: list[pa.Table] = []
    cursor = 0
    while True:
        batch = store.batch_between(deployment, since, until, after_id=cursor, limit=CHUNK_ROWS)
        if not batch.num_rows:
            break
        cursor = int(batch.column("id")[-1].as_py())
        parts.append(_export_table(batch, classes_of))
        if batch.num_rows < CHUNK_ROWS:
            break
    table = pa.concat_tables(parts, promote_options="permissive") if parts else _empty()
    columns = _ordered(table.column_names)
    table = table.select(columns)
    tmp = output.with_name(f".{output.name}.partial")
    pq.write_table(table, tmp)
    tmp.replace(output)  # a reader never sees half a file
    return ExportSummary(table.num_rows, output, columns)


def _empty() -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([], pa.string()),
            "entity_id": pa.array([], pa.string()),
            "logged_at": pa.array([], pa.timestamp("us", tz="UTC")),
            "model": pa.array([], pa.string()),
            "version": pa.array([], pa.int64()),
            "source": pa.array([], pa.string()),
            "prediction": pa.array([], pa.null()),
            "label": pa.array([], pa.null()),
            "label_source": pa.array([], pa.string()),
        }
    )


def _ordered(names: list[str]) -> list[str]:
    """Ids and routing first, the inputs, then the prediction, its probabilities and the label."""
    tail = [
        "prediction",
        *sorted(n for n in names if n.startswith("probability_")),
        "error",
        "label",
        "label_source",
        "labelled_at",
        "latency_seconds",
    ]
    head = [n for n in FIXED if n in names]
    inputs = [n for n in names if n not in head and n not in tail]
    return head + inputs + [n for n in tail if n in names]


def _export_table(batch: pa.Table, classes_of: ClassesOf) -> pa.Table:
    taken = set(FIXED) | {"prediction", "error", "label", "label_source", "labelled_at", "latency_seconds"}
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "request_id": batch.column("request_id"),
        "entity_id": batch.column("entity_id"),
        "logged_at": batch.column("at"),
        "model": batch.column("model"),
        "version": batch.column("version"),
        "source": batch.column("role"),
    }
    inputs = batch.column("inputs").combine_chunks()
    for field in inputs.type:
        name = (
            field.name
            if field.name not in taken and not field.name.startswith("probability_")
            else f"input_{field.name}"
        )
        columns[name] = pc.struct_field(inputs, field.name)
    prediction = batch.column("prediction")
    columns["prediction"] = prediction.cast(pa.string()) if prediction.type == MIXED_PREDICTIONS else prediction
    columns.update(_probability_columns(batch, classes_of))
    columns["error"] = batch.column("error")
    columns["label"] = parse_json(batch.column("label"))
    columns["label_source"] = batch.column("label_source")
    columns["labelled_at"] = batch.column("label_at")
    columns["latency_seconds"] = batch.column("latency_seconds")
    return pa.table(columns)


def _probability_columns(batch: pa.Table, classes_of: ClassesOf) -> dict[str, pa.Array]:
    """One ``probability_<class>`` column per class of each version in the chunk (null elsewhere)."""
    probabilities = batch.column("probabilities")
    n = batch.num_rows
    models = batch.column("model").to_numpy(zero_copy_only=False)
    versions = batch.column("version").to_numpy()
    out: dict[str, np.ndarray] = {}
    for model, version in {(m, int(v)) for m, v in zip(models, versions)}:
        rows = (models == model) & (versions == version)
        classes = list(classes_of(model, version) or [])
        if not classes:
            continue
        matrix, _ = parse_probabilities(probabilities.filter(pa.array(rows)), len(classes))  # NaN: not of that width
        if matrix is None:
            continue
        for j, label in enumerate(classes):
            column = out.setdefault(f"probability_{label}", np.full(n, np.nan))
            column[rows] = matrix[:, j]
    return {name: pa.array(values, mask=np.isnan(values)) for name, values in out.items()}
