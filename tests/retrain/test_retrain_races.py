"""Retraining runs when someone acts at the same time (a cancel that lands between the worker's reads, a
policy removed mid-rollout, a champion deleted mid-run), and runs given bad input: a candidate whose
predictions are not numbers, a model with other classes, labels of another type than the reference's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from support.retrain_support import champion_model, log_labelled
from support.rollout_support import cancer_frame

from matchday.config import Settings
from matchday.retrain import ChampionArtifact, evaluate
from matchday.workspace import Workspace

POLICY: dict[str, Any] = {
    "deployment": "cancer",
    "trainer": "support.retrain_support:train",
    "triggers": {"monitors": ["accuracy-drop"]},
    "data": {"reference": False, "production": {"window": "1d"}},
    "holdout": {"newest": 0.25, "min_rows": 40},
    "accept": {"min_gain": -1.0},  # the stand-in model below is the champion itself
    "rollout": {"steps": [50, 100], "interval": "1s", "min_requests": 20, "gates": {"min_labels": 20}},
    "guards": {"cooldown": "1h", "max_per_day": 3, "stop_after_rejections": 2},
}


class QuickEngine:
    """Returns a fitted model at once (no child process); ``during`` runs as the training would end."""

    name = "quick"

    def __init__(self) -> None:
        self.during: Any = None
        self.model: Any = None

    def train(
        self, trainer: str, snapshot: dict[str, Any], champion: ChampionArtifact | None, *_: Any, **__: Any
    ) -> Any:
        if self.during is not None:
            self.during()
        return champion_model() if self.model is None else self.model


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: these races are of the run's revision guard, which the store tests hold on both backends
    (test_retrain_core's manual run, the end-to-end loop); the suite's ten minutes are spent elsewhere."""
    return f"sqlite:///{tmp_path / 'matchday.db'}"


@pytest.fixture
def ws(tmp_path: Path, database_url: str) -> Iterator[Workspace]:
    workspace = Workspace(Settings(home=tmp_path, database_url=database_url, retrain=[POLICY]))
    X, y = cancer_frame()
    workspace.registry.register(
        "cancer", champion_model(), reference=X.head(200).assign(label=y.head(200)), target="label", alias="champion"
    )
    workspace.deployments.deploy("cancer", "cancer@champion")
    workspace.retraining.parts.engine = QuickEngine()
    log_labelled(workspace, 200)
    yield workspace
    workspace.close()


def _engine(ws: Workspace) -> QuickEngine:
    engine = ws.retraining.parts.engine
    assert isinstance(engine, QuickEngine)
    return engine


def test_a_cancel_after_the_last_heartbeat_keeps_the_run_cancelled(ws: Workspace) -> None:
    run = ws.retraining.run("cancer", actor="tester")
    _engine(ws).during = lambda: ws.retraining.cancel(run.id, "operator", "not now")
    assert [o for _, o in ws.retraining.tick()] == ["cancelled"]
    done = ws.retraining.get(run.id)
    assert (
        done.state == "cancelled" and done.finished_at is not None and done.reason == "cancelled by operator: not now"
    )
    assert ws.retraining.tick() == []  # nothing active: the run was not brought back to life
    _engine(ws).during = None
    assert ws.retraining.run("cancer", actor="tester").state == "queued"  # the deployment is not stuck


def _to_rollout(ws: Workspace) -> int:
    run = ws.retraining.run("cancer", actor="tester")
    assert [o for _, o in ws.retraining.tick()] == ["trained"]
    assert [o for _, o in ws.retraining.tick()] == ["rolling_out"]
    return run.id


