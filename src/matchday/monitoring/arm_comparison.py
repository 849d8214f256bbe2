"""Two versions side by side over the same window of the prediction log: the numbers a canary
analysis and a shadow report are decided on. Statistics only; the decisions live in `rollout/`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np

from matchday.monitoring.drift import js_distance
from matchday.store import ArmRow, PredictionLogStore, ShadowPair

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class ArmStats:
    """One version in one window. ``metric`` is accuracy (classification) or MAE (regression)."""

    model: str
    version: int
    requests: int
    errors: int
    error_rate: float | None
    latency_p50_seconds: float | None
    latency_p99_seconds: float | None
    labelled: int
    metric: str
    metric_value: float | None
    metric_std: float | None = None  # of the per-row values (correct 0/1, or absolute error): for the gate's margin

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArmComparison:
    baseline: ArmStats
    candidate: ArmStats
    prediction_divergence: float | None  # Jensen-Shannon distance of the two prediction distributions
    since: datetime
    # one-sided Mann-Whitney U: how likely latencies this much slower are if the candidate is not slower
    latency_slower_pvalue: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline.as_dict(), "candidate": self.candidate.as_dict(),
                "prediction_divergence": self.prediction_divergence, "since": self.since.isoformat(),
                "latency_slower_pvalue": self.latency_slower_pvalue}


@dataclass(frozen=True)
class ShadowReport:
    """A shadow against the primary on the same inputs: agreement, latency, errors, accuracy."""

    model: str
    version: int
    requests: int
    errors: int
    error_rate: float | None
    latency_p50_seconds: float | None
    latency_p99_seconds: float | None
    compared: int
    agreement: float | None  # share of equal answers (classification) or 1 - normalised mean |difference|
    mean_abs_difference: float | None
    labelled: int
    metric: str
    shadow_metric: float | None
    primary_metric: float | None
    since: datetime

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = self.since.isoformat()
        return out


def metric_name(task: Task) -> str:
    return "accuracy" if task == "classification" else "mae"


def arm_stats(model: str, version: int, total: int, failed: int, rows: list[ArmRow], task: Task) -> ArmStats:
    latencies = np.array([r.latency_seconds for r in rows if r.error is None], dtype=np.float64)
    pairs = [(r.prediction, r.label) for r in rows if r.labelled and r.error is None and r.label is not None]
    return ArmStats(
        model=model, version=version, requests=total, errors=failed,
        error_rate=failed / total if total else None,
        latency_p50_seconds=_quantile(latencies, 0.5), latency_p99_seconds=_quantile(latencies, 0.99),
        labelled=len(pairs), metric=metric_name(task), metric_value=_metric(pairs, task),
        metric_std=_metric_std(pairs, task),
    )


def prediction_divergence(baseline: list[Any], candidate: list[Any], task: Task) -> float | None:
    """Jensen-Shannon distance between two arms' predictions: class shares, or 20 quantile bins."""
    baseline = [p for p in baseline if p is not None]
    candidate = [p for p in candidate if p is not None]
    if not baseline or not candidate:
        return None
    if task == "classification":
        keys = sorted({str(p) for p in baseline} | {str(p) for p in candidate})
        index = {k: i for i, k in enumerate(keys)}
        p = np.bincount([index[str(v)] for v in baseline], minlength=len(keys))
        q = np.bincount([index[str(v)] for v in candidate], minlength=len(keys))
        return js_distance(p, q)
    ref = np.asarray(baseline, dtype=np.float64)
    cur = np.asarray(candidate, dtype=np.float64)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 21)))
    # the inner edges cut the line into bins (the outer ones reach to infinity); a constant baseline
    # gets three, below, at and above its value, so a candidate that answers otherwise diverges
    inner = edges[1:-1] if len(edges) > 1 else np.array([ref[0], np.nextafter(ref[0], np.inf)])
    p = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=len(inner) + 1)
    q = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=len(inner) + 1)
    return js_distance(p, q)


