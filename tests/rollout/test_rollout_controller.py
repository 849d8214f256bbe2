"""The rollout controller, one tick at a time, on prediction-log rows written by the test.

No server and no leader lock: `RolloutController.tick()` is called directly, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.cli_in_process import run_in_process
from support.rollout_support import deployed

import matchday.rollout.controller as controller_module
import matchday.workspace
from matchday.rollout import InvalidPlan, RolloutController, RolloutPlan
from matchday.store import EventRecord, PredictionLogStore, RolloutRecord
from matchday.workspace import Workspace

DEPLOYMENT = "cancer"


def log(
    ws: Workspace,
    version: int,
    n: int,
    *,
    errors: int = 0,
    latency: float = 0.010,
    predictions: list[int] | None = None,
    labels: list[int] | None = None,
    model: str = "cancer",
    role: str = "served",
    shadow_of: list[str] | None = None,
) -> list[str]:
    """Log ``n`` rows answered by ``model:version`` now (the first ``errors`` of them failed); returns their ids.

    ``shadow_of``: the request ids of the answers these rows mirror (with ``role="shadow"``)."""
    predictions = predictions or [i % 2 for i in range(n)]
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        failed = i < errors
        rows.append(
            {
                "request_id": str(uuid.uuid4()),
                "entity_id": f"customer-{i}",
                "deployment": DEPLOYMENT,
                "model": model,
                "version": version,
                "at": now + timedelta(microseconds=i),  # one request per row
                "inputs": {"mean radius": 10.0 + i},
                "prediction": None if failed else predictions[i],
                "probabilities": None,
                "latency_seconds": latency,
                "routing": {"plan": "canary"},
                "role": role,
                "error": "RuntimeError: model file is missing a tensor" if failed else None,
                "shadow_of": shadow_of[i] if shadow_of else None,
            }
        )
    PredictionLogStore(ws.database).insert(rows)
    ids = [r["request_id"] for r in rows]
    if labels is not None:
        PredictionLogStore(ws.database).apply_labels(DEPLOYMENT, [("request_id", r, y) for r, y in zip(ids, labels)])
    return ids


def traffic(ws: Workspace, n: int = 40, *, candidate_errors: int = 0, candidate_latency: float = 0.010) -> None:
    """Both arms answer ``n`` rows each in the current window."""
    log(ws, 1, n)
    log(ws, 2, n, errors=candidate_errors, latency=candidate_latency)


def start(ws: Workspace, **plan: Any) -> RolloutRecord:
    options = {"interval": 0, "min_requests": 20, "gates": {"labels": "off"}, **plan}
    return ws.rollouts.start(DEPLOYMENT, "cancer:2", options)


def current(ws: Workspace, rollout: RolloutRecord) -> RolloutRecord:
    return ws.rollouts.store.get(rollout.id)


def trail(ws: Workspace, rollout: RolloutRecord) -> list[EventRecord]:
    """The rollout's events, oldest first."""
    return list(reversed(ws.rollouts.events.list(DEPLOYMENT, rollout_id=rollout.id)))


