"""Window summaries and performance stay finite and mergeable for any finite input (issue 13: one
input of 1e200 made a sum of squares infinite, stored as null, and stopped monitoring for good).

Oracles: the standard library's `statistics` (exact rational arithmetic, so right even at 1e308)
and NumPy on moderate inputs.
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from hypothesis.extra.numpy import arrays

from matchday.monitoring.drift import merge_summaries
from matchday.monitoring.drift.scaling import unscale
from matchday.monitoring.drift.summary import (
    CorruptSummary,
    column_mean,
    column_std,
    moments,
    sample_of_summary,
    summarize_numeric,
)
from matchday.monitoring.windows.metrics import window_metrics
from matchday.monitoring.windows.performance import RegressionPerformance
from matchday.monitoring.windows.summary import (
    VersionReference,
    merge_performance,
    merge_summary,
    performance_of,
    summarize_rows,
)
from matchday.store import LoggedRow

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANY_FINITE = hs.floats(allow_nan=False, allow_infinity=False)  # up to ±1.7976931348623157e308, subnormals too
EXTREMES = hs.sampled_from(
    [1.7976931348623157e308, -1.7976931348623157e308, 1e308, -1e308, 1e200, -1e200, 5e-324, 0.0, 1.0, -1.0]
)
VALUES = hs.one_of(ANY_FINITE, EXTREMES)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FLOAT_MAX = 1.7976931348623157e308


def table(values: np.ndarray) -> dict[str, Any]:
    return {"rows": int(values.size), "columns": {"x": summarize_numeric(values)}}


def assert_finite(value: Any, path: str = "") -> None:
    """Every number in a stored summary finite, nothing null where a number belongs."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in ("min", "max", "first_at", "last_at", "restarted") or v is not None:
                assert v is not None, f"{path}.{k} is null"
            assert_finite(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_finite(v, f"{path}[{i}]")
    elif isinstance(value, float):
        assert math.isfinite(value), f"{path} is {value}"


def close_to(got: float | None, expected: float, magnitude: float) -> bool:
    """Within 1e-9 relative, or 1e-12 of the largest value's magnitude (what rounding the scaled
    values can leave where the mean or spread is small beside the values themselves)."""
    assert got is not None and math.isfinite(got)
    return abs(got - expected) <= max(1e-9 * abs(expected), 1e-12 * magnitude)


# -- the issue's own cases ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "values",
    [[1e200, 1.0], [1e308, 1e308], [-1.7976931348623157e308, 1.7976931348623157e308]],
    ids=["square-overflows", "sum-overflows", "both-extremes"],
)
def test_summaries_of_overflowing_values_are_finite_and_merge(values: list[float]) -> None:
    a = table(np.asarray(values))
    assert_finite(a)
    text = orjson.dumps(a)  # what the store writes: no inf turned into null
    assert b"null" not in text
    stored = orjson.loads(text)
    twice = merge_summaries(stored, merge_summaries(stored, stored))
    assert_finite(twice)
    column = twice["columns"]["x"]
    assert column["count"] == 3 * len(values)
    assert column_mean(column) == pytest.approx(float(statistics.mean(values)), rel=1e-12)
    assert column_std(column) == pytest.approx(statistics.pstdev(values), rel=1e-12)
    assert sample_of_summary(column).std == column_std(column)  # the drift tests see the same spread


def test_the_merge_of_windows_with_and_without_huge_values_keeps_the_small_ones_exact() -> None:
    small, huge = table(np.array([1.0, 2.0, 3.0])), table(np.array([1e300]))
    assert column_mean(small["columns"]["x"]) == 2.0  # scaling by a power of two is exact
    both = merge_summaries(small, huge)["columns"]["x"]
    assert column_mean(both) == pytest.approx(1e300 / 4, rel=1e-12)


# -- properties ---------------------------------------------------------------------------------
@FAST
@given(arrays(np.float64, hs.integers(1, 60), elements=VALUES), arrays(np.float64, hs.integers(0, 60), elements=VALUES))
def test_merge_equals_the_summary_of_all_rows_for_any_finite_values(a: np.ndarray, b: np.ndarray) -> None:
    whole = table(np.concatenate([a, b]))
    merged = merge_summaries(orjson.loads(orjson.dumps(table(a))), orjson.loads(orjson.dumps(table(b))))
    assert_finite(merged)
    x, y = merged["columns"]["x"], whole["columns"]["x"]
    for key in ("count", "missing", "min", "max", "sketch"):
        assert x[key] == y[key], key
    assert x["moments"]["scale"] == y["moments"]["scale"]
    values = np.concatenate([a, b])
    magnitude = float(np.abs(values).max())
    exact_mean, exact_std = float(statistics.mean(values.tolist())), statistics.pstdev(values.tolist())
    for column in (x, y):
        assert close_to(column_mean(column), exact_mean, magnitude)
        assert close_to(column_std(column), exact_std, magnitude)


