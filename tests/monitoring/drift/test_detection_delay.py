"""Monitors that fire in time: the count-window monitors are judged on the sliding window (the latest
rows, at each step) and on the window by count in progress, so a shift is flagged within a few hundred
rows of it, while a long stationary stream raises nothing with the default monitors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from matchday.monitoring import MonitoringLoop
from matchday.monitoring.alerts import AlertEngine, MonitorSpec, judge
from matchday.store import AlertStore, MetricWindow, MonitorStateStore, PredictionLogStore
from matchday.workspace import Workspace, build_monitoring

T0 = datetime(2026, 11, 20, tzinfo=UTC)
FEATURES = [f"x{i}" for i in range(9)]
MEANS = np.linspace(-2.0, 6.0, len(FEATURES))
SPREADS = np.linspace(0.5, 3.0, len(FEATURES))
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def sample(rng: np.random.Generator, rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    X = rng.normal(MEANS, SPREADS, size=(rows, len(FEATURES)))
    z = ((X - MEANS) / SPREADS) @ np.linspace(1.0, -1.0, len(FEATURES)) + rng.normal(0, 0.5, rows)
    return pd.DataFrame(X, columns=FEATURES), (z > 0).astype(int)


class Stream:
    """A registered model (trained on the stationary distribution, its reference with the target)
    and a loop with the default monitors over ``ws``; ``feed`` logs rows and ticks once."""

    def __init__(self, ws: Workspace, *, count_window: int = 1000, monitors: list[dict[str, Any]] | None = None):
        from sklearn.linear_model import LogisticRegression

        X, y = sample(np.random.default_rng(1), 2000)
        self.model = LogisticRegression(max_iter=500).fit(X, y)
        ws.registry.register("bench", self.model, reference=X.assign(target=y), target="target")
        ws.settings = ws.settings.model_copy(
            update={
                "monitoring": ws.settings.monitoring.model_copy(update={"count_window": count_window}),
                "monitors": monitors or [],
            }
        )
        self.loop: MonitoringLoop = build_monitoring(ws)
        self.log = PredictionLogStore(ws.database)
        self.logged = 0
        self.opened: list[tuple[str, int]] = []  # (monitor, rows logged when it opened)

    def feed(self, frame: pd.DataFrame, labels: np.ndarray | None = None) -> None:
        predictions, probabilities = self.model.predict(frame), self.model.predict_proba(frame)
        first = self.logged
        self.log.insert(
            [
                {
                    "request_id": str(uuid.UUID(int=first + i + 1)),
                    "entity_id": None,
                    "deployment": "bench",
                    "model": "bench",
                    "version": 1,
                    "at": T0 + timedelta(seconds=first + i),
                    "inputs": record,
                    "prediction": int(predictions[i]),
                    "probabilities": probabilities[i].tolist(),
                    "latency_seconds": 0.01,
                    "routing": {},
                    "role": "served",
                    "error": None,
                    "shadow_of": None,
                }
                for i, record in enumerate(frame.to_dict("records"))
            ]
        )
        self.logged += len(frame)
        if labels is not None:
            self.log.apply_labels(
                "bench", [("request_id", str(uuid.UUID(int=first + i + 1)), int(v)) for i, v in enumerate(labels)]
            )
        result = self.loop.tick(T0 + timedelta(seconds=self.logged + 15))
        self.opened += [(c.alert.monitor, self.logged) for c in result.changes if c.kind == "opened"]
        self.last = result

    def run(self, frame: pd.DataFrame, every: int, labels: np.ndarray | None = None) -> None:
        for start in range(0, len(frame), every):
            part = slice(start, start + every)
            self.feed(frame.iloc[part], None if labels is None else labels[part])


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("shift", "before"),
    [("a third +1 std", 1430), ("every feature x3", 600)],  # the second is the issue's: it took ~1,500 rows
)
def test_a_shift_is_flagged_within_300_rows_and_not_before(workspace: Workspace, shift: str, before: int) -> None:
    rng = np.random.default_rng(3)
    frame, _ = sample(rng, before + 400)
    if shift == "every feature x3":
        frame.loc[before:, FEATURES] *= 3
    else:
        for j in (0, 3, 6):
            frame.loc[before:, FEATURES[j]] += SPREADS[j]
    stream = Stream(workspace)
    stream.run(frame.iloc[:before], every=50)
    assert stream.opened == []  # silent on the stationary part
    stream.run(frame.iloc[before:], every=25)
    drift = [rows - before for name, rows in stream.opened if name == "data-drift"]
    assert drift and 0 < drift[0] <= 300, stream.opened


@SQLITE_ONLY
@pytest.mark.slow  # 20,000 rows through the loop, a tick every 250 rows: ~40 s
def test_a_stationary_stream_raises_no_alert_with_the_default_monitors(workspace: Workspace) -> None:
    frame, labels = sample(np.random.default_rng(11), 12_000)  # 100,000: benchmarks/detection.py
    stream = Stream(workspace)
    stream.run(frame, every=250, labels=labels)  # labels with their rows: accuracy and concept drift judged too
    assert stream.opened == []
    assert AlertStore(workspace.database).list("bench") == []
    assert stream.last.judged > 0  # the monitors were judged, not inconclusive


@SQLITE_ONLY
def test_the_sliding_window_is_the_latest_count_window_rows_and_the_count_window_at_its_boundaries(
    workspace: Workspace,
) -> None:
    frame, _ = sample(np.random.default_rng(5), 2600)
    stream = Stream(workspace, count_window=500)  # panes of 25 rows
    stream.run(frame.iloc[:30], every=30)
    assert [w.rows for w in stream.last.sliding] == [30]  # warming up: every row so far
    stream.run(frame.iloc[30:1010], every=70)
    (sliding,) = stream.last.sliding
    assert 500 - 25 < sliding.rows <= 500 and sliding.width == "500rows"
    assert sliding.summary["step"] > sliding.start.isoformat()
    stream.run(frame.iloc[1010:1500], every=49)  # 1500 rows: a window by count just completed
    (sliding,) = stream.last.sliding
    complete = stream.loop.windows.series("bench", "500rows", with_summary=True)
    assert [w.rows for w in complete] == [500, 500, 500]
    assert sliding.rows == 500 and sliding.start == complete[-1].start  # the same rows
    for name in FEATURES:
        assert sliding.metrics[f"drift.{name}"] == pytest.approx(complete[-1].metrics[f"drift.{name}"])
    assert sliding.metrics["rows"] == 500
    # a restarted loop (a new process) carries on from the stored panes
    again = build_monitoring(workspace)
    stream.loop = again
    stream.run(frame.iloc[1500:1510], every=10)
    (sliding,) = stream.last.sliding
    assert sliding.rows == 500 - 25 + 10


@SQLITE_ONLY
def test_a_count_window_past_the_sliding_limit_is_judged_whole(workspace: Workspace) -> None:
    from matchday.monitoring.windows.summarizer import SLIDING_MAX_ROWS

    frame, _ = sample(np.random.default_rng(6), 300)
    stream = Stream(workspace, count_window=SLIDING_MAX_ROWS + 1)
    stream.run(frame, every=100)
    assert stream.last.sliding == [] and stream.loop.summarizer.sliding is False  # no panes summarised twice
    assert not any(k.startswith("panes") for k in _state_keys(workspace))


def _state_keys(workspace: Workspace) -> list[str]:
    import sqlalchemy as sa

    with workspace.database.session() as s:
        return [str(k) for (k,) in s.execute(sa.text("SELECT key FROM monitor_state"))]


@SQLITE_ONLY
def test_a_label_monitor_judges_the_window_in_progress_once_it_has_enough_labelled_rows(
    workspace: Workspace,
) -> None:
    frame, labels = sample(np.random.default_rng(8), 600)
    monitor = {"name": "accuracy-low", "metric": "accuracy", "window": "1000rows", "when": "< 0.6", "min_rows": 200}
    stream = Stream(workspace, monitors=[monitor])
    wrong = 1 - stream.model.predict(frame)  # every label disagrees with the model
    stream.feed(frame.iloc[:150], wrong[:150])
    assert stream.opened == []  # 150 labelled rows: fewer than min_rows, inconclusive
    stream.feed(frame.iloc[150:300], wrong[150:300])
    assert stream.opened == [("accuracy-low", 300)]  # 300 labelled rows in a window of 1000 still filling
    # the data-drift monitors judge the sliding window; with the inputs unchanged, nothing
    assert all(name == "accuracy-low" for name, _ in stream.opened)


def window(start: datetime, deployment: str = "d") -> MetricWindow:
    return MetricWindow(deployment, "m", 1, "", "1000rows", start, start + timedelta(minutes=1), 1000, {}, None, {})


def test_a_window_judged_again_counts_once_and_each_sliding_step_counts_anew(workspace: Workspace) -> None:
    engine = AlertEngine(AlertStore(workspace.database), MonitorStateStore(workspace.database))
    spec = MonitorSpec(name="drift", metric="drift_share", window="1000rows", when="> 0.3", breaches=2, min_rows=1)
    breach = judge(spec, {"rows": 1000, "drift_share": 0.5})
    assert breach.breached
    w = window(T0)
    # the same window by count judged again as it grows: one breach, however often
    assert engine.observe(w, breach, T0) is None
    assert engine.observe(w, breach, T0 + timedelta(seconds=5)) is None
    # one sliding window's steps (its newest pane) each count, and the same step judged twice counts once
    assert engine.observe(window(T0, "e"), breach, T0, step="a") is None
    assert engine.observe(window(T0, "e"), breach, T0 + timedelta(seconds=5), step="a") is None
    change = engine.observe(window(T0, "e"), breach, T0 + timedelta(seconds=10), step="b")
    assert change is not None and change.kind == "opened"
    assert change.alert.data["window"]["sliding"] is True and change.alert.data["window"]["step"] == "b"
