"""What the summarizer stores fits the declared types (`WindowSummary`, `WindowPerformance`,
`SummarizerState`, `PanesState`), and what databases hold today (summaries from before `Moments`,
a state from before the columnar log) still fits, reads and merges."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.monitoring_stream import log_rows, scripted_stream
from support.rollout_support import cancer_frame, fitted
from support.shapes import misfits

from matchday.monitoring.windows import SeriesKey, SummarizerState, WindowPerformance, WindowSummary
from matchday.monitoring.windows.summarizer_state import (
    PanesState,
    new_state,
    panes_key,
    read_panes,
    read_state,
)
from matchday.monitoring.windows.summary import merge_summary
from matchday.store import MonitorStateStore, PredictionLogStore, WindowStore
from matchday.workspace import Workspace, build_monitoring

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# a 5-minute window's summary as stored before `Moments` (numeric columns kept sum and sumsq), with text lengths
STORED_BEFORE_MOMENTS: dict[str, Any] = {
    "rows": 2,
    "errors": 0,
    "requests": 2,
    "first_at": "2026-11-20T12:00:00+00:00",
    "last_at": "2026-11-20T12:00:01+00:00",
    "latency": {
        "kind": "numeric",
        "count": 2,
        "missing": 0,
        "sum": 0.02,
        "sumsq": 0.0002,
        "min": 0.01,
        "max": 0.01,
        "sketch": {"alpha": 0.005, "zero": 0, "positive": [[-460, 2]], "negative": []},
    },
    "inputs": {
        "rows": 2,
        "columns": {
            "amount": {
                "kind": "numeric",
                "count": 2,
                "missing": 0,
                "sum": 30.0,
                "sumsq": 500.0,
                "min": 10.0,
                "max": 20.0,
                "sketch": {"alpha": 0.005, "zero": 0, "positive": [[231, 1], [300, 1]], "negative": []},
            },
            "shop": {"kind": "categorical", "count": 2, "missing": 0, "categories": {"a": 2}},
        },
    },
    "outputs": {"rows": 2, "null": 0, "classes": {"0": 1, "1": 1}, "confidence": {"n": 2, "sum": 1.8}},
    "texts": {"note": {"n": 2.0, "chars": 9.0, "words": 2.0}},
    "drift_rows": 2,
}


def loop_state(ws: Workspace) -> tuple[str, int]:
    """A loop ticked over 600 rows, the first 300 labelled: windows with summaries, performance, panes."""
    X, _ = cancer_frame()
    model, version = ws.registry.register("cancer", fitted("base")[0], reference=X).ref.split(":")
    ws.settings = ws.settings.model_copy(
        update={"monitoring": ws.settings.monitoring.model_copy(update={"count_window": 200}), "monitors": []}
    )
    loop = build_monitoring(ws)
    stream = scripted_stream(stationary=600, drifted=0, after=0)
    log = PredictionLogStore(ws.database)
    log.insert(
        log_rows(stream, 0, 600, deployment="d", model=model, version=int(version), at=T0, spacing=timedelta(seconds=1))
    )
    loop.tick(T0 + timedelta(minutes=15))
    log.apply_labels("d", [("request_id", str(uuid.UUID(int=i + 1)), int(stream.labels[i])) for i in range(300)])
    loop.tick(T0 + timedelta(minutes=16))
    return model, int(version)


@SQLITE_ONLY
def test_what_a_tick_stores_fits_the_types(workspace: Workspace) -> None:
    model, version = loop_state(workspace)
    windows = WindowStore(workspace.database)
    stored = [w for width in ("5m", "1h", "1d", "200rows") for w in windows.series("d", width, with_summary=True)]
    assert stored and all(misfits(w.summary, WindowSummary) == [] for w in stored)
    labelled = [w.performance for w in stored if w.performance is not None]
    assert labelled and all(misfits(p, WindowPerformance) == [] for p in labelled)
    assert any("classification" in p for p in labelled)
    state = MonitorStateStore(workspace.database)
    summarizer = state.get("summarizer")
    assert misfits(summarizer, SummarizerState) == []
    assert {"labels_seen", "detectors", "detections"} <= summarizer.keys()
    panes = state.get(panes_key(SeriesKey("d", model, version)))
    assert misfits(panes, PanesState) == [] and panes["panes"]
    assert all(misfits(summary, WindowSummary) == [] for _, _, summary in panes["panes"])
    assert read_state(summarizer) == summarizer and read_panes(panes) == panes


def test_a_summary_stored_before_moments_fits_and_merges() -> None:
    assert misfits(STORED_BEFORE_MOMENTS, WindowSummary) == []
    merged = merge_summary(STORED_BEFORE_MOMENTS, json.loads(json.dumps(STORED_BEFORE_MOMENTS)))
    assert misfits(json.loads(json.dumps(merged)), WindowSummary) == []
    assert merged["rows"] == 4 and merged["texts"]["note"] == {"n": 4.0, "chars": 18.0, "words": 4.0}
    assert merged["inputs"]["columns"]["amount"]["moments"]["mean"] != 0  # repaired from the old sums
    assert "sum" not in merged["inputs"]["columns"]["amount"]


def test_a_merge_reads_its_own_stored_json_unchanged() -> None:
    a = json.loads(json.dumps(STORED_BEFORE_MOMENTS))
    once = json.loads(json.dumps(merge_summary(a, STORED_BEFORE_MOMENTS)))
    assert json.loads(json.dumps(merge_summary(json.loads(json.dumps(once)), a))) == json.loads(
        json.dumps(merge_summary(once, a))
    )


def test_a_new_state_and_one_from_before_the_columnar_log_fit() -> None:
    assert read_state(None) == new_state() and misfits(new_state(), SummarizerState) == []
    before = {"cursor": 41, "gaps": [[7, 9, 1700000000.5]], "label_cursor": None, "counts": {}, "segment_values": {}}
    assert misfits(before, SummarizerState) == [] and read_state(before) is before
    assert (
        misfits({**before, "counts": {"d\x1fm\x1f1": [["2026-11-20T12:00:00+00:00", 3, 1, 3]]}}, SummarizerState) == []
    )
    assert misfits({k: v for k, v in before.items() if k != "counts"}, SummarizerState) == ["$: no 'counts'"]
