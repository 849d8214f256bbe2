"""Two versions side by side over the same window of the prediction log: the numbers a canary
analysis and a shadow report are decided on. Statistics only; the decisions live in `rollout/`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
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
    calls: int = 0  # requests, the unit errors are counted in (a request's rows fail together)
    failed_calls: int = 0

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
    # permutation test: how often two random halves of the pooled predictions diverge this much
    divergence_pvalue: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.as_dict(),
            "candidate": self.candidate.as_dict(),
            "prediction_divergence": self.prediction_divergence,
            "since": self.since.isoformat(),
            "latency_slower_pvalue": self.latency_slower_pvalue,
            "divergence_pvalue": self.divergence_pvalue,
        }


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
        model=model,
        version=version,
        requests=total,
        errors=failed,
        error_rate=failed / total if total else None,
        latency_p50_seconds=_quantile(latencies, 0.5),
        latency_p99_seconds=_quantile(latencies, 0.99),
        labelled=len(pairs),
        metric=metric_name(task),
        metric_value=_metric(pairs, task),
        metric_std=_metric_std(pairs, task),
    )


def prediction_divergence(baseline: list[Any], candidate: list[Any], task: Task) -> float | None:
    """Jensen-Shannon distance between two arms' predictions: class shares, or 20 quantile bins."""
    baseline = [p for p in baseline if p is not None]
    candidate = [p for p in candidate if p is not None]
    if not baseline or not candidate:
        return None
    b, c, k = _codes(baseline, candidate, task)
    return js_distance(np.bincount(b, minlength=k), np.bincount(c, minlength=k))


def _inner_edges(ref: np.ndarray) -> np.ndarray:
    """The baseline's 20-quantile edges, without the outer two (the end bins reach to infinity); a
    constant baseline gets three bins, below, at and above its value, so a candidate that answers
    otherwise diverges."""
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 21)))
    return edges[1:-1] if len(edges) > 1 else np.array([ref[0], np.nextafter(ref[0], np.inf)])


def compare_arms(
    store: PredictionLogStore,
    deployment: str,
    baseline: tuple[str, int],
    candidate: tuple[str, int],
    since: datetime,
    task: Task,
    *,
    candidate_roles: tuple[str, ...] | None = None,
) -> ArmComparison:
    """Read both versions' rows since ``since`` and set their numbers side by side.

    ``candidate_roles``: the log roles of the candidate's rows, when they are not answers (a shadow's
    mirrored rows, ``("shadow",)``: the baseline's answers to the same requests stand beside them).
    """
    c_roles: dict[str, Any] = {} if candidate_roles is None else {"roles": candidate_roles}
    b_total, b_failed, b_rows = store.arm_window(deployment, baseline[0], baseline[1], since)
    c_total, c_failed, c_rows = store.arm_window(deployment, candidate[0], candidate[1], since, **c_roles)
    b_predictions = [r.prediction for r in b_rows if r.error is None]
    c_predictions = [r.prediction for r in c_rows if r.error is None]
    divergence = prediction_divergence(b_predictions, c_predictions, task)
    b_stats = _with_calls(
        arm_stats(*baseline, b_total, b_failed, b_rows, task),
        store.arm_calls(deployment, baseline[0], baseline[1], since),
    )
    c_stats = _with_calls(
        arm_stats(*candidate, c_total, c_failed, c_rows, task),
        store.arm_calls(deployment, candidate[0], candidate[1], since, **c_roles),
    )
    return ArmComparison(
        b_stats,
        c_stats,
        divergence,
        since,
        latency_slower_pvalue(
            [r.latency_seconds for r in b_rows if r.error is None],
            [r.latency_seconds for r in c_rows if r.error is None],
        ),
        divergence_pvalue(b_predictions, c_predictions, task, divergence),
    )


def _with_calls(stats: ArmStats, counts: tuple[int, int]) -> ArmStats:
    """``stats`` with the requests (``arm_calls``) its rows came in, and how many of them failed."""
    return replace(stats, calls=counts[0], failed_calls=counts[1])


