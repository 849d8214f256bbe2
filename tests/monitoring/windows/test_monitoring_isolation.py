"""One bad row, one corrupt window or one failing series never stops monitoring for the others
(issue 13: an accepted input of 1e200 stopped every deployment's monitoring, at every tick, across
restarts). On a real database, SQLite and PostgreSQL."""

from __future__ import annotations

import math
import statistics
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from support.monitoring_stream import log_rows, scripted_stream
from support.rollout_support import cancer_frame, fitted

from matchday.monitoring import MonitoringLoop, failure_counts
from matchday.monitoring.drift.summary import column_mean, column_std, moments
from matchday.monitoring.windows.failures import Failures
from matchday.store import MonitorStateStore, PredictionLogStore, StoreUnavailable, WindowStore
from matchday.workspace import Workspace, build_monitoring

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
COUNT = 100
SECOND = timedelta(seconds=1)


def monitoring(ws: Workspace, monitors: list[dict[str, Any]] | None = None) -> MonitoringLoop:
    ws.settings = ws.settings.model_copy(
        update={
            "monitoring": ws.settings.monitoring.model_copy(update={"count_window": COUNT}),
            "monitors": monitors or [],
        }
    )
    return build_monitoring(ws)


def register(ws: Workspace, kind: str = "base") -> tuple[str, int]:
    X, _ = cancer_frame()
    model, version = ws.registry.register("cancer" if kind == "base" else kind, fitted(kind)[0], reference=X).ref.split(
        ":"
    )
    return model, int(version)


def rows_of(deployment: str, model: str, version: int, start: int, n: int, at: datetime) -> list[dict[str, Any]]:
    """``n`` rows of the scripted stream (from ``start``, which also keeps request ids apart), a second apart."""
    stream = scripted_stream(stationary=start + n, drifted=0, after=0)
    return log_rows(
        stream, start, start + n, deployment=deployment, model=model, version=version, at=at, spacing=SECOND
    )


def windows_of(ws: Workspace, deployment: str, width: str) -> list[Any]:
    return WindowStore(ws.database).series(deployment, width, with_summary=True)


def test_an_input_whose_square_overflows_stops_no_deployment(workspace: Workspace) -> None:
    model, version = register(workspace)
    loop = monitoring(workspace)
    log = PredictionLogStore(workspace.database)
    logged: dict[str, list[float]] = {"bad": [], "good": []}
    for tick in range(3):  # three 5-minute windows, one per tick; the hour and day windows merge every tick
        at = T0 + timedelta(minutes=5 * tick)
        bad = rows_of("bad", model, version, 1000 * tick, 60, at)
        good = rows_of("good", model, version, 1000 * tick + 500, 60, at)
        bad[3]["inputs"]["mean radius"] = 1e200  # the square overflows
        bad[4]["inputs"]["mean area"] = 1e308  # the sum of two overflows
        bad[5]["inputs"]["mean area"] = 1e308
        for name, rows in (("bad", bad), ("good", good)):
            logged[name] += [r["inputs"]["mean radius"] for r in rows]
        log.insert(bad + good)
        result = loop.tick(at + timedelta(minutes=5, seconds=15))
        assert result.rows == 120 and result.failures == []
        for name in ("bad", "good"):
            assert [w.rows for w in windows_of(workspace, name, "5m")] == [60] * (tick + 1)
            hour = windows_of(workspace, name, "1h")
            assert [w.rows for w in hour] == [60 * (tick + 1)]
            radius = hour[0].summary["inputs"]["columns"]["mean radius"]
            assert column_mean(radius) == pytest.approx(float(statistics.mean(logged[name])), rel=1e-9)
            assert column_std(radius) == pytest.approx(statistics.pstdev(logged[name]), rel=1e-9)
            area = hour[0].summary["inputs"]["columns"]["mean area"]
            assert math.isfinite(column_mean(area)) and math.isfinite(column_std(area))
        good_metrics = windows_of(workspace, "good", "5m")[-1].metrics
        assert good_metrics["error_rate"] == 0 and good_metrics["drift_share"] is not None
        assert good_metrics["estimated_accuracy"] is not None and good_metrics["latency_p99"] is not None
        assert [w.rows for w in windows_of(workspace, "bad", f"{COUNT}rows")] == [
            w.rows for w in windows_of(workspace, "good", f"{COUNT}rows")
        ]
    assert failure_counts(MonitorStateStore(workspace.database)) == []


