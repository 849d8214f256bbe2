"""Canary analysis gates on hand-built numbers, and the arm statistics they are computed from."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from matchday.monitoring import ArmComparison, ArmStats
from matchday.monitoring.windows.arm_comparison import (
    arm_stats,
    prediction_divergence,
    summarize_shadow,
)
from matchday.rollout import Analysis, GateResult, Gates, analyse, analyse_shadow
from matchday.store import ArmRow, ShadowPair

SINCE = datetime(2026, 1, 1, tzinfo=UTC)


def arm(
    version: int,
    *,
    requests: int = 1000,
    errors: int = 0,
    p99: float | None = 0.010,
    labelled: int = 0,
    metric_value: float | None = None,
    metric: str = "accuracy",
) -> ArmStats:
    return ArmStats(
        model="fraud",
        version=version,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else None,
        latency_p50_seconds=None if p99 is None else p99 / 2,
        latency_p99_seconds=p99,
        labelled=labelled,
        metric=metric,
        metric_value=metric_value,
    )


def compare(baseline: ArmStats, candidate: ArmStats, divergence: float | None = 0.01) -> ArmComparison:
    return ArmComparison(baseline, candidate, divergence, SINCE)


def gate(analysis: Analysis, name: str) -> GateResult:
    (found,) = [g for g in analysis.gates if g.name == name]
    return found


GOOD = compare(arm(1, errors=2, labelled=500, metric_value=0.90), arm(2, errors=1, labelled=500, metric_value=0.91))


# -- the verdict -----------------------------------------------------------------------------------


def test_a_candidate_as_good_as_the_baseline_passes_every_gate() -> None:
    analysis = analyse(GOOD, Gates(), min_requests=200)
    assert analysis.outcome == "pass"
    assert {g.name: g.outcome for g in analysis.gates} == {
        "traffic": "pass",
        "error_rate": "pass",
        "latency_p99": "pass",
        "prediction_divergence": "pass",
        "accuracy": "pass",
    }
    assert analysis.reasons == []
    assert not analysis.failed("error_rate")


def test_the_analysis_serialises_its_gates_and_numbers() -> None:
    numbers = analyse(GOOD, Gates(), min_requests=200).as_dict()
    assert numbers["outcome"] == "pass"
    assert numbers["gates"][0]["name"] == "traffic"
    assert numbers["baseline"]["version"] == 1 and numbers["candidate"]["version"] == 2
    assert numbers["prediction_divergence"] == 0.01 and numbers["since"] == SINCE.isoformat()
    traffic = numbers["gates"][0]
    assert traffic == {
        "name": "traffic",
        "outcome": "pass",
        "value": 1000.0,
        "limit": 200.0,
        "detail": "baseline 1000 and candidate 1000 rows",
    }


def test_too_little_traffic_is_inconclusive_never_a_pass() -> None:
    few = compare(arm(1, requests=500), arm(2, requests=50))
    analysis = analyse(few, Gates(labels="off"), min_requests=200)
    assert analysis.outcome == "inconclusive"
    traffic = gate(analysis, "traffic")
    assert (traffic.outcome, traffic.value, traffic.limit) == ("inconclusive", 50.0, 200.0)
    assert "each needs 200" in traffic.detail
    assert analysis.reasons == ["traffic: baseline 500 and candidate 50 rows; each needs 200"]


def test_no_rows_at_all_is_inconclusive() -> None:
    empty = compare(arm(1, requests=0, p99=None), arm(2, requests=0, p99=None), divergence=None)
    analysis = analyse(empty, Gates(), min_requests=1)
    assert analysis.outcome == "inconclusive"
    assert {g.name: g.outcome for g in analysis.gates} == {
        "traffic": "inconclusive",
        "error_rate": "inconclusive",
        "latency_p99": "inconclusive",
        "prediction_divergence": "inconclusive",
        "accuracy": "skipped",
    }


def test_a_failure_outweighs_too_little_traffic() -> None:
    crashing = compare(arm(1, requests=1000), arm(2, requests=100, errors=100, p99=None), divergence=None)
    analysis = analyse(crashing, Gates(), min_requests=200)
    assert analysis.outcome == "fail"
    assert analysis.failed("error_rate") and gate(analysis, "traffic").outcome == "inconclusive"


# -- each gate failing on its own ------------------------------------------------------------------


def test_error_rate_gate() -> None:
    analysis = analyse(compare(arm(1, errors=5), arm(2, errors=150)), Gates(), min_requests=200)
    assert analysis.outcome == "fail" and analysis.failed("error_rate")
    error_rate = gate(analysis, "error_rate")
    assert error_rate.value == pytest.approx(0.145) and error_rate.limit == 0.01
    assert "candidate 15.00% vs baseline 0.50%" in error_rate.detail
    assert [r.split(":")[0] for r in analysis.reasons] == ["error_rate"]
    assert {g.outcome for g in analysis.gates if g.name != "error_rate"} <= {"pass", "skipped"}
    # a looser gate lets the same numbers through
    assert (
        analyse(
            compare(arm(1, errors=5), arm(2, errors=150)), Gates(max_error_rate_increase=0.5), min_requests=200
        ).outcome
        == "pass"
    )


def test_fewer_errors_than_the_baseline_pass() -> None:
    analysis = analyse(compare(arm(1, errors=100), arm(2, errors=0)), Gates(), min_requests=200)
    assert gate(analysis, "error_rate").outcome == "pass" and gate(analysis, "error_rate").value < 0


def test_latency_gate_ratio_and_slack() -> None:
    gates = Gates(max_latency_p99_ratio=1.5, latency_slack_seconds=0.005)
    limit = 0.010 * 1.5 + 0.005
    at_limit = analyse(compare(arm(1, p99=0.010), arm(2, p99=limit - 1e-9)), gates, 200)
    assert gate(at_limit, "latency_p99").outcome == "pass"
    slow = analyse(compare(arm(1, p99=0.010), arm(2, p99=0.021)), gates, 200)
    latency = gate(slow, "latency_p99")
    assert (slow.outcome, latency.outcome) == ("fail", "fail")
    assert latency.value == 0.021 and latency.limit == pytest.approx(limit)
    assert "limit 20.0 ms" in latency.detail and not slow.failed("error_rate")


def test_latency_slack_keeps_microseconds_from_failing() -> None:
    """Three times slower, but 30 microseconds against 10: noise, not a regression."""
    tiny = compare(arm(1, p99=10e-6), arm(2, p99=30e-6))
    assert gate(analyse(tiny, Gates(), 200), "latency_p99").outcome == "pass"
    assert gate(analyse(tiny, Gates(latency_slack_seconds=0), 200), "latency_p99").outcome == "fail"


def test_a_p99_over_the_limit_fails_only_if_the_candidate_is_significantly_slower() -> None:
    """One stall among a few hundred rows moves a p99; the gate waits for the whole distribution to agree."""
    base = compare(arm(1, p99=0.010), arm(2, p99=0.040))
    stall = ArmComparison(
        base.baseline, base.candidate, base.prediction_divergence, base.since, latency_slower_pvalue=0.3
    )
    assert gate(analyse(stall, Gates(labels="off"), 200), "latency_p99").outcome == "inconclusive"
    slower = ArmComparison(
        base.baseline, base.candidate, base.prediction_divergence, base.since, latency_slower_pvalue=0.001
    )
    assert gate(analyse(slower, Gates(labels="off"), 200), "latency_p99").outcome == "fail"


def test_latency_slower_pvalue_is_scipys_one_sided_mann_whitney() -> None:
    from scipy.stats import mannwhitneyu

    from matchday.monitoring.windows.arm_comparison import latency_slower_pvalue

    rng = np.random.default_rng(3)
    fast, slow = list(rng.gamma(2, 0.005, 400)), list(rng.gamma(2, 0.005, 400) + 0.004)
    assert latency_slower_pvalue(fast, slow) == pytest.approx(mannwhitneyu(slow, fast, alternative="greater").pvalue)
    assert latency_slower_pvalue(fast, slow) < 1e-6 < latency_slower_pvalue(slow, fast)
    assert latency_slower_pvalue([0.01], slow) is None


def test_latency_without_successful_rows_is_inconclusive() -> None:
    analysis = analyse(compare(arm(1), arm(2, p99=None)), Gates(labels="off"), 200)
    assert gate(analysis, "latency_p99").outcome == "inconclusive" and analysis.outcome == "inconclusive"


def test_divergence_gate() -> None:
    analysis = analyse(compare(arm(1), arm(2), divergence=0.35), Gates(), 200)
    divergence = gate(analysis, "prediction_divergence")
    assert (analysis.outcome, divergence.outcome, divergence.value, divergence.limit) == ("fail", "fail", 0.35, 0.2)
    assert "0.350" in divergence.detail
    assert analyse(compare(arm(1), arm(2), divergence=0.2), Gates(), 200).outcome == "pass"
    assert (
        analyse(compare(arm(1), arm(2), divergence=0.35), Gates(max_prediction_divergence=0.4), 200).outcome == "pass"
    )
    missing = analyse(compare(arm(1), arm(2), divergence=None), Gates(), 200)
    assert gate(missing, "prediction_divergence").outcome == "inconclusive"


def test_accuracy_drop_gate() -> None:
    worse = compare(arm(1, labelled=400, metric_value=0.92), arm(2, labelled=400, metric_value=0.80))
    analysis = analyse(worse, Gates(), 200)
    accuracy = gate(analysis, "accuracy")
    assert (analysis.outcome, accuracy.outcome) == ("fail", "fail")
    assert accuracy.value == pytest.approx(0.12) and accuracy.limit == 0.02
    assert "accuracy 0.800 vs baseline 0.920" in accuracy.detail
    within = compare(arm(1, labelled=400, metric_value=0.92), arm(2, labelled=400, metric_value=0.905))
    assert gate(analyse(within, Gates(), 200), "accuracy").outcome == "pass"
    assert gate(analyse(worse, Gates(max_metric_drop=0.2), 200), "accuracy").outcome == "pass"


def test_mae_gate_for_regression_is_higher_is_worse() -> None:
    def mae(b: float, c: float) -> ArmComparison:
        return compare(
            arm(1, labelled=300, metric_value=b, metric="mae"), arm(2, labelled=300, metric_value=c, metric="mae")
        )

    worse = analyse(mae(1.00, 1.50), Gates(max_metric_drop=0.1), 200)
    assert gate(worse, "mae").outcome == "fail" and gate(worse, "mae").value == pytest.approx(0.5)
    assert "MAE 1.5 vs baseline 1" in gate(worse, "mae").detail
    better = analyse(mae(1.50, 1.00), Gates(max_metric_drop=0.1), 200)  # lower MAE: better, not a drop
    assert gate(better, "mae").outcome == "pass" and better.outcome == "pass"
    assert not [g for g in better.gates if g.name == "accuracy"]


# -- labels: required, optional, off ---------------------------------------------------------------

FEW_LABELS = compare(arm(1, labelled=10, metric_value=0.9), arm(2, labelled=10, metric_value=0.1))
WORSE_LABELLED = compare(arm(1, labelled=100, metric_value=0.95), arm(2, labelled=100, metric_value=0.50))


def test_required_labels_too_few_is_inconclusive() -> None:
    analysis = analyse(FEW_LABELS, Gates(labels="required", min_labels=50), 200)
    accuracy = gate(analysis, "accuracy")
    assert (analysis.outcome, accuracy.outcome) == ("inconclusive", "inconclusive")
    assert "50 needed" in accuracy.detail
    assert any(r.startswith("accuracy: ") for r in analysis.reasons)


def test_optional_labels_too_few_are_skipped() -> None:
    analysis = analyse(FEW_LABELS, Gates(labels="optional", min_labels=50), 200)
    assert (analysis.outcome, gate(analysis, "accuracy").outcome) == ("pass", "skipped")
    assert analysis.reasons == []


def test_enough_labels_are_judged_whether_required_or_optional() -> None:
    for labels in ("required", "optional"):
        analysis = analyse(WORSE_LABELLED, Gates(labels=labels, min_labels=50), 200)
        assert analysis.outcome == "fail" and analysis.failed("accuracy"), labels


def test_labels_off_never_judges_accuracy() -> None:
    analysis = analyse(WORSE_LABELLED, Gates(labels="off"), 200)
    assert (analysis.outcome, gate(analysis, "accuracy").outcome) == ("pass", "skipped")
    assert gate(analysis, "accuracy").value is None


def test_labels_must_be_enough_on_both_sides() -> None:
    lopsided = compare(arm(1, labelled=500, metric_value=0.95), arm(2, labelled=49, metric_value=0.5))
    assert gate(analyse(lopsided, Gates(labels="required", min_labels=50), 200), "accuracy").outcome == "inconclusive"


def bernoulli_std(p: float, n: int) -> float:
    """The sample standard deviation of n rows that are right (1) a share p of the time."""
    return float(np.sqrt(p * (1 - p) * n / (n - 1)))


def accuracy_arm(version: int, accuracy: float, labelled: int) -> ArmStats:
    return replace(arm(version, labelled=labelled, metric_value=accuracy), metric_std=bernoulli_std(accuracy, labelled))


# 0.085 worse on 83 labelled rows a side: past the 0.02 limit, inside its ±0.10 margin (99%, one-sided)
UNSURE = compare(accuracy_arm(1, 0.950, 83), accuracy_arm(2, 0.865, 83))


def test_a_drop_past_the_limit_that_is_not_yet_significant_holds_even_when_labels_are_optional() -> None:
    """Enough labels to judge, too few to be sure: the step holds for more, it does not pass silently."""
    for labels in ("optional", "required"):
        analysis = analyse(UNSURE, Gates(labels=labels), 200)
        accuracy = gate(analysis, "accuracy")
        assert (analysis.outcome, accuracy.outcome) == ("inconclusive", "inconclusive"), labels
        assert accuracy.value == pytest.approx(0.085) and accuracy.limit == 0.02
        assert "on 83 and 83 labelled rows (worse by +0.085 ± 0.10" in accuracy.detail
        assert "not yet significant: waiting for more labels" in accuracy.detail
        assert [r.split(":")[0] for r in analysis.reasons] == ["accuracy"]
    # the same drop on many more rows is significant: it fails, whether labels are optional or required
    sure = compare(accuracy_arm(1, 0.950, 2000), accuracy_arm(2, 0.865, 2000))
    assert gate(analyse(sure, Gates(labels="optional"), 200), "accuracy").outcome == "fail"
    # below min_labels, optional still skips the gate (nothing to judge yet)
    assert gate(analyse(UNSURE, Gates(labels="optional", min_labels=84), 200), "accuracy").outcome == "skipped"
    assert analyse(UNSURE, Gates(labels="off"), 200).outcome == "pass"


# -- judged_only: no gate skipped ------------------------------------------------------------------


def test_judged_only_makes_too_few_labels_inconclusive_whatever_labels_says() -> None:
    for labels in ("optional", "required"):
        analysis = analyse(FEW_LABELS, Gates(labels=labels, min_labels=50), 200, judged_only=True)
        accuracy = gate(analysis, "accuracy")
        assert (analysis.outcome, accuracy.outcome) == ("inconclusive", "inconclusive"), labels
        assert "50 needed" in accuracy.detail
    assert (
        "(judged_only: labels are required)"
        in gate(analyse(FEW_LABELS, Gates(labels="optional"), 200, judged_only=True), "accuracy").detail
    )
    no_labels = compare(arm(1), arm(2))  # nothing labelled at all: without judged_only this passes
    assert analyse(no_labels, Gates(), 200).outcome == "pass"
    assert analyse(no_labels, Gates(), 200, judged_only=True).outcome == "inconclusive"


def test_judged_only_passes_only_when_every_gate_was_judged_and_passed() -> None:
    analysis = analyse(GOOD, Gates(), 200, judged_only=True)
    assert analysis.outcome == "pass"
    assert {g.outcome for g in analysis.gates} == {"pass"}
    assert len(analysis.gates) == 5
    for case in (UNSURE, FEW_LABELS, WORSE_LABELLED, compare(arm(1), arm(2, requests=50))):
        outcomes = {g.outcome for g in analyse(case, Gates(), 200, judged_only=True).gates}
        assert "skipped" not in outcomes


# -- a canary's shadow phase -----------------------------------------------------------------------


def test_the_shadow_phase_is_judged_on_traffic_errors_and_divergence() -> None:
    """Not latency (scored in batches, at a lower priority) nor accuracy (labels join the answered rows)."""
    slow_unlabelled = compare(arm(1, labelled=500, metric_value=0.9), arm(2, p99=5.0))
    analysis = analyse_shadow(slow_unlabelled, Gates(labels="required"), 200)
    assert [g.name for g in analysis.gates] == ["traffic", "error_rate", "prediction_divergence"]
    assert analysis.outcome == "pass" and analysis.reasons == []
    assert gate(analysis, "traffic").detail == "baseline 1000 and shadow 1000 rows"


def test_a_crashing_or_divergent_shadow_fails_and_too_few_rows_are_inconclusive() -> None:
    crashing = analyse_shadow(compare(arm(1), arm(2, errors=1000, p99=None), divergence=None), Gates(), 200)
    assert crashing.outcome == "fail" and crashing.failed("error_rate")
    assert gate(crashing, "error_rate").detail.startswith("shadow 100.00% vs baseline 0.00% of calls")
    divergent = analyse_shadow(compare(arm(1), arm(2), divergence=0.5), Gates(), 200)
    assert divergent.outcome == "fail" and divergent.failed("prediction_divergence")
    few = analyse_shadow(compare(arm(1), arm(2, requests=20)), Gates(), 200)
    assert few.outcome == "inconclusive" and few.reasons == [
        "traffic: baseline 1000 and shadow 20 rows; each needs 200"
    ]


# -- arm statistics --------------------------------------------------------------------------------


def test_arm_stats_from_rows() -> None:
    rows = [ArmRow(0.01 * (i + 1), None, i % 2, i % 2 if i < 6 else 1 - i % 2, i < 8) for i in range(10)]
    rows.append(ArmRow(5.0, "boom", None, None, False))
    stats = arm_stats("fraud", 2, total=11, failed=1, rows=rows, task="classification")
    assert (stats.requests, stats.errors) == (11, 1)
    assert stats.error_rate == pytest.approx(1 / 11)
    latencies = [0.01 * (i + 1) for i in range(10)]  # the failed row's 5 s are not a latency
    assert stats.latency_p99_seconds == pytest.approx(np.quantile(latencies, 0.99))
    assert stats.latency_p50_seconds == pytest.approx(np.median(latencies))
    assert stats.labelled == 8 and stats.metric == "accuracy"
    assert stats.metric_value == pytest.approx(6 / 8)  # rows 0-5 right, 6-7 wrong


def test_arm_stats_regression_mae() -> None:
    rows = [
        ArmRow(0.01, None, 2.0, 3.0, True),
        ArmRow(0.01, None, 5.0, 4.0, True),
        ArmRow(0.01, None, 1.0, None, False),
    ]
    stats = arm_stats("house", 1, total=3, failed=0, rows=rows, task="regression")
    assert (stats.metric, stats.labelled, stats.metric_value) == ("mae", 2, pytest.approx(1.0))


def test_arm_stats_without_rows() -> None:
    stats = arm_stats("fraud", 1, total=0, failed=0, rows=[], task="classification")
    assert stats.error_rate is None and stats.latency_p99_seconds is None and stats.metric_value is None


# -- prediction divergence -------------------------------------------------------------------------


def test_classification_divergence_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    baseline = rng.choice(["a", "b", "c"], 3000, p=[0.7, 0.2, 0.1]).tolist()
    candidate = rng.choice(["a", "b", "c", "d"], 2000, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    p = np.array([baseline.count(k) for k in "abcd"], dtype=float)
    q = np.array([candidate.count(k) for k in "abcd"], dtype=float)
    expected = jensenshannon(p / p.sum(), q / q.sum())
    assert prediction_divergence(baseline, candidate, "classification") == pytest.approx(expected, rel=1e-9)
    assert expected > 0.2


def test_classification_divergence_of_equal_shares_is_zero_and_disjoint_is_the_maximum() -> None:
    assert prediction_divergence([0, 1] * 50, [1, 0] * 10, "classification") == pytest.approx(0.0, abs=1e-12)
    assert prediction_divergence([0] * 10, [1] * 10, "classification") == pytest.approx(np.sqrt(np.log(2)))
    # labels compare as text: 1 and "1" are one class, as they come back from JSON
    assert prediction_divergence([1, 0], ["1", "0"], "classification") == pytest.approx(0.0, abs=1e-12)


def _regression_oracle(baseline: np.ndarray, candidate: np.ndarray) -> float:
    edges = np.unique(np.quantile(baseline, np.linspace(0, 1, 21)))
    clip = (edges[0], edges[-1])  # values outside the baseline's range count in the outer bins
    p = np.histogram(np.clip(baseline, *clip), bins=edges)[0]
    q = np.histogram(np.clip(candidate, *clip), bins=edges)[0]
    return float(jensenshannon(p / p.sum(), q / q.sum()))


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0, 3.0])
def test_regression_divergence_matches_scipy_on_quantile_bins(shift: float) -> None:
    rng = np.random.default_rng(2)
    baseline = rng.normal(0, 1, 4000)
    candidate = rng.normal(shift, 1, 3000)
    got = prediction_divergence(baseline.tolist(), candidate.tolist(), "regression")
    assert got == pytest.approx(_regression_oracle(baseline, candidate), rel=1e-9, abs=1e-12)


def test_regression_divergence_grows_with_the_shift() -> None:
    rng = np.random.default_rng(3)
    baseline = rng.normal(0, 1, 4000).tolist()
    values = [prediction_divergence(baseline, rng.normal(s, 1, 4000).tolist(), "regression") for s in (0, 0.5, 2)]
    assert values[0] < 0.05 < values[1] < values[2]


def test_divergence_edge_cases() -> None:
    assert prediction_divergence([], [1, 2], "classification") is None
    assert prediction_divergence([None, None], [1], "regression") is None
    assert prediction_divergence([1.0, None, 2.0], [None], "regression") is None
    # a constant baseline: a candidate that answers the same does not diverge, one that answers otherwise does
    assert prediction_divergence([3.0] * 10, [3.0] * 5, "regression") == pytest.approx(0.0, abs=1e-12)
    assert prediction_divergence([3.0] * 10, [9.0] * 5, "regression") == pytest.approx(np.sqrt(np.log(2)))
    assert prediction_divergence([3.0] * 10, [-1.0] * 5, "regression") == pytest.approx(np.sqrt(np.log(2)))
    assert prediction_divergence([3.0] * 10, [3.0, 9.0], "regression") == pytest.approx(
        jensenshannon([1, 0], [0.5, 0.5])
    )
    assert prediction_divergence([0, 0, 1, None], [0, 1, 1], "classification") == pytest.approx(
        jensenshannon([2 / 3, 1 / 3], [1 / 3, 2 / 3])
    )


# -- shadow summary --------------------------------------------------------------------------------


def pair(shadow: Any, primary: Any, label: Any = None, error: str | None = None, latency: float = 0.02) -> ShadowPair:
    return ShadowPair(shadow, error, latency, primary, label, label is not None)


def test_summarize_shadow_classification_agreement() -> None:
    pairs = [
        pair(1, 1, label=1),
        pair(0, 1, label=0),
        pair(1, 1, label=0),
        pair(0, 0),
        pair(None, 1, error="boom", latency=9.0),
    ]
    report = summarize_shadow(("fraud", 2), 5, 1, pairs, SINCE, "classification")
    assert (report.requests, report.errors, report.error_rate) == (5, 1, 0.2)
    assert report.compared == 4  # the failed row is not compared
    assert report.agreement == pytest.approx(3 / 4)
    assert report.mean_abs_difference is None
    assert report.labelled == 3 and report.metric == "accuracy"
    assert report.shadow_metric == pytest.approx(2 / 3) and report.primary_metric == pytest.approx(1 / 3)
    assert report.latency_p99_seconds == pytest.approx(0.02)  # the failure's 9 s are not counted
    assert report.as_dict()["since"] == SINCE.isoformat()


def test_summarize_shadow_regression() -> None:
    pairs = [pair(11.0, 10.0, label=10.0), pair(18.0, 20.0, label=21.0), pair(30.0, 30.0)]
    report = summarize_shadow(("house", 3), 3, 0, pairs, SINCE, "regression")
    assert report.mean_abs_difference == pytest.approx(1.0)
    assert report.agreement == pytest.approx(1 - 1.0 / 20.0)
    assert report.shadow_metric == pytest.approx((1 + 3) / 2) and report.primary_metric == pytest.approx(0.5)


def test_summarize_shadow_agreement_never_negative_and_empty_is_none() -> None:
    report = summarize_shadow(("house", 3), 2, 0, [pair(100.0, 1.0), pair(-100.0, 1.0)], SINCE, "regression")
    assert report.agreement == 0.0
    empty = summarize_shadow(("fraud", 2), 0, 0, [], SINCE, "classification")
    assert (empty.agreement, empty.error_rate, empty.compared, empty.shadow_metric) == (None, None, 0, None)


def test_divergence_from_few_rows_over_many_classes_is_not_a_failure_until_it_is_significant() -> None:
    """Ten classes, sixty rows a side, the same distribution: a JS distance over 0.2 is common chance."""
    from matchday.monitoring.windows.arm_comparison import divergence_pvalue, prediction_divergence

    rng = np.random.default_rng(5)
    chance_failures = 0
    for _ in range(30):
        b, c = list(rng.integers(0, 10, 60)), list(rng.integers(0, 10, 60))
        d = prediction_divergence(b, c, "classification")
        p = divergence_pvalue(b, c, "classification", d)
        base = compare(arm(1), arm(2), divergence=d)
        judged = ArmComparison(base.baseline, base.candidate, d, base.since, divergence_pvalue=p)
        chance_failures += gate(analyse(judged, Gates(labels="off"), 50), "prediction_divergence").outcome == "fail"
        assert d is not None and p is not None
    assert chance_failures <= 1
    broken = [1] * 60  # a release that answers one class only
    b = list(rng.integers(0, 10, 60))
    d = prediction_divergence(b, broken, "classification")
    p = divergence_pvalue(b, broken, "classification", d)
    assert p is not None and p < 0.01
    base = compare(arm(1), arm(2), divergence=d)
    judged = ArmComparison(base.baseline, base.candidate, d, base.since, divergence_pvalue=p)
    assert gate(analyse(judged, Gates(labels="off"), 50), "prediction_divergence").outcome == "fail"


def test_errors_are_judged_by_request_not_by_row() -> None:
    """One failed ten-row request among twenty: a hiccup, not 5% of rows failing independently."""

    def with_calls(stats: ArmStats, calls: int, failed: int) -> ArmStats:
        from dataclasses import replace

        return replace(stats, calls=calls, failed_calls=failed)

    base = compare(arm(1, requests=200), arm(2, requests=200, errors=10))
    by_row = analyse(base, Gates(labels="off"), 100)
    assert gate(by_row, "error_rate").outcome == "fail"  # rows as if independent
    by_request = ArmComparison(
        with_calls(base.baseline, 20, 0), with_calls(base.candidate, 20, 1), base.prediction_divergence, base.since
    )
    assert gate(analyse(by_request, Gates(labels="off"), 100), "error_rate").outcome != "fail"