def compare_arms(store: PredictionLogStore, deployment: str, baseline: tuple[str, int], candidate: tuple[str, int],
                 since: datetime, task: Task) -> ArmComparison:
    """Read both versions' rows since ``since`` and set their numbers side by side."""
    b_total, b_failed, b_rows = store.arm_window(deployment, baseline[0], baseline[1], since)
    c_total, c_failed, c_rows = store.arm_window(deployment, candidate[0], candidate[1], since)
    divergence = prediction_divergence([r.prediction for r in b_rows if r.error is None],
                                       [r.prediction for r in c_rows if r.error is None], task)
    return ArmComparison(arm_stats(*baseline, b_total, b_failed, b_rows, task),
                         arm_stats(*candidate, c_total, c_failed, c_rows, task), divergence, since,
                         latency_slower_pvalue([r.latency_seconds for r in b_rows if r.error is None],
                                               [r.latency_seconds for r in c_rows if r.error is None]))


def latency_slower_pvalue(baseline: list[float], candidate: list[float]) -> float | None:
    """One-sided Mann-Whitney U p-value that the candidate's latencies are larger (scipy's test)."""
    if len(baseline) < 2 or len(candidate) < 2:
        return None
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(candidate, baseline, alternative="greater").pvalue)


def shadow_report(store: PredictionLogStore, deployment: str, shadow: tuple[str, int], since: datetime,
                  task: Task) -> ShadowReport:
    total, failed, pairs = store.shadow_pairs(deployment, shadow[0], shadow[1], since)
    return summarize_shadow(shadow, total, failed, pairs, since, task)


def summarize_shadow(shadow: tuple[str, int], total: int, failed: int, pairs: list[ShadowPair], since: datetime,
                     task: Task) -> ShadowReport:
    ok = [p for p in pairs if p.shadow_error is None and p.primary_prediction is not None]
    latencies = np.array([p.shadow_latency_seconds for p in ok], dtype=np.float64)
    agreement = mad = None
    if ok and task == "classification":
        agreement = float(np.mean([str(p.shadow_prediction) == str(p.primary_prediction) for p in ok]))
    elif ok:
        a = np.array([p.shadow_prediction for p in ok], dtype=np.float64)
        b = np.array([p.primary_prediction for p in ok], dtype=np.float64)
        mad = float(np.mean(np.abs(a - b)))
        scale = float(np.mean(np.abs(b))) or 1.0
        agreement = max(0.0, 1.0 - mad / scale)
    labelled = [p for p in ok if p.labelled and p.label is not None]
    return ShadowReport(
        model=shadow[0], version=shadow[1], requests=total, errors=failed, error_rate=failed / total if total else None,
        latency_p50_seconds=_quantile(latencies, 0.5), latency_p99_seconds=_quantile(latencies, 0.99),
        compared=len(ok), agreement=agreement, mean_abs_difference=mad, labelled=len(labelled),
        metric=metric_name(task),
        shadow_metric=_metric([(p.shadow_prediction, p.label) for p in labelled], task),
        primary_metric=_metric([(p.primary_prediction, p.label) for p in labelled], task),
        since=since,
    )


def _quantile(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if values.size else None


def _per_row(pairs: list[tuple[Any, Any]], task: Task) -> np.ndarray | None:
    if task == "classification":
        return np.array([str(p) == str(y) for p, y in pairs], dtype=np.float64)
    try:
        return np.array([abs(float(p) - float(y)) for p, y in pairs], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _metric_std(pairs: list[tuple[Any, Any]], task: Task) -> float | None:
    values = _per_row(pairs, task) if pairs else None
    return None if values is None or values.size < 2 else float(np.std(values, ddof=1))


def _metric(pairs: list[tuple[Any, Any]], task: Task) -> float | None:
    if not pairs:
        return None
    if task == "classification":
        return float(np.mean([str(p) == str(y) for p, y in pairs]))
    try:
        return float(np.mean([abs(float(p) - float(y)) for p, y in pairs]))
    except (TypeError, ValueError):
        return None
