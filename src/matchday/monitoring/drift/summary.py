"""Mergeable window summaries: a window of logged rows summarised in one pass, windows combined
(hour into day) by adding, never by rereading rows.

Numeric columns keep exact count, missing, min and max, the mean and spread as `Moments` (scaled by
a power of two so they stay finite for any finite value), and a log-bucket quantile sketch (the
DDSketch idea): every value lands in a bucket whose bounds are within ``alpha`` (0.5%) of it,
relative, so any quantile is known to within 0.5% of its value and two sketches merge by adding
bucket counts. Categorical columns keep every category's count.

Read a numeric column's mean and standard deviation with `column_mean` and `column_std`, never
from its fields: summaries stored before `Moments` keep a plain ``sum`` and ``sumsq`` (null where
an overflow made them infinite), and these functions read, and if need be repair, every form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, NotRequired, TypedDict, TypeGuard, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from matchday.monitoring.drift.samples import (
    PSEUDO_SAMPLE_MAX,
    CategoricalSample,
    NumericSample,
    categorical_from_column,
)
from matchday.monitoring.drift.scaling import (
    MAX_SCALE,
    scale_array,
    scale_down,
    scale_for,
    unscale,
)

ALPHA = 0.005
_GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
_ZERO = 1e-12  # values closer to zero than this share one bucket


class MomentsJson(TypedDict):
    """`Moments` as stored (its count is the column's)."""

    scale: int
    mean: float
    m2: float
    approximate: NotRequired[bool]


class Sketch(TypedDict):
    """Bucket counts on each side of zero, ``[[key, count], ...]`` by key; `Buckets` in a lazy summary."""

    alpha: float
    zero: int
    positive: list[list[int]] | Buckets
    negative: list[list[int]] | Buckets


class NumericSummary(TypedDict):
    kind: Literal["numeric"]
    count: int  # finite values
    missing: int
    moments: NotRequired[MomentsJson]  # (absent from summaries stored before it: they keep sum and sumsq)
    sum: NotRequired[float | None]
    sumsq: NotRequired[float | None]
    min: NotRequired[float]  # absent when there is no finite value
    max: NotRequired[float]
    sketch: Sketch


class CategoricalSummary(TypedDict):
    kind: Literal["categorical"]
    count: int
    missing: int
    categories: dict[str, int]  # every value's count, keyed by its str


ColumnSummary = NumericSummary | CategoricalSummary


class TableSummary(TypedDict):
    """A table's summary, or a window's inputs: mergeable by `merge_summaries`."""

    rows: int
    columns: dict[str, ColumnSummary]


def summarize_table(table: pa.Table) -> TableSummary:
    """One pass over ``table``: a JSON-able summary per column."""
    from matchday.monitoring.drift.engine import is_numeric

    columns: dict[str, ColumnSummary] = {}
    for name in table.column_names:
        column = table.column(name)
        if is_numeric(column.type):
            values = (
                column.cast(pa.float64()).to_numpy(zero_copy_only=False)
                if column.null_count
                else column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            )
            columns[name] = summarize_numeric(values)
        else:
            sample = categorical_from_column(column)
            columns[name] = {
                "kind": "categorical",
                "count": sample.n,
                "missing": sample.missing,
                "categories": sample.counts,
            }
    return {"rows": table.num_rows, "columns": columns}


def summarize_numeric(values: np.ndarray) -> NumericSummary:
    return summarize_sketched(sketch_keys(values))


@dataclass(frozen=True)
class SketchedValues:
    """Values with their sketch bucket worked out: computed once for a batch of rows, then any subset
    of them (a window, a count window, a segment) is summarised by counting, without another log."""

    values: np.ndarray  # float64, NaN and inf as logged
    finite: np.ndarray  # bool
    codes: np.ndarray  # int64: 2 * bucket key + 1 if negative, for a value a sketch side counts; else ``none``
    zero: np.ndarray  # bool: finite and within _ZERO of zero
    none: int  # the code of a value neither side counts (zero, not finite): below every other code

    def take(self, index: np.ndarray) -> SketchedValues:
        return SketchedValues(self.values[index], self.finite[index], self.codes[index], self.zero[index], self.none)

    def slice(self, start: int, stop: int) -> SketchedValues:
        """Rows ``start`` to ``stop`` (views: `take` of a contiguous range, without copying)."""
        return SketchedValues(
            self.values[start:stop], self.finite[start:stop], self.codes[start:stop], self.zero[start:stop], self.none
        )


@dataclass(frozen=True)
class CategoryCodes:
    """A text column's values as codes into its distinct values, worked out once for a batch of rows:
    any subset of them is then summarised (`summarize_coded`) by counting codes."""

    codes: np.ndarray  # int32 index into ``labels``, -1 where null
    labels: list[str]

    def take(self, index: np.ndarray) -> CategoryCodes:
        return CategoryCodes(self.codes[index], self.labels)

    def slice(self, start: int, stop: int) -> CategoryCodes:
        return CategoryCodes(self.codes[start:stop], self.labels)


def category_codes(column: pa.ChunkedArray | pa.Array) -> CategoryCodes | None:
    """The codes of a text column (None for any other type: summarised by `summarize_table`)."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(array)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return CategoryCodes(codes, encoded.dictionary.to_pylist())


def summarize_coded(coded: CategoryCodes, rows: np.ndarray | None = None) -> CategoricalSummary:
    """A text column's summary, as `summarize_table` makes it (of the ``rows`` only, a mask, if given):
    the count of every value present (a text's ``str`` is itself), and how many are missing."""
    codes = coded.codes if rows is None else coded.codes[rows]
    valid = codes[codes >= 0]
    counts = np.bincount(valid, minlength=len(coded.labels))
    return {
        "kind": "categorical",
        "count": int(valid.size),
        "missing": int(codes.size - valid.size),
        "categories": {coded.labels[i]: int(counts[i]) for i in np.flatnonzero(counts).tolist()},
    }


def sketch_keys(values: np.ndarray) -> SketchedValues:
    """Each value's sketch bucket and side as one code, so a subset's buckets on both sides are one
    count of its codes (`summarize_sketched`)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    magnitude = np.where(finite, values, 1.0)  # the steps below in place: the same numbers, fewer copies
    np.abs(magnitude, out=magnitude)
    zero = magnitude < _ZERO  # (not finite: 1.0 here, never zero)
    np.copyto(magnitude, 1.0, where=zero)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log(magnitude, out=magnitude)
        np.divide(magnitude, _LOG_GAMMA, out=magnitude)
        np.ceil(magnitude, out=magnitude)
    codes = magnitude.astype(np.int64)
    codes *= 2
    codes += values < 0
    counted = finite & ~zero
    every = bool(counted.all())
    lowest = int(codes.min(initial=0)) if every else int(np.min(codes, where=counted, initial=0))
    if not every:
        codes[~counted] = lowest - 1
    return SketchedValues(values, finite, codes, zero, lowest - 1)


def _side_buckets(codes: np.ndarray, none: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The (keys ascending, counts) of the positive and of the negative side, from values' codes."""
    empty = np.empty(0, dtype=np.int64)
    if not codes.size:
        return (empty, empty), (empty, empty)
    lo, hi = int(codes.min()), int(codes.max())
    if hi - lo > 2_000_000:  # not a realistic spread of buckets; sort instead of counting
        present, counts = np.unique(codes, return_counts=True)
        counts = counts.astype(np.int64, copy=False)
    else:
        per_code = np.bincount(codes - lo)
        present = np.flatnonzero(per_code)
        counts = per_code[present]
        present = present + lo
    counted = present != none
    present, counts = present[counted], counts[counted]
    negative = (present & 1).astype(bool)
    keys = present >> 1
    positive = ~negative
    return (keys[positive], counts[positive]), (keys[negative], counts[negative])


def summarize_sketched(
    sketched: SketchedValues, *, lazy: bool = False, rows: np.ndarray | None = None
) -> NumericSummary:
    """A numeric column's summary; ``rows`` (a mask): of those rows only, as of ``sketched.take(rows)``
    without the copy. ``lazy``: its sketch's buckets as `Buckets` (arrays, merged without being listed)
    until they are written (`Buckets.to_json`), for summaries merged many times before they are stored."""
    if rows is None:
        size = sketched.values.size
        every = bool(sketched.finite.all())  # the common case: no copy of the values
        finite_values = sketched.values if every else sketched.values[sketched.finite]
        codes = sketched.codes
        zeros = int(np.count_nonzero(sketched.zero))
    else:
        size = int(np.count_nonzero(rows))
        finite_values = sketched.values[sketched.finite & rows]
        codes = sketched.codes[rows]
        zeros = int(np.count_nonzero(sketched.zero & rows))
    positive, negative = _side_buckets(codes, sketched.none)
    sketch: Sketch = {
        "alpha": ALPHA,
        "zero": zeros,
        "positive": Buckets([positive]) if lazy else Buckets([positive]).to_list(),
        "negative": Buckets([negative]) if lazy else Buckets([negative]).to_list(),
    }
    count, missing = int(finite_values.size), int(size - finite_values.size)
    if not finite_values.size:
        return {"kind": "numeric", "count": count, "missing": missing, "moments": NO_VALUES.to_json(), "sketch": sketch}
    lo, hi = float(finite_values.min()), float(finite_values.max())
    return {
        "kind": "numeric",
        "count": count,
        "missing": missing,
        "moments": Moments.of_values(finite_values, max(-lo, hi)).to_json(),
        "min": lo,
        "max": hi,
        "sketch": sketch,
    }


class Buckets:
    """A sketch's bucket counts as arrays (keys ascending, their counts): what a lazy summary holds in
    place of the ``[[key, count], ...]`` list. Merging only collects the parts; they are added once,
    when the buckets are listed (`to_list`) — the same list `_merge_buckets` builds pair by pair, as
    the counts are integers (a bucket listed in any part stays listed, as there)."""

    __slots__ = ("_parts",)

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self._parts = parts

    def merge(self, other: Buckets) -> Buckets:
        return Buckets(self._parts + other._parts)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys ascending, counts), every part added up (and kept so, for the next call)."""
        if len(self._parts) > 1:
            self._parts = [_added(self._parts)]
        return self._parts[0]

    def to_list(self) -> list[list[int]]:
        return self.to_json().tolist()

    def to_json(self) -> np.ndarray:
        """The ``[[key, count], ...]`` form as one (n, 2) int64 array: the store's JSON writer (orjson)
        writes it as that list without a Python object per bucket (listing them was a fifth of a tick)."""
        keys, counts = self.arrays()
        return np.column_stack([keys, counts]) if keys.size else np.empty((0, 2), dtype=np.int64)

    @classmethod
    def of_pairs(cls, pairs: Any) -> Buckets:
        """Buckets from the stored ``[[key, count], ...]`` form (or an (n, 2) array of it)."""
        array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return cls([(array[:, 0], array[:, 1])])

    def __len__(self) -> int:
        return int(self.arrays()[0].size)

    def __eq__(self, other: object) -> bool:
        """Equal to the same buckets in any form (a summary compared with one read back from the store)."""
        if isinstance(other, Buckets):
            other = other.to_list()
        if isinstance(other, (list, np.ndarray)):
            return self.to_list() == np.asarray(other, dtype=np.int64).reshape(-1, 2).tolist()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Buckets({self.to_list()!r})"


def bucket_pairs(buckets: Any) -> np.ndarray:
    """A sketch side's buckets, in any of its forms (listed, `Buckets`, an array), as an (n, 2) array."""
    if isinstance(buckets, Buckets):
        return buckets.to_json()
    return np.asarray(buckets, dtype=np.int64).reshape(-1, 2)


def _added(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Bucket arrays added key by key (each part's keys distinct): every key listed in a part, once."""
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    if not keys.size:
        return keys, counts
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo > 1_000_000:
        uniques, inverse = np.unique(keys, return_inverse=True)
        return uniques.astype(np.int64, copy=False), np.bincount(inverse, weights=counts).astype(np.int64)
    offset = keys - lo
    total = np.bincount(offset, weights=counts).astype(np.int64)  # exact: counts far below 2**53
    present = np.flatnonzero(np.bincount(offset))
    return present + lo, total[present]


class CorruptSummary(ValueError):
    """A stored summary that cannot be read or repaired (its numbers and its sketch both unusable)."""


@dataclass(frozen=True)
class Moments:
    """A numeric column's count, mean and M2 (the sum of squared deviations from the mean), in units
    of ``2**scale``: ``mean`` is the mean of ``x * 2**-scale``, ``m2`` that of ``(x * 2**-scale - mean)**2``
    summed.

    Scaled because a logged value may be any finite float and a plain sum of squares of 1e200
    overflows (stored as null, it stopped every later merge). With the largest scaled value in
    [0.5, 1), ``|mean| < 1`` and ``m2 < 4 * count`` whatever the input, and a column of tiny values
    keeps its spread (scaled up, the squares do not underflow). Mean and M2 rather than sum and sum of
    squares because Chan's merge adds only non-negative terms: the spread of values far from zero
    does not cancel away as ``sumsq / n - mean**2`` does.
    """

    count: int
    scale: int
    mean: float
    m2: float
    approximate: bool = False  # rebuilt from the sketch's buckets: a stored summary had no usable numbers

    @classmethod
    def of_values(cls, values: np.ndarray, magnitude: float) -> Moments:
        """Of finite ``values`` whose largest magnitude is ``magnitude`` (known from their min and max)."""
        k = scale_for(magnitude)
        if abs(k) < 400:  # no square over- or underflows: computed as is, the results scaled (the same numbers)
            mean = float(values.mean())
            deviation = values - mean
            m2 = float(np.dot(deviation, deviation))
            return cls(int(values.size), k, scale_down(mean, k), scale_down(m2, k, power=2))
        scaled = scale_array(values, k)
        mean = float(scaled.mean())
        deviation = scaled - mean
        return cls(int(values.size), k, mean, float(np.dot(deviation, deviation)))

    def merge(self, other: Moments) -> Moments:
        """Both windows' moments (Chan et al.'s pairwise update), at the larger scale."""
        if not other.count or not self.count:
            return replace(self if self.count else other, approximate=self.approximate or other.approximate)
        k = max(self.scale, other.scale)
        a_mean, a_m2 = scale_down(self.mean, k - self.scale), scale_down(self.m2, k - self.scale, power=2)
        b_mean, b_m2 = scale_down(other.mean, k - other.scale), scale_down(other.m2, k - other.scale, power=2)
        n = self.count + other.count
        delta = b_mean - a_mean  # at most 2: both scaled means lie in (-1, 1)
        return Moments(
            n,
            k,
            a_mean + delta * (other.count / n),
            a_m2 + b_m2 + delta * delta * (self.count / n) * other.count,
            self.approximate or other.approximate,
        )

    @property
    def value_mean(self) -> float | None:
        return unscale(self.mean, self.scale) if self.count else None

    @property
    def value_std(self) -> float | None:
        """The population standard deviation (ddof=0): the root taken before scaling back, so it is
        finite wherever the values are."""
        if not self.count:
            return None
        return min(unscale(math.sqrt(max(self.m2, 0.0) / self.count), self.scale), _FLOAT_MAX)

    def to_json(self) -> MomentsJson:
        out: MomentsJson = {"scale": self.scale, "mean": self.mean, "m2": self.m2}
        if self.approximate:
            out["approximate"] = True
        return out


NO_VALUES = Moments(0, 0, 0.0, 0.0)
_FLOAT_MAX = float(np.finfo(np.float64).max)


def moments(column: Mapping[str, Any]) -> Moments:
    """A numeric column's `Moments`, from any stored form: this one, the plain ``sum`` and ``sumsq`` of
    summaries stored before it (no scale: exponent 0), or, where those are null, not numbers or not
    finite (the overflow bug left such summaries in databases), rebuilt from the sketch's buckets and
    marked approximate. `CorruptSummary` when even the sketch is unusable."""
    count = column.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise CorruptSummary(f"a numeric column's count is {count!r}")
    if count == 0:
        return NO_VALUES
    stored = column.get("moments")
    if isinstance(stored, dict):
        scale, mean, m2 = stored.get("scale"), stored.get("mean"), stored.get("m2")
        if isinstance(scale, int) and -MAX_SCALE <= scale <= MAX_SCALE and _finite(mean) and _finite(m2) and m2 >= 0:
            return Moments(count, scale, float(mean), float(m2), bool(stored.get("approximate", False)))
    elif _finite(column.get("sum")) and _finite(column.get("sumsq")):
        total, squares = float(column["sum"]), float(column["sumsq"])
        # the root mean square bounds the mean and the spread (min and max agree where they are sound)
        bounds = [abs(float(b)) for b in (column.get("min"), column.get("max")) if _finite(b)]
        k = scale_for(max([*bounds, math.sqrt(max(squares, 0.0) / count)]))
        mean = scale_down(total, k) / count
        return Moments(count, k, mean, max(scale_down(squares, k, power=2) - scale_down(total, k) * mean, 0.0))
    return _moments_from_sketch(column, count)


def _moments_from_sketch(column: Mapping[str, Any], count: int) -> Moments:
    """Approximate moments from the bucket counts: every value within ``alpha`` of its bucket's, so the
    mean is within 0.5% (relative to the values' magnitudes) and the spread close to it."""
    try:
        values, counts = _sketch_points(column)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CorruptSummary(f"a numeric column's sums and sketch are both unusable ({exc})") from exc
    total = float(counts.sum())
    if not total or not np.isfinite(values).all():
        raise CorruptSummary("a numeric column's sums are unusable and its sketch is empty")
    k = scale_for(float(np.abs(values).max()))
    scaled = scale_array(values, k)
    mean = float(np.dot(counts, scaled) / total)
    m2 = float(np.dot(counts, (scaled - mean) ** 2)) * (count / total)
    return Moments(count, k, mean, m2, approximate=True)


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def column_mean(column: Mapping[str, Any]) -> float | None:
    """The mean of a numeric column's summary (None when it has no values)."""
    return moments(column).value_mean


def column_std(column: Mapping[str, Any]) -> float | None:
    """The population standard deviation of a numeric column's summary (None when it has no values)."""
    return moments(column).value_std


def merge_summaries(a: TableSummary, b: TableSummary) -> TableSummary:
    """The summary of both windows' rows together (exact for counts, min, max and buckets; the moments
    to rounding). A numeric column stored without usable sums is repaired from its sketch (`moments`)."""
    columns: dict[str, ColumnSummary] = {}
    for name in a["columns"].keys() | b["columns"].keys():
        x, y = a["columns"].get(name), b["columns"].get(name)
        if x is None or y is None:
            columns[name] = b["columns"][name] if x is None else x
            continue
        if x["kind"] != y["kind"]:
            raise ValueError(f"column {name!r} is {x['kind']} in one window and {y['kind']} in the other")
        if x["kind"] == "categorical" and y["kind"] == "categorical":
            columns[name] = _merge_categorical(x, y)
        else:  # numeric: a stored kind is not checked further (merged as numbers, as it always was)
            columns[name] = _merge_numeric(cast(NumericSummary, x), cast(NumericSummary, y))
    return {"rows": a["rows"] + b["rows"], "columns": columns}


def _merge_categorical(x: CategoricalSummary, y: CategoricalSummary) -> CategoricalSummary:
    counts = dict(x["categories"])
    for k, v in y["categories"].items():
        counts[k] = counts.get(k, 0) + v
    return {
        "kind": "categorical",
        "count": x["count"] + y["count"],
        "missing": x["missing"] + y["missing"],
        "categories": counts,
    }


def _merge_numeric(x: NumericSummary, y: NumericSummary) -> NumericSummary:
    merged: NumericSummary = {
        "kind": "numeric",
        "count": x["count"] + y["count"],
        "missing": x["missing"] + y["missing"],
        "moments": moments(x).merge(moments(y)).to_json(),
        "sketch": {
            "alpha": x["sketch"]["alpha"],
            "zero": x["sketch"]["zero"] + y["sketch"]["zero"],
            "positive": _merge_buckets(x["sketch"]["positive"], y["sketch"]["positive"]),
            "negative": _merge_buckets(x["sketch"]["negative"], y["sketch"]["negative"]),
        },
    }
    bounds = [v for v in (x.get("min"), y.get("min")) if v is not None]
    if bounds:
        merged["min"] = min(bounds)
        merged["max"] = max(v for v in (x.get("max"), y.get("max")) if v is not None)
    return merged


def _merge_buckets(a: list[list[int]] | Buckets, b: list[list[int]] | Buckets) -> list[list[int]] | Buckets:
    if isinstance(a, Buckets) or isinstance(b, Buckets):  # a lazy summary stays lazy: added when written
        x = a if isinstance(a, Buckets) else Buckets.of_pairs(a)
        y = b if isinstance(b, Buckets) else Buckets.of_pairs(b)
        return x.merge(y)
    if not len(a) or not len(b):
        return [list(p) for p in (a or b)]
    return Buckets.of_pairs(a).merge(Buckets.of_pairs(b)).to_list()  # added by `_added`, then listed


def sample_of_summary(column: ColumnSummary, size: int | None = None) -> NumericSample | CategoricalSample:
    """A (pseudo-)sample for the drift tests, rebuilt from one column's summary: of at most ``size``
    points (`PSEUDO_SAMPLE_MAX` if not given), fewer if the column has fewer values."""
    if column["kind"] == "categorical":
        return CategoricalSample(
            {str(k): int(v) for k, v in column["categories"].items()}, column["count"], column["missing"]
        )
    n = int(column["count"])
    if n == 0:
        return NumericSample(np.empty(0), 0, 0.0, int(column["missing"]), False, 0)
    v, c = _sketch_points(column)
    size = min(n, size or PSEUDO_SAMPLE_MAX)
    positions = (np.arange(size) + 0.5) / size * n
    pseudo = v[np.searchsorted(np.cumsum(c), positions, side="right").clip(0, len(v) - 1)]
    return NumericSample(pseudo, n, column_std(column) or 0.0, int(column["missing"]), False, int(len(v)))


def _sketch_points(column: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The sketch's buckets as (a value standing for the bucket, its count), in value order; the
    extreme buckets clipped to the column's min and max, which they never truly reach past."""
    sketch = column["sketch"]
    gamma = (1 + sketch["alpha"]) / (1 - sketch["alpha"])
    values, counts = [], []
    for sign, key in ((-1.0, "negative"), (1.0, "positive")):
        if len(sketch[key]):
            pairs = bucket_pairs(sketch[key]).astype(np.float64)
            with np.errstate(over="ignore"):  # the bucket of a value near the float maximum: capped, then clipped
                values.append(sign * np.minimum(2 * gamma ** pairs[:, 0] / (gamma + 1), _FLOAT_MAX))
            counts.append(pairs[:, 1])
    if sketch["zero"]:
        values.append(np.array([0.0]))
        counts.append(np.array([float(sketch["zero"])]))
    if not values:
        raise ValueError("the sketch has no buckets")
    v, c = np.concatenate(values), np.concatenate(counts)
    order = np.argsort(v)
    v, c = v[order], c[order]
    lo, hi = column.get("min"), column.get("max")
    if _finite(lo) and _finite(hi):
        v = np.clip(v, lo, hi)
    return v, c
