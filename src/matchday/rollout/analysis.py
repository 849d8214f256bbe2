"""Canary analysis: the plan's gates applied to two versions' numbers from the same window.

Each gate passes, fails or is inconclusive (too little evidence), or is skipped (labels the plan
does not ask for). The analysis fails if any gate fails, is inconclusive if any is, and passes only
when every gate passed or was skipped: too little traffic is never a pass, nor too few labels
when the plan requires them.

Argo Rollouts ends each AnalysisRun Successful, Failed or Inconclusive, and the rollout continues,
aborts or pauses for a person accordingly (an inconclusive background run never promotes, fixed in
v1.8.2). We do the same with one difference: our window keeps growing, so an inconclusive step first
holds for more rows, and pauses for a person only at its deadline. ``labels: optional`` skips the
accuracy gate only while labels are too few; with enough of them a drop past the limit that is not
yet significant is inconclusive like any other gate (the step holds), never a silent pass. A plan
with ``judged_only`` skips nothing: labels are required, and a pass means every gate was judged.

Error rate and accuracy are proportions from a few hundred rows, so noise alone moves them by
more than a typical tolerance. Those gates fail only when the candidate is worse than tolerated
with 99% confidence (one-sided; stricter than 95% because the controller looks again every tick);
a point estimate past the tolerance that is not yet significant is inconclusive, and the growing
window settles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from matchday.monitoring import ArmComparison, mean_difference_se, proportion_difference_se
from matchday.rollout.plan import Gates

Outcome = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class GateResult:
    name: str
    outcome: Outcome | Literal["skipped"]
    value: float | None
    limit: float | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outcome": self.outcome,
            "value": self.value,
            "limit": self.limit,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Analysis:
    outcome: Outcome
    gates: tuple[GateResult, ...]
    comparison: ArmComparison

    @property
    def reasons(self) -> list[str]:
        return [f"{g.name}: {g.detail}" for g in self.gates if g.outcome in ("fail", "inconclusive")]

    def failed(self, name: str) -> bool:
        return any(g.name == name and g.outcome == "fail" for g in self.gates)

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "gates": [g.as_dict() for g in self.gates], **self.comparison.as_dict()}


def analyse(comparison: ArmComparison, gates: Gates, min_requests: int, *, judged_only: bool = False) -> Analysis:
    """A canary step's analysis: every gate of the plan, the candidate's answers against the baseline's.

    ``judged_only`` (the plan's field): no gate may be skipped, so labels are required whatever
    ``gates.labels`` says, and a pass means every gate was judged and passed.
    """
    results = [
        _traffic_gate(comparison, min_requests),
        _error_rate_gate(comparison, gates),
        _latency_gate(comparison, gates),
        _divergence_gate(comparison, gates),
        _metric_gate(comparison, gates, judged_only),
    ]
    return _verdict(results, comparison)


def analyse_shadow(comparison: ArmComparison, gates: Gates, min_requests: int) -> Analysis:
    """A canary's shadow phase: the candidate's mirrored answers against the baseline's, same requests.

    Judged on traffic, error rate and prediction divergence, with the step's gates and margins. Not
    latency: a shadow is scored in batches by a process of lower priority, so its time is not what a
    client would wait. Not accuracy: labels join the rows clients got, not their mirrored copies (the
    shadow report shows both versions' accuracy on the labelled requests; the steps judge it).
    """
    results = [
        _traffic_gate(comparison, min_requests, who="shadow"),
        _error_rate_gate(comparison, gates, who="shadow"),
        _divergence_gate(comparison, gates),
    ]
    return _verdict(results, comparison)


def _verdict(results: list[GateResult], comparison: ArmComparison) -> Analysis:
    outcomes = {r.outcome for r in results}
    outcome: Outcome = "fail" if "fail" in outcomes else "inconclusive" if "inconclusive" in outcomes else "pass"
    return Analysis(outcome, tuple(results), comparison)


def _traffic_gate(comparison: ArmComparison, min_requests: int, who: str = "candidate") -> GateResult:
    b, c = comparison.baseline, comparison.candidate
    enough = min(b.requests, c.requests) >= min_requests
    return GateResult(
        "traffic",
        "pass" if enough else "inconclusive",
        float(min(b.requests, c.requests)),
        float(min_requests),
        f"baseline {b.requests} and {who} {c.requests} rows" + ("" if enough else f"; each needs {min_requests}"),
    )


def _error_rate_gate(comparison: ArmComparison, gates: Gates, who: str = "candidate") -> GateResult:
    b, c = comparison.baseline, comparison.candidate
    if c.error_rate is None or b.error_rate is None:
        return GateResult("error_rate", "inconclusive", None, gates.max_error_rate_increase, "no rows yet")
    # judged by request: the rows of one request (one batch) fail together. A shadow's unit is its
    # batch of mirrored requests, scored (and failed) together: fewer units, so a wider margin.
    c_n, c_x = (c.calls, c.failed_calls) if c.calls else (c.requests, c.errors)
    b_n, b_x = (b.calls, b.failed_calls) if b.calls else (b.requests, b.errors)
    c_rate, b_rate = c_x / max(c_n, 1), b_x / max(b_n, 1)
    increase = c_rate - b_rate
    margin = Z_FAIL * proportion_difference_se(c_x, c_n, b_x, b_n)
    unit = "requests" if who == "candidate" else "calls (a shadow's call is a batch of mirrored requests)"
    return GateResult(
        "error_rate",
        _judge(increase, margin, gates.max_error_rate_increase),
        increase,
        gates.max_error_rate_increase,
        f"{who} {c_rate:.2%} vs baseline {b_rate:.2%} of {unit} failed "
        f"({c_x} of {c_n} and {b_x} of {b_n}; increase {increase:+.2%} ± {margin:.2%})",
    )


def _latency_gate(comparison: ArmComparison, gates: Gates) -> GateResult:
    b, c = comparison.baseline, comparison.candidate
    if c.latency_p99_seconds is None or b.latency_p99_seconds is None:
        return GateResult("latency_p99", "inconclusive", None, None, "no successful rows on one side")
    limit = b.latency_p99_seconds * gates.max_latency_p99_ratio + gates.latency_slack_seconds
    p = comparison.latency_slower_pvalue
    over = c.latency_p99_seconds > limit
    # a p99 from a few hundred rows is nearly their maximum: one stall moves it. Over the limit fails
    # only if the candidate's latencies are also significantly slower overall (Mann-Whitney, 99%).
    outcome: Outcome = "pass" if not over else "fail" if p is None or p < 1 - 0.99 else "inconclusive"
    significance = "" if p is None else f"; slower overall p={p:.3g}"
    return GateResult(
        "latency_p99",
        outcome,
        c.latency_p99_seconds,
        limit,
        f"candidate p99 {c.latency_p99_seconds * 1000:.1f} ms vs baseline "
        f"{b.latency_p99_seconds * 1000:.1f} ms (limit {limit * 1000:.1f} ms{significance})",
    )


def _divergence_gate(comparison: ArmComparison, gates: Gates) -> GateResult:
    divergence = comparison.prediction_divergence
    if divergence is None:
        return GateResult(
            "prediction_divergence", "inconclusive", None, gates.max_prediction_divergence, "no predictions on one side"
        )
    p = comparison.divergence_pvalue
    over = divergence > gates.max_prediction_divergence
    # few rows over many classes or bins diverge by chance: over the limit fails only if random
    # splits of the same predictions rarely diverge as much (permutation test, 99%)
    outcome: Outcome = "pass" if not over else "fail" if p is None or p < 1 - 0.99 else "inconclusive"
    chance = "" if p is None else f"; by chance p={p:.3g}"
    return GateResult(
        "prediction_divergence",
        outcome,
        divergence,
        gates.max_prediction_divergence,
        f"Jensen-Shannon distance {divergence:.3f} between the two prediction distributions{chance}",
    )


def _metric_gate(comparison: ArmComparison, gates: Gates, judged_only: bool = False) -> GateResult:
    """Accuracy (or MAE) on labelled rows. ``labels: optional`` skips it only while labels are too few:
    with enough of them, a drop past the limit that is not yet significant is inconclusive (the step
    holds for more labels), never a silent pass."""
    b, c = comparison.baseline, comparison.candidate
    name = b.metric
    labels = "required" if judged_only else gates.labels
    if labels == "off":
        return GateResult(name, "skipped", None, None, "labels are not judged in this plan")
    have = min(b.labelled, c.labelled)
    if have < gates.min_labels or b.metric_value is None or c.metric_value is None:
        detail = f"{c.labelled} labelled rows on the candidate, {b.labelled} on the baseline; {gates.min_labels} needed"
        if judged_only and gates.labels != "required":
            detail += " (judged_only: labels are required)"
        return GateResult(name, "inconclusive" if labels == "required" else "skipped", None, None, detail)
    if name == "accuracy":
        drop = b.metric_value - c.metric_value
        what = f"accuracy {c.metric_value:.3f} vs baseline {b.metric_value:.3f}"
    else:
        drop = c.metric_value - b.metric_value
        what = f"MAE {c.metric_value:.4g} vs baseline {b.metric_value:.4g}"
    margin = Z_FAIL * mean_difference_se(b.metric_std, b.labelled, c.metric_std, c.labelled)
    outcome = _judge(drop, margin, gates.max_metric_drop)
    waiting = "; past the limit, not yet significant: waiting for more labels" if outcome == "inconclusive" else ""
    return GateResult(
        name,
        outcome,
        drop,
        gates.max_metric_drop,
        f"{what} on {c.labelled} and {b.labelled} labelled rows (worse by {drop:+.3f} ± {margin:.3f}{waiting})",
    )


Z_FAIL = 2.3263478740408408  # one-sided 99%


def _judge(worse_by: float, margin: float, tolerance: float) -> Outcome:
    """Fail only if worse beyond the tolerance with confidence; pass if the estimate is within it."""
    if worse_by - margin > tolerance:
        return "fail"
    return "pass" if worse_by <= tolerance else "inconclusive"
