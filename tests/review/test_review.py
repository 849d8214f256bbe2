"""Humans in the loop (issue 16), the logic and the store: levels and triage, review rules, policies,
the queue's leases under concurrent reviewers (both databases), agreement and escalation, deadlines'
fallbacks, decisions that become labels, and the estimates (accuracy weighted back to the stream,
Wilson bounds, the automation suggestion)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.rollout_support import fitted

from matchday.registry import Signature
from matchday.review import (
    AutomationLevel,
    AutomationPolicy,
    InvalidPolicy,
    InvalidRule,
    ReviewError,
    ReviewRule,
    Triage,
    audit_draw,
    estimate_accuracy,
    policy_of,
    suggest,
    wilson_interval,
)
from matchday.store import Conflict, ReviewItemRecord
from matchday.workspace import Workspace

DEPLOYMENT = "fraud"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


# -- rules -------------------------------------------------------------------------------------------
def _row(prediction: Any = "ok", confidence: float | None = 0.9, **inputs: Any) -> dict[str, Any]:
    probability = {"fraud": 1 - (confidence or 0.5), "ok": confidence or 0.5}
    return {
        "prediction": prediction,
        "confidence": confidence,
        "probability": probability,
        "inputs": inputs,
        "drifted": False,
    }


def test_a_rule_reads_the_answer_its_confidence_probabilities_and_inputs() -> None:
    rule = ReviewRule.parse(
        'prediction == "fraud" or confidence < 0.7 or (amount > 1000 and probability["fraud"] >= 0.2)',
        features=["amount", "country"],
        classes=["fraud", "ok"],
    )
    assert rule.matches(_row("fraud"))
    assert rule.matches(_row("ok", 0.65))
    assert rule.matches(_row("ok", 0.75, amount=5000))
    assert not rule.matches(_row("ok", 0.95, amount=5000))
    assert not rule.matches(_row("ok", 0.9, amount=10))
    assert not rule.uses_drift
    inside = ReviewRule.parse('country in ["XX", "YY"] and not drifted', features=["country"], classes=None)
    assert inside.uses_drift and inside.matches({**_row(country="XX"), "drifted": False})
    assert not inside.matches({**_row(country="XX"), "drifted": True})


def test_a_comparison_with_a_missing_value_or_another_type_does_not_match() -> None:
    rule = ReviewRule.parse("confidence < 0.7 or amount > 3", features=["amount"], classes=None)
    assert not rule.matches(_row("ok", None))  # a regressor: no confidence
    assert not rule.matches(_row("ok", None, amount=None))
    assert not rule.matches(_row("ok", None, amount="text"))  # text against a number: not a match, no error


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("prediction.upper() == 'X'", "not allowed"),
        ("ammount > 3", "'ammount': not a name a rule knows"),
        ('probability["maybe"] > 0.1', "no class 'maybe'"),
        ("prediction ==", "does not parse"),
        ("   ", "empty"),
        ("(lambda: 1)()", "not allowed"),
    ],
)
def test_a_rule_that_cannot_run_is_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(InvalidRule) as refused:
        ReviewRule.parse(text, features=["amount"], classes=["fraud", "ok"])
    assert problem in str(refused.value)


def test_a_policy_says_what_is_wrong_with_it() -> None:
    with pytest.raises(InvalidPolicy, match="give --review-rule"):
        policy_of({"level": "machine_led_human_governed"})
    with pytest.raises(InvalidPolicy, match="at machine_led_human_governed only"):
        policy_of({"level": "machine_controlled", "review_rule": "confidence < 0.5"})
    with pytest.raises(InvalidPolicy) as refused:
        policy_of({"level": "mostly_human", "audit_rate": 1.5, "review_deadline": "soon", "reviews_required": 4})
    text = str(refused.value)
    assert "level" in text and "audit_rate" in text and "review_deadline" in text and "reviews_required" in text
    policy = policy_of({"level": "machine_led_human_supported", "review_deadline": "90m"})
    assert policy.review_deadline_seconds == 5400 and policy.effective_audit_rate == 0.05
    assert policy_of(policy.stored()) == policy  # the stored form reads back the same


# -- triage: what each level does with an answer ----------------------------------------------------
def _triage(level: str, **policy: Any) -> Triage:
    from matchday.registry import ColumnSpec, OutputSpec

    signature = Signature(
        inputs=[ColumnSpec(name="mean radius", type="float", min=6.9, max=28.2)],
        output=OutputSpec(task="classification", classes=[0, 1]),
    )
    return Triage(AutomationPolicy.model_validate({"level": level, **policy}), signature, ["0", "1"])


def _judge(triage: Triage, n: int, prediction: Any = 1, p1: float = 0.9) -> list[Any]:
    return [
        triage.judge(DEPLOYMENT, f"req-{i}", prediction, {"0": 1 - p1, "1": p1}, {"mean radius": 14.0}, NOW)
        for i in range(n)
    ]


def test_each_level_answers_and_queues_as_its_table_says() -> None:
    led = _judge(_triage("human_led"), 20)
    assert all(v.decision == "pending" and v.review["reason"] == "all" and v.review["blind"] for v in led)
    supported = _judge(_triage("human_led_machine_supported"), 20)
    assert all(v.decision == "pending" and not v.review["blind"] for v in supported)
    assert supported[0].review["deadline"] == NOW + timedelta(hours=4) and supported[0].review["fallback"] == "escalate"
    for level, rate in (("machine_led_human_supported", 0.05), ("machine_controlled", 0.01)):
        verdicts = _judge(_triage(level), 20_000)
        assert all(v.decision == "final" for v in verdicts)
        queued = [v for v in verdicts if v.review is not None]
        assert abs(len(queued) / 20_000 - rate) < 0.35 * rate, (level, len(queued))  # the audit sample
        assert all(
            v.review["reason"] == "audit" and v.review["inclusion"] == rate and not v.review["pending"] for v in queued
        )
    governed = _triage("machine_led_human_governed", review_rule="prediction == 0 or confidence < 0.7", audit_rate=0.0)
    held = _judge(governed, 5, prediction=0, p1=0.1)
    assert all(v.decision == "pending" and v.review["reason"] == "rule" and v.review["priority"] == 0 for v in held)
    assert all(v.review is None and v.decision == "final" for v in _judge(governed, 50, prediction=1, p1=0.95))
    assert _judge(governed, 1, prediction=1, p1=0.6)[0].decision == "pending"


def test_the_audit_sample_is_fixed_by_the_request_not_a_coin_flip() -> None:
    first = [audit_draw(DEPLOYMENT, f"r{i}") for i in range(1000)]
    assert first == [audit_draw(DEPLOYMENT, f"r{i}") for i in range(1000)]
    assert 0.0 <= min(first) and max(first) < 1.0 and abs(float(np.mean(first)) - 0.5) < 0.05
    assert first != [audit_draw("other", f"r{i}") for i in range(1000)]


def test_drifted_is_an_input_outside_the_reference_range() -> None:
    triage = _triage("machine_led_human_governed", review_rule="drifted", audit_rate=0.0)
    inside = triage.judge(DEPLOYMENT, "a", 1, {"0": 0.1, "1": 0.9}, {"mean radius": 14.0}, NOW)
    outside = triage.judge(DEPLOYMENT, "b", 1, {"0": 0.1, "1": 0.9}, {"mean radius": 1e6}, NOW)
    assert inside.decision == "final" and outside.decision == "pending"


# -- the queue in the store (both databases) --------------------------------------------------------
def _queue_rows(ws: Workspace, n: int, **review: Any) -> list[str]:
    """``n`` answered rows of the deployment's version logged with a review item each; their request ids."""
    ids = []
    rows = []
    for i in range(n):
        rid = uuid.uuid4().hex
        ids.append(rid)
        rows.append(
            {
                "request_id": rid,
                "entity_id": None,
                "deployment": DEPLOYMENT,
                "model": DEPLOYMENT,
                "version": 1,
                "at": NOW + timedelta(seconds=i),
                "inputs": {"mean radius": 10.0 + i},
                "prediction": 1,
                "probabilities": [0.2, 0.8],
                "latency_seconds": 0.001,
                "routing": {},
                "error": None,
                "role": "served",
                "shadow_of": None,
                "review": {
                    "id": uuid.uuid4().hex,
                    "reason": "rule",
                    "rule": "confidence < 0.9",
                    "level": "machine_led_human_governed",
                    "pending": True,
                    "blind": False,
                    "inclusion": 1.0,
                    "required": 1,
                    "priority": 0,
                    "deadline": (NOW + timedelta(hours=1)).isoformat(),  # as the log's process receives it: text
                    "fallback": "escalate",
                    "confidence": 0.8,
                    "webhook": None,
                    **review,
                },
            }
        )
    assert ws.prediction_log.insert(rows) == n
    return ids


