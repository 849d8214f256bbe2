"""Canary analysis: the plan's gates applied to two versions' numbers from the same window.

Each gate passes, fails or is inconclusive (too little evidence). The analysis fails if any gate
fails, is inconclusive if any is, and passes only when every gate passed: like Argo Rollouts,
too little traffic or too few labels is never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from matchday.monitoring import ArmComparison
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
        return {"name": self.name, "outcome": self.outcome, "value": self.value, "limit": self.limit,
                "detail": self.detail}


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


def analyse(comparison: ArmComparison, gates: Gates, min_requests: int) -> Analysis:
    b, c = comparison.baseline, comparison.candidate
    results: list[GateResult] = []
    enough = min(b.requests, c.requests) >= min_requests
    traffic = GateResult("traffic", "pass" if enough else "inconclusive", float(min(b.requests, c.requests)),
                         float(min_requests),
                         f"baseline {b.requests} and candidate {c.requests} rows"
                         + ("" if enough else f"; each needs {min_requests}"))
    results.append(traffic)

    if c.error_rate is None or b.error_rate is None:
        results.append(GateResult("error_rate", "inconclusive", None, gates.max_error_rate_increase, "no rows yet"))
    else:
        increase = c.error_rate - b.error_rate
        ok = increase <= gates.max_error_rate_increase
        results.append(GateResult("error_rate", "pass" if ok else "fail", increase, gates.max_error_rate_increase,
                                  f"candidate {c.error_rate:.2%} vs baseline {b.error_rate:.2%} "
                                  f"({c.errors} and {b.errors} failed rows)"))

    if c.latency_p99_seconds is None or b.latency_p99_seconds is None:
        results.append(GateResult("latency_p99", "inconclusive", None, None, "no successful rows on one side"))
    else:
        limit = b.latency_p99_seconds * gates.max_latency_p99_ratio + gates.latency_slack_seconds
        ok = c.latency_p99_seconds <= limit
        results.append(GateResult("latency_p99", "pass" if ok else "fail", c.latency_p99_seconds, limit,
                                  f"candidate p99 {c.latency_p99_seconds * 1000:.1f} ms vs baseline "
                                  f"{b.latency_p99_seconds * 1000:.1f} ms (limit {limit * 1000:.1f} ms)"))

    divergence = comparison.prediction_divergence
    if divergence is None:
        results.append(GateResult("prediction_divergence", "inconclusive", None, gates.max_prediction_divergence,
                                  "no predictions on one side"))
    else:
        ok = divergence <= gates.max_prediction_divergence
        results.append(GateResult("prediction_divergence", "pass" if ok else "fail", divergence,
                                  gates.max_prediction_divergence,
                                  f"Jensen-Shannon distance {divergence:.3f} between the two prediction distributions"))

    results.append(_metric_gate(comparison, gates))
    outcomes = {r.outcome for r in results}
    outcome: Outcome = "fail" if "fail" in outcomes else "inconclusive" if "inconclusive" in outcomes else "pass"
    return Analysis(outcome, tuple(results), comparison)


def _metric_gate(comparison: ArmComparison, gates: Gates) -> GateResult:
    b, c = comparison.baseline, comparison.candidate
    name = b.metric
    if gates.labels == "off":
        return GateResult(name, "skipped", None, None, "labels are not judged in this plan")
    have = min(b.labelled, c.labelled)
    if have < gates.min_labels or b.metric_value is None or c.metric_value is None:
        detail = f"{c.labelled} labelled rows on the candidate, {b.labelled} on the baseline; {gates.min_labels} needed"
        return GateResult(name, "inconclusive" if gates.labels == "required" else "skipped", None, None, detail)
    if name == "accuracy":
        drop = b.metric_value - c.metric_value
        what = f"accuracy {c.metric_value:.3f} vs baseline {b.metric_value:.3f}"
    else:
        drop = c.metric_value - b.metric_value
        what = f"MAE {c.metric_value:.4g} vs baseline {b.metric_value:.4g}"
    ok = drop <= gates.max_metric_drop
    return GateResult(name, "pass" if ok else "fail", drop, gates.max_metric_drop,
                      f"{what} on {have}+ labelled rows each")
