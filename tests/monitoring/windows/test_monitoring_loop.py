"""The monitoring loop on a real database: windows by time and by count, late labels, monitors that
fire on a known data-drift point and a known concept-drift point (never on the stationary part),
alerts that deduplicate and resolve, and clear errors for monitors that cannot be checked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from support.monitoring_stream import log_rows, scripted_stream
from support.rollout_support import cancer_frame, fitted

from matchday.monitoring import InvalidMonitor, MonitoringLoop, diagnose, parse_monitors
from matchday.store import AlertStore, PredictionLogStore, StoreUnavailable, WindowStore
from matchday.workspace import Workspace, build_monitoring

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
COUNT = 300
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def monitoring(ws: Workspace, monitors: list[dict], count: int = COUNT) -> MonitoringLoop:
    ws.settings = ws.settings.model_copy(
        update={"monitoring": ws.settings.monitoring.model_copy(update={"count_window": count}), "monitors": monitors}
    )
    return build_monitoring(ws)


def register(ws: Workspace) -> str:
    """The model with the whole data set as its reference (the stream samples from all of it)."""
    X, _ = cancer_frame()
    return ws.registry.register("cancer", fitted("base")[0], reference=X).ref


def test_windows_by_time_and_count_and_late_labels(workspace: Workspace) -> None:
    ref = register(workspace)
    model, version = ref.split(":")
    stream = scripted_stream(stationary=900, drifted=0, after=0)
    loop = monitoring(workspace, [])
    log = PredictionLogStore(workspace.database)
    # 900 rows, 100 ms apart: three 5-minute windows would need 3000; spread them over 15 minutes instead
    log.insert(
        log_rows(
            stream, 0, 900, deployment="cancer", model=model, version=int(version), at=T0, spacing=timedelta(seconds=1)
        )
    )
    result = loop.tick(T0 + timedelta(minutes=20))
    assert result.rows == 900
    windows = WindowStore(workspace.database)
    five = windows.series("cancer", "5m")
    assert [w.rows for w in five] == [300, 300, 300]
    assert [w.start for w in five] == [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]
    hour = windows.series("cancer", "1h")
    assert len(hour) == 1 and hour[0].rows == 900
    counted = windows.series("cancer", f"{COUNT}rows")
    assert [w.rows for w in counted] == [300, 300, 300]
    m = five[0].metrics
    assert m["error_rate"] == 0 and m["rows"] == 300 and abs(m["throughput"] - 1.0) < 1e-9
    assert m["labelled"] == 0 and m.get("accuracy") is None
    assert 0.009 < m["latency_p99"] < 0.0101
    assert m["drift_share"] is not None and 0 <= m["drift_share"] <= 1
    assert m["estimated_accuracy"] is not None and m["estimated_accuracy"] > 0.8  # CBPE, before any label
    assert abs(sum(m[f"class_share.{c}"] for c in ("0", "1")) - 1) < 1e-9
    assert m["prediction_drift"] is not None and m["prediction_drift_detected"] == 0.0  # integer classes too

    # labels for the first window arrive late, after its rows were summarised: its performance follows
    ids = [str(uuid.UUID(int=i + 1)) for i in range(300)]
    log.apply_labels("cancer", [("request_id", rid, int(stream.labels[i])) for i, rid in enumerate(ids)])
    loop.tick(T0 + timedelta(minutes=21))
    five = windows.series("cancer", "5m")
    expected = float(np.mean(stream.labels[:300] == stream.predictions[:300]))
    assert five[0].metrics["labelled"] == 300 and five[0].metrics["label_coverage"] == 1.0
    assert five[0].metrics["accuracy"] == pytest.approx(expected)
    assert five[1].metrics["labelled"] == 0
    assert windows.series("cancer", "1h")[0].metrics["accuracy"] == pytest.approx(expected)
    assert windows.series("cancer", f"{COUNT}rows")[0].metrics["accuracy"] == pytest.approx(expected)
    # a corrected label changes the window it belongs to (no double counting)
    log.apply_labels("cancer", [("request_id", ids[0], int(1 - stream.labels[0]))])
    loop.tick(T0 + timedelta(minutes=22))
    fixed = np.r_[1 - stream.labels[0], stream.labels[1:300]]
    assert windows.series("cancer", "5m")[0].metrics["accuracy"] == pytest.approx(
        float(np.mean(fixed == stream.predictions[:300]))
    )
    assert windows.series("cancer", "5m")[0].metrics["labelled"] == 300


@SQLITE_ONLY  # the store is tested on both databases above; this is the logic on a long stream
def test_data_and_concept_drift_are_detected_after_their_points_and_never_before(workspace: Workspace) -> None:
    ref = register(workspace)
    model, version = ref.split(":")
    stream = scripted_stream(stationary=1500, drifted=1200, after=1500)
    loop = monitoring(
        workspace,
        [
            {
                "name": "data-drift",
                "metric": "drift_share",
                "window": f"{COUNT}rows",
                "when": "> 0.3",
                "breaches": 2,
                "min_rows": 200,
            },
            {
                "name": "accuracy-low",
                "metric": "accuracy",
                "window": f"{COUNT}rows",
                "when": "< 0.85",
                "breaches": 2,
                "min_rows": 200,
                "severity": "critical",
            },
        ],
    )
    log = PredictionLogStore(workspace.database)
    alerts = AlertStore(workspace.database)
    opened: dict[str, int] = {}
    resolved: dict[str, int] = {}
    for start in range(0, len(stream.labels), COUNT):  # one count window per tick; labels follow one window behind
        log.insert(
            log_rows(
                stream,
                start,
                start + COUNT,
                deployment="cancer",
                model=model,
                version=int(version),
                at=T0 + timedelta(seconds=start),
                spacing=timedelta(seconds=1),
            )
        )
        if start >= COUNT:
            prev = range(start - COUNT, start)
            log.apply_labels("cancer", [("request_id", str(uuid.UUID(int=i + 1)), int(stream.labels[i])) for i in prev])
        result = loop.tick(T0 + timedelta(seconds=start + COUNT + 15))
        for change in result.changes:
            target = opened if change.kind == "opened" else resolved
            target.setdefault(change.alert.monitor, start + COUNT)  # rows seen when it changed
    drift_start, drift_end = stream.data_drift
    assert drift_start < opened["data-drift"] <= drift_start + 3 * COUNT
    assert drift_end < resolved["data-drift"] <= drift_end + 2 * COUNT
    # performance is judged on windows whose labels arrived, one window later
    assert stream.concept_drift < opened["accuracy-low"] <= stream.concept_drift + 4 * COUNT
    assert "accuracy-low" not in resolved
    # the detector on the labelled errors (ADWIN, a default monitor) fires after the concept point, not on the data drift
    assert stream.concept_drift < opened["concept-drift"] <= stream.concept_drift + 4 * COUNT, opened
    history = alerts.list("cancer")
    assert min(a.opened_at for a in history) >= T0 + timedelta(seconds=drift_start)  # never on the stationary part
    monitors = [a.monitor for a in history]
    assert monitors.count("data-drift") == 1 and monitors.count("accuracy-low") == 1  # deduplicated
    assert [a.state for a in history if a.monitor == "data-drift"] == ["resolved"]
    diagnosis = {w.start: diagnose(w.metrics) for w in WindowStore(workspace.database).series("cancer", f"{COUNT}rows")}
    assert set(list(diagnosis.values())[: drift_start // COUNT]) == {"stable"}
    assert "data drift" in diagnosis.values() and "concept drift" in diagnosis.values()


def test_monitors_that_cannot_be_checked_are_refused_with_every_reason() -> None:
    with pytest.raises(InvalidMonitor) as caught:
        parse_monitors(
            [
                {"name": "a", "metric": "no_such_metric", "when": "> 1"},
                {"name": "b", "metric": "error_rate", "window": "7 minutes", "when": "> 1"},
                {"name": "c", "metric": "error_rate", "when": "about 3"},
                {"name": "d", "metric": "error_rate", "when": "> 1", "actions": [{"webhook": None}]},
                {"name": "e", "metric": "error_rate", "when": "> 1", "actions": ["page_the_ceo"]},
                {"name": "f", "metric": "error_rate", "when": "> 1", "window": "50rows"},
            ],
            count_window=1000,
        )
    text = "\n".join(caught.value.details)
    for needle in (
        "unknown metric 'no_such_metric'",
        "window '7 minutes'",
        "condition 'about 3'",
        "webhook action needs a URL",
        "unknown action 'page_the_ceo'",
        "not the configured count window",
    ):
        assert needle in text, text
    specs = parse_monitors(
        [
            {
                "name": "x",
                "metric": "drift.mean radius",
                "when": ">= 0.2",
                "window": "1h",
                "cooldown": "30m",
                "actions": ["alert", {"webhook": "http://127.0.0.1:9/hook"}, "rollback"],
            }
        ],
        count_window=1000,
    )
    assert specs[0].cooldown == 1800 and [a.kind for a in specs[0].actions] == ["alert", "webhook", "rollback"]


def test_segments_slice_windows_and_a_monitor_fires_on_one_segment_only(workspace: Workspace) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from matchday.demo.fraud import transactions

    train = transactions(3000, seed=1).to_pandas()
    features = ["amount", "hour", "merchant", "country", "card_present"]
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["merchant", "country"]), remainder="passthrough"
        ),
        LogisticRegression(max_iter=500),
    ).fit(train[features], train["is_fraud"])
    workspace.registry.register("fraud", model, reference=train, target="is_fraud")
    workspace.settings = workspace.settings.model_copy(
        update={
            "monitoring": workspace.settings.monitoring.model_copy(
                update={"count_window": 1000, "segments": {"fraud": ["country"]}}
            ),
            "monitors": [
                {
                    "name": "accuracy-by-country",
                    "metric": "accuracy",
                    "window": "5m",
                    "segment": "country",
                    "when": "< 0.7",
                    "min_rows": 30,
                }
            ],
        }
    )
    loop = build_monitoring(workspace)
    live = transactions(900, seed=2).to_pandas()
    predictions = model.predict(live[features])
    labels = np.where(live["country"] == "abroad", 1 - predictions, predictions)  # wrong abroad, right elsewhere
    log = PredictionLogStore(workspace.database)
    log.insert(
        [
            {
                "request_id": str(uuid.UUID(int=i + 1)),
                "entity_id": None,
                "deployment": "fraud",
                "model": "fraud",
                "version": 1,
                "at": T0 + timedelta(seconds=i / 10),
                "inputs": row,
                "prediction": int(predictions[i]),
                "probabilities": None,
                "latency_seconds": 0.01,
                "routing": {},
                "role": "served",
                "error": None,
                "shadow_of": None,
            }
            for i, row in enumerate(live[features].to_dict("records"))
        ]
    )
    log.apply_labels("fraud", [("request_id", str(uuid.UUID(int=i + 1)), int(labels[i])) for i in range(len(live))])
    result = loop.tick(T0 + timedelta(minutes=6))
    windows = WindowStore(workspace.database)
    segments = {w.segment: w for w in windows.series("fraud", "5m", segment=None)}
    assert set(segments) == {"", "country=home", "country=neighbour", "country=abroad"}
    assert sum(segments[s].rows for s in segments if s) == segments[""].rows == 900
    assert segments["country=abroad"].metrics["accuracy"] == 0.0
    assert segments["country=home"].metrics["accuracy"] == 1.0
    opened = [c.alert for c in result.changes if c.kind == "opened"]
    assert [(a.monitor, a.segment) for a in opened] == [("accuracy-by-country", "country=abroad")]


def test_a_database_that_goes_away_mid_tick_neither_loses_nor_repeats_rows(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = register(workspace)
    model, version = ref.split(":")
    stream = scripted_stream(stationary=600, drifted=0, after=0)
    loop = monitoring(workspace, [])
    log = PredictionLogStore(workspace.database)
    log.insert(log_rows(stream, 0, 600, deployment="cancer", model=model, version=int(version), at=T0))
    calls = {"n": 0}
    real = PredictionLogStore.labelled_ids_since

    def flaky(self: PredictionLogStore, since: datetime) -> list:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 1:  # after the windows are computed, before anything is committed
            raise StoreUnavailable("the database went away")
        return real(self, since)

    monkeypatch.setattr(PredictionLogStore, "labelled_ids_since", flaky)
    with pytest.raises(StoreUnavailable):
        loop.tick(T0 + timedelta(minutes=10))
    assert WindowStore(workspace.database).series("cancer", "5m") == []
    loop.tick(T0 + timedelta(minutes=11))
    loop.tick(T0 + timedelta(minutes=12))
    assert [w.rows for w in WindowStore(workspace.database).series("cancer", f"{COUNT}rows")] == [300, 300]
    assert sum(w.rows for w in WindowStore(workspace.database).series("cancer", "5m")) == 600


def test_a_monitor_on_a_feature_or_segment_the_model_lacks_is_refused(workspace: Workspace) -> None:
    register(workspace)
    workspace.deployments.deploy("cancer", "cancer:1")
    with pytest.raises(InvalidMonitor) as caught:
        monitoring(
            workspace,
            [
                {"name": "typo", "deployment": "cancer", "metric": "drift.mean radios", "when": "< 0.01"},
                {"name": "class", "deployment": "cancer", "metric": "class_share.maybe", "when": "> 0.5"},
                {"name": "slice", "deployment": "cancer", "metric": "accuracy", "segment": "region", "when": "< 0.9"},
            ],
        )
    text = "\n".join(caught.value.details)
    assert "cancer has no input feature 'mean radios'" in text and "mean radius" in text
    assert "cancer has no class 'maybe' (0, 1)" in text
    assert "no input feature 'region' to segment by" in text
    monitoring(workspace, [{"name": "ok", "deployment": "cancer", "metric": "drift.mean radius", "when": "< 0.01"}])


def test_image_brightness_and_text_length_are_watched_by_their_extractors(workspace: Workspace) -> None:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from matchday.monitoring.windows.metrics import extractor_metrics
    from matchday.monitoring.windows.summary import merge_summary, summarize_rows
    from matchday.store import LoggedRow

    digits = load_digits(as_frame=True)
    model = LogisticRegression(max_iter=200).fit(digits.data.iloc[:1000], digits.target.iloc[:1000])
    workspace.registry.register("digits", model, reference=digits.data.iloc[:1000])
    workspace.deployments.deploy("digits", "digits:1")
    workspace.settings = workspace.settings.model_copy(
        update={
            "monitoring": workspace.settings.monitoring.model_copy(
                update={"count_window": 200, "images": {"digits": ["pixel_*"]}}
            ),
            "monitors": [
                {
                    "name": "dim",
                    "deployment": "digits",
                    "metric": "image_brightness",
                    "window": "200rows",
                    "relative_to": "reference",
                    "when": "< -1.0",
                    "min_rows": 100,
                }
            ],
        }
    )
    loop = build_monitoring(workspace)
    live = digits.data.iloc[1000:1400].reset_index(drop=True)
    live.iloc[200:] = live.iloc[200:] * 0.5  # the lights go down: every pixel darker
    log = PredictionLogStore(workspace.database)
    log.insert(
        [
            {
                "request_id": str(uuid.UUID(int=i + 1)),
                "entity_id": None,
                "deployment": "digits",
                "model": "digits",
                "version": 1,
                "at": T0 + timedelta(seconds=i),
                "inputs": row,
                "prediction": 0,
                "probabilities": None,
                "latency_seconds": 0.01,
                "routing": {},
                "role": "served",
                "error": None,
                "shadow_of": None,
            }
            for i, row in enumerate(live.to_dict("records"))
        ]
    )
    result = loop.tick(T0 + timedelta(minutes=10))
    counted = WindowStore(workspace.database).series("digits", "200rows")
    reference = float(digits.data.iloc[:1000].to_numpy().mean())
    assert counted[0].metrics["image_brightness"] == pytest.approx(float(live.iloc[:200].to_numpy().mean()))
    assert abs(counted[0].metrics["image_brightness"] - reference) < 0.5
    assert counted[1].metrics["image_brightness"] == pytest.approx(counted[0].metrics["image_brightness"] / 2, rel=0.1)
    dim = [c for c in result.changes if c.alert.monitor == "dim"]
    # judged on the sliding window, which after 400 rows holds the second window's rows, merged from its panes
    assert [(c.kind, c.alert.value) for c in dim] == [("opened", pytest.approx(counted[1].metrics["image_brightness"]))]

    rows = [
        LoggedRow(i, "chat", "m", 1, T0, {"message": text}, 0, None, 0.01, None, None, None, "served")
        for i, text in enumerate(["hello there", "a much longer message about the weather", None])
    ]
    a = summarize_rows(rows[:2], None, texts=["message"])
    b = summarize_rows(rows[2:], None, texts=["message"])
    metrics = extractor_metrics(merge_summary(a, b))
    assert metrics["text_length.message"] == pytest.approx((11 + 39) / 2)
    assert metrics["text_words.message"] == pytest.approx((2 + 7) / 2)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite commits one writer at a time
def test_a_batch_committed_after_a_later_one_is_still_summarised(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from matchday.store import log_batches

    ref = register(workspace)
    model, version = ref.split(":")
    stream = scripted_stream(stationary=600, drifted=0, after=0)
    rows = log_rows(
        stream,
        0,
        600,
        deployment="cancer",
        model=model,
        version=int(version),
        at=T0,
        spacing=timedelta(milliseconds=100),
    )
    loop = monitoring(workspace, [])
    log = PredictionLogStore(workspace.database)
    encode, entered, release = log_batches.encode, threading.Event(), threading.Event()

    def slow_encode(*args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "slow-writer":  # inside its transaction, its batch id taken
            entered.set()
            release.wait(30)
        return encode(*args, **kwargs)

    monkeypatch.setattr(log_batches, "encode", slow_encode)
    slow = threading.Thread(target=log.insert, args=(rows[:300],), name="slow-writer")
    slow.start()
    assert entered.wait(30)
    log.insert(rows[300:])  # a later batch id, committed first
    assert log.count("cancer") == 300
    assert loop.tick(T0 + timedelta(minutes=2)).rows == 300  # the cursor passes the open batch
    release.set()
    slow.join(30)
    assert log.count("cancer") == 600
    assert loop.tick(T0 + timedelta(minutes=3)).rows == 300  # found again: the gap
    assert WindowStore(workspace.database).series("cancer", "1h")[0].rows == 600
    assert loop.tick(T0 + timedelta(minutes=4)).rows == 0  # and only once


@SQLITE_ONLY
def test_a_cursor_from_before_the_columnar_log_resumes_at_its_row(workspace: Workspace) -> None:
    from matchday.store import MonitorStateStore

    ref = register(workspace)
    model, version = ref.split(":")
    stream = scripted_stream(stationary=900, drifted=0, after=0)
    log = PredictionLogStore(workspace.database)
    for start in range(0, 900, 300):
        log.insert(
            log_rows(
                stream,
                start,
                start + 300,
                deployment="cancer",
                model=model,
                version=int(version),
                at=T0,
                spacing=timedelta(milliseconds=100),
            )
        )
    cursor = int(log.batch_after(0, 1000).column("id")[449].as_py())  # the middle of the second batch
    MonitorStateStore(workspace.database).put(
        {"summarizer": {"cursor": cursor, "gaps": [], "label_cursor": None, "counts": {}, "segment_values": {}}}
    )
    loop = monitoring(workspace, [])
    assert loop.tick(T0 + timedelta(minutes=2)).rows == 450  # the rest of that batch, then the third
    assert loop.tick(T0 + timedelta(minutes=3)).rows == 0
