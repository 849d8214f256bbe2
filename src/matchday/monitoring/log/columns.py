"""One version's logged rows as columns: what summarising its windows needs, parsed once per read.

The log keeps inputs and probabilities as Arrow batches, so a bulk read
(`PredictionLogStore.batches_after`) arrives as columns: inputs as a struct (one field per feature),
probabilities as lists of numbers; only the prediction is JSON text, parsed once per distinct
value. `LogColumns.from_rows` builds the same columns from `LoggedRow` objects (late labels, tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from matchday.monitoring.drift import CategoryCodes, SketchedValues, category_codes, is_numeric, sketch_keys
from matchday.store import MIXED_PREDICTIONS as MIXED
from matchday.store import LoggedRow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_datetime(micros: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime (exact, unlike ``fromtimestamp``)."""
    return EPOCH + timedelta(microseconds=int(micros))


def to_micros(at: datetime) -> int:
    return (at - EPOCH) // _MICROSECOND


@dataclass(frozen=True)
class LogColumns:
    """Rows of one deployment version, in log order, as parallel columns. Numeric columns carry their
    sketch buckets (`SketchedValues`), worked out once so every window over these rows only counts."""

    ids: np.ndarray  # int64
    at: np.ndarray  # int64 microseconds since the epoch, UTC
    latency: SketchedValues  # seconds
    failed: np.ndarray  # bool: the row has an error
    inputs: pa.Table  # every row's inputs, one column per feature (null where absent)
    numeric: dict[str, SketchedValues]  # the numeric inputs' values, NaN where null
    labels: list[str | None]  # each distinct prediction as `label_text` (None for a null prediction)
    values: SketchedValues  # the numeric prediction, NaN where null or not a number
    codes: np.ndarray  # int32 index into ``labels`` per row
    probabilities: np.ndarray | None  # (rows, classes) float64, or None when no row has them
    has_probabilities: np.ndarray  # bool: the row's probabilities are present and of the expected width
    categories: dict[str, CategoryCodes]  # the text inputs' values as codes

    def __len__(self) -> int:
        return int(self.ids.size)

    def take(self, index: np.ndarray) -> LogColumns:
        return LogColumns(
            self.ids[index],
            self.at[index],
            self.latency.take(index),
            self.failed[index],
            self.inputs.take(pa.array(index, type=pa.int64())),
            {name: v.take(index) for name, v in self.numeric.items()},
            self.labels,
            self.values.take(index),
            self.codes[index],
            None if self.probabilities is None else self.probabilities[index],
            self.has_probabilities[index],
            {name: c.take(index) for name, c in self.categories.items()},
        )

    def slice(self, start: int, stop: int) -> LogColumns:
        """Rows ``start`` to ``stop``: `take` of a contiguous range, as views (nothing copied)."""
        return LogColumns(
            self.ids[start:stop],
            self.at[start:stop],
            self.latency.slice(start, stop),
            self.failed[start:stop],
            self.inputs.slice(start, stop - start),
            {name: v.slice(start, stop) for name, v in self.numeric.items()},
            self.labels,
            self.values.slice(start, stop),
            self.codes[start:stop],
            None if self.probabilities is None else self.probabilities[start:stop],
            self.has_probabilities[start:stop],
            {name: c.slice(start, stop) for name, c in self.categories.items()},
        )

    @property
    def predicted(self) -> np.ndarray:
        """Rows with a non-null prediction."""
        null = np.asarray([label is None for label in self.labels], dtype=bool)
        return ~null[self.codes] if null.size else np.zeros(len(self), dtype=bool)

    @classmethod
    def _of(
        cls,
        ids: np.ndarray,
        at: np.ndarray,
        latency: np.ndarray,
        failed: np.ndarray,
        inputs: pa.Table,
        labels: list[str | None],
        values: np.ndarray,
        codes: np.ndarray,
        probabilities: np.ndarray | None,
        has: np.ndarray,
    ) -> LogColumns:
        numeric = {
            name: sketch_keys(inputs.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False))
            for name in inputs.column_names
            if is_numeric(inputs.column(name).type)
        }
        categories = {}
        for name in inputs.column_names:
            coded = None if name in numeric else category_codes(inputs.column(name))
            if coded is not None:
                categories[name] = coded
        return cls(
            ids,
            at,
            sketch_keys(latency),
            failed,
            inputs,
            numeric,
            labels,
            sketch_keys(values),
            codes,
            probabilities,
            has,
            categories,
        )

    @classmethod
    def from_table(cls, table: pa.Table, features: Sequence[str] | None, classes: int | None) -> LogColumns:
        """From a bulk read of the log (one version's rows; `PredictionLogStore.batches_after` or
        `batch_after`); ``features`` None: every key seen."""
        at = table.column("at").cast(pa.int64()).to_numpy(zero_copy_only=False)
        inputs = _parse_inputs(table.column("inputs"), features)
        labels, values, codes = _parse_predictions(table.column("prediction"))
        probabilities, has = parse_probabilities(table.column("probabilities"), classes)
        return cls._of(
            table.column("id").to_numpy(zero_copy_only=False).astype(np.int64, copy=False),
            at,
            table.column("latency_seconds").to_numpy(zero_copy_only=False).astype(np.float64, copy=False),
            table.column("error").is_valid().to_numpy(zero_copy_only=False),
            inputs,
            labels,
            values,
            codes,
            probabilities,
            has,
        )

    @classmethod
    def from_rows(cls, rows: Sequence[LoggedRow], features: Sequence[str] | None, classes: int | None) -> LogColumns:
        """From rows already read as objects: the same columns `from_table` builds from JSON text."""
        names = list(features) if features is not None else sorted({k for r in rows for k in r.inputs})
        distinct: dict[Any, int] = {}
        labels: list[str | None] = []
        codes = np.empty(len(rows), dtype=np.int32)
        values = np.empty(len(rows), dtype=np.float64)
        for i, r in enumerate(rows):
            p = r.prediction
            key = _hashable(p)
            if key not in distinct:
                distinct[key] = len(labels)
                labels.append(None if p is None else label_text(p))
            codes[i] = distinct[key]
            values[i] = _number(p)
        probabilities, has = _probability_matrix([r.probabilities for r in rows], classes)
        return cls._of(
            np.fromiter((r.id for r in rows), dtype=np.int64, count=len(rows)),
            np.fromiter((to_micros(r.at) for r in rows), dtype=np.int64, count=len(rows)),
            np.fromiter((r.latency_seconds for r in rows), dtype=np.float64, count=len(rows)),
            np.fromiter((r.error is not None for r in rows), dtype=bool, count=len(rows)),
            _pivot([r.inputs for r in rows], names),
            labels,
            values,
            codes,
            probabilities,
            has,
        )