MODERATE = hs.one_of(hs.just(0.0), hs.floats(1e-6, 1e6), hs.floats(-1e6, -1e-6))  # numpy's own squares of
# 1e-167 underflow to 0 (the summary's, scaled up, do not): the oracle is asked only where it is exact enough


@FAST
@given(arrays(np.float64, hs.integers(1, 200), elements=MODERATE))
def test_mean_and_std_agree_with_numpy(a: np.ndarray) -> None:
    column = summarize_numeric(a)
    magnitude = float(np.abs(a).max())
    assert close_to(column_mean(column), float(np.mean(a)), magnitude)
    assert close_to(column_std(column), float(np.std(a)), magnitude)


# -- summaries stored before (or broken by) the fix -----------------------------------------------
def old_form(values: list[float], **fields: Any) -> dict[str, Any]:
    """A column as summaries were stored before `Moments`: plain sum and sum of squares."""
    column = summarize_numeric(np.asarray(values))
    del column["moments"]
    return {**column, "sum": math.fsum(values), "sumsq": math.fsum(v * v for v in values), **fields}


def test_old_summaries_are_read_and_merged_with_new_ones() -> None:
    old = old_form([1.0, 2.0, 3.0, 1000.0])
    assert column_mean(old) == pytest.approx(251.5, rel=1e-12)
    assert column_std(old) == pytest.approx(float(np.std([1.0, 2.0, 3.0, 1000.0])), rel=1e-9)
    merged = merge_summaries({"rows": 4, "columns": {"x": old}}, table(np.array([5.0])))["columns"]["x"]
    assert "sum" not in merged and not moments(merged).approximate
    assert column_mean(merged) == pytest.approx(1011 / 5, rel=1e-12)


@pytest.mark.parametrize(
    "broken",
    [
        {"sumsq": None},
        {"sum": None, "sumsq": None},
        {"sum": "1e200"},
        {"sumsq": float("inf")},
        {"moments": {"scale": 3, "mean": None, "m2": 0.0}},
        {"moments": {"scale": 5000, "mean": 0.1, "m2": 0.0}},
        {"moments": "nope"},
    ],
    ids=["sumsq-null", "both-null", "wrong-type", "infinite", "moments-null", "bad-scale", "moments-not-a-dict"],
)
def test_lost_sums_are_repaired_from_the_sketch(broken: dict[str, Any]) -> None:
    values = [1e200, 2e200, 3e200, 5.0]
    column = {**old_form([1.0]), **summarize_numeric(np.asarray(values))}  # the sketch, min and max of values
    column.pop("moments") if "moments" not in broken else None
    column.pop("sum"), column.pop("sumsq")
    column.update({"sum": 6e200, "sumsq": None} if "moments" not in broken else {})
    column.update(broken)
    repaired = moments(column)
    assert repaired.approximate and repaired.count == 4
    assert column_mean(column) == pytest.approx(float(statistics.mean(values)), rel=0.01)  # the sketch's accuracy
    assert column_std(column) == pytest.approx(statistics.pstdev(values), rel=0.02)
    merged = merge_summaries({"rows": 4, "columns": {"x": column}}, table(np.array([4e200])))["columns"]["x"]
    assert merged["moments"]["approximate"] is True  # the repair is marked, and stays marked
    assert column_mean(merged) == pytest.approx(float(statistics.mean([*values, 4e200])), rel=0.01)


def test_a_column_with_neither_sums_nor_sketch_is_corrupt() -> None:
    column = {
        **old_form([1.0, 2.0]),
        "sumsq": None,
        "sketch": {"alpha": 0.005, "zero": 0, "positive": "x", "negative": []},
    }
    with pytest.raises(CorruptSummary):
        moments(column)
    with pytest.raises(CorruptSummary):
        moments({**column, "count": None})


# -- the window summary's other sums: confidence, latency, outputs -----------------------------
def row(
    i: int,
    inputs: dict[str, Any],
    prediction: Any,
    probabilities: list[float] | None = None,
    *,
    latency: float = 0.01,
    label: Any = None,
) -> LoggedRow:
    at = T0 + timedelta(seconds=i)
    return LoggedRow(
        i,
        "d",
        "m",
        1,
        at,
        inputs,
        prediction,
        probabilities,
        latency,
        None,
        label,
        at + timedelta(seconds=5) if label is not None else None,
        "served",
    )


