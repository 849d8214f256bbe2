"""Column and dataset drift: choose a test per column, run it, and decide.

The automatic choice follows Evidently's documented defaults, so verdicts are comparable:
with at most 1000 reference rows, KS (numeric, more than 5 distinct values) or chi-square
(z-test when binary) at p < 0.05; above 1000 rows, the normed Wasserstein distance (numeric) or
the Jensen-Shannon distance (categorical, or numeric with at most 5 values) at 0.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pyarrow as pa

from matchday.errors import MatchdayError
from matchday.monitoring.drift import statistics as st
from matchday.monitoring.drift.samples import (
    CategoricalSample,
    NumericSample,
    categorical_from_column,
    categorical_from_profile,
    numeric_from_profile,
    numeric_from_values,
)

if TYPE_CHECKING:  # (summary.py imports this module's is_numeric)
    from matchday.monitoring.drift.summary import TableSummary

TestName = Literal["ks", "wasserstein", "psi", "jensenshannon", "chisquare", "chisquare_gof", "z", "unseen"]
NUMERIC_TESTS = {"ks", "wasserstein", "psi", "jensenshannon", "chisquare", "chisquare_gof", "z"}
CATEGORICAL_TESTS = {"psi", "jensenshannon", "chisquare", "chisquare_gof", "z", "unseen"}
P_VALUE_TESTS = {"ks", "chisquare", "chisquare_gof", "z"}
DEFAULT_THRESHOLDS = {
    "ks": 0.05,
    "chisquare": 0.05,
    "chisquare_gof": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "psi": 0.1,
    "jensenshannon": 0.1,
    "unseen": 0.05,
}
SMALL_REFERENCE = 1000


class DriftError(MatchdayError):
    """The data cannot be compared as asked (columns differ, empty data, an unknown test)."""


@dataclass(frozen=True)
class ColumnTest:
    """A per-column override: which test, and its threshold (p-value or distance)."""

    test: TestName | None = None
    threshold: float | None = None


@dataclass
class ColumnDrift:
    column: str
    kind: Literal["numeric", "categorical"]
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    missing_share: float
    out_of_range_share: float | None = None
    unseen_share: float | None = None
    histogram: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """What is compared with the threshold: the p-value for tests, else the distance."""
        return self.p_value if self.p_value is not None else self.statistic


@dataclass
class DriftReport:
    columns: dict[str, ColumnDrift]
    drift_share: float
    share_threshold: float
    dataset_drift: bool
    reference_rows: int
    current_rows: int
    multivariate: dict[str, Any] | None = None

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns.values() if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["drifted_columns"] = self.drifted_columns
        return out


Sample = NumericSample | CategoricalSample


def column_drift(
    name: str, ref: Sample, cur: Sample, override: ColumnTest | None = None, *, alpha: float | None = None
) -> ColumnDrift:
    """Drift of one column; ``ref`` and ``cur`` are the same kind of sample. ``alpha``: the level of a
    p-value test (KS, chi-square, z) when no override sets one, instead of 0.05; a distance keeps its
    threshold (an effect size, which does not shrink as the same data is tested again)."""
    override = override or ColumnTest()
    kind: Literal["numeric", "categorical"] = "numeric" if isinstance(ref, NumericSample) else "categorical"
    if type(ref) is not type(cur):
        raise DriftError(f"column {name!r} is {kind} in the reference but not in the current data")
    if ref.n == 0:
        raise DriftError(f"column {name!r} has no non-missing value in the reference data")
    test = override.test or _auto_test(ref, cur)
    allowed = NUMERIC_TESTS if kind == "numeric" else CATEGORICAL_TESTS
    if test not in allowed:
        raise DriftError(
            f"test {test!r} does not apply to {kind} column {name!r}; use one of {', '.join(sorted(allowed))}"
        )
    threshold = override.threshold if override.threshold is not None else DEFAULT_THRESHOLDS[test]
    if override.threshold is None and alpha is not None and test in P_VALUE_TESTS:
        threshold = alpha
    missing_share = cur.missing / max(cur.n + cur.missing, 1)
    if cur.n == 0:  # every current value missing: nothing to compare, but certainly worth a look
        return ColumnDrift(name, kind, test, float("nan"), None, threshold, True, ref.n, 0, missing_share)
    if isinstance(ref, NumericSample):
        assert isinstance(cur, NumericSample)
        result, histogram = _numeric(test, ref, cur)
        outside = np.count_nonzero(cur.values < ref.lo) + np.count_nonzero(cur.values > ref.hi)
        extra: dict[str, Any] = {"out_of_range_share": float(outside / cur.n)}
    else:
        assert isinstance(cur, CategoricalSample)
        result, histogram = _categorical(test, ref, cur)
        unseen = sum(c for k, c in cur.counts.items() if k not in ref.counts)
        extra = {"unseen_share": unseen / cur.n}
    score = result.p_value if result.p_value is not None else result.statistic
    drifted = score < threshold if test in P_VALUE_TESTS else score >= threshold
    return ColumnDrift(
        name,
        kind,
        test,
        result.statistic,
        result.p_value,
        threshold,
        bool(drifted),
        ref.n,
        cur.n,
        missing_share,
        histogram=histogram,
        **extra,
    )


def _auto_test(ref: Sample, cur: Sample) -> str:
    if isinstance(ref, NumericSample):
        assert isinstance(cur, NumericSample)
        distinct = _distinct_numeric(ref, cur)
        if ref.n <= SMALL_REFERENCE:
            if distinct > 5:
                return "ks"
            return "chisquare" if distinct > 2 else "z"
        return "wasserstein" if distinct > 5 else "jensenshannon"
    assert isinstance(cur, CategoricalSample)
    if ref.n <= SMALL_REFERENCE:
        return "chisquare" if len(set(ref.counts) | set(cur.counts)) > 2 else "z"
    return "jensenshannon"


def _distinct_numeric(ref: NumericSample, cur: NumericSample) -> int:
    """Distinct values of both samples together (exactly only when it matters: at most 5 each)."""
    if ref.distinct > 5 or cur.distinct > 5:
        return max(ref.distinct, cur.distinct)
    return len(np.union1d(np.unique(ref.values), np.unique(cur.values)))


def _numeric(test: str, ref: NumericSample, cur: NumericSample) -> tuple[st.TestResult, dict[str, Any]]:
    many = ref.distinct > 20
    if many:
        edges = st.sturges_edges(min(ref.lo, cur.lo), max(ref.hi, cur.hi), ref.n + cur.n)
        ref_counts, cur_counts = ref.histogram(edges), cur.histogram(edges)
        histogram: dict[str, Any] = {
            "edges": edges.tolist(),
            "reference": (ref_counts / ref.n).tolist(),
            "current": (cur_counts / cur.n).tolist(),
        }
    else:
        ref_vc, cur_vc = ref.value_counts(), cur.value_counts()
        keys = sorted(set(ref_vc) | set(cur_vc))
        ref_counts = np.array([ref_vc.get(k, 0.0) for k in keys])
        cur_counts = np.array([cur_vc.get(k, 0.0) for k in keys])
        histogram = {
            "categories": [_label(k) for k in keys],
            "reference": (ref_counts / ref.n).tolist(),
            "current": (cur_counts / cur.n).tolist(),
        }
    if test == "ks":
        if ref.exact and cur.exact:
            result = st.ks_2samp_sorted(ref.values, cur.values)
        else:  # a sample rebuilt from a sketch: the statistic is approximate, the p-value uses the real sizes
            # (scipy's exact p-value of the pseudo-samples' sizes was both wrong and most of a tick's time)
            d = st.ks_statistic_sorted(ref.values, cur.values)
            big, small = sorted([float(ref.n), float(cur.n)], reverse=True)
            p = float(np.clip(st.scipy_stats().kstwo.sf(d, np.round(big * small / (big + small))), 0, 1))
            result = st.TestResult(d, p)
    elif test == "wasserstein":
        result = st.TestResult(st.wasserstein_sorted(ref.values, cur.values) / max(ref.std, 0.001), None)
    elif test == "jensenshannon":
        result = st.TestResult(st.js_distance(ref_counts / ref.n, cur_counts / cur.n), None)
    elif test == "psi":
        result = st.TestResult(st.psi(st.fill_zeroes(ref_counts / ref.n), st.fill_zeroes(cur_counts / cur.n)), None)
    elif test in ("chisquare", "chisquare_gof"):
        ref_vc, cur_vc = ref.value_counts(), cur.value_counts()
        keys = sorted(set(ref_vc) | set(cur_vc))
        chi = st.chi_square if test == "chisquare" else st.chi_square_goodness_of_fit
        result = chi(np.array([ref_vc.get(k, 0.0) for k in keys]), np.array([cur_vc.get(k, 0.0) for k in keys]))
    else:  # z: the share of the smallest value against the rest
        ref_vc, cur_vc = ref.value_counts(), cur.value_counts()
        first = min(set(ref_vc) | set(cur_vc))
        result = st.z_test_proportions(
            int(round(ref.n - ref_vc.get(first, 0))), ref.n, int(round(cur.n - cur_vc.get(first, 0))), cur.n
        )
    return result, histogram


def _categorical(test: str, ref: CategoricalSample, cur: CategoricalSample) -> tuple[st.TestResult, dict[str, Any]]:
    keys = sorted(set(ref.counts) | set(cur.counts))
    ref_counts = np.array([ref.counts.get(k, 0) for k in keys], dtype=np.float64)
    cur_counts = np.array([cur.counts.get(k, 0) for k in keys], dtype=np.float64)
    histogram = {
        "categories": keys,
        "reference": (ref_counts / ref.n).tolist(),
        "current": (cur_counts / cur.n).tolist(),
    }
    if test == "jensenshannon":
        result = st.TestResult(st.js_distance(ref_counts / ref.n, cur_counts / cur.n), None)
    elif test == "psi":
        result = st.TestResult(st.psi(st.fill_zeroes(ref_counts / ref.n), st.fill_zeroes(cur_counts / cur.n)), None)
    elif test == "chisquare":
        result = st.chi_square(ref_counts, cur_counts)
    elif test == "chisquare_gof":
        result = st.chi_square_goodness_of_fit(ref_counts, cur_counts)
    elif test == "z":
        first = keys[0]
        result = st.z_test_proportions(
            int(ref.n - ref.counts.get(first, 0)), ref.n, int(cur.n - cur.counts.get(first, 0)), cur.n
        )
    else:  # unseen: the share of current values in categories the reference never had
        unseen = sum(c for k, c in cur.counts.items() if k not in ref.counts)
        result = st.TestResult(unseen / cur.n, None)
    return result, histogram


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


# -- whole tables --------------------------------------------------------------------------------
def is_numeric(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def sample_of(column: pa.ChunkedArray) -> Sample:
    if is_numeric(column.type):
        return numeric_from_values(
            column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            if not column.null_count
            else column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        )
    return categorical_from_column(column)


def sample_of_profile(profile: Mapping[str, Any]) -> Sample:
    return numeric_from_profile(profile) if profile["kind"] == "numeric" else categorical_from_profile(profile)


def as_arrow(data: Any, what: str) -> pa.Table:
    """An Arrow table of ``data``: a Table, a pandas or polars DataFrame, or a dict of columns."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        if hasattr(data, "to_arrow"):  # polars
            return cast(pa.Table, data.to_arrow())
        if hasattr(data, "columns") and hasattr(data, "dtypes"):  # pandas
            return pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, dict):
            return pa.table(data)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DriftError(f"the {what} data cannot be read as columns: {exc}") from exc
    raise DriftError(
        f"the {what} data is a {type(data).__name__}; give a pyarrow Table, a pandas or polars DataFrame, "
        "or a dict of columns"
    )


