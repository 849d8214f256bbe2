"""The reference profile: what the drift engine needs of the reference data, without keeping it.

Numeric columns keep summary statistics, 1001 quantiles (KS and Wasserstein to within one
thousandth of the reference CDF) plus 101 more in each outer 0.1% (the tails), an exact histogram on 20 quantile bins (PSI, Jensen-Shannon),
and, when there are at most 1000 distinct values, the exact value counts (KS with ties, exactly).
Categorical columns keep every category's count up to 1000 categories, the rest pooled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from matchday.registry.tabular import column_kind, to_numpy
from matchday.store import CategoricalProfile, ColumnProfile, NumericProfile, ReferenceProfile

QUANTILE_POINTS = 1001
HISTOGRAM_BINS = 20
MAX_EXACT_VALUES = 1000
MAX_CATEGORIES = 1000
TAIL_POINTS = 101  # extra quantiles in each outer 0.1%, where heavy tails hide most of the distance
PROFILE_VERSION = 1


def profile_table(table: pa.Table) -> ReferenceProfile:
    """Profile every column of ``table``; one pass (a sort) per numeric column."""
    return {
        "version": PROFILE_VERSION,
        "rows": table.num_rows,
        "columns": {name: profile_column(table.column(name)) for name in table.column_names},
    }


def profile_column(column: pa.ChunkedArray | pa.Array | np.ndarray) -> ColumnProfile:
    if isinstance(column, np.ndarray):
        column = pa.array(column, from_pandas=True)
    kind = column_kind(column.type)
    if kind in ("integer", "float"):
        return profile_numeric(to_numpy(column).astype(np.float64, copy=False))
    return profile_categorical(column)


def profile_numeric(values: np.ndarray) -> NumericProfile:
    """Statistics of a numeric column; NaN counts as missing."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    missing = int(values.size - finite.size)
    out: NumericProfile = {"kind": "numeric", "count": int(finite.size), "missing": missing}
    if finite.size == 0:
        return out
    data = np.sort(finite)
    positions = np.linspace(0.0, 1.0, QUANTILE_POINTS) * (data.size - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, data.size - 1)
    frac = positions - lower
    quantiles = data[lower] * (1 - frac) + data[upper] * frac  # numpy's default "linear" method
    tail_u = np.concatenate([np.linspace(0.0, 0.001, TAIL_POINTS), np.linspace(0.999, 1.0, TAIL_POINTS)])
    tail_positions = tail_u * (data.size - 1)
    t_lower = np.floor(tail_positions).astype(np.int64)
    t_upper = np.minimum(t_lower + 1, data.size - 1)
    t_frac = tail_positions - t_lower
    tails = data[t_lower] * (1 - t_frac) + data[t_upper] * t_frac
    cuts = np.unique(quantiles[:: (QUANTILE_POINTS - 1) // HISTOGRAM_BINS][1:-1])
    counts = np.diff(np.searchsorted(data, cuts, side="left"), prepend=0, append=data.size)
    out["mean"] = float(data.mean())
    out["std"] = float(data.std(ddof=1)) if data.size > 1 else 0.0
    out["min"] = float(data[0])
    out["max"] = float(data[-1])
    out["quantiles"] = quantiles.tolist()
    out["tail_quantiles"] = {"u": tail_u.tolist(), "values": tails.tolist()}
    out["histogram"] = {"cuts": cuts.tolist(), "counts": counts.astype(int).tolist()}
    change = np.flatnonzero(np.diff(data)) + 1
    if change.size + 1 <= MAX_EXACT_VALUES:
        starts = np.concatenate(([0], change))
        out["values"] = data[starts].tolist()
        out["value_counts"] = np.diff(np.append(starts, data.size)).astype(int).tolist()
    return out


def profile_categorical(column: pa.ChunkedArray | pa.Array) -> CategoricalProfile:
    """Counts per category (string or boolean), the rarest beyond the cap pooled as ``other``."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    missing = column.null_count
    counts = pc.value_counts(pc.drop_null(column))
    cats = counts.field("values").to_pylist()
    ns = counts.field("counts").to_numpy()
    order = np.argsort(-ns, kind="stable")
    kept = order[:MAX_CATEGORIES]
    return {
        "kind": "categorical",
        "count": int(len(column) - missing),
        "missing": int(missing),
        "categories": {_key(cats[i]): int(ns[i]) for i in kept},
        "other_count": int(ns[order[MAX_CATEGORIES:]].sum()),
        "distinct": len(cats),
    }


def _key(value: Any) -> str:
    """JSON object keys are strings; booleans keep their Python spelling."""
    return str(value)
