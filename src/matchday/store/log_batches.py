"""The prediction log as Arrow: one IPC stream per writer flush, never JSON per row.

A flush of N rows becomes one record batch, row-aligned with the N index rows that point into it
by position: each row's id (null for a row that was already logged, a replay), time, deployment,
version, role, error, latency and prediction, and its ``inputs`` (a struct, one field per feature),
``probabilities`` (a list of float64) and ``routing`` (a struct). The monitoring loop reads whole
batches; a lookup by row takes its rows out of the batches they live in and lines the batches'
columns up (features seen in some batches only are null elsewhere; a feature logged as numbers in
one batch and text in another is read as text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FORMAT = "matchday-log-batch/2"
_FORMAT_KEY = b"matchday.format"
PROBABILITIES = pa.list_(pa.float64())
TIME = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
PAYLOAD = ("inputs", "probabilities", "routing")
MIXED = pa.large_string()  # the type of a prediction column whose values mix types: each value's JSON text


class CorruptLogBatch(ValueError):
    """A stored batch that is not an Arrow stream of this format (a damaged or foreign blob)."""


def encode(rows: Sequence[Mapping[str, Any]], ids: Sequence[int | None]) -> bytes:
    """Rows and the ids the database gave them (None: not written) as one Arrow IPC stream."""
    table = pa.table(
        {
            "id": pa.array(ids, type=pa.int64()),
            "at": pa.array([_micros(r["at"]) for r in rows], type=pa.int64()).view(TIME),
            "deployment": pa.array([r["deployment"] for r in rows], type=pa.string()),
            "model": pa.array([r["model"] for r in rows], type=pa.string()),
            "version": pa.array([r["version"] for r in rows], type=pa.int64()),
            "role": pa.array([r.get("role") or "served" for r in rows], type=pa.string()),
            "error": pa.array([r.get("error") for r in rows], type=pa.string()),
            "latency_seconds": pa.array([r["latency_seconds"] for r in rows], type=pa.float64()),
            "prediction": prediction_column([r.get("prediction") for r in rows]),
            "inputs": _struct([r.get("inputs") or {} for r in rows]),
            "probabilities": _probabilities([r.get("probabilities") for r in rows]),
            "routing": _struct([r.get("routing") or {} for r in rows]),
        }
    ).replace_schema_metadata({_FORMAT_KEY: FORMAT.encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    stream: bytes = sink.getvalue().to_pybytes()
    return stream


def _micros(at: datetime | str) -> int:
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    return (when - _EPOCH) // _MICROSECOND


def decode(data: bytes | memoryview) -> pa.Table:
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorruptLogBatch(f"not an Arrow stream: {exc}") from exc
    if (table.schema.metadata or {}).get(_FORMAT_KEY) != FORMAT.encode():
        raise CorruptLogBatch(f"not a {FORMAT} batch")
    return table


def logged(table: pa.Table) -> pa.Table:
    """A decoded batch's rows that were written (a replay's copies of rows already logged have no id)."""
    ids = table.column("id")
    return table if ids.null_count == 0 else table.filter(ids.is_valid())


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Batches as one table: columns lined up by name, structs over the union of their fields."""
    if len(tables) == 1:
        return tables[0]
    if len({t.schema for t in tables}) == 1:  # the usual case: one deployment's rows, the same features
        return pa.concat_tables(tables)
    names: dict[str, None] = {}
    for t in tables:
        names.update(dict.fromkeys(t.column_names))
    columns = {}
    for name in names:
        parts = [t.column(name).combine_chunks() if name in t.column_names else pa.nulls(t.num_rows) for t in tables]
        if name in ("inputs", "routing"):
            columns[name] = _concat_structs([pa.chunked_array([p]) for p in parts])
        elif name == "probabilities":
            columns[name] = pa.chunked_array([p.cast(PROBABILITIES) for p in parts], type=PROBABILITIES)
        else:
            columns[name] = pa.chunked_array([_unify(parts)])
    return pa.table(columns)


def _struct(objects: Sequence[Mapping[str, Any]]) -> pa.StructArray:
    """Dicts as a struct, one field per key in first-seen order; a key whose values Arrow cannot
    put in one type (text and numbers) is kept as text, as the JSON log compared them."""
    names: dict[str, None] = {}
    for o in objects:
        names.update(dict.fromkeys(o))
    arrays = [_column([o.get(name) for o in objects]) for name in names]
    if not arrays:
        return pa.array([{}] * len(objects), type=pa.struct([]))
    return pa.StructArray.from_arrays(arrays, names=list(names))


def _column(values: list[Any]) -> pa.Array:
    if any(isinstance(v, datetime | date) for v in values):  # the JSON log held times as ISO text
        values = [v.isoformat() if isinstance(v, datetime | date) else v for v in values]
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    if pa.types.is_null(array.type):
        return array
    if pa.types.is_floating(array.type) and array.type != pa.float64():
        return array.cast(pa.float64())
    return array