def test_a_label_whose_square_overflows_stops_no_deployment(workspace: Workspace) -> None:
    model, version = register(workspace, "regressor")
    loop = monitoring(workspace)
    log = PredictionLogStore(workspace.database)
    rows = {}  # two 5-minute windows of 20 rows each per deployment
    for name, offset in (("bad", 0), ("good", 500)):
        rows[name] = rows_of(name, model, version, offset, 20, T0) + rows_of(
            name, model, version, offset + 20, 20, T0 + timedelta(minutes=5)
        )
        for i, r in enumerate(rows[name]):
            r["prediction"], r["probabilities"] = float(i % 2), None
    log.insert(rows["bad"] + rows["good"])
    loop.tick(T0 + timedelta(minutes=11))
    # labels land in both 5-minute windows of one hour, a tick apart: the hour is re-merged from the stored parts
    for tick, batch in enumerate([range(0, 10), range(20, 30), range(10, 20)]):
        for name, part in rows.items():
            labels = {i: float(i % 2) + 0.5 for i in batch}
            if name == "bad" and tick == 0:
                labels[0] = 1e200
            log.apply_labels(name, [("request_id", part[i]["request_id"], y) for i, y in labels.items()])
        result = loop.tick(T0 + timedelta(minutes=12 + tick))
        assert result.failures == []
        labelled = 10 * (tick + 1)
        good = windows_of(workspace, "good", "1h")[0].metrics
        assert good["labelled"] == labelled and good["mae"] == pytest.approx(0.5)
        bad = windows_of(workspace, "bad", "1h")[0].metrics
        assert bad["labelled"] == labelled
        assert bad["mae"] == pytest.approx((1e200 + 0.5 * (labelled - 1)) / labelled, rel=1e-9)
        assert bad["rmse"] == pytest.approx(1e200 / math.sqrt(labelled), rel=1e-9)


