"""Champion against candidate on the same holdout, before any traffic.

Both score every held-out row; the per-row difference (candidate's score minus champion's: 1/0 for
a correct class, minus the absolute error for a regression) is paired, so the noise of which rows
happened to be held out cancels. Its mean is the gain; a paired bootstrap of that mean gives the
interval. A listed segment gets worse "beyond noise" when its whole interval lies below zero.
`scipy.stats.bootstrap(paired=True)` is the test oracle; this one draws all resamples at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import stats

NORMAL_ABOVE = 50_000  # rows past which an interval is the normal approximation, not a bootstrap
MAX_SEGMENT_VALUES = 20  # values of a segment feature judged, the most frequent first


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class SegmentResult:
    segment: str
    value: str
    rows: int
    champion: float | None
    candidate: float | None
    gain: float | None
    interval: Interval | None
    verdict: str  # better, same, worse, too_few_rows


@dataclass(frozen=True)
class Evaluation:
    """The report stored with a run and shown: accepted or not, and every number behind it."""

    accepted: bool
    metric: str
    rows: int
    champion: float
    candidate: float
    gain: float
    interval: Interval
    min_gain: float
    confidence: float
    segments: list[SegmentResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """As stored (a NaN is no JSON: PostgreSQL refuses it), so a number that is not finite is None."""
        return dict(_finite(asdict(self)))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def row_scores(metric: str, predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each row's score, higher is better: 1.0 for a correct class (accuracy), minus the absolute error (MAE)."""
    if metric == "accuracy":
        return (_text(predictions) == _text(labels)).astype(np.float64)
    return -np.abs(np.asarray(predictions, dtype=np.float64) - np.asarray(labels, dtype=np.float64))


