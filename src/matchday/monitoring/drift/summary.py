"""Mergeable window summaries: a window of logged rows summarised in one pass, windows combined
(hour into day) by adding, never by rereading rows.

Numeric columns keep exact count, missing, sum, sum of squares, min and max, and a log-bucket
quantile sketch (the DDSketch idea): every value lands in a bucket whose bounds are within
``alpha`` (0.5%) of it, relative, so any quantile is known to within 0.5% of its value and two
sketches merge by adding bucket counts. Categorical columns keep every category's count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from matchday.monitoring.drift.samples import PSEUDO_SAMPLE_MAX, CategoricalSample, NumericSample, categorical_from_column

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
            values = column.cast(pa.float64()).to_numpy(zero_copy_only=False) if column.null_count else \
                column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            columns[name] = summarize_numeric(values)
        else:
            sample = categorical_from_column(column)
            columns[name] = {"kind": "categorical", "count": sample.n, "missing": sample.missing, "categories": sample.counts}
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
    out: dict[str, Any] = {"kind": "numeric", "count": int(finite_values.size),
                           "missing": int(sketched.values.size - finite_values.size),
                           "sum": float(finite_values.sum()), "sumsq": float(np.dot(finite_values, finite_values))}
    if finite_values.size:
        out.update(min=float(finite_values.min()), max=float(finite_values.max()))
    counted = sketched.finite & ~sketched.zero
    out["sketch"] = {"alpha": ALPHA, "zero": int(sketched.zero.sum()),
                     "positive": _bucket_counts(sketched.keys[counted & (sketched.values > 0)]),
                     "negative": _bucket_counts(sketched.keys[counted & (sketched.values < 0)])}
    return out


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
    """The summary of both windows' rows together (exact for counts, sums, min, max and buckets)."""
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
            columns[name] = {"kind": "categorical", "count": x["count"] + y["count"],
                             "missing": x["missing"] + y["missing"], "categories": counts}
            continue
        merged = {"kind": "numeric", "count": x["count"] + y["count"], "missing": x["missing"] + y["missing"],
                  "sum": x["sum"] + y["sum"], "sumsq": x["sumsq"] + y["sumsq"],
                  "sketch": {"alpha": x["sketch"]["alpha"], "zero": x["sketch"]["zero"] + y["sketch"]["zero"],
                             "positive": _merge_buckets(x["sketch"]["positive"], y["sketch"]["positive"]),
                             "negative": _merge_buckets(x["sketch"]["negative"], y["sketch"]["negative"])}}
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
    uniques, inverse = np.unique(pairs[:, 0], return_inverse=True)
    return np.column_stack([uniques, np.bincount(inverse, weights=pairs[:, 1]).astype(np.int64)]).tolist()


def sample_of_summary(column: dict[str, Any]) -> NumericSample | CategoricalSample:
    """A (pseudo-)sample for the drift tests, rebuilt from one column's summary."""
    if column["kind"] == "categorical":
        return CategoricalSample({str(k): int(v) for k, v in column["categories"].items()}, column["count"], column["missing"])
    n = int(column["count"])
    if n == 0:
        return NumericSample(np.empty(0), 0, 0.0, int(column["missing"]), False, 0)
    sketch = column["sketch"]
    gamma = (1 + sketch["alpha"]) / (1 - sketch["alpha"])
    values, counts = [], []
    for sign, key in ((-1.0, "negative"), (1.0, "positive")):
        if sketch[key]:
            pairs = np.asarray(sketch[key], dtype=np.float64)
            values.append(sign * 2 * gamma ** pairs[:, 0] / (gamma + 1))
            counts.append(pairs[:, 1])
    if sketch["zero"]:
        values.append(np.array([0.0]))
        counts.append(np.array([float(sketch["zero"])]))
    v, c = np.concatenate(values), np.concatenate(counts)
    order = np.argsort(v)
    v, c = v[order], c[order]
    v = np.clip(v, column["min"], column["max"])  # the extreme buckets never reach past the true extremes
    size = min(n, PSEUDO_SAMPLE_MAX)
    positions = (np.arange(size) + 0.5) / size * n
    pseudo = v[np.searchsorted(np.cumsum(c), positions, side="right").clip(0, len(v) - 1)]
    mean = column["sum"] / n
    std = math.sqrt(max(column["sumsq"] / n - mean * mean, 0.0))
    return NumericSample(pseudo, n, std, int(column["missing"]), False, int(len(v)))
