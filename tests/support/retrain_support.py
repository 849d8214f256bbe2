"""Trainers for the retraining tests (imported by name, `retrain_support:train`, in the worker's child
process), a stream whose concept changes (the same inputs, other outcomes), and the retraining core's
test policy with the workspace its tests start from."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from matchday.retrain import TrainingData
from support.rollout_support import cancer_frame, fitted

if TYPE_CHECKING:
    from matchday.workspace import Workspace


def train(data: TrainingData) -> Any:
    """A shallow tree on the production rows only (the world changed: the reference's labels are the old
    concept, and the policies of these tests leave them out)."""
    frame = data.frame("production")
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(frame[data.inputs], frame[data.target].astype(int))


def train_with_reference(data: TrainingData) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        data.features(), data.labels().astype(int)
    )


def train_worse(data: TrainingData) -> Any:
    """A model that learns from shuffled labels: worse than the champion on any holdout."""
    rng = np.random.default_rng(0)
    labels = rng.permutation(data.labels("production").astype(int))
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(data.features("production"), labels)


def train_slowly(data: TrainingData) -> Any:
    """Waits while the file named by MATCHDAY_TEST_HOLD exists (a test kills the worker meanwhile)."""
    hold = os.environ.get("MATCHDAY_TEST_HOLD")
    started = time.monotonic()
    while hold and os.path.exists(hold) and time.monotonic() - started < 120:
        time.sleep(0.2)
    return train(data)


def train_raises(data: TrainingData) -> Any:
    raise ValueError("the trainer's own bug")


def flipped_stream(n: int, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of the breast-cancer data whose labels follow a new concept: the outcome flips on mean radius
    above its median (the champion, trained on the old labels, is wrong on half the rows)."""
    X, y = cancer_frame()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(X), n)
    frame = X.iloc[picks].reset_index(drop=True)
    labels = y.iloc[picks].to_numpy().copy()
    big = frame["mean radius"].to_numpy() > float(X["mean radius"].median())
    labels[big] = 1 - labels[big]
    return frame, labels


def champion_model() -> Any:
    return fitted("base")[0]


def policy(**over: Any) -> dict[str, Any]:
    """The retraining core's test policy for the deployment "cancer", with ``over``'s fields merged in."""
    base: dict[str, Any] = {
        "deployment": "cancer",
        "trainer": "support.retrain_support:train",
        "triggers": {"monitors": ["accuracy-drop"]},
        "data": {"reference": True, "production": {"window": "1d"}},
        "holdout": {"newest": 0.25, "min_rows": 40},
        "rollout": {"steps": [50, 100], "interval": "1s", "min_requests": 20, "gates": {"min_labels": 20}},
        "guards": {"cooldown": "1h", "max_per_day": 3, "stop_after_rejections": 2},
    }
    for key, value in over.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return base


def champion_workspace(home: Path, database_url: str) -> Workspace:
    """A workspace retraining `policy()`, with cancer:1 (`champion_model`) registered as the champion and deployed."""
    from matchday.config import Settings
    from matchday.workspace import Workspace

    workspace = Workspace(Settings(home=home, database_url=database_url, retrain=[policy()]))
    X, y = cancer_frame()
    workspace.registry.register(
        "cancer", champion_model(), reference=X.head(200).assign(label=y.head(200)), target="label", alias="champion"
    )
    workspace.deployments.deploy("cancer", "cancer@champion")
    return workspace


def log_labelled(
    ws: Workspace, n: int, *, deployment: str = "cancer", start: datetime | None = None, label: Any = int
) -> None:
    """``n`` answers of cancer:1 logged (half an hour ago unless ``start``), each labelled by feedback in the
    new concept of `flipped_stream` (each label as ``label`` makes it: a test of mistyped labels passes str)."""
    frame, labels = flipped_stream(n)
    predictions = champion_model().predict(frame)
    at = start or datetime.now(UTC) - timedelta(minutes=30)
    rows = [
        {
            "request_id": str(uuid.uuid4()),
            "entity_id": None,
            "deployment": deployment,
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
        for i, record in enumerate(frame.to_dict("records"))
    ]
    ws.prediction_log.insert(rows)
    ws.prediction_log.apply_labels(
        deployment, [("request_id", r["request_id"], label(labels[i])) for i, r in enumerate(rows)]
    )
