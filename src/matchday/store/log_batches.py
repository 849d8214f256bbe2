"""The prediction log's payload as Arrow: one IPC stream per writer flush, never JSON per row.

A flush of N rows becomes one record batch with three columns, row-aligned with the N index rows
that point into it by position: ``inputs`` (a struct, one field per feature), ``probabilities``
(a list of float64) and ``routing`` (a struct). Reading takes the rows a query selected out of
each batch they live in and lines the batches' columns up (features seen in some batches only are
null elsewhere; a feature logged as numbers in one batch and text in another is read as text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FORMAT = "matchday-log-batch/1"
_FORMAT_KEY = b"matchday.format"
PROBABILITIES = pa.list_(pa.float64())


class CorruptLogBatch(ValueError):
    """A stored batch that is not an Arrow stream of this format (a damaged or foreign blob)."""


def encode(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The rows' inputs, probabilities and routing as one Arrow IPC stream."""
    table = pa.table({
        "inputs": _struct([r.get("inputs") or {} for r in rows]),
        "probabilities": _probabilities([r.get("probabilities") for r in rows]),
        "routing": _struct([r.get("routing") or {} for r in rows]),
    }).replace_schema_metadata({_FORMAT_KEY: FORMAT.encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(data: bytes | memoryview) -> pa.Table:
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorruptLogBatch(f"not an Arrow stream: {exc}") from exc
    if (table.schema.metadata or {}).get(_FORMAT_KEY) != FORMAT.encode():
        raise CorruptLogBatch(f"not a {FORMAT} batch")
    return table


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
        return pa.table({"inputs": pa.array([], type=pa.struct([])), "probabilities": pa.array([], type=PROBABILITIES),
                         "routing": pa.array([], type=pa.struct([]))})
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
    combined = pa.table({"inputs": _concat_structs([p.column("inputs") for p in parts]),
                         "probabilities": pa.chunked_array([c for p in parts
                                                            for c in p.column("probabilities").cast(PROBABILITIES).chunks],
                                                           type=PROBABILITIES),
                         "routing": _concat_structs([p.column("routing") for p in parts])})
    return combined.take(pa.array(inverse, type=pa.int64()))


def _empty(n: int) -> pa.Table:
    empty = pa.array([{}] * n, type=pa.struct([]))
    return pa.table({"inputs": pa.nulls(n, pa.struct([])) if n else empty,
                     "probabilities": pa.nulls(n, PROBABILITIES), "routing": pa.nulls(n, pa.struct([]))})


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
            fields[name].append(_field(c, name) if name in present else pa.nulls(len(c)))
    arrays = [_unify(parts) for parts in fields.values()]
    validity = pa.concat_arrays([c.is_valid() for c in chunks])
    mask = pc.invert(validity)
    if not arrays:
        return pa.chunked_array([pa.StructArray.from_arrays([], fields=[], mask=mask)])
    return pa.chunked_array([pa.StructArray.from_arrays(arrays, names=list(names), mask=mask)])


def _field(struct: pa.StructArray, name: str) -> pa.Array:
    """A struct's child with the struct's own nulls applied (``field`` alone ignores them)."""
    return pc.struct_field(struct, name)


def _unify(parts: list[pa.Array]) -> pa.Array:
    """One feature's arrays from several batches in one type: numbers widen to float64 (integers
    stay integers), anything mixed with text becomes text (as ``str`` writes it)."""
    types = {p.type for p in parts if not pa.types.is_null(p.type)}
    if len(types) <= 1:
        target = next(iter(types), pa.null())
        return pa.concat_arrays([p.cast(target) if p.type != target else p for p in parts])
    if all(pa.types.is_integer(t) for t in types):
        return pa.concat_arrays([p.cast(pa.int64()) for p in parts])
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
        return pa.concat_arrays([p.cast(pa.float64()) for p in parts])
    return pa.array([None if v is None else str(v) for p in parts for v in p.to_pylist()], type=pa.string())


def as_dict(value: dict[str, Any] | None) -> dict[str, Any]:
    """A struct row as the dict that was logged: fields the row did not have (null) left out."""
    return {k: v for k, v in (value or {}).items() if v is not None}
