"""The drift statistics, each on plain NumPy arrays, each checked against scipy in the tests.

Numeric samples arrive sorted and without NaN: one sort per column serves KS, Wasserstein and
every histogram (a histogram of a sorted sample is one ``searchsorted`` of the bin edges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def scipy_stats() -> Any:
    """scipy.stats, imported on first use: it costs a second, and most commands never test drift."""
    from scipy import stats

    return stats


KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp computes the exact p-value up to this sample size


@dataclass(frozen=True)
class TestResult:
    """One test on one column: the statistic, its p-value (tests) or None (distances)."""

    statistic: float
    p_value: float | None


def ks_2samp_sorted(ref: np.ndarray, cur: np.ndarray) -> TestResult:
    """Two-sample Kolmogorov-Smirnov on sorted samples; the same D and p-value as scipy's ``ks_2samp``.

    >>> import numpy as np
    >>> r = ks_2samp_sorted(np.sort(np.arange(100.0)), np.sort(np.arange(50.0, 150.0)))
    >>> round(r.statistic, 3)
    0.5
    """
    n, m = len(ref), len(cur)
    if n == 0 or m == 0:
        return TestResult(float("nan"), None)
    if max(n, m) <= KS_EXACT_MAX_N:  # small: scipy's exact p-value is cheap and is the reference
        result = scipy_stats().ks_2samp(ref, cur)
        return TestResult(float(result.statistic), float(result.pvalue))
    d = ks_statistic_sorted(ref, cur)
    big, small = sorted([float(n), float(m)], reverse=True)
    en = big * small / (big + small)
    return TestResult(d, float(np.clip(scipy_stats().kstwo.sf(d, np.round(en)), 0.0, 1.0)))


def merge_sorted(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both samples merged in order, with each sample's empirical CDF at every merged point.

    Each element's place in the merge is its own rank plus the number of the other sample's
    elements before it: two binary searches of n and m keys, no sort of n + m values.
    Within a run of ties the CDFs are only right at the run's last element (see callers).
    """
    n, m = len(ref), len(cur)
    at_ref = np.arange(n) + np.searchsorted(cur, ref, side="left")
    at_cur = np.arange(m) + np.searchsorted(ref, cur, side="right")
    merged = np.empty(n + m)
    merged[at_ref], merged[at_cur] = ref, cur
    from_ref = np.zeros(n + m, dtype=np.int64)
    from_ref[at_ref] = 1
    count_ref = np.cumsum(from_ref)
    cdf_ref = count_ref / n
    cdf_cur = (np.arange(1, n + m + 1) - count_ref) / m
    return merged, cdf_ref, cdf_cur


def ks_statistic_sorted(ref: np.ndarray, cur: np.ndarray) -> float:
    """sup |F_ref - F_cur| over every observed value."""
    merged, cdf_ref, cdf_cur = merge_sorted(ref, cur)
    ends = np.append(merged[1:] != merged[:-1], True)  # the last element of each run of ties
    return float(np.max(np.abs(cdf_ref[ends] - cdf_cur[ends])))


