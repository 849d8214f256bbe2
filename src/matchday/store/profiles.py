"""The reference profile's JSON shape: what registration computes (`matchday.registry`), the store keeps
beside each version (``reference_profiles``), and monitoring reads for drift and its performance baseline.

Keys marked ``NotRequired`` are absent from some stored profiles: a numeric column without a finite
value keeps only its counts, ``tail_quantiles``, ``labelled_sample`` and ``reference_data`` came
after the first profiles were stored, ``values`` and ``value_counts`` only when a column has at most
1000 distinct values, ``target`` and ``labelled_sample`` only when a label column was named.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class TailQuantiles(TypedDict):
    """Quantiles at ``u`` (101 points in each outer 0.1%): where heavy tails hide most of the distance."""

    u: list[float]
    values: list[float]


class Histogram(TypedDict):
    """Exact counts on 20 quantile bins: ``cuts`` are the inner bounds (len(counts) - 1 of them)."""

    cuts: list[float]
    counts: list[int]


class NumericProfile(TypedDict):
    kind: Literal["numeric"]
    count: int  # finite values
    missing: int  # NaN or null
    mean: NotRequired[float]
    std: NotRequired[float]  # ddof=1 (0.0 for one value)
    min: NotRequired[float]
    max: NotRequired[float]
    quantiles: NotRequired[list[float]]  # 1001, evenly spaced in [0, 1]
    tail_quantiles: NotRequired[TailQuantiles]
    histogram: NotRequired[Histogram]
    values: NotRequired[list[float]]  # the distinct values, ascending, with how often each occurs
    value_counts: NotRequired[list[int]]


class CategoricalProfile(TypedDict):
    kind: Literal["categorical"]
    count: int
    missing: int
    categories: dict[str, int]  # keyed by Python's str of the value ("True"), the commonest 1000
    other_count: int  # the rest, pooled
    distinct: int


ColumnProfile = NumericProfile | CategoricalProfile


class LabelledSample(TypedDict):
    """The first reference rows' labels, predictions and (rounded) probabilities: monitoring's baseline
    performance and the calibration of its estimate before labels."""

    labels: list[Any]
    predictions: list[Any]
    probabilities: list[list[float]] | None


class ReferenceData(TypedDict):
    """The reference rows themselves, a Parquet artifact, for retraining (a profile cannot be learned from)."""

    sha256: str
    rows: int
    target: str | None


class ReferenceProfile(TypedDict):
    version: int  # of this shape (1)
    rows: int
    columns: dict[str, ColumnProfile]  # the model's inputs
    prediction: NotRequired[ColumnProfile]  # the model's predictions on the first 50,000 reference rows
    target: NotRequired[ColumnProfile]
    labelled_sample: NotRequired[LabelledSample]
    reference_data: NotRequired[ReferenceData]