def paired_interval(differences: np.ndarray, confidence: float, resamples: int, rng: np.random.Generator) -> Interval:
    """Percentile interval of the mean of paired differences, ``resamples`` bootstrap draws at once."""
    n = len(differences)
    if n == 0:
        return Interval(float("nan"), float("nan"))
    if n > NORMAL_ABOVE:  # the bootstrap's distribution of a mean of this many rows is the normal one, to
        # well within its own resampling noise, and costs seconds per interval (12 s at 1M rows)
        half = float(stats.norm.ppf(1 - (1 - confidence) / 2)) * float(differences.std(ddof=1)) / np.sqrt(n)
        mean = float(differences.mean())
        return Interval(mean - half, mean + half)
    means = np.empty(resamples)
    chunk = max(1, 4_000_000 // n)  # bounded memory: at most ~32 MB of indices at a time
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = differences[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(low), float(high))


def evaluate(
    metric: str,
    champion_predictions: np.ndarray,
    candidate_predictions: np.ndarray,
    holdout: pa.Table,
    target: str,
    *,
    min_gain: float,
    segments: list[str],
    confidence: float = 0.95,
    resamples: int = 2000,
    min_segment_rows: int = 30,
    seed: int = 0,
) -> Evaluation:
    """Accept when the gain is at least ``min_gain`` and no value of a listed segment is worse beyond noise."""
    labels = np.asarray(holdout.column(target).to_numpy(zero_copy_only=False))
    champion_scores = row_scores(metric, champion_predictions, labels)
    candidate_scores = row_scores(metric, candidate_predictions, labels)
    unscored = _unscored(champion_scores, candidate_scores, labels)
    if unscored:
        return _refused(metric, len(labels), min_gain, confidence, unscored)
    differences = candidate_scores - champion_scores
    rng = np.random.default_rng(seed)
    interval = paired_interval(differences, confidence, resamples, rng)
    sign = 1.0 if metric == "accuracy" else -1.0  # report MAE as MAE (lower is better), gains as improvements
    champion, candidate = sign * float(champion_scores.mean()), sign * float(candidate_scores.mean())
    gain = float(differences.mean())
    reasons: list[str] = []
    if not gain >= min_gain:
        reasons.append(
            f"{metric} gain {gain:+.4f} (candidate {candidate:.4f} vs champion {champion:.4f} on {len(labels)} "
            f"held-out rows, {confidence:.0%} interval {interval.low:+.4f} to {interval.high:+.4f}) "
            f"is below min_gain {min_gain:+.4f}"
        )
    results: list[SegmentResult] = []
    for name in segments:
        if name not in holdout.column_names:
            reasons.append(f"segment {name!r} is not a column of the holdout")
            continue
        values = _segment_values(np.asarray(holdout.column(name).to_numpy(zero_copy_only=False)))
        kinds, counts = np.unique(values, return_counts=True)
        for value in kinds[np.argsort(-counts, kind="stable")][:MAX_SEGMENT_VALUES]:
            mask = values == value
            rows = int(mask.sum())
            if rows < min_segment_rows:
                results.append(SegmentResult(name, str(value), rows, None, None, None, None, "too_few_rows"))
                continue
            d = differences[mask]
            seg = paired_interval(d, confidence, resamples, rng)
            verdict = "worse" if seg.high < 0 else "better" if seg.low > 0 else "same"
            results.append(
                SegmentResult(
                    name,
                    str(value),
                    rows,
                    sign * float(champion_scores[mask].mean()),
                    sign * float(candidate_scores[mask].mean()),
                    float(d.mean()),
                    seg,
                    verdict,
                )
            )
            if verdict == "worse":
                reasons.append(
                    f"segment {name}={value}: {metric} worse by {-float(d.mean()):.4f} on {rows} rows "
                    f"({confidence:.0%} interval of the gain {seg.low:+.4f} to {seg.high:+.4f})"
                )
    return Evaluation(
        accepted=not reasons,
        metric=metric,
        rows=len(labels),
        champion=champion,
        candidate=candidate,
        gain=gain,
        interval=interval,
        min_gain=min_gain,
        confidence=confidence,
        segments=results,
        reasons=reasons,
    )


def _unscored(champion: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> list[str]:
    """Why some rows cannot be scored (NaN or infinite predictions or labels): a candidate is never judged
    on the rows that are left, and never accepted on a NaN gain."""
    if len(labels) == 0:
        return ["the holdout has no rows"]
    out = []
    for who, scores in (("the candidate", candidate), ("the champion", champion)):
        bad = int((~np.isfinite(scores)).sum())
        if bad:
            out.append(f"{who}'s predictions or the labels are not finite numbers (NaN or inf) on {bad} held-out rows")
    return out


def _refused(metric: str, rows: int, min_gain: float, confidence: float, reasons: list[str]) -> Evaluation:
    nan = float("nan")
    return Evaluation(
        accepted=False,
        metric=metric,
        rows=rows,
        champion=nan,
        candidate=nan,
        gain=nan,
        interval=Interval(nan, nan),
        min_gain=min_gain,
        confidence=confidence,
        reasons=reasons,
    )


SEGMENT_BINS = 5  # a numeric segment column with more values than MAX_SEGMENT_VALUES: judged by quintile


def _segment_values(values: np.ndarray) -> np.ndarray:
    """A segment's value per row: itself for a category, its quantile bin ("[a, b)") for a numeric column
    with more distinct values than are judged (each exact amount its own segment is noise, not a segment)."""
    if values.dtype.kind in "iuf" and len(np.unique(values)) > MAX_SEGMENT_VALUES:
        numbers = values.astype(np.float64)
        edges = np.unique(np.nanquantile(numbers, np.linspace(0, 1, SEGMENT_BINS + 1)))
        bins = np.clip(np.searchsorted(edges, numbers, side="right") - 1, 0, len(edges) - 2)
        names = np.array([f"[{edges[i]:.4g}, {edges[i + 1]:.4g})" for i in range(len(edges) - 1)])
        return names[bins]
    return _text(values)


def _text(values: np.ndarray) -> np.ndarray:
    """Labels compared as text, so 1, 1.0 and "1" from JSON feedback are one class."""
    out = np.asarray(values)
    if out.dtype.kind == "f" and np.isfinite(out).all():
        as_int = out.astype(np.int64)
        if np.array_equal(as_int, out):
            out = as_int
    return out.astype(str)
