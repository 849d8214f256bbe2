"""Retraining's core in one process over a real database: data, training in a child, evaluation, guards."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from retrain_support import champion_model, flipped_stream
from rollout_support import cancer_frame

from matchday.config import Settings
from matchday.retrain import InvalidPolicy, Retraining
from matchday.workspace import Workspace


def policy(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "deployment": "cancer",
        "trainer": "retrain_support:train",
        "triggers": {"monitors": ["accuracy-drop"]},
        "data": {"reference": True, "production": {"window": "1d"}},
        "holdout": {"newest": 0.25, "min_rows": 40},
        "rollout": {"steps": [50, 100], "interval": "1s", "min_requests": 20, "gates": {"min_labels": 20}},
        "guards": {"cooldown": "1h", "max_per_day": 3, "stop_after_rejections": 2},
    }
    for key, value in over.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return base


@pytest.fixture
def ws(tmp_path: Path, database_url: str) -> Workspace:
    settings = Settings(home=tmp_path, database_url=database_url, retrain=[policy()])
    workspace = Workspace(settings)
    X, y = cancer_frame()
    workspace.registry.register(
        "cancer", champion_model(), reference=X.head(200).assign(label=y.head(200)), target="label", alias="champion"
    )
    workspace.deployments.deploy("cancer", "cancer@champion")
    yield workspace
    workspace.close()


def log_labelled(ws: Workspace, n: int, *, start: datetime | None = None) -> None:
    frame, labels = flipped_stream(n)
    model = champion_model()
    predictions = model.predict(frame)
    at = start or datetime.now(UTC) - timedelta(minutes=30)
    rows = []
    for i, record in enumerate(frame.to_dict("records")):
        rows.append(
            {
                "request_id": str(uuid.uuid4()),
                "entity_id": None,
                "deployment": "cancer",
                "model": "cancer",
                "version": 1,
                "at": at + timedelta(milliseconds=100 * i),
                "inputs": record,
                "prediction": int(predictions[i]),
                "probabilities": None,
                "latency_seconds": 0.01,
                "routing": {"plan": "single"},
                "role": "served",
                "error": None,
                "shadow_of": None,
            }
        )
    ws.prediction_log.insert(rows)
    ws.prediction_log.apply_labels("cancer", [("request_id", r["request_id"], int(labels[i])) for i, r in enumerate(rows)])


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
            ws.retrain_policies
        text = str(caught.value)
        assert "holdout.newest" in text and "window" in text and "'soon'" in text
        ws2 = Workspace(Settings(home=tmp_path, retrain=[policy(trainer="nowhere_module:train")]))
        with pytest.raises(InvalidPolicy) as caught2:
            ws2.retrain_policies
        assert "nowhere_module" in str(caught2.value) and "cannot be imported" in str(caught2.value)
        ws3 = Workspace(Settings(home=tmp_path, retrain=[policy(triggers={"monitors": ["nope"]})]))
        with pytest.raises(InvalidPolicy, match="unknown monitor 'nope'"):
            ws3.retrain_policies
    finally:
        ws.close()


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
