"""Chart data from stored windows: aligned series for uPlot, a drift heat map, overlaid histograms.

Every chart is a plain dict the page embeds as JSON; ``points`` counts its non-empty values, so a page
can say "no data in this range" instead of drawing an empty frame (and a test can check it drew some).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from matchday.store import AlertRecord, EventRecord, MetricWindow

Chart = dict[str, Any]
MARKED_EVENTS = {
    "started": "rollout started",
    "step_passed": "canary step",
    "analysis_failed": "analysis failed",
    "promoted": "promoted",
    "rolled_back": "rolled back",
    "paused": "paused",
    "resumed": "resumed",
    "promotion_failed": "promotion failed",
}


def epoch(at: datetime) -> float:
    return at.timestamp()


def version_of(w: MetricWindow) -> str:
    return f"{w.model}:{w.version}"


def series_chart(
    chart_id: str,
    title: str,
    windows: Sequence[MetricWindow],
    metrics: Sequence[tuple[str, str]],
    *,
    unit: str = "",
    events: Sequence[dict[str, Any]] = (),
    by_version: bool = True,
    threshold: float | None = None,
) -> Chart:
    """One line per (metric, version), aligned on the windows' starts (None where a version has no window).

    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2026, 11, 27, tzinfo=UTC)
    >>> w = [MetricWindow("d", "m", v, "", "5m", t + timedelta(minutes=5 * i), t, 10, {}, None, {"rows": 10.0 * v})
    ...      for i, v in ((0, 1), (1, 1), (1, 2))]
    >>> c = series_chart("c", "rows", w, [("rows", "rows")])
    >>> [s["label"] for s in c["series"]], c["series"][1]["values"], c["points"]
    (['rows m:1', 'rows m:2'], [None, 20.0], 3)
    """
    starts = sorted({w.start for w in windows})
    index = {s: i for i, s in enumerate(starts)}
    versions = list(dict.fromkeys(version_of(w) for w in windows)) if by_version else [""]
    series: list[dict[str, Any]] = []
    for metric, label in metrics:
        for version in versions:
            values: list[float | None] = [None] * len(starts)
            for w in windows:
                if by_version and version_of(w) != version:
                    continue
                values[index[w.start]] = _number(w.metrics.get(metric))
            if any(v is not None for v in values):
                series.append({"label": f"{label} {version}".strip(), "values": values})
    if threshold is not None and series:
        series.append({"label": "threshold", "values": [threshold] * len(starts), "dash": True})
    return {
        "id": chart_id,
        "title": title,
        "unit": unit,
        "kind": "time",
        "x": [epoch(s) for s in starts],
        "series": series,
        "events": list(events),
        "points": _points(series, threshold is not None),
    }


def source_chart(
    chart_id: str,
    whole: Sequence[MetricWindow],
    by_source: Mapping[str, Sequence[MetricWindow]],
    *,
    events: Sequence[dict[str, Any]] = (),
) -> Chart:
    """Rows per window by where they came from: every row, each source's (batch jobs, edge devices), and
    online traffic as the rest (online rows carry no source), all versions added up.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 11, 27, tzinfo=UTC)
    >>> w = lambda rows, segment="": MetricWindow("d", "m", 1, segment, "5m", t, t, rows, {}, None, {})
    >>> c = source_chart("s", [w(10)], {"edge": [w(3, "@source=edge")], "batch": []})
    >>> [(s["label"], s["values"]) for s in c["series"]]
    [('all', [10.0]), ('online', [7.0]), ('edge', [3.0])]
    """
    starts = sorted({w.start for w in whole})
    index = {s: i for i, s in enumerate(starts)}

    def rows(windows: Sequence[MetricWindow]) -> list[float | None]:
        values: list[float | None] = [None] * len(starts)
        for w in windows:
            if w.start in index:
                i = index[w.start]
                values[i] = (values[i] or 0.0) + float(w.rows)
        return values

    total = rows(whole)
    sources = {name: rows(windows) for name, windows in by_source.items()}
    online = [
        None if t is None else max(t - sum(v[i] or 0.0 for v in sources.values()), 0.0) for i, t in enumerate(total)
    ]
    series = [{"label": "all", "values": total}, {"label": "online", "values": online}]
    series += [{"label": name, "values": v} for name, v in sources.items() if any(x is not None for x in v)]
    series = [s for s in series if any(x is not None for x in s["values"])]
    return {
        "id": chart_id,
        "title": "Traffic by source: rows per window",
        "unit": "rows",
        "kind": "time",
        "x": [epoch(s) for s in starts],
        "series": series,
        "events": list(events),
        "points": _points(series, False),
    }


def class_metrics(windows: Iterable[MetricWindow]) -> list[tuple[str, str]]:
    """The ``class_share.*`` metrics the windows have, for the output-distribution chart."""
    names = sorted({k for w in windows for k in w.metrics if k.startswith("class_share.")})
    return [(n, f"class {n.partition('.')[2]}") for n in names]


def drift_heatmap(windows: Sequence[MetricWindow], columns: int = 48) -> dict[str, Any]:
    """Features by window (the newest ``columns`` starts): each cell the drift score and verdict of the
    version that answered most rows in that window."""
    chosen: dict[datetime, MetricWindow] = {}
    for w in windows:
        if w.start not in chosen or w.rows > chosen[w.start].rows:
            chosen[w.start] = w
    starts = sorted(chosen)[-columns:]
    features = sorted({k.partition(".")[2] for w in chosen.values() for k in w.metrics if k.startswith("drift.")})
    rows = []
    for feature in features:
        cells = []
        for start in starts:
            metrics = chosen[start].metrics
            score = _number(metrics.get(f"drift.{feature}"))
            drifted = metrics.get(f"drift_detected.{feature}")
            cells.append(None if score is None else {"score": score, "drifted": bool(drifted)})
        rows.append({"feature": feature, "cells": cells})
    crowded = any((b - a).total_seconds() < 60 for a, b in zip(starts, starts[1:]))
    label = "%H:%M:%S" if crowded else "%H:%M"
    ends = [*starts[1:], None]  # a cell's drill-down: from its window's start to the next one's
    return {
        "columns": [
            {
                "start": s.isoformat(),
                "until": e.isoformat() if e else None,
                "label": s.strftime(label),
                "version": version_of(chosen[s]),
            }
            for s, e in zip(starts, ends)
        ],
        "rows": rows,
        "points": sum(1 for r in rows for c in r["cells"] if c is not None),
    }


def histogram_chart(chart_id: str, histogram: dict[str, Any], reference_rows: int, current_rows: int) -> Chart:
    """Reference and current shares overlaid: by bin for a number, by category for a category."""
    if "edges" in histogram:
        edges = [float(e) for e in histogram["edges"]]
        x, kind, categories = edges, "bins", None
        reference = [float(v) for v in histogram["reference"]] + [None]  # a step line closes on the last edge
        current = [float(v) for v in histogram["current"]] + [None]
    else:
        categories = [str(c) for c in histogram.get("categories", [])]
        x, kind = list(range(len(categories))), "categories"
        reference = [float(v) for v in histogram["reference"]]
        current = [float(v) for v in histogram["current"]]
    series = [
        {"label": f"reference ({reference_rows:,} rows)", "values": reference},
        {"label": f"current ({current_rows:,} rows)", "values": current},
    ]
    return {
        "id": chart_id,
        "title": "reference and current distributions",
        "unit": "share",
        "kind": kind,
        "x": x,
        "categories": categories,
        "series": series,
        "events": [],
        "points": _points(series, False),
    }


def chart_events(
    events: Iterable[EventRecord], alerts: Iterable[AlertRecord], since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Rollout events and alerts as marks on a time axis (only those inside the range)."""
    marks = [
        _mark(e.at, MARKED_EVENTS[e.kind], e.kind, e.reason)
        for e in events
        if e.kind in MARKED_EVENTS and since <= e.at <= until
    ]
    for a in alerts:
        if since <= a.opened_at <= until:
            marks.append(_mark(a.opened_at, f"alert: {a.monitor}", "alert", a.message))
        if a.resolved_at is not None and since <= a.resolved_at <= until:
            marks.append(_mark(a.resolved_at, f"resolved: {a.monitor}", "resolved", a.message))
    return sorted(marks, key=lambda m: m["at"])


def _mark(at: datetime, label: str, kind: str, text: str) -> dict[str, Any]:
    return {
        "at": epoch(at),
        "time": at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "label": label,
        "kind": kind,
        "text": text,
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _points(series: list[dict[str, Any]], skip_last: bool) -> int:
    drawn = series[:-1] if skip_last else series
    return sum(1 for s in drawn for v in s["values"] if v is not None)
