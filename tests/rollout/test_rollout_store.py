"""Starting, promoting, rolling back, pausing and resuming rollouts, on SQLite and PostgreSQL.

No server: the Workspace's `Rollouts` and `Deployments` over a real database.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from support.rollout_support import deployed, register

from matchday.rollout import (
    DeploymentNotFound,
    IncompatibleCandidate,
    InvalidPlan,
    NothingToDo,
    RolloutAlreadyActive,
    RolloutError,
    RolloutNotFound,
    Rollouts,
    StaleRollout,
    TrafficPlan,
)
from matchday.store import (
    Database,
    EventRecord,
    ModelNotFound,
    RolloutRecord,
    RolloutStore,
    VersionNotFound,
)
from matchday.workspace import Workspace

FAST = {"interval": 0, "min_requests": 1}


def events(ws: Workspace, deployment: str = "cancer", rollout_id: int | None = None) -> list[EventRecord]:
    """Oldest first."""
    return list(reversed(ws.rollouts.events.list(deployment, rollout_id=rollout_id)))


def kinds(ws: Workspace, deployment: str = "cancer") -> list[str]:
    return [e.kind for e in events(ws, deployment)]


def nothing_started(ws: Workspace, deployment: str = "cancer") -> bool:
    return ws.rollouts.store.latest(deployment) is None and events(ws, deployment) == []


# -- starting --------------------------------------------------------------------------------------


def test_start_a_canary(workspace: Workspace) -> None:
    deployed(workspace)
    record = workspace.rollouts.start("cancer", "cancer:2", {"steps": "5,50,100"}, actor="alice")
    assert (record.deployment, record.strategy, record.baseline, record.candidate) == (
        "cancer",
        "canary",
        "cancer:1",
        "cancer:2",
    )
    assert (record.state, record.phase, record.step, record.weight, record.failures, record.revision) == (
        "running",
        "step",
        0,
        5.0,
        0,
        1,
    )
    assert record.active and record.finished_at is None
    assert record.plan["steps"] == [5.0, 50.0, 100.0] and record.plan["strategy"] == "canary"
    assert record.started_at.tzinfo is not None and record.step_started_at == record.started_at
    assert workspace.rollouts.store.get(record.id) == record
    (started,) = events(workspace)
    assert (started.kind, started.actor, started.rollout_id, started.deployment) == (
        "started",
        "alice",
        record.id,
        "cancer",
    )
    assert "canary rollout of cancer:2 started" in started.reason and "baseline cancer:1" in started.reason
    assert started.data["plan"]["steps"] == [5.0, 50.0, 100.0]
    # every strategy starts in its own phase and share
    for strategy, phase, weight in [("shadow", "mirroring", 0.0), ("bluegreen", "warming", 0.0), ("ab", "split", 50.0)]:
        workspace.rollouts.rollback("cancer")
        other = workspace.rollouts.start("cancer", "cancer:2", {"strategy": strategy})
        assert (other.strategy, other.phase, other.weight, other.state) == (strategy, phase, weight, "running")
    # a candidate named by alias is resolved once, when the rollout starts
    workspace.rollouts.rollback("cancer")
    register(workspace, "cancer", "better")
    workspace.registry.set_alias("cancer", 3, "challenger")
    record = workspace.rollouts.start("cancer", "cancer@challenger")
    assert (record.baseline, record.candidate) == ("cancer:1", "cancer:3")
    workspace.registry.set_alias("cancer", 2, "challenger")  # moving it later does not change the rollout
    assert workspace.rollouts.store.get(record.id).candidate == "cancer:3"


def test_bad_starts_are_refused_and_start_nothing(workspace: Workspace) -> None:
    deployed(workspace)
    with pytest.raises(VersionNotFound, match="model 'cancer' has no version 7"):
        workspace.rollouts.start("cancer", "cancer:7")
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        workspace.rollouts.start("cancer", "nope:1")
    with pytest.raises(DeploymentNotFound):
        workspace.rollouts.start("absent", "cancer:2")
    for same in ("cancer:1", "cancer@champion"):
        with pytest.raises(RolloutError, match=r"already serves cancer:1; a rollout needs a different version"):
            workspace.rollouts.start("cancer", same)
    with pytest.raises(InvalidPlan) as caught:
        workspace.rollouts.start("cancer", "cancer:2", {"steps": [10, 50]})
    assert any("last step must be 100" in d for d in caught.value.details)
    assert nothing_started(workspace)


def test_the_files_defaults_shape_the_plan(workspace: Workspace) -> None:
    deployed(workspace)
    ws = workspace.rollouts
    rollouts = Rollouts(
        ws.store,
        ws.events,
        ws.deployments,
        ws.registry,
        ws.log_store,
        defaults={"cancer": {"steps": [20, 100], "interval": "1m", "gates": {"labels": "off"}}},
    )
    record = rollouts.start("cancer", "cancer:2", {"interval": "5s", "strategy": None, "steps": None})
    assert record.plan["steps"] == [20.0, 100.0] and record.weight == 20.0
    assert record.plan["interval"] == 5.0 and record.plan["gates"]["labels"] == "off"


INCOMPATIBLE = [
    ("extra_input", "input 'extra': the candidate needs it, the baseline's requests do not carry it"),
    ("retyped", "input 'mean radius': integer in the candidate, float in the baseline"),
    ("text_classes", "output classes differ"),
    ("regressor", "output: the candidate does regression, the baseline classification"),
]


def test_an_incompatible_candidate_is_refused_with_details(workspace: Workspace) -> None:
    deployed(workspace, versions=1)
    for kind, problem in INCOMPATIBLE:
        candidate = register(workspace, kind.replace("_", "-"), kind)
        with pytest.raises(IncompatibleCandidate) as caught:
            workspace.rollouts.start("cancer", candidate)
        error = caught.value
        assert isinstance(error, RolloutError)
        assert error.message == f"{candidate} cannot take over cancer:1's traffic"
        assert len(error.details) == 1 and error.details[0].startswith(problem), error.details
    assert nothing_started(workspace)
    # fewer inputs than the baseline's requests carry is fine
    assert workspace.rollouts.start("cancer", register(workspace, "slim", "subset")).candidate == "slim:1"


def test_one_rollout_at_a_time(workspace: Workspace) -> None:
    deployed(workspace, versions=3)
    first = workspace.rollouts.start("cancer", "cancer:2")
    with pytest.raises(
        RolloutError,
        match=rf"already has a canary rollout in progress \(rollout {first.id}, "
        r"cancer:1 -> cancer:2\)",
    ):
        workspace.rollouts.start("cancer", "cancer:3")
    workspace.rollouts.pause("cancer")
    with pytest.raises(RolloutError, match="already has a canary rollout in progress"):  # paused is still active
        workspace.rollouts.start("cancer", "cancer:3", {"strategy": "shadow"})
    workspace.rollouts.rollback("cancer")
    second = workspace.rollouts.start("cancer", "cancer:3", {"strategy": "shadow"})
    assert second.id != first.id and workspace.rollouts.current("cancer") == second
    assert [r.id for r in workspace.rollouts.history("cancer")] == [second.id, first.id]
    # another deployment rolls out at the same time
    workspace.deployments.deploy("cancer-eu", "cancer:1")
    other = workspace.rollouts.start("cancer-eu", "cancer:2")
    assert [r.id for r in workspace.rollouts.store.all_active()] == [second.id, other.id]


# -- the store's guards ----------------------------------------------------------------------------


def create(store: RolloutStore, deployment: str = "cancer") -> RolloutRecord:
    return store.create(
        deployment,
        "canary",
        "cancer:1",
        "cancer:2",
        {"strategy": "canary"},
        phase="step",
        weight=10.0,
        event=("started", "test", "by hand", {}),
    )


def test_the_unique_index_refuses_a_second_active_rollout(workspace: Workspace) -> None:
    store = workspace.rollouts.store
    first = create(store)
    with pytest.raises(RolloutAlreadyActive) as caught:
        create(store)
    assert caught.value.deployment == "cancer"
    assert f"(rollout {first.id})" in str(caught.value)
    assert [r.id for r in store.all_active()] == [first.id]
    assert len(workspace.rollouts.events.list("cancer")) == 1  # the refused rollout's event went with it
    create(store, "other")  # another deployment is free
    store.update(first, {"state": "rolled_back", "phase": "done"})
    assert create(store).id > first.id  # an ended rollout does not count


def test_two_writers_racing_to_start_one_rollout(workspace: Workspace, database_url: str) -> None:
    """Two processes' stores (two engines) create at the same instant: exactly one wins."""
    assert workspace.database.current_revision() is not None  # migrated before the race
    databases = [Database(database_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def race(db: Database) -> None:
        barrier.wait()
        try:
            outcomes.append(create(RolloutStore(db)))
        except RolloutAlreadyActive as exc:
            outcomes.append(exc)

    try:
        for _ in range(3):
            threads = [threading.Thread(target=race, args=(db,)) for db in databases]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            won = [o for o in outcomes if isinstance(o, RolloutRecord)]
            assert len(won) == 1 and len(outcomes) == 2, outcomes
            workspace.rollouts.store.update(won[0], {"state": "rolled_back"})
            outcomes.clear()
    finally:
        for db in databases:
            db.dispose()


def test_an_update_from_a_stale_read_is_refused(workspace: Workspace) -> None:
    store = workspace.rollouts.store
    read = create(store)
    newer = store.update(read, {"weight": 25.0, "step": 1}, ("step_passed", "controller", "ok", {"n": 1}))
    assert (newer.revision, newer.weight, newer.step) == (2, 25.0, 1)
    assert newer.updated_at >= read.updated_at
    with pytest.raises(StaleRollout, match=f"rollout {read.id} of 'cancer' changed meanwhile"):
        store.update(read, {"state": "paused"}, ("paused", "alice", "stale", {}))
    assert store.get(read.id) == newer  # nothing changed ...
    assert [e.kind for e in workspace.rollouts.events.list("cancer")] == ["step_passed", "started"]  # ... nor logged
    with pytest.raises(ValueError, match=r"cannot be updated: \['revision'\]"):
        store.update(newer, {"revision": 9})
    with pytest.raises(RolloutNotFound):
        store.get(9999)


# -- acting with nothing to act on -----------------------------------------------------------------


def test_acting_without_a_running_rollout(workspace: Workspace) -> None:
    deployed(workspace)
    for act in (
        workspace.rollouts.promote,
        workspace.rollouts.rollback,
        workspace.rollouts.pause,
        workspace.rollouts.resume,
    ):
        with pytest.raises(NothingToDo, match="deployment 'cancer' has no rollout in progress"):
            act("cancer")
    with pytest.raises(RolloutNotFound, match="never had a rollout"):
        workspace.rollouts.current("cancer")
    with pytest.raises(DeploymentNotFound):
        workspace.rollouts.pause("absent")
    workspace.rollouts.start("cancer", "cancer:2")
    workspace.rollouts.rollback("cancer")
    for act in (workspace.rollouts.promote, workspace.rollouts.rollback, workspace.rollouts.pause):
        with pytest.raises(NothingToDo):  # an ended rollout is not in progress
            act("cancer")
    assert workspace.rollouts.current("cancer").state == "rolled_back"
    # resume needs a paused rollout, pause a running one
    workspace.rollouts.start("cancer", "cancer:2")
    with pytest.raises(NothingToDo, match=r"is not paused \(it is running\)"):
        workspace.rollouts.resume("cancer")
    paused = workspace.rollouts.pause("cancer", actor="alice", reason="checking the dashboards")
    assert (paused.state, paused.reason) == ("paused", "checking the dashboards")
    with pytest.raises(NothingToDo, match="already paused"):
        workspace.rollouts.pause("cancer")
    resumed = workspace.rollouts.resume("cancer", actor="bob")
    assert resumed.state == "running" and resumed.reason == "resumed by bob"
    assert resumed.step_started_at > paused.step_started_at  # the step starts a fresh window
    assert kinds(workspace)[-3:] == ["started", "paused", "resumed"]


# -- promote and roll back -------------------------------------------------------------------------


def test_promote_moves_the_alias_the_deployment_follows(workspace: Workspace) -> None:
    deployed(workspace)
    rollout = workspace.rollouts.start("cancer", "cancer:2")
    done = workspace.rollouts.promote("cancer", actor="alice", reason="looks great")
    assert (done.state, done.phase, done.weight, done.reason) == ("promoted", "done", 100.0, "looks great")
    assert done.finished_at is not None and not done.active
    assert workspace.registry.resolve("cancer@champion").version == 2
    assert workspace.deployments.get("cancer").model_ref == "cancer@champion"  # the deployment still follows it
    move = workspace.registry.alias_history("cancer", "champion")[-1]
    assert (move.from_version, move.to_version) == (1, 2)
    assert move.reason is not None and f"rollout {rollout.id}" in move.reason and "looks great" in move.reason
    promoted = events(workspace)[-1]
    assert (promoted.kind, promoted.actor) == ("promoted", "alice")
    assert promoted.reason.startswith("looks great; alias cancer@champion now points to version 2")
    assert promoted.data == {"to": "cancer:2", "from": "cancer:1"}
    route = workspace.deployments.route("cancer")
    assert route.candidate is None and route.primary.version == 2 and route.primary.plan == "single"


def test_promote_repoints_a_deployment_on_a_fixed_version(workspace: Workspace) -> None:
    deployed(workspace, ref="cancer:1")
    workspace.rollouts.start("cancer", "cancer:2")
    workspace.rollouts.promote("cancer")
    assert workspace.deployments.get("cancer").model_ref == "cancer:2"
    assert workspace.registry.resolve("cancer@champion").version == 1  # no alias touched
    assert [m.to_version for m in workspace.registry.alias_history("cancer", "champion")] == [1]
    assert "deployment 'cancer' now serves cancer:2" in events(workspace)[-1].reason
    assert workspace.deployments.route("cancer").primary.ref == "cancer:2"
    # a deployment following an alias, promoted to another model's version: repointed, the alias stays
    workspace.deployments.deploy("cancer-eu", "cancer@champion")
    workspace.rollouts.start("cancer-eu", register(workspace, "slim", "subset"))
    workspace.rollouts.promote("cancer-eu")
    assert workspace.deployments.get("cancer-eu").model_ref == "slim:1"
    assert workspace.registry.resolve("cancer@champion").version == 1


def test_rollback_leaves_the_deployment_untouched(workspace: Workspace) -> None:
    deployed(workspace)
    before = workspace.deployments.get("cancer")
    rollout = workspace.rollouts.start("cancer", "cancer:2")
    workspace.rollouts.store.update(rollout, {"weight": 50.0, "step": 2})
    done = workspace.rollouts.rollback("cancer", actor="bob", reason="latency looks off", data={"p99": 0.3})
    assert (done.state, done.phase, done.weight, done.reason) == ("rolled_back", "done", 0.0, "latency looks off")
    assert done.step == 2 and done.finished_at is not None  # where it stood when it ended
    after = workspace.deployments.get("cancer")
    assert (after.model_ref, after.updated_at) == (before.model_ref, before.updated_at)
    assert workspace.registry.resolve("cancer@champion").version == 1
    assert len(workspace.registry.alias_history("cancer", "champion")) == 1
    rolled_back = events(workspace)[-1]
    assert (rolled_back.kind, rolled_back.actor, rolled_back.reason) == ("rolled_back", "bob", "latency looks off")
    assert rolled_back.data == {"p99": 0.3, "to": "cancer:1", "from": "cancer:2"}
    assert workspace.deployments.route("cancer").primary.ref == "cancer:1"


def test_every_action_leaves_an_event_with_actor_and_reason(workspace: Workspace) -> None:
    deployed(workspace, versions=3)
    first = workspace.rollouts.start("cancer", "cancer:2", actor="alice")
    workspace.rollouts.pause("cancer", actor="bob")
    workspace.rollouts.resume("cancer", actor="carol", reason="dashboards fine")
    workspace.rollouts.rollback("cancer", actor="dave")
    second = workspace.rollouts.start("cancer", "cancer:3", {"strategy": "shadow"}, actor="erin")
    workspace.rollouts.promote("cancer", actor="frank")
    trail = [(e.kind, e.actor, e.reason, e.rollout_id) for e in events(workspace)]
    assert trail[1:4] == [
        ("paused", "bob", "paused by bob", first.id),
        ("resumed", "carol", "dashboards fine", first.id),
        ("rolled_back", "dave", "rolled back by dave", first.id),
    ]
    assert [(k, a, r) for k, a, _, r in (trail[0], trail[4], trail[5])] == [
        ("started", "alice", first.id),
        ("started", "erin", second.id),
        ("promoted", "frank", second.id),
    ]
    assert trail[5][2].startswith("cancer:3 promoted; alias cancer@champion now points to version 3")
    assert all(e.at.tzinfo is not None for e in events(workspace))
    # one rollout's trail, and the status that shows it
    assert [e.kind for e in events(workspace, rollout_id=first.id)] == ["started", "paused", "resumed", "rolled_back"]
    status = workspace.rollouts.status("cancer").as_dict()
    assert status["id"] == second.id and status["state"] == "promoted"
    assert [e["kind"] for e in status["events"]] == ["promoted", "started"]


# -- routing ---------------------------------------------------------------------------------------


def test_route_without_a_rollout_is_the_single_version(workspace: Workspace) -> None:
    deployed(workspace)
    route = workspace.deployments.route("cancer")
    assert isinstance(route, TrafficPlan)
    assert route.candidate is None and route.candidate_share == 0 and route.shadow_share == 0
    assert (route.primary.ref, route.primary.model_ref, route.primary.arm) == ("cancer:1", "cancer@champion", "primary")
    workspace.registry.set_alias("cancer", 2, "champion")  # the alias moves: so does the route
    workspace.registry.set_alias("cancer", 1, "champion")
    # a canary, step by step
    rollout = workspace.rollouts.start("cancer", "cancer:2", {"fallback": True})
    route = workspace.deployments.route("cancer")
    assert route.candidate is not None
    assert (route.primary.ref, route.primary.arm, route.candidate.ref, route.candidate.arm) == (
        "cancer:1",
        "baseline",
        "cancer:2",
        "candidate",
    )
    assert route.candidate_share == pytest.approx(0.10) and route.shadow_share == 0 and route.fallback
    assert route.salt == f"rollout-{rollout.id}" and [r.ref for r in route.warm] == [
        "cancer:2"
    ]  # loaded by every process before its first row
    assert route.candidate.as_log() == {
        "plan": "canary",
        "arm": "candidate",
        "model_ref": "cancer:2",
        "rollout": rollout.id,
        "step": 0,
    }
    workspace.rollouts.store.update(rollout, {"weight": 25.0, "step": 1})
    moved = workspace.deployments.route("cancer")
    assert moved.candidate_share == pytest.approx(0.25) and moved.primary.step == 1
    workspace.rollouts.pause("cancer")
    assert workspace.deployments.route("cancer").candidate_share == pytest.approx(0.25)  # paused: the split holds
    workspace.rollouts.rollback("cancer")
    assert workspace.deployments.route("cancer").candidate is None


def test_route_of_a_shadow_and_an_ab_split(workspace: Workspace) -> None:
    deployed(workspace, versions=3)
    workspace.rollouts.start("cancer", "cancer:2", {"strategy": "shadow", "share": 30})
    route = workspace.deployments.route("cancer")
    assert route.candidate is not None and route.candidate.arm == "shadow"
    assert route.candidate_share == 0 and route.shadow_share == pytest.approx(0.3) and not route.fallback
    assert route.served(2) is None and route.served(1) is route.primary
    workspace.rollouts.rollback("cancer")
    workspace.rollouts.start("cancer", "cancer:2", {"strategy": "shadow"})
    assert workspace.deployments.route("cancer").shadow_share == 1.0
    workspace.rollouts.rollback("cancer")
    workspace.rollouts.start("cancer", "cancer:3", {"strategy": "ab", "share": 20})
    route = workspace.deployments.route("cancer")
    assert route.candidate is not None and route.candidate.ref == "cancer:3" and route.candidate.plan == "ab"
    assert (route.candidate_share, route.shadow_share) == (pytest.approx(0.2), 0.0)


def test_route_of_a_blue_green_keeps_both_versions_warm(workspace: Workspace) -> None:
    deployed(workspace)
    rollout = workspace.rollouts.start("cancer", "cancer:2", {"strategy": "bluegreen"})
    warming = workspace.deployments.route("cancer")
    assert warming.candidate_share == 0 and warming.candidate is not None
    assert [r.ref for r in warming.warm] == ["cancer:2", "cancer:1"]
    workspace.rollouts.store.update(rollout, {"phase": "switched", "weight": 100.0})
    switched = workspace.deployments.route("cancer")
    assert switched.candidate_share == 1.0 and switched.assign(["a", "b"]).all()
    assert [r.ref for r in switched.warm] == ["cancer:2", "cancer:1"]
    workspace.rollouts.promote("cancer")
    done = workspace.deployments.route("cancer")
    assert done.warm == () and done.primary.ref == "cancer:2" and done.candidate is None


# -- promotion claims the rollout before it moves anything ------------------------------------------


def test_a_stale_promote_moves_no_alias(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller judged an old revision; a person rolled back meanwhile: the alias stays."""
    deployed(workspace)
    judged = workspace.rollouts.start("cancer", "cancer:2", FAST)
    store = workspace.rollouts.store
    real_get = store.get

    def read_then_a_person_rolls_back(rollout_id: int) -> RolloutRecord:
        fresh = real_get(rollout_id)  # the controller's last look: unchanged...
        monkeypatch.setattr(store, "get", real_get)
        workspace.rollouts.rollback("cancer", actor="alice", reason="not today")  # ...then alice acts
        return fresh

    monkeypatch.setattr(store, "get", read_then_a_person_rolls_back)
    with pytest.raises(StaleRollout):
        workspace.rollouts.promote("cancer", "controller", "all steps passed", expected=judged)
    assert workspace.registry.resolve("cancer@champion").version == 1
    assert workspace.rollouts.current("cancer").state == "rolled_back"
    assert "promoted" not in kinds(workspace)


def test_a_promotion_that_cannot_move_the_alias_pauses_the_rollout(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed(workspace)
    workspace.rollouts.start("cancer", "cancer:2", {"steps": "25,100", **FAST})

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise RolloutError("the alias store is read-only today")

    monkeypatch.setattr(workspace.deployments, "promote", refuse)
    with pytest.raises(RolloutError, match="read-only"):
        workspace.rollouts.promote("cancer", actor="alice")
    record = workspace.rollouts.current("cancer")
    assert (record.state, record.weight, record.finished_at) == ("paused", 25.0, None)
    assert "promotion failed" in (record.reason or "") and kinds(workspace)[-1] == "promotion_failed"
    assert workspace.registry.resolve("cancer@champion").version == 1
    monkeypatch.undo()
    assert workspace.rollouts.promote("cancer", actor="alice").state == "promoted"
    assert workspace.registry.resolve("cancer@champion").version == 2
