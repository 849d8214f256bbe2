"""Retraining's core in one process over a real database: data, training in a child, evaluation, guards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.retrain_support import champion_workspace, log_labelled, policy

from matchday.config import Settings
from matchday.retrain import InvalidPolicy, Retraining
from matchday.workspace import Workspace

SQLITE_ONLY = pytest.mark.parametrize(
    "database_url", ["sqlite"], indirect=True
)  # the logic, not the store: one backend


@pytest.fixture
def ws(tmp_path: Path, database_url: str) -> Workspace:
    workspace = champion_workspace(tmp_path, database_url)
    yield workspace
    workspace.close()


def test_a_manual_run_gathers_trains_in_a_child_and_is_accepted(ws: Workspace) -> None:
    log_labelled(ws, 400)
    retraining: Retraining = ws.retraining
    run = retraining.run("cancer", actor="tester")
    assert run.state == "queued" and run.parent == "cancer:1"
    outcomes = [retraining.tick()[0][1] for _ in range(2)]
    assert outcomes == ["trained", "rolling_out"], outcomes
    done = retraining.get(run.id)
    assert done.snapshot is not None
    assert done.snapshot["rows"] == {"reference": 200, "production": 300, "holdout": 100}
    assert done.snapshot["labels_by_source"] == {"feedback": 400}
    evaluation = done.evaluation
    assert evaluation is not None and evaluation["accepted"]
    assert evaluation["candidate"] > evaluation["champion"] + 0.2  # the new concept is learned
    version = ws.registry.get_version(done.candidate)
    assert version.lineage is not None and version.lineage["parent"] == "cancer:1"
    assert version.lineage["run"] == run.id and version.lineage["evaluation"]["accepted"]
    assert [s["state"] for s in done.steps] == ["queued", "training", "training", "evaluating", "rolling_out"]


def test_a_policy_with_bad_fields_says_each(tmp_path: Path) -> None:
    bad = policy(trainer="nowhere_module:train", triggers={"monitors": ["no-such-monitor"]})
    bad["holdout"] = {"newest": 2}
    bad2 = policy(deployment="other", data={"production": {"window": "soon"}})
    ws = Workspace(Settings(home=tmp_path, retrain=[bad, bad2]))
    try:
        with pytest.raises(InvalidPolicy) as caught:
            _ = ws.retrain_policies
        text = str(caught.value)
        assert "holdout.newest" in text and "window" in text and "'soon'" in text
        ws2 = Workspace(Settings(home=tmp_path, retrain=[policy(trainer="nowhere_module:train")]))
        with pytest.raises(InvalidPolicy) as caught2:
            _ = ws2.retrain_policies
        assert "nowhere_module" in str(caught2.value) and "cannot be imported" in str(caught2.value)
        ws3 = Workspace(Settings(home=tmp_path, retrain=[policy(triggers={"monitors": ["nope"]})]))
        with pytest.raises(InvalidPolicy, match="unknown monitor 'nope'"):
            _ = ws3.retrain_policies
    finally:
        ws.close()


@SQLITE_ONLY
def test_too_few_labels_fails_the_run_saying_how_many(ws: Workspace) -> None:
    log_labelled(ws, 60)
    run = ws.retraining.run("cancer", actor="tester")
    assert ws.retraining.tick()[0][1] == "failed"
    done = ws.retraining.get(run.id)
    assert done.state == "failed" and "60 labelled production rows" in (done.reason or "")


def test_scipy_paired_bootstrap_agrees() -> None:
    from scipy import stats

    from matchday.retrain import paired_interval

    rng = np.random.default_rng(1)
    d = rng.normal(0.05, 0.3, 400)
    ours = paired_interval(d, 0.95, 5000, np.random.default_rng(2))
    theirs = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=5000, method="percentile", rng=3)
    assert abs(ours.low - theirs.confidence_interval.low) < 0.006
    assert abs(ours.high - theirs.confidence_interval.high) < 0.006


# -- guards ------------------------------------------------------------------------------------------
def _at(minutes: float) -> datetime:
    return datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=minutes)


def test_guards_cooldown_daily_cap_and_rejection_streak() -> None:
    from matchday.retrain import PastRun, blocked
    from matchday.retrain.policy import Guards

    guards = Guards(cooldown="30m", max_per_day=2, stop_after_rejections=2)
    assert blocked(guards, [], _at(0)) is None
    ended = [PastRun("promoted", _at(0), _at(10))]
    assert "cooldown" in (blocked(guards, ended, _at(20)) or "")
    assert blocked(guards, ended, _at(41)) is None
    two = [PastRun("promoted", _at(100), _at(110)), PastRun("failed", _at(0), _at(10))]
    assert "max_per_day" in (blocked(guards, two, _at(200)) or "")
    assert blocked(guards, two, _at(24 * 60 + 1)) is None  # the first run is a day old
    rejected = [PastRun("rejected", _at(3000), _at(3010)), PastRun("rejected", _at(2000), _at(2010))]
    assert "stop_after_rejections" in (blocked(guards, rejected, _at(5000)) or "")
    # a promotion, or a run started by hand, between them breaks the streak
    broken = [rejected[0], PastRun("promoted", _at(2500), _at(2510)), rejected[1]]
    assert blocked(guards, broken, _at(5000)) is None
    by_hand = [PastRun("failed", _at(3500), _at(3510), manual=True), *rejected]
    assert blocked(guards, by_hand, _at(5000)) is None
    assert "in progress" in (blocked(guards, [PastRun("training", _at(0), None)], _at(100)) or "")


def test_a_policy_that_sets_the_divergence_limit_keeps_it() -> None:
    from matchday.retrain import RetrainPolicy

    plan = RetrainPolicy.model_validate(
        policy(rollout={"steps": [50, 100], "gates": {"max_prediction_divergence": 0.3}})
    )
    assert plan.plan().gates.max_prediction_divergence == 0.3 and plan.plan().judged_only


def test_a_schedule_trigger_waits_for_new_labels_then_the_cooldown(ws: Workspace) -> None:
    retraining = Retraining(
        {"cancer": ws.retraining.policy("cancer").model_copy(update={"triggers": _triggers(schedule=1, labels=300)})},
        ws.retraining.parts,
        ws.alerts.firing,
        ws.events,
    )
    log_labelled(ws, 200)
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert retraining.tick(later) == []
    [said] = ws.events.list("cancer", kinds=("retrain_suppressed",))
    assert "min_new_labels: 200 labels since the last run, 300 needed" in said.reason
    log_labelled(ws, 200)
    [(run_id, outcome)] = retraining.tick(later)
    assert outcome == "trained"
    retraining.cancel(run_id, "tester", "enough")
    assert retraining.tick(later + timedelta(seconds=5)) == []  # cooldown 1h after the cancelled run
    assert retraining.tick(later + timedelta(seconds=6)) == []
    said = ws.events.list("cancer", kinds=("retrain_suppressed",))
    assert "cooldown" in said[0].reason and not any("cooldown" in e.reason for e in said[1:])  # said once


def _triggers(schedule: float, labels: int) -> Any:
    from matchday.retrain.policy import Triggers

    return Triggers(schedule=schedule, min_new_labels=labels)


def test_an_alert_of_a_named_monitor_triggers_once(ws: Workspace) -> None:
    log_labelled(ws, 400)
    alert = ws.alerts.open(
        monitor="accuracy-drop",
        deployment="cancer",
        model="cancer",
        version=1,
        segment="",
        severity="critical",
        metric="accuracy",
        value=0.5,
        threshold=-0.05,
        message="accuracy dropped",
        data={},
    )
    [(run_id, _)] = ws.retraining.tick()
    run = ws.retraining.get(run_id)
    assert run.trigger["kind"] == "monitor" and run.trigger["alert"] == alert.id
    ws.retraining.cancel(run_id, "tester")
    assert ws.retraining.tick() == []  # the same alert does not start a second run


def test_approval_before_rollout_waits_for_an_operator(ws: Workspace) -> None:
    from matchday.retrain import RetrainConflict
    from matchday.retrain.policy import Guards

    policy_ = ws.retraining.policy("cancer")
    ws.retraining.policies["cancer"] = policy_.model_copy(update={"guards": Guards(approval="before_rollout")})
    log_labelled(ws, 400)
    run = ws.retraining.run("cancer", actor="tester")
    assert [o for _, o in ws.retraining.tick()] == ["trained"]
    assert [o for _, o in ws.retraining.tick()] == ["awaiting_approval"]
    assert [o for _, o in ws.retraining.tick()] == ["waiting"]
    approved = ws.retraining.approve(run.id, "operator", "looks right")
    assert approved.state == "rolling_out" and approved.steps[-1]["message"] == "approved by operator: looks right"
    with pytest.raises(RetrainConflict, match="not awaiting approval"):
        ws.retraining.approve(run.id, "tester")
    assert [o for _, o in ws.retraining.tick()] == ["rollout_started"]
    rollout = ws.rollouts.active("cancer")
    assert rollout.candidate == ws.retraining.get(run.id).candidate and rollout.plan["judged_only"]
    assert rollout.plan["gates"]["max_prediction_divergence"] == 1.0  # a new concept answers differently
    assert rollout.plan["gates"]["min_labels"] == 20  # the policy's own gates kept
    ws.retraining.cancel(run.id, "tester", "changed my mind")
    assert ws.rollouts.store.get(rollout.id).state == "rolled_back"
    assert ws.deployments.route("cancer").primary.version == 1


@SQLITE_ONLY
def test_a_human_governed_deployment_waits_for_approval_too(ws: Workspace) -> None:
    ws.automation.set("cancer", {"level": "human_led"}, "tester", "people decide")
    log_labelled(ws, 400)
    run = ws.retraining.run("cancer", actor="tester")
    ws.retraining.tick()
    assert [o for _, o in ws.retraining.tick()] == ["awaiting_approval"]
    assert ws.retraining.get(run.id).state == "awaiting_approval"


@SQLITE_ONLY
def test_the_trainers_own_failure_fails_the_run_without_retry(ws: Workspace) -> None:
    ws.retraining.policies["cancer"] = ws.retraining.policy("cancer").model_copy(
        update={"trainer": "support.retrain_support:train_raises"}
    )
    log_labelled(ws, 400)
    run = ws.retraining.run("cancer", actor="tester")
    assert [o for _, o in ws.retraining.tick()] == ["failed"]
    done = ws.retraining.get(run.id)
    assert done.attempts == 0 and "the trainer's own bug" in (done.reason or "")
    assert "ValueError" in (done.reason or "")


def test_a_numeric_segment_is_judged_by_quintile() -> None:
    import pyarrow as pa

    from matchday.retrain import evaluate

    rng = np.random.default_rng(0)
    amount = rng.uniform(0, 1000, 1000)
    labels = rng.integers(0, 2, 1000)
    champion = labels.copy()
    candidate = labels.copy()
    worse = amount >= np.quantile(amount, 0.8)  # the candidate is wrong on every amount of the top quintile
    candidate[worse] = 1 - candidate[worse]
    holdout = pa.table({"amount": amount, "label": labels})
    result = evaluate("accuracy", champion, candidate, holdout, "label", min_gain=-1.0, segments=["amount"])
    assert len(result.segments) == 5 and not result.accepted
    [bad] = [s for s in result.segments if s.verdict == "worse"]
    assert bad.value.startswith("[8") and bad.rows == int(worse.sum())


def test_a_large_holdouts_interval_is_the_normal_one_and_agrees_with_the_bootstrap() -> None:
    from matchday.retrain import paired_interval
    from matchday.retrain.evaluation import NORMAL_ABOVE

    rng = np.random.default_rng(4)
    d = rng.choice([-1.0, 0.0, 0.0, 0.0, 1.0, 1.0], NORMAL_ABOVE + 1)
    normal = paired_interval(d, 0.95, 200, np.random.default_rng(5))
    small = paired_interval(d[:NORMAL_ABOVE], 0.95, 2000, np.random.default_rng(5))  # bootstrapped
    assert abs(normal.low - small.low) < 0.002 and abs(normal.high - small.high) < 0.002


@SQLITE_ONLY
def test_a_run_another_worker_still_trains_is_left_to_it(ws: Workspace) -> None:
    log_labelled(ws, 400)
    run = ws.retraining.run("cancer", actor="tester")
    store = ws.retraining.parts.store
    run = store.update(run, {"state": "training", "owner": "worker-other", "heartbeat_at": datetime.now(UTC)})
    assert [o for _, o in ws.retraining.tick()] == ["held_elsewhere"]
    store.update(store.get(run.id), {"heartbeat_at": datetime.now(UTC) - timedelta(seconds=60)})
    assert [o for _, o in ws.retraining.tick()] == ["trained"]  # its worker went quiet: resumed here
    assert len(ws.registry.versions_of_run("cancer", run.id)) == 1


@SQLITE_ONLY
def test_a_paused_rollout_is_said_once_and_the_run_follows_it(ws: Workspace) -> None:
    log_labelled(ws, 400)
    run = ws.retraining.run("cancer", actor="tester")
    assert [o for _, o in ws.retraining.tick()] == ["trained"]
    assert [o for _, o in ws.retraining.tick()] == ["rolling_out"]
    assert [o for _, o in ws.retraining.tick()] == ["rollout_started"]
    ws.rollouts.pause("cancer", "controller", "still inconclusive after 600s")
    assert [o for _, o in ws.retraining.tick()] == ["paused"]
    assert [o for _, o in ws.retraining.tick()] == ["rolling_out"]  # said once
    steps = ws.retraining.get(run.id).steps
    assert sum("paused" in s["message"] for s in steps) == 1 and "still inconclusive" in steps[-1]["message"]
    ws.rollouts.rollback("cancer", "user", "not this one")
    assert [o for _, o in ws.retraining.tick()] == ["rejected"]


@pytest.mark.parametrize(
    ("ended", "guard"),
    [(["promoted", "failed", "promoted"], "max_per_day"), (["rejected", "rejected"], "stop_after_rejections")],
)
@SQLITE_ONLY
def test_the_workers_round_holds_a_trigger_at_the_daily_cap_and_after_rejections(
    ws: Workspace, ended: list[str], guard: str
) -> None:
    store = ws.retraining.parts.store
    for state in ended:  # earlier runs today, ended long enough ago for the cooldown (1h) to have passed
        run = store.create("cancer", {"kind": "schedule"}, "retrain", {}, "cancer:1", ("retrain_queued", "t", "", {}))
        store.update(run, {"state": state, "finished_at": datetime.now(UTC) - timedelta(hours=2)})
    retraining = Retraining(
        {"cancer": ws.retraining.policy("cancer").model_copy(update={"triggers": _triggers(schedule=1, labels=0)})},
        ws.retraining.parts,
        ws.alerts.firing,
        ws.events,
    )
    assert retraining.tick(datetime.now(UTC) + timedelta(seconds=5)) == []
    [said] = ws.events.list("cancer", kinds=("retrain_suppressed",))
    assert f"but {guard}:" in said.reason
    assert len(store.list("cancer")) == len(ended)  # no run started
    run = retraining.run("cancer", actor="tester")  # by hand: only one-at-a-time applies
    assert run.state == "queued"