def _codes(baseline: list[Any], candidate: list[Any], task: Task) -> tuple[np.ndarray, np.ndarray, int]:
    """Both arms' predictions as small integers: classes, or the divergence's bins."""
    if task == "classification":
        keys = sorted({str(p) for p in baseline} | {str(p) for p in candidate})
        index = {k: i for i, k in enumerate(keys)}
        return (np.array([index[str(v)] for v in baseline]), np.array([index[str(v)] for v in candidate]), len(keys))
    ref = np.asarray(baseline, dtype=np.float64)
    cur = np.asarray(candidate, dtype=np.float64)
    inner = _inner_edges(ref)
    return (np.searchsorted(inner, ref, side="right"), np.searchsorted(inner, cur, side="right"), len(inner) + 1)


def divergence_pvalue(
    baseline: list[Any],
    candidate: list[Any],
    task: Task,
    observed: float | None,
    permutations: int = 200,
    cap: int = 5000,
    seed: int = 0,
) -> float | None:
    """Share of random splits of the pooled predictions at least as divergent as ``observed``.

    Few rows over many classes or bins diverge by chance; this says how much. (Regression bins stay
    the baseline's, an approximation that keeps each permutation a bincount.)
    """
    baseline = [p for p in baseline if p is not None][:cap]
    candidate = [p for p in candidate if p is not None][:cap]
    if observed is None or not baseline or not candidate:
        return None
    b, c, k = _codes(baseline, candidate, task)
    pooled = np.concatenate([b, c])
    rng = np.random.default_rng(seed)
    at_least = 0
    for _ in range(permutations):
        shuffled = rng.permutation(pooled)
        p = np.bincount(shuffled[: b.size], minlength=k)
        q = np.bincount(shuffled[b.size :], minlength=k)
        at_least += js_distance(p, q) >= observed - 1e-12
    return (at_least + 1) / (permutations + 1)


def proportion_difference_se(x1: int, n1: int, x2: int, n2: int) -> float:
    """Standard error of a difference of two proportions, Agresti-Caffo adjusted (never 0)."""
    p1, p2 = (x1 + 1) / (n1 + 2), (x2 + 1) / (n2 + 2)
    return math.sqrt(p1 * (1 - p1) / (n1 + 2) + p2 * (1 - p2) / (n2 + 2))


def mean_difference_se(std1: float | None, n1: int, std2: float | None, n2: int) -> float:
    """Standard error of a difference of two means (Welch), from per-row standard deviations."""
    return math.sqrt((std1 or 0.0) ** 2 / max(n1, 1) + (std2 or 0.0) ** 2 / max(n2, 1))


def latency_slower_pvalue(baseline: list[float], candidate: list[float]) -> float | None:
    """One-sided Mann-Whitney U p-value that the candidate's latencies are larger (scipy's test)."""
    if len(baseline) < 2 or len(candidate) < 2:
        return None
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(candidate, baseline, alternative="greater").pvalue)


def shadow_report(
    store: PredictionLogStore, deployment: str, shadow: tuple[str, int], since: datetime, task: Task
) -> ShadowReport:
    total, failed, pairs = store.shadow_pairs(deployment, shadow[0], shadow[1], since)
    return summarize_shadow(shadow, total, failed, pairs, since, task)


def summarize_shadow(
    shadow: tuple[str, int], total: int, failed: int, pairs: list[ShadowPair], since: datetime, task: Task
) -> ShadowReport:
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
        model=shadow[0],
        version=shadow[1],
        requests=total,
        errors=failed,
        error_rate=failed / total if total else None,
        latency_p50_seconds=_quantile(latencies, 0.5),
        latency_p99_seconds=_quantile(latencies, 0.99),
        compared=len(ok),
        agreement=agreement,
        mean_abs_difference=mad,
        labelled=len(labelled),
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
