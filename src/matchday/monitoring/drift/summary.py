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
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

import numpy as np
import pyarrow as pa

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


def summarize_table(table: pa.Table) -> dict[str, Any]:
    """One pass over ``table``: a JSON-able summary per column."""
    from matchday.monitoring.drift.engine import is_numeric

    columns = {}
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


def summarize_numeric(values: np.ndarray) -> dict[str, Any]:
    return summarize_sketched(sketch_keys(values))


@dataclass(frozen=True)
class SketchedValues:
    """Values with their sketch bucket worked out: computed once for a batch of rows, then any subset
    of them (a window, a count window, a segment) is summarised by counting, without another log."""

    values: np.ndarray  # float64, NaN and inf as logged
    finite: np.ndarray  # bool
    keys: np.ndarray  # int64 bucket of the magnitude (0 where not finite)
    zero: np.ndarray  # bool: finite and within _ZERO of zero

    def take(self, index: np.ndarray) -> SketchedValues:
        return SketchedValues(self.values[index], self.finite[index], self.keys[index], self.zero[index])


def sketch_keys(values: np.ndarray) -> SketchedValues:
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    magnitude = np.abs(np.where(finite, values, 1.0))
    zero = finite & (magnitude < _ZERO)
    with np.errstate(divide="ignore", invalid="ignore"):
        keys = np.ceil(np.log(np.where(zero, 1.0, magnitude)) / _LOG_GAMMA).astype(np.int64)
    return SketchedValues(values, finite, keys, zero)


def summarize_sketched(sketched: SketchedValues) -> dict[str, Any]:
    finite_values = sketched.values[sketched.finite]
    out: dict[str, Any] = {
        "kind": "numeric",
        "count": int(finite_values.size),
        "missing": int(sketched.values.size - finite_values.size),
    }
    if finite_values.size:
        lo, hi = float(finite_values.min()), float(finite_values.max())
        out["moments"] = Moments.of_values(finite_values, max(-lo, hi)).to_json()
        out.update(min=lo, max=hi)
    else:
        out["moments"] = NO_VALUES.to_json()
    counted = sketched.finite & ~sketched.zero
    out["sketch"] = {
        "alpha": ALPHA,
        "zero": int(sketched.zero.sum()),
        "positive": _bucket_counts(sketched.keys[counted & (sketched.values > 0)]),
        "negative": _bucket_counts(sketched.keys[counted & (sketched.values < 0)]),
    }
    return out


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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scale": self.scale, "mean": self.mean, "m2": self.m2}
        if self.approximate:
            out["approximate"] = True
        return out


NO_VALUES = Moments(0, 0, 0.0, 0.0)
_FLOAT_MAX = float(np.finfo(np.float64).max)


def moments(column: dict[str, Any]) -> Moments:
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


def _moments_from_sketch(column: dict[str, Any], count: int) -> Moments:
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


def column_mean(column: dict[str, Any]) -> float | None:
    """The mean of a numeric column's summary (None when it has no values)."""
    return moments(column).value_mean


def column_std(column: dict[str, Any]) -> float | None:
    """The population standard deviation of a numeric column's summary (None when it has no values)."""
    return moments(column).value_std


def _bucket_counts(keys: np.ndarray) -> list[list[int]]:
    if not keys.size:
        return []
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo > 1_000_000:  # not a realistic spread of buckets; sort instead of counting
        uniques, counts = np.unique(keys, return_counts=True)
        return np.column_stack([uniques, counts]).tolist()
    counts = np.bincount(keys - lo)
    present = np.flatnonzero(counts)
    return np.column_stack([present + lo, counts[present]]).tolist()


def merge_summaries(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The summary of both windows' rows together (exact for counts, min, max and buckets; the moments
    to rounding). A numeric column stored without usable sums is repaired from its sketch (`moments`)."""
    columns = {}
    for name in a["columns"].keys() | b["columns"].keys():
        x, y = a["columns"].get(name), b["columns"].get(name)
        if x is None or y is None:
            columns[name] = x or y
            continue
        if x["kind"] != y["kind"]:
            raise ValueError(f"column {name!r} is {x['kind']} in one window and {y['kind']} in the other")
        if x["kind"] == "categorical":
            counts = dict(x["categories"])
            for k, v in y["categories"].items():
                counts[k] = counts.get(k, 0) + v
            columns[name] = {
                "kind": "categorical",
                "count": x["count"] + y["count"],
                "missing": x["missing"] + y["missing"],
                "categories": counts,
            }
            continue
        merged = {
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
        columns[name] = merged
    return {"rows": a["rows"] + b["rows"], "columns": columns}


def _merge_buckets(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    if not a or not b:
        return [list(p) for p in (a or b)]
    pairs = np.array(a + b, dtype=np.int64)
    keys = pairs[:, 0]
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo > 1_000_000:  # not a realistic spread of buckets; sort instead of counting
        uniques, inverse = np.unique(keys, return_inverse=True)
        return np.column_stack([uniques, np.bincount(inverse, weights=pairs[:, 1]).astype(np.int64)]).tolist()
    counts = np.bincount(keys - lo, weights=pairs[:, 1]).astype(np.int64)
    present = np.flatnonzero(np.bincount(keys - lo))  # a bucket stays listed even where its count is 0
    return np.column_stack([present + lo, counts[present]]).tolist()


def sample_of_summary(column: dict[str, Any]) -> NumericSample | CategoricalSample:
    """A (pseudo-)sample for the drift tests, rebuilt from one column's summary."""
    if column["kind"] == "categorical":
        return CategoricalSample(
            {str(k): int(v) for k, v in column["categories"].items()}, column["count"], column["missing"]
        )
    n = int(column["count"])
    if n == 0:
        return NumericSample(np.empty(0), 0, 0.0, int(column["missing"]), False, 0)
    v, c = _sketch_points(column)
    size = min(n, PSEUDO_SAMPLE_MAX)
    positions = (np.arange(size) + 0.5) / size * n
    pseudo = v[np.searchsorted(np.cumsum(c), positions, side="right").clip(0, len(v) - 1)]
    return NumericSample(pseudo, n, column_std(column) or 0.0, int(column["missing"]), False, int(len(v)))


def _sketch_points(column: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The sketch's buckets as (a value standing for the bucket, its count), in value order; the
    extreme buckets clipped to the column's min and max, which they never truly reach past."""
    sketch = column["sketch"]
    gamma = (1 + sketch["alpha"]) / (1 - sketch["alpha"])
    values, counts = [], []
    for sign, key in ((-1.0, "negative"), (1.0, "positive")):
        if sketch[key]:
            pairs = np.asarray(sketch[key], dtype=np.float64).reshape(-1, 2)
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