def test_a_window_of_hostile_values_is_finite_and_merges() -> None:
    classifier = VersionReference("classification", ["0", "1"], ["x"], None)
    rows = [
        row(0, {"x": 1e200}, "1", [1e300, 0.5], latency=1e308),
        row(1, {"x": 1e308}, "0", [0.5, 0.5], latency=1e308),
        row(2, {"x": -1.7976931348623157e308}, "1", [float("nan"), 0.9]),
    ]
    a, b = summarize_rows(rows[:2], classifier), summarize_rows(rows[2:], classifier)
    stored = [orjson.loads(orjson.dumps(s)) for s in (a, b)]
    merged = merge_summary(*stored)
    assert_finite(merged)
    assert merged["outputs"]["confidence"]["sum"] == pytest.approx(1.0 + 0.5 + 0.9)  # probabilities read within [0, 1]
    assert column_mean(merged["latency"]) == pytest.approx(1e308 / 1.5, rel=1e-12)  # (1e308 + 1e308 + 0.01) / 3
    metrics = window_metrics(merged, None, classifier, 300.0)
    assert metrics["rows"] == 3 and metrics["mean_confidence"] == pytest.approx(2.4 / 3)
    regressor = VersionReference("regression", None, ["x"], None)
    values = merge_summary(
        summarize_rows([row(0, {"x": 1.0}, 1e308)], regressor), summarize_rows([row(1, {"x": 1.0}, 1e308)], regressor)
    )["outputs"]["values"]
    assert column_mean(values) == 1e308 and column_std(values) == 0.0


# -- regression performance with labels the callers send ------------------------------------------
def test_a_label_whose_square_overflows_does_not_poison_the_window() -> None:
    regressor = VersionReference("regression", None, ["x"], None)
    first = performance_of([row(0, {"x": 1.0}, 0.0, label=1e200), row(1, {"x": 1.0}, 1.0, label=1.0)], regressor)
    second = performance_of([row(2, {"x": 1.0}, 1e308, label=-1e308)], regressor)  # the error itself overflows
    stored = [orjson.loads(orjson.dumps(p)) for p in (first, second)]
    assert b"null" not in orjson.dumps(stored)
    assert_finite(stored)
    first_metrics = RegressionPerformance.from_state(stored[0]["regression"]).metrics()
    assert first_metrics["mae"] == pytest.approx(5e199, rel=1e-12)
    assert first_metrics["rmse"] == pytest.approx(1e200 / math.sqrt(2), rel=1e-12)
    merged = merge_performance(*stored)
    assert merged is not None
    metrics = RegressionPerformance.from_state(merged["regression"]).metrics()
    assert metrics["n"] == 3
    assert metrics["mae"] == pytest.approx(1e308 / 1.5, rel=1e-12)  # (1e200 + 1 - 1 + 2e308) / 3: representable
    assert metrics["mean_error"] == pytest.approx(1e308 / 1.5, rel=1e-12)
    assert metrics["rmse"] == pytest.approx(1e308 / math.sqrt(3) * 2, rel=1e-12)  # sqrt((1e400 + 1 + 4e616) / 3)
    assert all(v is None or math.isfinite(v) for v in metrics.values())
    beyond = RegressionPerformance().update(np.array([-FLOAT_MAX]), np.array([FLOAT_MAX])).metrics()
    assert beyond["mae"] is None and beyond["rmse"] is None  # an error of 3.6e308 is no float: undefined, not inf


@FAST
@given(hs.lists(hs.tuples(VALUES, VALUES), min_size=1, max_size=30), hs.integers(0, 30))
def test_regression_sums_are_finite_and_merge_for_any_finite_labels(pairs: list[tuple[float, float]], cut: int) -> None:
    y, pred = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    whole = RegressionPerformance().update(y, pred)
    parts = (
        RegressionPerformance().update(y[:cut], pred[:cut]).merge(RegressionPerformance().update(y[cut:], pred[cut:]))
    )
    for perf in (whole, parts):
        state = perf.to_state()
        json.dumps(state, allow_nan=False)
        assert RegressionPerformance.from_state(state).to_state() == state
    assert parts.scale == whole.scale and parts.n == whole.n
    magnitude = float(max(np.abs(y).max(), np.abs(pred).max()))
    errors = [Fraction(p) - Fraction(t) for t, p in zip(y.tolist(), pred.tolist())]
    mae = sum(abs(e) for e in errors) / len(errors)
    # the root of the mean square, exactly, then scaled back (the mean square itself may be beyond a float)
    rmse = unscale(math.sqrt(sum(e * e for e in errors) / len(errors) / Fraction(4) ** whole.scale), whole.scale)
    for perf in (whole, parts):
        metrics = perf.metrics()
        assert all(v is None or math.isfinite(v) for v in metrics.values())
        if mae < Fraction(FLOAT_MAX) * Fraction(0.999999):  # (at the float maximum, rounding may tip it over)
            assert close_to(metrics["mae"], float(mae), magnitude)
        if rmse < FLOAT_MAX * 0.999999:
            assert close_to(metrics["rmse"], rmse, magnitude)


def test_old_regression_states_are_read_and_broken_ones_refused() -> None:
    old = {
        "kind": "regression",
        "n": 2,
        "missing": 0,
        "sum_error": 1.0,
        "sum_abs_error": 3.0,
        "sum_sq_error": 5.0,
        "sum_y": 3.0,
        "m2_y": 0.5,
    }
    assert RegressionPerformance.from_state(old).metrics()["mae"] == 1.5  # no scale: exponent 0
    with pytest.raises(ValueError, match="sum_sq_error"):
        RegressionPerformance.from_state({**old, "sum_sq_error": None})  # what the overflow left