def prediction_column(values: list[Any]) -> pa.Array:
    """Predictions typed (numbers, labels, lists); values of mixed types (a number and a text, a flag
    and a number) as their JSON text, in a `MIXED` column, so each keeps its own type when read."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        import orjson

        return pa.array(
            [
                None if v is None else orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()
                for v in values
            ],
            type=MIXED,
        )


def _probabilities(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, type=PROBABILITIES, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):  # not lists of numbers: that row has none
        out = []
        for v in values:
            try:
                out.append(pa.array([v], type=PROBABILITIES, from_pandas=True))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                out.append(pa.nulls(1, PROBABILITIES))
        return pa.concat_arrays(out) if out else pa.array([], type=PROBABILITIES)


def gather(batches: Mapping[int, pa.Table], batch_ids: np.ndarray, positions: np.ndarray) -> pa.Table:
    """The payload of rows ``(batch_ids[i], positions[i])``, in that order, as one table.

    A row whose batch is not in ``batches`` (its blob was lost or refused) gets nulls.
    """
    n = int(batch_ids.size)
    if n == 0:
        return _empty(0)
    batches = {k: v.select(list(PAYLOAD)) for k, v in batches.items()}
    order = np.lexsort((positions, batch_ids))
    sorted_ids = batch_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    ends = np.r_[starts[1:], n]
    parts: list[pa.Table] = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        table = batches.get(int(sorted_ids[start]))
        wanted = positions[order[start:end]]
        if table is None or (wanted >= table.num_rows).any() or (wanted < 0).any():
            parts.append(_empty(end - start))
        else:
            parts.append(table.take(pa.array(wanted, type=pa.int64())))
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    combined = pa.table(
        {
            "inputs": _concat_structs([p.column("inputs") for p in parts]),
            "probabilities": pa.chunked_array(
                [c for p in parts for c in p.column("probabilities").cast(PROBABILITIES).chunks], type=PROBABILITIES
            ),
            "routing": _concat_structs([p.column("routing") for p in parts]),
        }
    )
    return combined.take(pa.array(inverse, type=pa.int64()))


def _empty(n: int) -> pa.Table:
    """The payload of ``n`` rows whose batch is missing: nulls."""
    return pa.table(
        {
            "inputs": pa.nulls(n, pa.struct([])),
            "probabilities": pa.nulls(n, PROBABILITIES),
            "routing": pa.nulls(n, pa.struct([])),
        }
    )


def _concat_structs(columns: Sequence[pa.ChunkedArray]) -> pa.ChunkedArray:
    """Struct columns of different batches as one struct over the union of their fields."""
    chunks = [c.combine_chunks() for c in columns]
    if len({c.type for c in chunks}) == 1:
        return pa.chunked_array(chunks, type=chunks[0].type)
    names: dict[str, None] = {}
    for c in chunks:
        names.update(dict.fromkeys(f.name for f in c.type))
    fields: dict[str, list[pa.Array]] = {name: [] for name in names}
    for c in chunks:
        present = {f.name for f in c.type}
        for name in names:
            # (`struct_field` applies the struct's own nulls; `StructArray.field` would not)
            fields[name].append(pc.struct_field(c, name) if name in present else pa.nulls(len(c)))
    arrays = [_unify(parts) for parts in fields.values()]
    validity = pa.concat_arrays([c.is_valid() for c in chunks])
    mask = pc.invert(validity)
    if not arrays:
        return pa.chunked_array([pa.StructArray.from_arrays([], fields=[], mask=mask)])
    return pa.chunked_array([pa.StructArray.from_arrays(arrays, names=list(names), mask=mask)])


def _unify(parts: list[pa.Array]) -> pa.Array:
    """One feature's arrays from several batches in one type: numbers widen to float64 (integers
    stay integers), anything mixed with text becomes text (as ``str`` writes it)."""
    types = {p.type for p in parts if not pa.types.is_null(p.type)}
    if MIXED in types and len(types) > 1:  # predictions: the typed parts as JSON text too
        import orjson

        return pa.array(
            [
                None if v is None else orjson.dumps(v).decode() if p.type != MIXED else v
                for p in parts
                for v in p.to_pylist()
            ],
            type=MIXED,
        )
    if len(types) <= 1:
        target = next(iter(types), pa.null())
        return pa.concat_arrays([p.cast(target) if p.type != target else p for p in parts])
    if all(pa.types.is_integer(t) for t in types):
        return pa.concat_arrays([p.cast(pa.int64()) for p in parts])
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
        return pa.concat_arrays([p.cast(pa.float64()) for p in parts])
    return pa.array([None if v is None else str(v) for p in parts for v in p.to_pylist()], type=pa.string())


def parse_json(texts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column of JSON texts as one typed column, each distinct text parsed once (as `encode` types
    a batch's predictions: see `prediction_column`)."""
    import orjson

    encoded = pc.dictionary_encode(texts)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    if len(encoded.dictionary) == 0:
        return pa.nulls(len(encoded))
    dictionary = prediction_column([orjson.loads(t) for t in encoded.dictionary.to_pylist()])
    if dictionary.type == MIXED:
        dictionary = encoded.dictionary.cast(MIXED)
    return dictionary.take(encoded.indices)


def as_dict(value: dict[str, Any] | None) -> dict[str, Any]:
    """A struct row as the dict that was logged: fields the row did not have (null) left out."""
    return {k: v for k, v in (value or {}).items() if v is not None}
