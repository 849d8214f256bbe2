"""The cheap drift check a device can run on itself: recent inputs against the reference's sketches.

The export computes, per input feature, a sketch of the reference rows (`sketch_numeric`,
`sketch_categorical`); the device keeps its last rows in memory and compares their histogram with the
sketch by the population stability index. PSI above 0.2 is the usual "the population has shifted"
line; the server's drift engine stays the judge of record (it sees every device's rows).

>>> sketch = sketch_numeric(np.arange(100.0), bins=4)
>>> sketch["edges"], sketch["frequencies"]
([24.75, 49.5, 74.25], [0.25, 0.25, 0.25, 0.25])
>>> round(psi(reference_shares(sketch), bin_shares(sketch, np.arange(100.0))), 6)
0.0
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from matchday_edge.manifest import CategoricalSketch, NumericSketch

PSI_ALERT = 0.2
_EPSILON = 1e-4  # a share of zero would make PSI infinite: empty bins count as this


def sketch_numeric(values: np.ndarray, bins: int = 10) -> NumericSketch:
    """Quantile edges of the finite values (duplicates merged) and the share of all rows in each bin."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else np.empty(0)
    sketch: NumericSketch = {"kind": "numeric", "edges": [float(e) for e in edges], "frequencies": [], "missing": 0.0}
    shares = bin_shares(sketch, values)
    sketch["frequencies"] = shares[:-1]
    sketch["missing"] = shares[-1]
    return sketch


def sketch_categorical(values: Sequence[Any], top: int = 20) -> CategoricalSketch:
    """The shares of the ``top`` most frequent values, and of every other value together."""
    counts = Counter(str(v) for v in values if v is not None)
    total = max(len(values), 1)
    common = counts.most_common(top)
    shares = [round(n / total, 6) for _, n in common]
    return {
        "kind": "categorical",
        "categories": [c for c, _ in common],
        "frequencies": shares,
        "other": round(max(0.0, 1.0 - sum(shares)), 6),
    }


def bin_shares(sketch: NumericSketch | CategoricalSketch, values: Any) -> list[float]:
    """The share of ``values`` in each of the sketch's bins, then the missing (numeric) or other (categorical) share."""
    if sketch["kind"] == "categorical":
        index = {c: i for i, c in enumerate(sketch["categories"])}
        counts = np.zeros(len(index) + 1)
        for v in values:
            counts[index.get(str(v), len(index))] += 1
    else:
        array = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(array)
        counts = np.bincount(
            np.searchsorted(np.asarray(sketch["edges"]), array[finite], side="right"),
            minlength=len(sketch["edges"]) + 1,
        ).astype(np.float64)
        counts = np.append(counts, float((~finite).sum()))
    total = counts.sum()
    return [round(float(c / total), 6) for c in counts] if total else [0.0] * len(counts)


def reference_shares(sketch: NumericSketch | CategoricalSketch) -> list[float]:
    """The reference's shares in `bin_shares`'s order."""
    last = sketch["missing"] if sketch["kind"] == "numeric" else sketch["other"]
    return [*sketch["frequencies"], last]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of ``actual`` shares against ``expected`` ones (bins aligned)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """PSI per feature of the device's last ``rows`` inputs against the bundle's reference."""

    rows: int
    features: list[FeatureDrift]

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]