def gate(analysis: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [g for g in analysis["gates"] if g["name"] == name]
    return found


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    """A deployment of cancer@champion (version 1), and a version 2 to roll out."""
    deployed(workspace, versions=3)
    return workspace


# -- canary ----------------------------------------------------------------------------------------


def test_a_failing_canary_is_rolled_back_before_its_interval(ws: Workspace) -> None:
    rollout = start(ws, interval="1h")
    controller = RolloutController(ws.rollouts)
    log(ws, 1, 60)
    log(ws, 2, 10, errors=10)  # failing, but fewer rows than a verdict needs
    assert controller.tick() == [(rollout.id, "waiting")]
    log(ws, 2, 30, errors=30)
    assert controller.tick() == [(rollout.id, "rolled_back")]

    done = current(ws, rollout)
    assert (done.state, done.phase, done.weight, done.failures) == ("rolled_back", "done", 0.0, 1)
    assert done.analysis is not None and done.analysis["outcome"] == "fail"
    event = trail(ws, rollout)[-1]
    assert (event.kind, event.actor) == ("rolled_back", "controller")
    assert event.reason.startswith(
        "analysis failed at step 1 of 4 (10%): error_rate: candidate 100.00% vs baseline 0.00%"
    )
    assert (event.data["step"], event.data["weight"], event.data["to"], event.data["from"]) == (
        0,
        10.0,
        "cancer:1",
        "cancer:2",
    )
    numbers = event.data["analysis"]
    assert numbers["candidate"]["requests"] == 40 and numbers["candidate"]["errors"] == 40
    assert numbers["baseline"]["requests"] == 60 and numbers["baseline"]["error_rate"] == 0.0
    assert gate(numbers, "error_rate")["outcome"] == "fail" and gate(numbers, "error_rate")["value"] == 1.0
    assert ws.registry.resolve("cancer@champion").version == 1  # nothing promoted
    assert ws.deployments.route(DEPLOYMENT).candidate is None
    assert controller.tick() == []  # an ended rollout is left alone


def test_a_slow_canary_fails_only_once_its_step_was_held(ws: Workspace) -> None:
    """Only errors roll back early; other gates wait for the step's interval."""
    rollout = start(ws, interval="1h")
    controller = RolloutController(ws.rollouts)
    traffic(ws, candidate_latency=0.5)
    assert controller.tick() == [(rollout.id, "waiting")]
    ws.rollouts.store.update(current(ws, rollout), {"plan": {**rollout.plan, "interval": 0.0}})
    assert controller.tick() == [(rollout.id, "rolled_back")]
    assert "latency_p99" in trail(ws, rollout)[-1].reason


def test_a_good_canary_passes_every_step_and_is_promoted(ws: Workspace) -> None:
    rollout = start(ws, steps=[10, 25, 50, 100], gates={"labels": "required", "min_labels": 10})
    controller = RolloutController(ws.rollouts)
    labels = [i % 2 for i in range(40)]
    weights = []
    for step in range(3):
        assert controller.tick() == [(rollout.id, "waiting")]  # a fresh window: no rows in it yet
        for version in (1, 2):
            log(ws, version, 40, labels=labels)
        expected = "promoted" if step == 2 else "next_step"
        assert controller.tick() == [(rollout.id, expected)]
        record = current(ws, rollout)
        weights.append(record.weight)
        if step < 2:
            assert (record.step, record.state) == (step + 1, "running")
            assert record.analysis is not None and gate(record.analysis, "accuracy")["outcome"] == "pass"
    assert weights == [25.0, 50.0, 100.0]

    done = current(ws, rollout)
    assert (done.state, done.phase, done.reason) == ("promoted", "done", "all 3 analysed steps passed")
    assert ws.registry.resolve("cancer@champion").version == 2
    move = ws.registry.alias_history("cancer", "champion")[-1]
    assert (move.from_version, move.to_version) == (1, 2) and "controller" in (move.reason or "")
    events = trail(ws, rollout)
    assert [e.kind for e in events] == ["started", "step_passed", "step_passed", "promoted"]
    assert all(e.actor == "controller" for e in events[1:])
    assert events[1].reason == "step 1 of 4 (10%) passed its analysis; the candidate now answers 25%"
    assert events[1].data["analysis"]["outcome"] == "pass" and events[1].data["weight"] == 10.0
    assert events[-1].data["analysis"]["candidate"]["labelled"] == 40
    route = ws.deployments.route(DEPLOYMENT)
    assert route.candidate is None and route.primary.ref == "cancer:2"


def test_an_inconclusive_step_waits_then_pauses_at_its_deadline(ws: Workspace) -> None:
    rollout = start(ws, min_requests=50, deadline="1h")
    controller = RolloutController(ws.rollouts)
    log(ws, 1, 100)
    log(ws, 2, 5)
    assert controller.tick() == [(rollout.id, "waiting")]
    ws.rollouts.store.update(current(ws, rollout), {"plan": {**rollout.plan, "deadline": 0.0}})
    assert controller.tick() == [(rollout.id, "paused")]
    paused = current(ws, rollout)
    assert (paused.state, paused.step, paused.weight) == ("paused", 0, 10.0)
    assert paused.reason is not None and "still inconclusive" in paused.reason
    assert "traffic: baseline 100 and candidate 5 rows; each needs 50" in paused.reason
    event = trail(ws, rollout)[-1]
    assert (event.kind, event.actor) == ("paused", "controller")
    assert event.data["analysis"]["outcome"] == "inconclusive"

    # a paused rollout is not advanced, however good its numbers become
    traffic(ws, 100)
    assert controller.tick() == []
    assert current(ws, rollout) == paused
    ws.rollouts.store.update(paused, {"plan": {**rollout.plan, "deadline": 3600.0}})
    ws.rollouts.resume(DEPLOYMENT, actor="alice")
    assert controller.tick() == [(rollout.id, "waiting")]  # resumed: a fresh window, the earlier rows left out
    traffic(ws, 60)
    assert controller.tick() == [(rollout.id, "next_step")]


def test_a_tolerated_failure_restarts_the_step_and_the_next_rolls_back(ws: Workspace) -> None:
    rollout = start(ws, failure_limit=1)
    controller = RolloutController(ws.rollouts)
    traffic(ws, candidate_errors=40)
    assert controller.tick() == [(rollout.id, "failed")]
    record = current(ws, rollout)
    assert (record.state, record.step, record.failures) == ("running", 0, 1)
    assert record.step_started_at > rollout.step_started_at
    event = trail(ws, rollout)[-1]
    assert (event.kind, event.actor) == ("analysis_failed", "controller")
    assert "(1 of 2 allowed before rollback)" in event.reason and "error_rate" in event.reason
    assert event.data["analysis"]["outcome"] == "fail"

    assert controller.tick() == [(rollout.id, "waiting")]  # the failed rows belong to the old window
    traffic(ws, candidate_errors=40)
    assert controller.tick() == [(rollout.id, "rolled_back")]
    done = current(ws, rollout)
    assert (done.state, done.failures) == ("rolled_back", 2)
    assert [e.kind for e in trail(ws, rollout)] == ["started", "analysis_failed", "rolled_back"]


def test_a_tick_judges_every_running_rollout(ws: Workspace) -> None:
    ws.deployments.deploy("cancer-eu", "cancer:1")
    eu = ws.rollouts.start("cancer-eu", "cancer:2", {"strategy": "shadow"})
    rollout = start(ws)
    traffic(ws)
    assert sorted(RolloutController(ws.rollouts).tick()) == sorted([(eu.id, "holding"), (rollout.id, "next_step")])


# -- gates that hold when unsure -------------------------------------------------------------------


def test_an_accuracy_drop_not_yet_significant_holds_the_step_then_pauses_at_its_deadline(ws: Workspace) -> None:
    """Labels optional, 83 labelled rows a side, the candidate 0.084 less accurate (limit 0.02, margin
    ±0.10): not a pass, not yet a failure. The step holds for more labels, then waits for a person."""
    rollout = start(ws, gates={"labels": "optional"}, deadline="1h")
    controller = RolloutController(ws.rollouts)
    predictions = [i % 2 for i in range(83)]
    wrong = {1: set(range(4)), 2: set(range(11))}  # 79 of 83 right against 72 of 83
    for version in (1, 2):
        labels = [1 - p if i in wrong[version] else p for i, p in enumerate(predictions)]
        log(ws, version, 83, predictions=predictions, labels=labels)
    assert controller.tick() == [(rollout.id, "waiting")]  # the interval (0) is over: held, not passed
    held = current(ws, rollout)
    assert (held.state, held.step, held.weight) == ("running", 0, 10.0)
    ws.rollouts.store.update(held, {"plan": {**rollout.plan, "deadline": 0.0}})
    assert controller.tick() == [(rollout.id, "paused")]
    paused = current(ws, rollout)
    assert paused.reason is not None and "step 1 of 4 (10%) still inconclusive" in paused.reason
    assert "accuracy: accuracy 0.867 vs baseline 0.952 on 83 and 83 labelled rows (worse by +0.084 ± 0.10" in (
        paused.reason
    )
    accuracy = gate(trail(ws, rollout)[-1].data["analysis"], "accuracy")
    assert (accuracy["outcome"], accuracy["limit"]) == ("inconclusive", 0.02)
    assert ws.registry.resolve("cancer@champion").version == 1


# -- judged_only -----------------------------------------------------------------------------------


def test_judged_only_promotes_only_once_every_gate_was_judged(ws: Workspace) -> None:
    """Unlabelled traffic passes an ordinary canary (accuracy skipped); with judged_only it waits for labels."""
    ordinary = start(ws, steps=[50, 100], gates={"labels": "optional", "min_labels": 10})
    traffic(ws)
    assert RolloutController(ws.rollouts).tick() == [(ordinary.id, "promoted")]
    ws.registry.set_alias("cancer", 1, "champion")

    rollout = start(ws, steps=[50, 100], judged_only=True, gates={"labels": "optional", "min_labels": 10})
    assert RolloutPlan(**rollout.plan).judged_only
    controller = RolloutController(ws.rollouts)
    traffic(ws)
    assert controller.tick() == [(rollout.id, "waiting")]
    accuracy = gate(ws.rollouts.status(DEPLOYMENT).report or {}, "accuracy")
    assert accuracy["outcome"] == "inconclusive" and "judged_only" in accuracy["detail"]
    labels = [i % 2 for i in range(40)]
    for version in (1, 2):
        log(ws, version, 40, labels=labels)
    assert controller.tick() == [(rollout.id, "promoted")]
    promoted = trail(ws, rollout)[-1]
    assert {g["outcome"] for g in promoted.data["analysis"]["gates"]} == {"pass"}
    assert ws.registry.resolve("cancer@champion").version == 2


def test_judged_only_with_labels_off_is_refused_before_anything_moves(ws: Workspace) -> None:
    with pytest.raises(InvalidPlan) as caught:
        start(ws, judged_only=True)  # start() turns labels off
    assert any("cannot be 'off'" in d for d in caught.value.details)
    assert ws.rollouts.store.active(DEPLOYMENT) is None


# -- a canary that shadows first -------------------------------------------------------------------


def test_a_canary_with_shadow_first_mirrors_then_steps_then_is_promoted(ws: Workspace) -> None:
    rollout = start(ws, shadow_first="1h", steps=[25, 50, 100])
    assert (rollout.phase, rollout.step, rollout.weight) == ("shadow", 0, 0.0)
    route = ws.deployments.route(DEPLOYMENT)
    assert route.candidate is not None and route.candidate.arm == "shadow"
    assert (route.candidate_share, route.shadow_share) == (0.0, 1.0)  # every row mirrored, none answered
    assert "shadows all traffic for 3600s" in trail(ws, rollout)[0].reason
    controller = RolloutController(ws.rollouts)

    answered = log(ws, 1, 40)
    log(ws, 2, 40, role="shadow", shadow_of=answered)
    log(ws, 2, 40, errors=40)  # answers of another kind than mirrored ones: not the shadow's rows
    assert controller.tick() == [(rollout.id, "waiting")]  # held for shadow_first
    report = ws.rollouts.status(DEPLOYMENT).report or {}
    assert [g["name"] for g in report["gates"]] == ["traffic", "error_rate", "prediction_divergence"]
    assert report["outcome"] == "pass" and report["shadow"]["compared"] == 40

    ws.rollouts.store.update(current(ws, rollout), {"plan": {**rollout.plan, "shadow_first": 0.001}})
    assert controller.tick() == [(rollout.id, "shadow_passed")]
    stepped = current(ws, rollout)
    assert (stepped.state, stepped.phase, stepped.step, stepped.weight) == ("running", "step", 0, 25.0)
    assert stepped.step_started_at > rollout.step_started_at
    route = ws.deployments.route(DEPLOYMENT)
    assert route.candidate is not None and route.candidate.arm == "candidate"
    assert (route.candidate_share, route.shadow_share) == (0.25, 0.0)
    passed = trail(ws, rollout)[-1]
    assert (passed.kind, passed.actor) == ("shadow_passed", "controller")
    assert passed.reason.startswith("the shadow cancer:2 passed its analysis after ")
    assert "on 40 mirrored rows (error rate 0.00% vs baseline 0.00%, prediction divergence 0.000" in passed.reason
    assert passed.reason.endswith("agreement 100.0% on 40 rows); the candidate now answers 25%")
    assert (passed.data["phase"], passed.data["weight"]) == ("shadow", 0.0)
    assert passed.data["analysis"]["outcome"] == "pass" and passed.data["analysis"]["candidate"]["requests"] == 40
    assert passed.data["shadow"]["agreement"] == 1.0

    assert controller.tick() == [(rollout.id, "waiting")]  # the first step's window starts empty
    for expected in ("next_step", "promoted"):
        traffic(ws)
        assert controller.tick() == [(rollout.id, expected)]
    assert [e.kind for e in trail(ws, rollout)] == ["started", "shadow_passed", "step_passed", "promoted"]
    assert ws.registry.resolve("cancer@champion").version == 2


def test_rollout_status_shows_the_shadow_phase_and_its_gates(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start(ws, shadow_first="30m", steps=[10, 50, 100])
    answered = log(ws, 1, 40)
    log(ws, 2, 40, role="shadow", shadow_of=answered)
    monkeypatch.chdir(tmp_path)  # no matchday.yaml
    env = {
        **os.environ,
        "MATCHDAY_HOME": str(ws.settings.home),
        "MATCHDAY_DATABASE_URL": ws.settings.resolved_database_url,
        "COLUMNS": "200",
    }
    _forget_default_workspace()
    shown = run_in_process(["rollout", "status", DEPLOYMENT], env, after=_forget_default_workspace)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "state running (shadow), shadowing 1800s before step 1/3, candidate share 0%" in text
    assert "prediction_divergence" in text and "latency_p99" not in text
    assert "shadow cancer:2: 40 rows mirrored, error rate 0.0%" in text and "agreement with the primary 100.0%" in text


def _forget_default_workspace() -> None:
    with matchday.workspace._lock:
        if matchday.workspace._default is not None:
            matchday.workspace._default.close()
            matchday.workspace._default = None


def test_a_crashing_shadow_is_rolled_back_before_it_answers_anyone(ws: Workspace) -> None:
    rollout = start(ws, shadow_first="1h")
    answered = log(ws, 1, 40)
    log(ws, 2, 40, role="shadow", shadow_of=answered, errors=40)
    assert RolloutController(ws.rollouts).tick() == [(rollout.id, "rolled_back")]  # errors do not wait
    done = current(ws, rollout)
    assert (done.state, done.phase, done.weight) == ("rolled_back", "done", 0.0)
    event = trail(ws, rollout)[-1]
    assert (event.kind, event.actor) == ("rolled_back", "controller")
    assert event.reason.startswith("analysis failed in the shadow phase: error_rate: shadow 100.00% vs baseline 0.00%")
    assert event.data["phase"] == "shadow" and event.data["shadow"]["errors"] == 40
    assert ws.deployments.route(DEPLOYMENT).candidate is None


def test_a_divergent_shadow_is_rolled_back_once_its_time_is_up(ws: Workspace) -> None:
    rollout = start(ws, shadow_first="1h")
    controller = RolloutController(ws.rollouts)
    answered = log(ws, 1, 40)
    log(ws, 2, 40, role="shadow", shadow_of=answered, predictions=[1] * 40)
    assert controller.tick() == [(rollout.id, "waiting")]
    ws.rollouts.store.update(current(ws, rollout), {"plan": {**rollout.plan, "shadow_first": 0.001}})
    assert controller.tick() == [(rollout.id, "rolled_back")]
    reason = current(ws, rollout).reason or ""
    assert reason.startswith("analysis failed in the shadow phase: prediction_divergence: ")


def test_a_shadow_without_enough_rows_holds_then_pauses_at_its_deadline(ws: Workspace) -> None:
    rollout = start(ws, shadow_first=0.001, deadline="1h")
    controller = RolloutController(ws.rollouts)
    answered = log(ws, 1, 40)
    log(ws, 2, 5, role="shadow", shadow_of=answered[:5])
    assert controller.tick() == [(rollout.id, "waiting")]
    ws.rollouts.store.update(current(ws, rollout), {"plan": {**rollout.plan, "deadline": 0.0}})
    assert controller.tick() == [(rollout.id, "paused")]
    paused = current(ws, rollout)
    assert (paused.state, paused.phase, paused.weight) == ("paused", "shadow", 0.0)
    assert paused.reason is not None and paused.reason.startswith("the shadow phase still inconclusive after ")
    assert "traffic: baseline 40 and shadow 5 rows; each needs 20" in paused.reason
    assert ws.deployments.route(DEPLOYMENT).shadow_share == 1.0  # paused: still mirroring, still answering nothing


# -- blue-green ------------------------------------------------------------------------------------


def test_blue_green_warms_the_candidate_and_switches_after_the_hold(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    log(ws, 1, 4, errors=1)  # the failed row is no warm-up input ...
    log(ws, 2, 2, role="shadow")  # ... nor are mirrored rows
    calls: list[tuple[str, list[dict[str, Any]]]] = []

    def warm(ref: str, rows: list[dict[str, Any]]) -> float:
        calls.append((ref, rows))
        return 0.25

    rollout = ws.rollouts.start(DEPLOYMENT, "cancer:2", {"strategy": "bluegreen", "warmup_rows": 2})
    controller = RolloutController(ws.rollouts, warm=warm)
    monkeypatch.setattr(controller_module, "WARM_HOLD_SECONDS", 3600.0)
    assert controller.tick() == [(rollout.id, "warming")]
    assert controller.tick() == [(rollout.id, "warming")]
    assert len(calls) == 1  # warmed once, however many ticks the hold lasts
    ref, rows = calls[0]
    assert ref == "cancer:2"
    assert rows == [{"mean radius": 13.0}, {"mean radius": 12.0}]  # the newest answered inputs, up to warmup_rows
    assert current(ws, rollout).weight == 0.0 and ws.deployments.route(DEPLOYMENT).candidate_share == 0.0

    monkeypatch.setattr(controller_module, "WARM_HOLD_SECONDS", 0.0)
    assert controller.tick() == [(rollout.id, "switched")]
    switched = current(ws, rollout)
    assert (switched.state, switched.phase, switched.weight) == ("running", "switched", 100.0)
    assert ws.deployments.route(DEPLOYMENT).candidate_share == 1.0
    event = trail(ws, rollout)[-1]
    assert (event.kind, event.actor) == ("switched", "controller")
    assert event.data == {"warm_seconds": 0.25, "warm_rows": 2}
    assert "cancer:2 warmed (2 rows scored in 0.250s); all traffic switched from cancer:1" == event.reason
    assert controller.tick() == [(rollout.id, "holding")]  # a person promotes or switches back
    assert len(calls) == 1
    assert ws.registry.resolve("cancer@champion").version == 1


def test_blue_green_that_fails_to_warm_is_rolled_back_without_switching(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller_module, "WARM_HOLD_SECONDS", 0.0)

    def warm(ref: str, rows: list[dict[str, Any]]) -> float:
        raise RuntimeError(f"cannot load {ref}")

    rollout = ws.rollouts.start(DEPLOYMENT, "cancer:2", {"strategy": "bluegreen"})
    assert RolloutController(ws.rollouts, warm=warm).tick() == [(rollout.id, "rolled_back")]
    done = current(ws, rollout)
    assert (done.state, done.weight, done.phase) == ("rolled_back", 0.0, "done")
    events = trail(ws, rollout)
    assert [e.kind for e in events] == ["started", "rolled_back"]  # never switched
    assert events[-1].actor == "controller" and events[-1].data["error"] == "cannot load cancer:2"
    assert "failed to warm up, so traffic never switched" in events[-1].reason
    assert ws.deployments.route(DEPLOYMENT).candidate is None
    # without a warm callable (nothing to load), it switches once the hold is over
    again = ws.rollouts.start(DEPLOYMENT, "cancer:2", {"strategy": "bluegreen"})
    assert RolloutController(ws.rollouts).tick() == [(again.id, "switched")]


# -- a person acting while the controller judges ---------------------------------------------------


def act_during_analysis(monkeypatch: pytest.MonkeyPatch, act: Any) -> None:
    """Run ``act`` after the controller read the rollout and its numbers, before it writes its verdict."""
    real = controller_module.compare_arms

    def compare_then_act(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        act()
        return result

    monkeypatch.setattr(controller_module, "compare_arms", compare_then_act)


def test_a_stale_rollout_during_a_tick_is_tolerated(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    rollout = start(ws)
    traffic(ws)
    touched = []

    def touch() -> None:
        if not touched:  # a person's edit lands between the controller's read and its write
            touched.append(ws.rollouts.store.update(current(ws, rollout), {"reason": "edited by hand"}))

    act_during_analysis(monkeypatch, touch)
    controller = RolloutController(ws.rollouts)
    assert controller.tick() == [(rollout.id, "stale")]
    assert current(ws, rollout) == touched[0]  # the verdict was not written over the edit
    assert [e.kind for e in trail(ws, rollout)] == ["started"]
    assert controller.tick() == [(rollout.id, "next_step")]  # judged again next tick


def test_a_verdict_never_lands_on_a_rollout_a_person_changed_meanwhile(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller decided on what it read; a person who paused meanwhile keeps the rollout paused."""
    act_during_analysis(monkeypatch, lambda: ws.rollouts.pause(DEPLOYMENT, actor="alice", reason="hold on"))
    plans = {"promote": {"steps": [50, 100]}, "rollback": {}, "pause": {"min_requests": 1000, "deadline": 0}}
    for verdict, plan in plans.items():
        rollout = start(ws, **plan)
        traffic(ws, candidate_errors=40 if verdict == "rollback" else 0)
        assert RolloutController(ws.rollouts).tick() == [(rollout.id, "stale")], verdict
        record = current(ws, rollout)
        assert (record.state, record.reason) == ("paused", "hold on"), verdict
        assert [(e.kind, e.actor) for e in trail(ws, rollout)] == [("started", "user"), ("paused", "alice")], verdict
        assert ws.registry.resolve("cancer@champion").version == 1, verdict
        ws.rollouts.rollback(DEPLOYMENT)


def test_a_verdict_never_lands_on_the_next_rollout(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A person rolled back and started another rollout while the controller was judging the first."""
    first = start(ws, steps=[50, 100])
    traffic(ws)
    second: list[RolloutRecord] = []

    def replace() -> None:
        if not second:
            ws.rollouts.rollback(DEPLOYMENT, actor="alice")
            second.append(ws.rollouts.start(DEPLOYMENT, "cancer:3", {"interval": "1h"}, actor="alice"))

    act_during_analysis(monkeypatch, replace)
    assert RolloutController(ws.rollouts).tick() == [(first.id, "stale")]
    assert current(ws, second[0]).state == "running"
    assert ws.registry.resolve("cancer@champion").version == 1  # cancer:3 was never analysed: not promoted
    assert [e.kind for e in trail(ws, second[0])] == ["started"]


def test_arm_calls_count_the_requests_a_version_answered(workspace: Workspace) -> None:
    """Rows logged by one request share its time; ten failed rows of one request are one failed request."""
    deployed(workspace)
    now = datetime.now(UTC)
    rows = [
        {
            "request_id": str(uuid.uuid4()),
            "entity_id": None,
            "deployment": DEPLOYMENT,
            "model": "cancer",
            "version": 2,
            "at": now + timedelta(seconds=request),
            "inputs": {},
            "prediction": None,
            "probabilities": None,
            "latency_seconds": 0.01,
            "routing": {},
            "role": "served",
            "error": "RuntimeError: boom" if request == 0 else None,
            "shadow_of": None,
        }
        for request in range(3)
        for _ in range(10)
    ]
    store = PredictionLogStore(workspace.database)
    store.insert(rows)
    assert store.arm_calls(DEPLOYMENT, "cancer", 2, now) == (3, 1)
    assert store.arm_window(DEPLOYMENT, "cancer", 2, now)[:2] == (30, 10)
    assert store.arm_calls(DEPLOYMENT, "cancer", 2, now + timedelta(seconds=1)) == (2, 0)