def corrupt_like_the_overflow(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as the bug stored it: plain sums, ``sumsq`` null (and ``sum`` too, for one column)."""
    out = {**summary, "inputs": {**summary["inputs"], "columns": dict(summary["inputs"]["columns"])}}
    for i, (name, column) in enumerate(summary["inputs"]["columns"].items()):
        if column["kind"] == "numeric":
            old = {k: v for k, v in column.items() if k != "moments"}
            out["inputs"]["columns"][name] = {
                **old,
                "sum": None if i == 0 else column_mean(column) * column["count"],
                "sumsq": None,
            }
    latency = {k: v for k, v in summary["latency"].items() if k != "moments"}
    out["latency"] = {**latency, "sum": 0.01 * latency["count"], "sumsq": None}
    return out


def test_a_stored_window_with_lost_sums_is_repaired_and_a_garbled_one_starts_again(workspace: Workspace) -> None:
    model, version = register(workspace)
    loop = monitoring(workspace)
    log = PredictionLogStore(workspace.database)
    first = rows_of("cancer", model, version, 0, 60, T0)
    log.insert(first)
    loop.tick(T0 + timedelta(minutes=2))
    store = WindowStore(workspace.database)
    hour, day = windows_of(workspace, "cancer", "1h")[0], windows_of(workspace, "cancer", "1d")[0]
    garbled = {**day.summary, "inputs": None}
    lost = {
        "labelled": 1,
        "delay_sum": 1.0,
        "delay_max": 1.0,
        "regression": {
            "kind": "regression",
            "n": 1,
            "missing": 0,
            "sum_error": 1e200,
            "sum_abs_error": 1e200,
            "sum_sq_error": None,
            "sum_y": 0.0,
            "m2_y": 0.0,
        },
    }  # what a label of 1e200 left before
    store.put_many(
        [
            replace(hour, summary=corrupt_like_the_overflow(hour.summary), performance=lost),
            replace(day, summary=garbled),
        ]
    )

    second = rows_of("cancer", model, version, 500, 60, T0 + timedelta(minutes=5))
    log.insert(second)
    result = loop.tick(T0 + timedelta(minutes=12))
    # the hour is repaired from its sketch: every row counted, the moments marked approximate
    hour = windows_of(workspace, "cancer", "1h")[0]
    assert hour.rows == 120
    radius = hour.summary["inputs"]["columns"]["mean radius"]
    assert moments(radius).approximate
    values = [r["inputs"]["mean radius"] for r in first + second]
    assert column_mean(radius) == pytest.approx(float(np.mean(values)), rel=0.01)
    assert hour.metrics["latency_p99"] == pytest.approx(0.01, rel=0.01)
    assert hour.performance is None  # unreadable: dropped (counted), recomputed when labels land
    # the day could not be merged at all: counted once, started again from the new rows, and says so
    assert sorted((f.deployment, f.stage, f.where) for f in result.failures) == [
        ("cancer", "merge", f"1d window at {T0.replace(hour=0).isoformat()}"),
        ("cancer", "performance", f"1h window at {T0.isoformat()}"),
    ]
    day = windows_of(workspace, "cancer", "1d")[0]
    assert day.rows == 60 and day.summary["restarted"]["rows_dropped"] == 60
    assert [w.rows for w in windows_of(workspace, "cancer", "5m")] == [60, 60]
    (count,) = failure_counts(MonitorStateStore(workspace.database))
    assert (count.deployment, count.count) == ("cancer", 2)

    log.insert(rows_of("cancer", model, version, 1000, 60, T0 + timedelta(minutes=10)))
    later = loop.tick(T0 + timedelta(minutes=17))
    assert later.failures == [] and later.rows == 60
    assert windows_of(workspace, "cancer", "1h")[0].rows == 180
    assert windows_of(workspace, "cancer", "1d")[0].rows == 120
    assert windows_of(workspace, "cancer", "1d")[0].summary["restarted"]["rows_dropped"] == 60  # still said


def test_a_failing_series_is_counted_and_the_others_are_written(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matchday.monitoring.windows.summarizer as summarizer

    model, version = register(workspace)
    loop = monitoring(workspace, [{"name": "errors", "metric": "error_rate", "window": "5m", "when": "> 0.5"}])
    log = PredictionLogStore(workspace.database)
    real = summarizer.columns_of_batch

    def failing_for_bad(table: pa.Table, ref: Any) -> Any:
        if table.column("deployment")[0].as_py() == "bad":
            raise RuntimeError("a summary that cannot be made")
        return real(table, ref)

    monkeypatch.setattr(summarizer, "columns_of_batch", failing_for_bad)
    log.insert(rows_of("bad", model, version, 0, 150, T0) + rows_of("good", model, version, 500, 150, T0))
    result = loop.tick(T0 + timedelta(minutes=6))
    assert [(f.deployment, f.stage, f.error) for f in result.failures] == [
        ("bad", "summarise", "RuntimeError: a summary that cannot be made")
    ]
    assert windows_of(workspace, "bad", "5m") == []
    assert [w.rows for w in windows_of(workspace, "good", "5m")] == [150]
    assert [w.rows for w in windows_of(workspace, "good", f"{COUNT}rows")] == [100, 50]
    assert result.judged >= 1  # the good deployment's closed window was judged
    (count,) = failure_counts(MonitorStateStore(workspace.database))
    assert (count.deployment, count.model, count.version, count.count) == ("bad", model, version, 1)
    assert "cannot be made" in count.last_error and count.last_at == T0 + timedelta(minutes=6)

    # the cursor moved on: the bad rows are not retried at every tick
    again = loop.tick(T0 + timedelta(minutes=7))
    assert again.rows == 0 and again.failures == []

    # judging: one series' monitor failing leaves the others judged, and is counted too
    monkeypatch.setattr(summarizer, "columns_of_batch", real)
    real_judge = MonitoringLoop._judge

    def judge_failing_for_bad(self: MonitoringLoop, monitor: Any, window: Any) -> Any:
        if window.deployment == "bad":
            raise ValueError("a verdict that cannot be reached")
        return real_judge(self, monitor, window)

    monkeypatch.setattr(MonitoringLoop, "_judge", judge_failing_for_bad)
    log.insert(
        rows_of("bad", model, version, 1000, 30, T0 + timedelta(minutes=10))
        + rows_of("good", model, version, 1500, 30, T0 + timedelta(minutes=10))
    )
    judged = loop.tick(T0 + timedelta(minutes=16))
    assert {(f.deployment, f.stage) for f in judged.failures} == {("bad", "judge")}  # one per monitor of the window
    assert any(f.where.startswith("errors on the 5m window") for f in judged.failures)
    assert judged.judged >= 1
    assert [w.rows for w in windows_of(workspace, "bad", "5m")] == [30]
    (count,) = failure_counts(MonitorStateStore(workspace.database))
    assert (count.count, count.last_stage) == (1 + len(judged.failures), "judge")


def test_a_store_outage_inside_a_series_still_fails_the_tick(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, version = register(workspace)
    loop = monitoring(workspace)
    log = PredictionLogStore(workspace.database)
    rows = rows_of("cancer", model, version, 0, 120, T0)
    log.insert(rows)
    loop.tick(T0 + timedelta(minutes=6))
    log.apply_labels("cancer", [("request_id", r["request_id"], 1) for r in rows])

    def away(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("the database went away")

    with monkeypatch.context() as patched:  # read per count window, under the series' guard
        patched.setattr(PredictionLogStore, "labelled_rows_between_ids", away)
        with pytest.raises(StoreUnavailable):
            loop.tick(T0 + timedelta(minutes=7))
    assert windows_of(workspace, "cancer", f"{COUNT}rows")[0].metrics["labelled"] == 0
    assert loop.tick(T0 + timedelta(minutes=8)).failures == []
    assert windows_of(workspace, "cancer", f"{COUNT}rows")[0].metrics["labelled"] == COUNT
    assert failure_counts(MonitorStateStore(workspace.database)) == []


def test_the_guard_passes_store_errors_on_and_counts_the_rest() -> None:
    loaded: list[int] = []
    failures = Failures(
        lambda: loaded.append(1) or {"a\x1fm\x1f1": {"deployment": "a", "model": "m", "version": 1, "count": 4}}, T0
    )
    with failures.guard(("b", "m", 2), "window"):
        pass
    assert failures.to_state() == {} and loaded == []  # no failure: no read, nothing to write
    with pytest.raises(StoreUnavailable), failures.guard(("a", "m", 1), "window"):
        raise StoreUnavailable("away")
    with failures.guard(("a", "m", 1), "window", "5m window at noon"):
        raise KeyError("inputs")
    (state,) = failures.to_state().values()
    assert state["a\x1fm\x1f1"]["count"] == 5 and state["a\x1fm\x1f1"]["last_error"] == "KeyError: 'inputs'"
    assert [f.where for f in failures.new] == ["5m window at noon"]


def test_failures_are_a_prometheus_counter() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from matchday.monitoring import FailureCount
    from matchday.serving.window_gauges import WindowGauges

    registry = CollectorRegistry()
    counts = [FailureCount("payments", "fraud", 3, 7, "merge", "KeyError: 'inputs'", T0)]
    registry.register(WindowGauges(lambda width, since: [], lambda: [], lambda: counts))
    text = generate_latest(registry).decode()
    assert 'matchday_monitoring_failures_total{deployment="payments",model="fraud",version="3"} 7.0' in text
    unwired = CollectorRegistry()
    unwired.register(WindowGauges(lambda width, since: [], lambda: []))
    assert "matchday_monitoring_failures" not in generate_latest(unwired).decode()


def test_request_ids_of_the_helpers_do_not_collide() -> None:
    ids = {r["request_id"] for r in rows_of("a", "m", 1, 0, 60, T0) + rows_of("b", "m", 1, 500, 60, T0)}
    assert len(ids) == 120 and str(uuid.UUID(int=1)) in ids