def wasserstein_sorted(ref: np.ndarray, cur: np.ndarray) -> float:
    """The 1-Wasserstein distance of two sorted samples (scipy's ``wasserstein_distance``).

    Computed as the integral of |Q_ref(u) - Q_cur(u)| over the quantile level u: both quantile
    functions are steps at multiples of 1/n and 1/m, whose merged order is known in closed form,
    so no search and no sort is needed beyond the samples' own.
    """
    n, m = len(ref), len(cur)
    if n == 0 or m == 0:
        return float("nan")
    if n == m:
        return float(np.mean(np.abs(ref - cur)))
    i = np.arange(1, n + 1, dtype=np.int64)
    j = np.arange(1, m + 1, dtype=np.int64)
    ticks = np.empty(n + m, dtype=np.int64)  # breakpoints u = tick / (n m), in increasing order
    ticks[(i - 1) + (i * m - 1) // n] = i * m
    ticks[(j - 1) + (j * n) // m] = j * n
    widths = np.diff(ticks, prepend=0)
    at_ref = (ticks + m - 1) // m - 1  # the step of Q_ref on (previous tick, tick]
    at_cur = (ticks + n - 1) // n - 1
    with np.errstate(over="ignore"):  # values near the float maximum: a distance of inf (drift), not a warning
        return float(np.dot(widths, np.abs(ref[at_ref] - cur[at_cur])) / (n * m))


def wasserstein_normed(ref: np.ndarray, cur: np.ndarray) -> float:
    """Wasserstein distance in units of the reference's standard deviation (at least 0.001)."""
    return wasserstein_sorted(ref, cur) / max(float(np.std(ref)), 0.001)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log, so at most sqrt(ln 2)) of two histograms (scipy's)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        right = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(np.sqrt(max((left + right) / 2, 0.0)))


def psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    """Population stability index of two share vectors whose zeros were already filled."""
    with np.errstate(over="ignore", divide="ignore"):
        return float(np.sum((ref_share - cur_share) * np.log(ref_share / cur_share)))


def fill_zeroes(share: np.ndarray) -> np.ndarray:
    """Empty bins get a tiny share so PSI stays finite (Evidently's rule, for comparable numbers)."""
    share = np.array(share, dtype=np.float64)
    nonzero = share[share != 0]
    if nonzero.size == 0:
        return share
    smallest = float(nonzero.min())
    share[share == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return share


def chi_square(ref_counts: np.ndarray, cur_counts: np.ndarray) -> TestResult:
    """Pearson's chi-square test of homogeneity: do both samples come from one distribution?

    Both samples are noisy, so this is the 2 x k contingency test (scipy's ``chi2_contingency``
    without continuity correction), not a goodness-of-fit against the reference shares.
    """
    table = np.vstack([np.asarray(ref_counts, dtype=np.float64), np.asarray(cur_counts, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return TestResult(0.0, 1.0)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return TestResult(statistic, float(scipy_stats().chi2.sf(statistic, table.shape[1] - 1)))


def chi_square_goodness_of_fit(ref_counts: np.ndarray, cur_counts: np.ndarray) -> TestResult:
    """Current counts against the reference shares taken as exact (Evidently's "chisquare").

    It ignores the reference's own sampling noise, so on small references it flags more often than
    its p-value promises; kept for comparisons with Evidently, not chosen automatically.
    """
    ref_counts = np.asarray(ref_counts, dtype=np.float64)
    cur_counts = np.asarray(cur_counts, dtype=np.float64)
    expected = ref_counts * (cur_counts.sum() / ref_counts.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = float(np.sum((cur_counts - expected) ** 2 / expected))
    if not np.isfinite(statistic):  # a category the reference never saw: no expectation, certain drift
        return TestResult(float("inf"), 0.0)
    return TestResult(statistic, float(scipy_stats().chi2.sf(statistic, len(cur_counts) - 1)))


def z_test_proportions(ref_hits: int, ref_n: int, cur_hits: int, cur_n: int) -> TestResult:
    """Two-proportion z-test (two-sided), for binary columns."""
    p1, p2 = ref_hits / ref_n, cur_hits / cur_n
    pooled = (ref_hits + cur_hits) / (ref_n + cur_n)
    if pooled in (0.0, 1.0):
        return TestResult(0.0, 1.0)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / ref_n + 1 / cur_n))
    return TestResult(float(z), float(2 * scipy_stats().norm.sf(abs(z))))


def sturges_edges(lo: float, hi: float, n: int) -> np.ndarray:
    """``np.histogram_bin_edges(x, bins="sturges")`` from the range and size of ``x`` alone."""
    bins = int(np.ceil(np.log2(n) + 1))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def histogram_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` for sorted values: the last bin includes its right edge."""
    positions = np.searchsorted(sorted_values, edges, side="left")
    positions[-1] = np.searchsorted(sorted_values, edges[-1], side="right")
    counts = np.diff(positions)
    return counts