def _parse_inputs(column: pa.ChunkedArray, features: Sequence[str] | None) -> pa.Table:
    """The struct of the rows' inputs as one column per feature (null where a row has none)."""
    n = len(column)
    struct = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    present = [f.name for f in struct.type]
    names = list(features) if features is not None else sorted(present)
    arrays = []
    for name in names:
        if name not in present:
            arrays.append(pa.nulls(n))
            continue
        array = pc.struct_field(struct, name)
        if pa.types.is_struct(array.type) or pa.types.is_timestamp(array.type):
            array = pa.array([None if v is None else str(v) for v in array.to_pylist()], type=pa.string())
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=names) if names else pa.table({})


def _pivot(objects: Sequence[dict[str, Any]], features: list[str] | None) -> pa.Table:
    """Input dicts into columns, a feature's mixed types compared as text."""
    names = features if features is not None else sorted({k for o in objects for k in o})
    arrays = {}
    for name in names:
        values = [o.get(name) for o in objects]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[name] = pa.array([None if v is None else str(v) for v in values])
    return pa.table(arrays) if arrays else pa.table({})


def _parse_predictions(column: pa.ChunkedArray) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """Each distinct prediction turned into a label once (a classifier has a few over a million rows)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(array)
    if pa.types.is_null(array.type) or n == 0:
        return (
            ([None], np.full(n, np.nan), np.zeros(n, dtype=np.int32)) if n else ([], np.empty(0), np.empty(0, np.int32))
        )
    if array.type == MIXED:  # values of mixed types, each as its JSON text: parsed once per distinct text
        encoded = pc.dictionary_encode(array)
        parsed = [*(orjson.loads(t) for t in encoded.dictionary.to_pylist()), None]
        codes = encoded.indices.fill_null(len(parsed) - 1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    elif pa.types.is_list(array.type) or pa.types.is_struct(array.type) or pa.types.is_large_list(array.type):
        values = array.to_pylist()  # several outputs per row: rare, compared as their text
        distinct: dict[Any, int] = {}
        codes = np.empty(n, dtype=np.int32)
        for i, value in enumerate(values):
            codes[i] = distinct.setdefault(_hashable(value), len(distinct))
        firsts = {code: values[i] for i, code in reversed(list(enumerate(codes.tolist())))}
        parsed = [firsts[c] for c in range(len(distinct))]
    else:
        encoded = pc.dictionary_encode(array)
        parsed = [*encoded.dictionary.to_pylist(), None]  # the last code: a null prediction
        codes = encoded.indices.fill_null(len(parsed) - 1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    labels = [None if p is None else label_text(p) for p in parsed]
    numbers = np.asarray([_number(p) for p in parsed], dtype=np.float64)
    return labels, numbers[codes], codes


def parse_probabilities(column: pa.ChunkedArray, classes: int | None) -> tuple[np.ndarray | None, np.ndarray]:
    """Lists of numbers as a matrix; a row absent or of another width than expected is missing."""
    n = len(column)
    p = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if n == 0 or p.null_count == n:
        return None, np.zeros(n, dtype=bool)
    lengths = pc.list_value_length(p).fill_null(-1).to_numpy(zero_copy_only=False)
    width = classes if classes else int(lengths[lengths > 0][0]) if (lengths > 0).any() else 0
    has = lengths == width
    if width == 0 or not has.any():
        return None, np.zeros(n, dtype=bool)
    matrix = np.full((n, width), np.nan)
    flat = pc.list_flatten(p.filter(pa.array(has))).cast(pa.float64()).to_numpy(zero_copy_only=False)
    matrix[has] = flat.reshape(-1, width)
    return matrix, has


def _probability_matrix(values: Sequence[Any], classes: int | None) -> tuple[np.ndarray | None, np.ndarray]:
    """Rows of probabilities as a matrix; a row absent or of another width is marked missing."""
    n = len(values)
    width = classes if classes else next((len(v) for v in values if isinstance(v, list)), 0)
    has = np.fromiter((isinstance(v, list) and len(v) == width for v in values), dtype=bool, count=n)
    if width == 0 or not has.any():
        return None, np.zeros(n, dtype=bool)
    matrix = np.full((n, width), np.nan)
    rows = [v for v, ok in zip(values, has) if ok]
    try:
        matrix[has] = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):  # a value that is not a number: that row has none
        for i in np.flatnonzero(has):
            try:
                matrix[i] = np.asarray(values[int(i)], dtype=np.float64)
            except (TypeError, ValueError):
                has[i] = False
    return matrix, has


def _hashable(value: Any) -> Any:
    try:
        hash(value)
        return (type(value).__name__, value)
    except TypeError:
        return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def _number(value: Any) -> float:
    """A prediction as a number: NaN for null, booleans and anything not numeric (as logged)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float("nan")


def label_text(value: Any) -> str:
    """Labels compared as text, with 1.0 read as "1" (JSON round trips turn ints into floats)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
