"""One column's data, as the drift tests need it, from raw values or from a reference profile.

A numeric column is a sorted sample without NaN. From a stored profile (the reference data is not
kept) the sample is rebuilt: exactly from the value counts when the column has at most 1000
distinct values, otherwise as a pseudo-sample of the profile's 1001 quantiles. That approximation
moves any CDF by at most 1/1000 (plus the linear interpolation inside one quantile interval), so
KS statistics move by at most about 0.001; see docs/drift.md for the measured bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PSEUDO_SAMPLE_MAX = 20_001


@dataclass(frozen=True)
class NumericSample:
    values: np.ndarray  # sorted, finite; a pseudo-sample for profiles
    n: int  # the real number of non-missing values
    std: float  # population standard deviation (ddof=0)
    missing: int
    exact: bool  # values are the real data (not rebuilt from quantiles)
    distinct: int  # distinct values (a lower bound of 1001 when rebuilt from quantiles)

    @property
    def lo(self) -> float:
        return float(self.values[0]) if self.values.size else float("nan")

    @property
    def hi(self) -> float:
        return float(self.values[-1]) if self.values.size else float("nan")

    def histogram(self, edges: np.ndarray) -> np.ndarray:
        from matchday.monitoring.drift.statistics import histogram_sorted

        counts = histogram_sorted(self.values, edges).astype(np.float64)
        return counts if self.exact else counts * (self.n / max(len(self.values), 1))

    def value_counts(self) -> dict[float, float]:
        uniques, counts = np.unique(self.values, return_counts=True)
        scale = 1.0 if self.exact else self.n / max(len(self.values), 1)
        return {float(u): float(c) * scale for u, c in zip(uniques, counts)}


@dataclass(frozen=True)
class CategoricalSample:
    counts: dict[str, int]
    n: int
    missing: int


def numeric_from_values(values: np.ndarray) -> NumericSample:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    finite.sort()
    distinct = int(np.count_nonzero(finite[1:] != finite[:-1])) + 1 if finite.size else 0
    with np.errstate(over="ignore"):  # values near the float maximum: a spread of inf, not a printed warning
        std = float(finite.std()) if finite.size else 0.0
    return NumericSample(
        finite,
        int(finite.size),
        std,
        int(values.size - finite.size),
        True,
        distinct,
    )


def categorical_from_column(column: pa.ChunkedArray | pa.Array) -> CategoricalSample:
    """Counts per value, keyed by Python's ``str`` of it (as the reference profile keys them: "True")."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    missing = column.null_count
    counts = pc.value_counts(pc.drop_null(column))
    keys = [str(v) for v in counts.field("values").to_pylist()]
    return CategoricalSample(dict(zip(keys, counts.field("counts").to_pylist())), len(column) - missing, missing)


def numeric_from_profile(profile: Mapping[str, Any]) -> NumericSample:
    """Rebuild a sorted sample from a reference profile's numeric column."""
    n = int(profile["count"])
    missing = int(profile.get("missing", 0))
    if n == 0:
        return NumericSample(np.empty(0), 0, 0.0, missing, True, 0)
    std1 = float(profile.get("std", 0.0))
    std0 = std1 * np.sqrt((n - 1) / n) if n > 1 else 0.0
    if "values" in profile:
        values = np.repeat(np.asarray(profile["values"], dtype=np.float64), np.asarray(profile["value_counts"]))
        return NumericSample(values, n, std0, missing, True, len(profile["values"]))
    quantiles = np.asarray(profile["quantiles"], dtype=np.float64)
    size = min(n, PSEUDO_SAMPLE_MAX)
    grid = np.linspace(0.0, 1.0, len(quantiles))
    tails = profile.get("tail_quantiles")
    if tails:  # finer quantiles in the outer 0.1% on each side
        grid = np.concatenate([grid, np.asarray(tails["u"])])
        quantiles = np.concatenate([quantiles, np.asarray(tails["values"], dtype=np.float64)])
        order = np.argsort(grid, kind="stable")
        grid, quantiles = grid[order], quantiles[order]
    u = (np.arange(size) + 0.5) / size if size < n else np.linspace(0.0, 1.0, size)
    pseudo = np.interp(u, grid, quantiles)
    return NumericSample(pseudo, n, std0, missing, False, max(len(np.unique(quantiles)), 1001))


def categorical_from_profile(profile: Mapping[str, Any]) -> CategoricalSample:
    counts = {str(k): int(v) for k, v in profile["categories"].items()}
    if profile.get("other_count"):
        counts["__other__"] = int(profile["other_count"])
    return CategoricalSample(counts, int(profile["count"]), int(profile.get("missing", 0)))
