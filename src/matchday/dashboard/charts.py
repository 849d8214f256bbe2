"""Chart data from stored windows: aligned series for uPlot, a drift heat map, overlaid histograms.

Every chart is a plain dict the page embeds as JSON; ``points`` counts its non-empty values, so a page
can say "no data in this range" instead of drawing an empty frame (and a test can check it drew some).
A chart of shares carries its value axis (from 0, at most 1 unless a value is past it) and is drawn in
percent; rollout events and alerts are marks with a colour each kind keeps everywhere, and a key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from matchday.monitoring import ColumnSummary, sample_of_summary
from matchday.store import AlertRecord, ColumnProfile, EventRecord, MetricWindow

Chart = dict[str, Any]
SHARE = "share"  # a 0-1 ratio, drawn in percent
ZERO_TO_ONE = "0 to 1"  # scores that live in [0, 1] (p-values, distances), drawn as they are
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
MARK_KINDS = {"alert": "alert opened", "resolved": "alert resolved", **MARKED_EVENTS}
MARK_COLOURS = {
    "alert": "#d62728",
    "resolved": "#2ca02c",
    "promoted": "#2ca02c",
    "rolled_back": "#d62728",
    "analysis_failed": "#ff7f0e",
    "promotion_failed": "#ff7f0e",
    "paused": "#ff7f0e",
    "step_passed": "#1f77b4",
    "started": "#9467bd",
    "resumed": "#9467bd",
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
        "unit": "%" if unit == SHARE else unit,
        "kind": "time",
        "x": [epoch(s) for s in starts],
        "series": series,
        "y": value_axis(series, unit),
        "events": list(events),
        "key": mark_key(events),
        "points": _points(series, threshold is not None),
    }


def value_axis(series: Sequence[dict[str, Any]], unit: str) -> dict[str, Any] | None:
    """The value axis of a chart of shares or 0-1 scores: from 0 to a round number above the largest value,
    at most 1 (an error rate of 0.002 gets 0-1%, not the 0-100 an all-zero series got); None: the chart's own.

    >>> [value_axis([{"values": v}], SHARE)["max"] for v in ([0.0, 0.0], [0.002, None], [0.3], [0.9])]
    [0.01, 0.01, 0.5, 1.0]
    >>> value_axis([{"values": [1.7]}], ZERO_TO_ONE), value_axis([{"values": [3.0]}], "rows/s")
    ({'min': 0.0, 'max': 2.5, 'percent': False}, None)
    """
    if unit not in (SHARE, ZERO_TO_ONE):
        return None
    top = max((v for s in series for v in s["values"] if v is not None), default=0.0)
    top = max(top, 0.0)
    if 0.5 <= top <= 1:
        high = 1.0
    else:
        high = _round_up(max(top * 1.2, 0.01))
    return {"min": 0.0, "max": high, "percent": unit == SHARE}


def _round_up(value: float) -> float:
    """The least of 1, 2, 2.5 and 5 times a power of ten at or above ``value``."""
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):
            return float(f"{step * power:.12g}")
    return 10 * power  # not reached: 10 x power is at or above value


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
        "y": None,
        "events": list(events),
        "key": mark_key(events),
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


def quantile_bins(reference: ColumnProfile, current: ColumnSummary) -> dict[str, Any] | None:
    """A numeric input's reference and current shares in the reference's quantile bins (the profile's
    histogram: 20 bins each holding a twentieth of the reference), so the reference fills every bin alike
    and the current data shows where it moved; equal-width bins put a skewed input's mass in one or two.
    The outer bins reach to the lowest and highest value of either side. None: the profile has no bins.
    """
    if reference["kind"] != "numeric" or current["kind"] != "numeric":  # (a category has counts, not values)
        return None
    histogram = reference.get("histogram")
    if not histogram or not current.get("count"):
        return None
    cuts = np.asarray(histogram["cuts"], dtype=np.float64)
    counts = np.asarray(histogram["counts"], dtype=np.float64)
    if cuts.size == 0 or counts.sum() <= 0:
        return None
    sample = getattr(sample_of_summary(current), "values", None)  # sorted, from the merged windows' sketches
    if sample is None or sample.size == 0:
        return None
    below = np.searchsorted(sample, cuts, side="left")  # bins as the profile counts them: [cut, next cut)
    current_counts = np.diff(below, prepend=0, append=sample.size).astype(np.float64)
    low = min(float(reference["min"]), float(current.get("min", sample[0])))  # the logged extremes are exact
    high = max(float(reference["max"]), float(current.get("max", sample[-1])))
    return {
        "edges": [low, *cuts.tolist(), high],
        "reference": (counts / counts.sum()).tolist(),
        "current": (current_counts / sample.size).tolist(),
        "quantiles": True,
    }


def histogram_chart(chart_id: str, histogram: dict[str, Any], reference_rows: int, current_rows: int) -> Chart:
    """Reference and current shares overlaid: by bin for a number (by the reference's quantile bins when
    ``histogram`` has them, drawn equally wide), by category for a category."""
    edges: list[float] | None = None
    x: Sequence[float]
    if histogram.get("quantiles"):
        edges = [float(e) for e in histogram["edges"]]
        x, kind, categories = list(range(len(edges))), "quantiles", None
        reference, current = _closed(histogram["reference"]), _closed(histogram["current"])
    elif "edges" in histogram:
        x, kind, categories = [float(e) for e in histogram["edges"]], "bins", None
        reference, current = _closed(histogram["reference"]), _closed(histogram["current"])
    else:
        categories = [str(c) for c in histogram.get("categories", [])]
        x, kind = list(range(len(categories))), "categories"
        reference = [float(v) for v in histogram["reference"]]
        current = [float(v) for v in histogram["current"]]
    series = [
        {"label": f"reference ({reference_rows:,} rows)", "values": reference},
        {"label": f"current ({current_rows:,} rows)", "values": current},
    ]
    title = "reference and current distributions"
    if kind == "quantiles":
        title += ", in the reference's quantile bins"
    return {
        "id": chart_id,
        "title": title,
        "unit": "% of rows",
        "kind": kind,
        "x": x,
        "edges": edges,
        "categories": categories,
        "series": series,
        "y": value_axis(series, SHARE),
        "events": [],
        "key": [],
        "points": _points(series, False),
    }


def _closed(shares: Sequence[float]) -> list[float]:
    """A bin's share at its left edge, and the last one again at the last edge: a step line draws each
    bin from its edge to the next, so the last bin needs a point at the end (a None there left it undrawn)."""
    values = [float(v) for v in shares]
    return values + values[-1:]


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


def mark_key(marks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each colour of mark on a chart means, with how many of it the chart has, in the order kinds
    first appear; what each mark says is in its tooltip and in the page's events table.

    >>> t = datetime(2026, 11, 27, tzinfo=UTC)
    >>> [(k["label"], k["count"]) for k in mark_key([_mark(t, "alert: a", "alert", ""), _mark(t, "alert: b", "alert", "")])]
    [('alert opened', 2)]
    """
    key: dict[str, dict[str, Any]] = {}
    for m in marks:
        label = MARK_KINDS.get(m["kind"], m["kind"])
        entry = key.setdefault(m["kind"], {"kind": m["kind"], "label": label, "colour": m["colour"], "count": 0})
        entry["count"] += 1
    return list(key.values())


def _mark(at: datetime, label: str, kind: str, text: str) -> dict[str, Any]:
    return {
        "at": epoch(at),
        "time": at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "label": label,
        "kind": kind,
        "colour": MARK_COLOURS.get(kind, "#555555"),
        "text": text,
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _points(series: list[dict[str, Any]], skip_last: bool) -> int:
    drawn = series[:-1] if skip_last else series
    return sum(1 for s in drawn for v in s["values"] if v is not None)