def test_a_cancel_while_the_worker_starts_the_rollout_leaves_no_rollout(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _to_rollout(ws)
    rollouts = ws.retraining.parts.rollouts
    start = rollouts.start

    def cancel_then_start(*args: Any, **kwargs: Any) -> Any:
        ws.retraining.cancel(run_id, "operator")  # read the run before the rollout existed
        return start(*args, **kwargs)

    monkeypatch.setattr(rollouts, "start", cancel_then_start)
    assert [o for _, o in ws.retraining.tick()] == ["cancelled"]
    assert ws.rollouts.store.active("cancer") is None
    assert ws.deployments.route("cancer").primary.version == 1
    assert ws.retraining.get(run_id).state == "cancelled"


def test_a_cancel_after_a_crash_between_starting_and_recording_the_rollout_rolls_it_back(ws: Workspace) -> None:
    run_id = _to_rollout(ws)
    run = ws.retraining.get(run_id)
    assert run.candidate is not None and run.rollout_id is None
    policy = ws.retraining.policy("cancer")
    ws.rollouts.start("cancer", run.candidate, policy.plan().model_dump(), actor=f"retrain run {run_id}")
    ws.retraining.cancel(run_id, "operator")
    assert ws.rollouts.store.active("cancer") is None
    assert ws.deployments.route("cancer").primary.version == 1


def test_a_cancel_after_the_rollout_ended_but_before_the_worker_saw_it_ends_the_run(ws: Workspace) -> None:
    run_id = _to_rollout(ws)
    assert [o for _, o in ws.retraining.tick()] == ["rollout_started"]
    ws.rollouts.rollback("cancer", "operator", "by hand")
    assert ws.retraining.cancel(run_id, "operator").state == "cancelled"


def test_a_policy_removed_mid_rollout_rolls_the_candidate_back(ws: Workspace) -> None:
    run_id = _to_rollout(ws)
    assert [o for _, o in ws.retraining.tick()] == ["rollout_started"]
    del ws.retraining.policies["cancer"]
    assert [o for _, o in ws.retraining.tick()] == ["failed"]
    assert ws.rollouts.store.active("cancer") is None
    assert ws.deployments.route("cancer").primary.version == 1
    assert "policy was removed" in (ws.retraining.get(run_id).reason or "")


def test_a_policy_removed_while_the_rollback_fails_is_retried_not_raised(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _to_rollout(ws)
    assert [o for _, o in ws.retraining.tick()] == ["rollout_started"]
    del ws.retraining.policies["cancer"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ws.retraining.parts.rollouts, "rollback", broken)
    assert ws.retraining.tick() == [(run_id, "retrying")]
    assert ws.retraining.get(run_id).error == "RuntimeError: the database went away"


def test_a_candidate_judged_against_a_champion_since_replaced_is_not_rolled_out(ws: Workspace) -> None:
    run_id = _to_rollout(ws)  # accepted; imagine it waited for an approval meanwhile
    X, y = cancer_frame()
    other = ws.registry.register(
        "cancer", champion_model(), reference=X.head(200).assign(label=y.head(200)), target="label"
    )
    ws.registry.set_alias("cancer", other.version, "champion", "replaced by hand")
    assert ws.deployments.route("cancer").primary.version == other.version
    assert [o for _, o in ws.retraining.tick()] == ["failed"]
    assert f"now serves cancer:{other.version}, not cancer:1" in (ws.retraining.get(run_id).reason or "")
    assert ws.rollouts.store.active("cancer") is None


def test_a_champion_deleted_mid_run_fails_the_run_at_once(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from matchday.store import VersionNotFound

    def gone(ref: Any) -> Any:
        raise VersionNotFound("cancer", 1)

    run = ws.retraining.run("cancer", actor="tester")
    monkeypatch.setattr(ws.retraining.parts.registry, "get_signature", gone)
    assert [o for _, o in ws.retraining.tick()] == ["failed"]
    done = ws.retraining.get(run.id)
    assert done.attempts == 0 and "'cancer' has no version 1" in (done.reason or "")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_candidate_predicting_nan_is_rejected_not_accepted(bad: float) -> None:
    labels = np.arange(100, dtype=np.float64)
    candidate = np.where(np.arange(100) < 50, labels, bad)
    holdout = pa.table({"label": labels, "country": ["a", "b"] * 50})
    result = evaluate("mae", labels + 1, candidate, holdout, "label", min_gain=0.0, segments=["country"])
    assert not result.accepted
    assert "candidate's predictions" in result.reasons[0] and "50 held-out rows" in result.reasons[0]
    report = result.to_json()
    assert report["gain"] is None  # storable as JSON (PostgreSQL refuses NaN)


def test_a_model_with_other_classes_fails_the_run_before_it_is_registered(ws: Workspace) -> None:
    from sklearn.tree import DecisionTreeClassifier

    X, y = cancer_frame()
    _engine(ws).model = DecisionTreeClassifier(max_depth=2).fit(X, np.arange(len(y)) % 3)
    run = ws.retraining.run("cancer", actor="tester")
    assert [o for _, o in ws.retraining.tick()] == ["failed"]
    reason = ws.retraining.get(run.id).reason or ""
    assert "classes are ['0', '1', '2'], not the champion's ['0', '1']" in reason
    assert [v.version for v in ws.registry.list_versions("cancer")] == [1]


def test_a_model_answering_other_classes_is_rejected_before_any_traffic(ws: Workspace) -> None:
    from sklearn.tree import DecisionTreeRegressor

    X, y = cancer_frame()
    _engine(ws).model = DecisionTreeRegressor(random_state=0).fit(X, 3 * y)  # no classes_: it answers 0 or 3
    run = ws.retraining.run("cancer", actor="tester")
    assert [o for _, o in ws.retraining.tick()] == ["trained"]
    assert [o for _, o in ws.retraining.tick()] == ["rejected"]
    reason = ws.retraining.get(run.id).reason or ""
    assert "answers with 1 classes ['3']" in reason and ws.rollouts.store.active("cancer") is None


def test_labels_of_another_type_than_the_references_fail_the_run_saying_so(ws: Workspace) -> None:
    from matchday.retrain import RetrainPolicy

    ws.retraining.policies["cancer"] = RetrainPolicy.model_validate(
        {**POLICY, "data": {"reference": True, "production": {"window": "1d"}}}
    )
    log_labelled(ws, 200, label=lambda v: "yes" if v else "no")  # beside the fixture's 0/1 labels
    run = ws.retraining.run("cancer", actor="tester")
    assert [o for _, o in ws.retraining.tick()] == ["failed"]  # at once, not after five retries
    assert "labels in the log mix types (int, str)" in (ws.retraining.get(run.id).reason or "")


def test_string_labels_against_integer_reference_labels_are_refused_by_name() -> None:
    from matchday.retrain import NotEnoughData
    from matchday.retrain.data import production_part

    batch = pa.table(
        {
            "inputs": pa.array([{"a": 1.0}, {"a": 2.0}]),
            "label": ['"yes"', '"no"'],
            "at": pa.array([None, None], pa.timestamp("us", tz="UTC")),
            "role": ["served", "served"],
            "label_source": ["feedback", "feedback"],
            "id": [1, 2],
        }
    )
    with pytest.raises(NotEnoughData, match=r"labels in the log \(string.*reference labels \(int64\)"):
        production_part(batch, ["a"], "label", pa.int64())
    as_text = batch.set_column(1, "label", pa.array(["1", "0.0"]))
    assert production_part(as_text, ["a"], "label", pa.int64()).column("label").to_pylist() == [1, 0]