def compare_tables(
    reference: Any,
    current: Any,
    *,
    columns: list[str] | None = None,
    tests: dict[str, ColumnTest] | None = None,
    share_threshold: float = 0.5,
    multivariate: bool = False,
) -> DriftReport:
    """Drift of every shared column of two tables (Arrow, pandas or polars), and whether the dataset drifted."""
    reference, current = as_arrow(reference, "reference"), as_arrow(current, "current")
    names = columns or reference.column_names
    _check_columns(names, reference.column_names, current.column_names)
    if reference.num_rows == 0 or current.num_rows == 0:
        raise DriftError(
            f"nothing to compare: the {'reference' if reference.num_rows == 0 else 'current'} data has no rows"
        )

    def one(name: str) -> ColumnDrift:
        ref, cur = sample_of(reference.column(name)), sample_of(current.column(name))
        if isinstance(ref, NumericSample) != isinstance(cur, NumericSample):
            ref, cur = categorical_from_column(reference.column(name)), categorical_from_column(current.column(name))
        return column_drift(name, ref, cur, (tests or {}).get(name))

    results = dict(zip(names, _parallel(one, names)))
    report = _dataset(results, share_threshold, reference.num_rows, current.num_rows)
    if multivariate:
        from matchday.monitoring.drift.domain_classifier import domain_classifier_auc

        report.multivariate = domain_classifier_auc(reference.select(names), current.select(names))
        report.dataset_drift = report.dataset_drift or report.multivariate["drifted"]
    return report