@pytest.fixture
def queued(workspace: Workspace) -> Workspace:
    model, reference = fitted("base")
    workspace.registry.register(DEPLOYMENT, model, reference=reference)
    workspace.deployments.deploy(DEPLOYMENT, f"{DEPLOYMENT}:1")
    return workspace


def test_a_logged_row_and_its_review_item_land_together_and_a_replay_adds_neither(queued: Workspace) -> None:
    ids = _queue_rows(queued, 3)
    items = queued.review.items(DEPLOYMENT)
    assert sorted(i.request_id for i in items) == sorted(ids)
    assert all(i.deadline == NOW + timedelta(hours=1) and i.status == "open" for i in items)
    row = queued.prediction_log.get(ids[0])
    assert row is not None
    again = items[0]
    # the spool replays a batch after a crash: the same request ids, no second item
    assert queued.prediction_log.insert([{**_as_row(again), "review": {"id": uuid.uuid4().hex}}]) == 0
    assert len(queued.review.items(DEPLOYMENT)) == 3


def _as_row(item: ReviewItemRecord) -> dict[str, Any]:
    return {
        "request_id": item.request_id,
        "deployment": item.deployment,
        "model": item.model,
        "version": item.version,
        "at": item.created_at,
        "inputs": item.inputs,
        "prediction": item.suggestion,
        "latency_seconds": 0.0,
    }