def compare_parquet_files(
    reference: str,
    current: str,
    *,
    columns: list[str] | None = None,
    tests: dict[str, ColumnTest] | None = None,
    share_threshold: float = 0.5,
    multivariate: bool = False,
) -> DriftReport:
    """`compare_tables` on two Parquet files, reading one column of each at a time.

    Memory stays near two columns' worth however wide the files are; the multivariate check
    (which needs whole rows) reads at most its sample of rows.
    """
    import pyarrow.parquet as pq

    ref_file, cur_file = pq.ParquetFile(reference), pq.ParquetFile(current)
    ref_rows, cur_rows = ref_file.metadata.num_rows, cur_file.metadata.num_rows
    names = columns or ref_file.schema_arrow.names
    _check_columns(names, ref_file.schema_arrow.names, cur_file.schema_arrow.names)
    if ref_rows == 0 or cur_rows == 0:
        raise DriftError(f"nothing to compare: the {'reference' if ref_rows == 0 else 'current'} data has no rows")

    def one(name: str) -> ColumnDrift:
        ref_column = pq.read_table(reference, columns=[name]).column(0)
        cur_column = pq.read_table(current, columns=[name]).column(0)
        ref, cur = sample_of(ref_column), sample_of(cur_column)
        if isinstance(ref, NumericSample) != isinstance(cur, NumericSample):
            ref, cur = categorical_from_column(ref_column), categorical_from_column(cur_column)
        return column_drift(name, ref, cur, (tests or {}).get(name))

    report = _dataset(dict(zip(names, _parallel(one, names))), share_threshold, ref_rows, cur_rows)
    if multivariate:
        from matchday.monitoring.drift.domain_classifier import (
            MAX_ROWS_PER_SIDE,
            domain_classifier_auc,
        )

        def head(path: str) -> pa.Table:  # a sample of rows spread over the file's row groups
            file = pq.ParquetFile(path)
            groups = list(range(file.num_row_groups))
            step = max(1, len(groups) // 10)
            table = file.read_row_groups(groups[::step], columns=names)
            return table.slice(0, MAX_ROWS_PER_SIDE * 5)

        report.multivariate = domain_classifier_auc(head(reference), head(current))
        report.dataset_drift = report.dataset_drift or report.multivariate["drifted"]
    return report


def compare_to_profile(
    profile: Mapping[str, Any],
    current: Any,
    *,
    columns: list[str] | None = None,
    tests: dict[str, ColumnTest] | None = None,
    share_threshold: float = 0.5,
) -> DriftReport:
    """Drift of a current table (Arrow, pandas or polars) against a stored reference profile (the reference
    data is not needed). The profile is the store's `ReferenceProfile`, read here as a mapping: the drift
    engine imports no other part."""
    current = as_arrow(current, "current")
    names = columns or list(profile["columns"])
    _check_columns(names, list(profile["columns"]), current.column_names)
    if current.num_rows == 0:
        raise DriftError("nothing to compare: the current data has no rows")
    results = {}
    for name in names:
        ref = sample_of_profile(profile["columns"][name])
        column = current.column(name)
        cur = sample_of(column) if isinstance(ref, NumericSample) else categorical_from_column(column)
        if isinstance(ref, NumericSample) and not isinstance(cur, NumericSample):
            raise DriftError(f"column {name!r} is numeric in the reference profile but {column.type} now")
        results[name] = column_drift(name, ref, cur, (tests or {}).get(name))
    return _dataset(results, share_threshold, int(profile["rows"]), current.num_rows)


def prediction_drift(
    profile: Mapping[str, Any],
    predictions: Any,
    override: ColumnTest | None = None,
    *,
    classes: list[Any] | None = None,
) -> ColumnDrift:
    """Drift of the model's outputs against the predictions it made on its reference data.

    ``predictions`` are what ``predict`` answered (labels or values); ``predict_proba``'s 2-D answer is
    read as the label of each row's most likely class when ``classes`` (in the model's order) is given.
    """
    if "prediction" not in profile:
        raise DriftError("this reference profile holds no predictions (registered without reference data)")
    values = np.asarray(predictions)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values.ravel()
    elif values.ndim == 2:
        if classes is None or len(classes) != values.shape[1]:
            raise DriftError(
                f"predictions of shape {values.shape} look like predict_proba's; the reference profile holds "
                "predicted labels: pass predict's answer, or classes=[...] (the model's, in its order) to read "
                "each row's most likely class"
            )
        values = np.asarray(classes, dtype=object)[values.argmax(axis=1)]
    elif values.ndim != 1:
        raise DriftError(f"predictions must be one value per row, not an array of shape {values.shape}")
    column = pa.chunked_array([pa.array(values.tolist())])
    ref = sample_of_profile(profile["prediction"])
    cur = sample_of(column) if isinstance(ref, NumericSample) else categorical_from_column(column)
    return column_drift("prediction", ref, cur, override)


def compare_summary_to_profile(
    profile: Mapping[str, Any],
    summary: TableSummary,
    *,
    columns: list[str] | None = None,
    tests: dict[str, ColumnTest] | None = None,
    share_threshold: float = 0.5,
    reference_samples: dict[str, Sample] | None = None,
    alpha: float | None = None,
) -> DriftReport:
    """Drift of a window summary (see `summarize_table`) against a stored reference profile.
    ``reference_samples``: the profile's columns as samples, filled here as they are rebuilt, for a
    caller that compares many windows with one profile (rebuilt once, not once per window).
    ``alpha``: the p-value tests' level (see `column_drift`)."""
    from matchday.monitoring.drift.summary import sample_of_summary

    names = columns or list(profile["columns"])
    _check_columns(names, list(profile["columns"]), list(summary["columns"]))
    if summary["rows"] == 0:
        raise DriftError("nothing to compare: the window has no rows")
    results = {}
    for name in names:
        ref = reference_samples.get(name) if reference_samples is not None else None
        if ref is None:
            ref = sample_of_profile(profile["columns"][name])
            if reference_samples is not None:
                reference_samples[name] = ref
        # both rebuilt quantile functions: the window's taken at as many points as the reference's, so
        # the distance between them is one difference of the two, not a merge of two grids
        size = ref.values.size if isinstance(ref, NumericSample) and not ref.exact else None
        results[name] = column_drift(
            name, ref, sample_of_summary(summary["columns"][name], size), (tests or {}).get(name), alpha=alpha
        )
    return _dataset(results, share_threshold, int(profile["rows"]), int(summary["rows"]))


def _parallel(work: Any, names: list[str]) -> list[ColumnDrift]:
    """Columns on all cores: NumPy's sorts and searches release the GIL."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = min(len(names), os.cpu_count() or 1, 8)
    if workers <= 1:
        return [work(n) for n in names]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(work, names))


def _dataset(results: dict[str, ColumnDrift], share_threshold: float, ref_rows: int, cur_rows: int) -> DriftReport:
    share = sum(r.drifted for r in results.values()) / max(len(results), 1)
    return DriftReport(results, share, share_threshold, share >= share_threshold, ref_rows, cur_rows)


def _check_columns(names: list[str], reference: list[str], current: list[str]) -> None:
    problems = [f"{n}: not in the reference data" for n in names if n not in reference]
    problems += [f"{n}: not in the current data" for n in names if n not in current]
    if problems:
        raise DriftError("the reference and current data do not have the same columns", problems)