def test_concurrent_reviewers_never_take_the_same_item(queued: Workspace) -> None:
    _queue_rows(queued, 40)
    taken: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def review(name: str) -> None:
        try:
            while True:
                item = queued.review.next(DEPLOYMENT, name, lease_seconds=300)
                if item is None:
                    return
                taken.setdefault(name, []).append(item.id)
                queued.review.decide(item.id, name, "approve")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=review, args=(f"reviewer-{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every = [i for ids in taken.values() for i in ids]
    assert len(every) == 40 and len(set(every)) == 40  # each item once, by one reviewer
    assert len(taken) >= 2  # the work was shared
    decided = queued.review.items(DEPLOYMENT, ("decided",), 100)
    assert len(decided) == 40 and all(i.outcome == "approved" and i.label == 1 for i in decided)


def test_a_lease_holds_an_item_until_it_expires_and_a_reviewer_never_sees_an_item_twice(queued: Workspace) -> None:
    _queue_rows(queued, 2)
    review = queued.review
    first = review.next(DEPLOYMENT, "alice", lease_seconds=300)
    assert first is not None
    assert review.next(DEPLOYMENT, "alice", lease_seconds=300).id == first.id  # asking again: the one she holds
    second = review.next(DEPLOYMENT, "bob", lease_seconds=300)
    assert second is not None and second.id != first.id
    assert review.next(DEPLOYMENT, "carol", lease_seconds=300) is None  # both held
    with pytest.raises(Conflict, match="claimed by alice"):
        review.decide(first.id, "bob", "approve")
    # alice goes away: her lease runs out and the item returns to the queue
    store = review.store
    expired = store.claim(DEPLOYMENT, "carol", 300, now=datetime.now(UTC) + timedelta(seconds=301))
    assert expired is not None and expired.id == first.id
    review.decide(first.id, "carol", "skip")
    assert review.next(DEPLOYMENT, "carol", lease_seconds=300) is None  # skipped: not offered to her again
    again = review.next(DEPLOYMENT, "dave", lease_seconds=300)
    assert again is not None and again.id == first.id and [d.action for d in again.decisions] == ["skip"]
    review.decide(first.id, "dave", "override", 0)
    with pytest.raises(Conflict, match="decided already"):
        review.decide(first.id, "erin", "approve")
    assert review.release(second.id, "bob") and review.next(DEPLOYMENT, "erin", 300).id == second.id


def test_an_override_must_be_a_label_the_model_could_give(queued: Workspace) -> None:
    _queue_rows(queued, 1)
    item = queued.review.next(DEPLOYMENT, "alice")
    assert item is not None
    with pytest.raises(ReviewError, match="one of the classes"):
        queued.review.decide(item.id, "alice", "override", "maybe")
    with pytest.raises(ReviewError, match="needs the right label"):
        queued.review.decide(item.id, "alice", "override")
    with pytest.raises(ReviewError, match="not a decision"):
        queued.review.decide(item.id, "alice", "accept")
    with pytest.raises(ReviewError, match="override instead"):
        queued.review.decide(item.id, "alice", "approve", 0)
    decided = queued.review.decide(item.id, "alice", "override", "0")  # "0", 0 and 0.0 are one class
    assert decided.outcome == "overridden" and decided.label == "0"


def test_several_reviews_agree_or_escalate_to_a_majority(queued: Workspace) -> None:
    _queue_rows(queued, 2, required=2)
    review = queued.review
    a = review.next(DEPLOYMENT, "alice")
    assert a is not None
    assert review.decide(a.id, "alice", "approve").status == "open"  # one of two reviews
    agreed = review.decide(a.id, "bob", "approve")
    assert agreed.status == "decided" and agreed.decided_by == ["alice", "bob"]
    b = [i for i in review.items(DEPLOYMENT, ("open",)) if i.id != a.id][0]
    review.decide(b.id, "alice", "approve")
    split = review.decide(b.id, "bob", "override", 0)
    assert split.status == "escalated" and split.required == 3 and split.priority < 0
    third = review.next(DEPLOYMENT, "carol")
    assert third is not None and third.id == b.id  # escalated: first in the queue
    settled = review.decide(b.id, "carol", "override", 0)
    assert settled.status == "decided" and settled.outcome == "overridden" and settled.label == 0


def test_a_decision_becomes_a_label_through_the_feedback_path(queued: Workspace) -> None:
    ids = _queue_rows(queued, 2)
    review = queued.review
    for reviewer, action, label in (("alice", "approve", None), ("bob", "override", 0)):
        item = review.next(DEPLOYMENT, reviewer)
        assert item is not None
        review.decide(item.id, reviewer, action, label)
    rows = {r: queued.prediction_log.get(r) for r in ids}
    labels = {r: (row.label if row else None) for r, row in rows.items()}
    assert sorted(labels.values(), key=str) == [0, 1]
    assert {row.label_source for row in rows.values() if row is not None} == {"human_rule"}  # rule-queued
    assert all(i.label_applied_at is not None for i in review.items(DEPLOYMENT, ("decided",)))
    answer = review.decision(DEPLOYMENT, ids[0])
    assert answer is not None and answer["decision"] == "final" and answer["outcome"] in ("approved", "overridden")


def test_deadlines_fall_back_as_the_policy_says_and_never_make_a_label(queued: Workspace) -> None:
    approve = _queue_rows(queued, 1, fallback="approve")
    reject = _queue_rows(queued, 1, fallback="reject")
    escalate = _queue_rows(queued, 1, fallback="escalate")
    result = queued.review.tick(now=NOW + timedelta(hours=2))
    assert (result.expired, result.escalated) == (2, 1)
    by_request = {rid: queued.review.decision(DEPLOYMENT, rid) for rid in approve + reject + escalate}
    assert by_request[approve[0]]["outcome"] == "deadline_approved" and by_request[approve[0]]["decision"] == "final"
    assert by_request[reject[0]]["outcome"] == "deadline_rejected"
    assert by_request[escalate[0]]["decision"] == "pending" and by_request[escalate[0]]["escalated"]
    for rid in approve + reject:
        row = queued.prediction_log.get(rid)
        assert row is not None and row.label is None  # a fallback is not a person's judgement
    assert queued.review.tick(now=NOW + timedelta(hours=3)).expired == 0  # settled once
    stats = queued.review.stats(DEPLOYMENT)
    assert stats["deadline_misses"] == 3 and stats["queue_depth"] == 1


# -- estimates ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (95, 100), (500, 500), (1, 1)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    from scipy.stats import binomtest

    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(expected.low, abs=1e-12) and high == pytest.approx(expected.high, abs=1e-12)


def _decided(suggestion: Any, label: Any, inclusion: float, reason: str) -> ReviewItemRecord:
    return ReviewItemRecord(
        id=uuid.uuid4().hex, request_id=uuid.uuid4().hex, deployment=DEPLOYMENT, model=DEPLOYMENT, version=1,
        created_at=NOW, reason=reason, rule=None, level="machine_led_human_governed", pending=reason == "rule",
        blind=False, inclusion=inclusion, required=1, priority=0, deadline=None, fallback=None, inputs={},
        suggestion=suggestion, confidence=None, probabilities=None, status="decided", lease_owner=None,
        lease_expires=None, outcome=None, label=label, decided_at=NOW, decided_by=["x"], label_applied_at=None,
        webhook=None,
    )  # fmt: skip


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    accuracy=st.floats(min_value=0.55, max_value=0.99),
    rate=st.sampled_from([0.02, 0.05, 0.1, 0.3]),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_accuracy_from_an_audit_sample_covers_the_streams_true_accuracy(
    accuracy: float, rate: float, seed: int
) -> None:
    """The stream's rows are audited by `audit_draw` at ``rate``; the estimate's interval (at 99.9 %, so that
    40 examples rarely miss by chance) holds the accuracy of every row of the stream."""
    rng = np.random.default_rng(seed)
    n = 20_000
    correct = rng.random(n) < accuracy
    true_accuracy = float(correct.mean())
    audited = [
        _decided(1, 1 if correct[i] else 0, rate, "audit")
        for i in range(n)
        if audit_draw(DEPLOYMENT, f"{seed}-{i}") < rate
    ]
    estimate = estimate_accuracy(audited, z=3.29)
    assert estimate.low is not None and estimate.high is not None
    assert estimate.low <= true_accuracy <= estimate.high
    assert estimate.represented == pytest.approx(n, rel=0.25)


def test_rule_queued_rows_are_weighted_back_to_the_whole_stream() -> None:
    """A rule sends every doubtful row (accuracy 50 %) to people; 5 % of the rest (accuracy 98 %) are
    audited. The plain share of agreement of reviewed rows is far too low; the weighted estimate is not."""
    rng = np.random.default_rng(3)
    items = [_decided(1, int(rng.random() < 0.5), 1.0, "rule") for _ in range(1000)]
    items += [_decided(1, int(rng.random() < 0.98), 0.05, "audit") for _ in range(900)]  # of 18,000 final rows
    true = (1000 * 0.5 + 18_000 * 0.98) / 19_000
    naive = sum(i.label == 1 for i in items) / len(items)
    estimate = estimate_accuracy(items)
    assert abs(naive - true) > 0.2
    assert estimate.accuracy == pytest.approx(true, abs=0.02)
    assert estimate.low <= true <= estimate.high


def test_the_suggestion_steps_up_on_evidence_and_down_on_a_critical_alert() -> None:
    level = AutomationLevel.MACHINE_LED_HUMAN_SUPPORTED
    few = [_decided(c, c, 0.05, "audit") for c in [0, 1] * 50]
    assert suggest(DEPLOYMENT, level, few).move == "stay"
    many = [_decided(c, c, 0.05, "audit") for c in [0, 1] * 200]
    up = suggest(DEPLOYMENT, level, many)
    assert up.move == "up" and up.to is AutomationLevel.MACHINE_LED_HUMAN_GOVERNED
    weak_class = many + [_decided(1, 0, 0.05, "audit") for _ in range(40)]  # class 1 often wrong
    held = suggest(DEPLOYMENT, level, weak_class)
    assert held.move == "stay" and any("class 1" in r for r in held.reasons)
    unseen = suggest(DEPLOYMENT, level, [_decided(0, 0, 0.05, "audit") for _ in range(400)], classes=["0", "1"])
    assert unseen.move == "stay" and "class 1: 0 audited rows" in " ".join(unseen.reasons)  # a rule holds all 1s
    down = suggest(DEPLOYMENT, level, many, ["accuracy fell below 0.8"])
    assert down.move == "down" and down.to is AutomationLevel.HUMAN_LED_MACHINE_SUPPORTED


def test_setting_the_level_is_an_event_and_a_rule_must_fit_the_served_version(queued: Workspace) -> None:
    automation = queued.automation
    with pytest.raises(InvalidRule, match="not a name a rule knows"):
        automation.set(DEPLOYMENT, {"level": "machine_led_human_governed", "review_rule": "amount > 3"}, "alice", "try")
    with pytest.raises(InvalidPolicy, match="reason"):
        automation.set(DEPLOYMENT, {"level": "human_led"}, "alice", " ")
    change = automation.set(
        DEPLOYMENT,
        {"level": "machine_led_human_governed", "review_rule": "confidence < 0.8"},
        "alice",
        "new fraud model",
    )
    assert change.before is None and change.after is not None
    assert queued.deployments.get(DEPLOYMENT).settings["automation"]["level"] == "machine_led_human_governed"
    queued.deployments.deploy(DEPLOYMENT, f"{DEPLOYMENT}:1")  # a redeploy keeps who decides
    assert automation.policy(DEPLOYMENT).level is AutomationLevel.MACHINE_LED_HUMAN_GOVERNED
    down = automation.step_down_on_alert(DEPLOYMENT, "accuracy drop")
    assert down is not None and down.after.level is AutomationLevel.MACHINE_LED_HUMAN_SUPPORTED
    events = queued.events.list(DEPLOYMENT, kinds=("automation_changed",))
    assert [(e.actor, e.data["to"]) for e in reversed(events)] == [
        ("alice", "machine_led_human_governed"),
        ("monitor", "machine_led_human_supported"),
    ]
    assert "new fraud model" in events[-1].reason
    signature = Signature.model_validate(queued.registry.get_version(f"{DEPLOYMENT}:1").signature)
    assert "mean radius" in [c.name for c in signature.inputs]


def test_a_critical_alert_with_the_review_action_steps_down_a_deployment_that_asks_for_it(queued: Workspace) -> None:
    from matchday.store import AlertRecord

    queued.automation.set(DEPLOYMENT, {"level": "machine_controlled", "step_down_on_critical": True}, "alice", "go")
    alert = AlertRecord(
        id=7, monitor="accuracy", deployment=DEPLOYMENT, model=DEPLOYMENT, version=1, segment="", severity="warning",
        state="firing", metric="accuracy", value=0.7, threshold=0.8, message="accuracy 0.7 < 0.8", opened_at=NOW,
        last_seen_at=NOW, resolved_at=None, data={},
    )  # fmt: skip
    review_hook = queued.monitoring.engine.hooks["review"]
    review_hook(DEPLOYMENT, alert)  # a warning: recorded, nothing moves
    assert queued.automation.policy(DEPLOYMENT).level is AutomationLevel.MACHINE_CONTROLLED
    review_hook(DEPLOYMENT, AlertRecord(**{**alert.__dict__, "severity": "critical"}))
    policy = queued.automation.policy(DEPLOYMENT)
    assert policy.level is AutomationLevel.MACHINE_LED_HUMAN_SUPPORTED and policy.step_down_on_critical
    moved = queued.events.list(DEPLOYMENT, kinds=("automation_changed",))[0]
    assert moved.actor == "monitor" and "accuracy 0.7 < 0.8" in moved.reason
    queued.automation.set(DEPLOYMENT, {"level": "machine_controlled"}, "alice", "without the step down")
    review_hook(DEPLOYMENT, AlertRecord(**{**alert.__dict__, "severity": "critical"}))
    assert queued.automation.policy(DEPLOYMENT).level is AutomationLevel.MACHINE_CONTROLLED


def test_the_default_review_monitors_alert_on_missed_deadlines_and_low_agreement(queued: Workspace) -> None:
    queued.automation.set(DEPLOYMENT, {"level": "machine_led_human_supported", "agreement_floor": 0.9}, "a", "b")
    monitors = queued.review_monitors
    _queue_rows(queued, 1, fallback="approve")
    assert monitors.check(now=NOW) == []  # nothing missed yet
    queued.review.tick(now=NOW + timedelta(hours=1, minutes=1))  # the deadline passes: approved by the fallback
    opened = monitors.check(now=NOW + timedelta(hours=1, minutes=2))
    assert [(c.monitor, c.change) for c in opened] == [("review-deadline-misses", "opened")]
    assert monitors.check(now=NOW + timedelta(hours=1, minutes=3)) == []  # still firing: not opened twice
    firing = [a for a in queued.alerts.firing(DEPLOYMENT) if a.monitor == "review-deadline-misses"]
    assert len(firing) == 1 and firing[0].value == 1 and "missed their review deadline" in firing[0].message
    resolved = monitors.check(now=NOW + timedelta(hours=3))
    assert [(c.monitor, c.change) for c in resolved] == [("review-deadline-misses", "resolved")]
    # people overriding the model on most audited rows: agreement falls under the floor
    _queue_rows(queued, 40, reason="audit", pending=False, deadline=None, fallback=None, inclusion=0.05, priority=2)
    for k in range(40):
        item = queued.review.next(DEPLOYMENT, f"r{k}")
        assert item is not None
        queued.review.decide(item.id, f"r{k}", "override" if k % 4 else "approve", 0 if k % 4 else None)
    low = monitors.check()
    assert [(c.monitor, c.change) for c in low] == [("review-agreement", "opened")]
    assert "under the floor of 90%" in low[0].message


def test_the_review_and_automation_commands(queued: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """`matchday deploy --automation`, `automation show|set|suggest` and `review list|next|decide|stats`, in
    this process (tests/support/cli_in_process.py), on the same workspace."""
    import json

    from support.cli_in_process import run_in_process

    import matchday.workspace

    def forget() -> None:
        with matchday.workspace._lock:
            if matchday.workspace._default is not None:
                matchday.workspace._default.close()
                matchday.workspace._default = None

    env = {
        "MATCHDAY_HOME": str(queued.settings.home),
        "MATCHDAY_DATABASE_URL": queued.settings.resolved_database_url,
        "COLUMNS": "200",
    }

    def run(*argv: str) -> Any:
        return run_in_process(list(argv), env=env, after=forget)

    bad = run(
        "deploy",
        DEPLOYMENT,
        f"{DEPLOYMENT}:1",
        "--automation",
        "machine_led_human_governed",
        "--review-rule",
        "amount > 1",
    )
    assert bad.returncode == 1 and "not a name a rule knows" in bad.stderr
    assert run("deploy", DEPLOYMENT, f"{DEPLOYMENT}:1", "--review-rule", "x > 1").returncode == 1  # needs --automation
    done = run(
        "deploy", DEPLOYMENT, f"{DEPLOYMENT}:1", "--automation", "machine_led_human_governed",
        "--review-rule", "confidence < 0.9", "--review-deadline", "2h", "--reason", "launch",
    )  # fmt: skip
    assert done.returncode == 0 and "decides at machine_led_human_governed" in done.stdout
    shown = json.loads(run("automation", "show", DEPLOYMENT, "--json").stdout)
    assert shown["automation"]["review_deadline_seconds"] == 7200.0
    _queue_rows(queued, 2)
    listed = json.loads(run("review", "list", DEPLOYMENT, "--json").stdout)["items"]
    assert len(listed) == 2 and all(i["status"] == "open" for i in listed)
    claimed = json.loads(run("review", "next", DEPLOYMENT, "--reviewer", "alice", "--json").stdout)["item"]
    assert claimed["lease_owner"] == "alice" and claimed["suggestion"] == 1
    refused = run("review", "decide", claimed["review_id"], "override", "--label", "maybe", "--reviewer", "alice")
    assert refused.returncode == 1 and "one of the classes" in refused.stderr
    decided = run("review", "decide", claimed["review_id"], "override", "--label", "0", "--reviewer", "alice")
    assert decided.returncode == 0 and "overridden, label 0 (by alice)" in decided.stdout
    other = run("review", "decide", claimed["review_id"], "approve", "--reviewer", "bob")
    assert other.returncode == 1 and "decided already" in other.stderr
    stats = json.loads(run("review", "stats", DEPLOYMENT, "--window", "30d", "--json").stdout)
    assert stats["decided"] == 1 and stats["override_rate"] == 1.0 and stats["queue_depth"] == 1
    assert run("review", "stats", DEPLOYMENT, "--window", "soon").returncode == 1
    moved = run("automation", "set", DEPLOYMENT, "machine_controlled", "--audit-rate", "0.02", "--reason", "trusted")
    assert moved.returncode == 0 and "machine_led_human_governed -> machine_controlled" in moved.stdout
    suggestion = json.loads(run("automation", "suggest", DEPLOYMENT, "--json").stdout)
    assert suggestion["move"] == "stay" and suggestion["level"] == "machine_controlled"
    assert run("automation", "set", DEPLOYMENT, "none", "--reason", "off").returncode == 0
    assert "no automation policy" in run("automation", "show", DEPLOYMENT).stdout


def test_a_disagreement_escalated_item_still_meets_its_deadline_and_a_miss_stays_counted(queued: Workspace) -> None:
    split = _queue_rows(queued, 1, required=2, fallback="approve")
    late = _queue_rows(queued, 1, fallback="escalate")
    review = queued.review
    (item,) = [i for i in review.items(DEPLOYMENT) if i.request_id == split[0]]
    review.decide(item.id, "alice", "approve")
    assert review.decide(item.id, "bob", "override", 0).status == "escalated"
    review.tick(now=NOW + timedelta(hours=2))  # both deadlines pass
    settled = review.decision(DEPLOYMENT, split[0])
    assert settled["decision"] == "final" and settled["outcome"] == "deadline_approved" and settled["deadline_missed"]
    waiting = review.decision(DEPLOYMENT, late[0])
    assert waiting["decision"] == "pending" and waiting["escalated"] and waiting["deadline_missed"]
    (held,) = [i for i in review.items(DEPLOYMENT, ("escalated",)) if i.request_id == late[0]]
    review.decide(held.id, "carol", "approve")  # decided after its deadline
    after = review.decision(DEPLOYMENT, late[0])
    assert after["outcome"] == "approved" and after["deadline_missed"]
    assert review.stats(DEPLOYMENT)["deadline_misses"] == 2  # the later decision does not erase the miss
    assert review.tick(now=NOW + timedelta(hours=3)) == review.tick(now=NOW + timedelta(hours=3))  # nothing twice
    rows = {(d, st, o): (n, m) for d, st, o, n, m in review.store.tally()}
    assert rows[(DEPLOYMENT, "expired", "deadline_approved")] == (1, 1)
    assert rows[(DEPLOYMENT, "decided", "approved")] == (1, 1)


def test_hostile_rules_webhooks_and_answers_are_refused_or_held_never_a_crash() -> None:
    for deep in ("-" * 1990 + "1 == 1", "not " * 400 + "drifted"):
        with pytest.raises(InvalidRule, match="nests deeper"):
            ReviewRule.parse(deep, features=[], classes=None)
    with pytest.raises(InvalidPolicy, match="decision_webhook"):
        policy_of({"level": "human_led", "decision_webhook": "hooks.example.com/x"})
    triage = _triage("machine_led_human_governed", review_rule="confidence < 0.7", audit_rate=0.0)
    nan = triage.judge(DEPLOYMENT, "r", 1, {"0": None, "1": 0.4}, {"mean radius": 14.0}, NOW)  # NaN logged as null
    assert nan.decision == "pending" and nan.review["confidence"] == 0.4

    class Broken(dict):  # inputs that fail when read: the row is held, saying why, not a 500
        def get(self, *args: Any) -> Any:
            raise RuntimeError("unreadable")

    drift = _triage("machine_led_human_governed", review_rule="drifted", audit_rate=0.0)
    held = drift.judge(DEPLOYMENT, "r2", 1, {"0": 0.1, "1": 0.9}, Broken(), NOW)
    assert held.decision == "pending" and "failed on this row: unreadable" in held.review["rule"]


def test_a_blind_items_answer_is_not_told_in_an_error(queued: Workspace) -> None:
    _queue_rows(queued, 1, blind=True)
    item = queued.review.next(DEPLOYMENT, "alice")
    assert item is not None and item.blind
    with pytest.raises(ReviewError) as refused:
        queued.review.decide(item.id, "alice", "approve", 0)
    assert "override instead" in str(refused.value) and "1" not in str(refused.value).split("give")[0]


def test_a_partly_reviewed_audit_sample_still_stands_for_all_its_rows() -> None:
    """1,000 rows held by a rule (60 % right), all decided; 9,000 final rows (98 % right) audited at 1 %:
    90 queued, only 9 decided yet. Weighting the audit stratum by the 9 decided would make it stand for
    900 rows, not 9,000; by the 90 queued, the estimate is the stream's."""
    rng = np.random.default_rng(5)
    rule = [_decided(1, int(rng.random() < 0.6), 1.0, "rule") for _ in range(1000)]
    audit = [_decided(1, 1, 0.01, "audit") for _ in range(9)]
    true = (1000 * 0.6 + 9000 * 0.98) / 10_000
    partial = estimate_accuracy(rule + audit)
    weighted = estimate_accuracy(rule + audit, {1.0: 1000, 0.01: 90})
    assert abs(partial.accuracy - true) > 0.1
    assert weighted.accuracy == pytest.approx(true, abs=0.03) and weighted.represented == pytest.approx(10_000)
    assert weighted.low < weighted.accuracy < weighted.high  # every audited row agreed: still not a zero width
    assert weighted.low <= true <= weighted.high
