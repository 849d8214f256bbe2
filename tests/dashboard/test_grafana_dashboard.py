"""The Grafana dashboard in deploy/grafana: a dashboard Grafana can import, naming only metrics matchday exports.

The exported names come from a real scrape: the serving metrics' registry with the window gauge
collector registered on it (as `create_app` does), rendered to the Prometheus text format and parsed
back. A panel that names a metric which is renamed or removed fails here, not on a team's screen.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from matchday.monitoring import WriterStats
from matchday.monitoring.windows.metrics import (
    CLASSIFICATION,
    DATASET,
    ESTIMATED,
    EXTRACTED,
    LABELS,
    OUTPUT,
    REGRESSION,
    SOFTWARE,
)
from matchday.serving.metrics import ServingMetrics
from matchday.serving.window_gauges import WindowGauges
from matchday.store import AlertRecord, MetricWindow

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "matchday.json"
# what a PromQL expression may contain besides metric names
_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
_SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


def _window() -> MetricWindow:
    now = datetime.now(UTC)
    return MetricWindow(
        deployment="payments",
        model="fraud",
        version=1,
        segment="",
        width="5m",
        start=now - timedelta(minutes=1),
        end=now,
        rows=10,
        summary={},
        performance=None,
        metrics={"drift_share": 0.5, "accuracy": 0.9, "error_rate": 0.0, "drift.amount": 0.01},
    )


def _alert() -> AlertRecord:
    now = datetime.now(UTC)
    return AlertRecord(
        id=1,
        monitor="data-drift",
        deployment="payments",
        model="fraud",
        version=1,
        segment="",
        severity="warning",
        state="firing",
        metric="drift_share",
        value=0.5,
        threshold=0.3,
        message="drift",
        opened_at=now,
        last_seen_at=now,
        resolved_at=None,
        data={},
    )


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every series name a scrape of /metrics can hold (a counter's ``_total``, a histogram's ``_bucket``...)."""
    stats = WriterStats(queue_depth=0, lag_seconds=0.0, spooled_rows=0, written_rows=0, database_available=True)
    metrics = ServingMetrics(lambda: stats)
    metrics.registry.register(WindowGauges(lambda width, since: [_window()], lambda: [_alert()]))
    metrics.refresh()
    names: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        names.update(family.name + suffix for suffix in _SERIES_SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels, keywords or numbers)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


def _exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in _panels(dashboard) for target in panel.get("targets", [])]


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, deployment) (rate(a_bucket{deployment=~"$deployment", x="y(z)"}'
        "[$__rate_interval]))) / on (deployment) group_left b_total offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b_total"}


def test_it_is_an_importable_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] and dashboard["uid"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["deployment"]["type"] == "query"
    assert variables["deployment"]["datasource"]["uid"] == "${datasource}"
    assert variables["deployment"]["definition"].startswith("label_values(")
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard):
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys() and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert "$deployment" in target["expr"] or "prediction_log" in target["expr"], (
                f"{panel['title']}: {target['expr']} ignores the deployment variable"
            )


def test_the_panels_cover_serving_and_monitoring(dashboard: dict[str, Any]) -> None:
    used = set().union(*(metric_names(e) for _, e in _exprs(dashboard)))
    for name in (
        "matchday_requests_total",
        "matchday_request_errors_total",
        "matchday_request_duration_seconds_bucket",
        "matchday_batch_size_rows_bucket",
        "matchday_shadow_dropped_total",
        "matchday_window_metric",
        "matchday_feature_drift_score",
        "matchday_alerts_firing",
    ):
        assert name in used
    assert {p["type"] for p in _panels(dashboard)} >= {"timeseries", "heatmap", "stat"}


def test_every_panel_names_only_metrics_matchday_exports(dashboard: dict[str, Any], exported: set[str]) -> None:
    assert "matchday_requests_total" in exported and "matchday_window_metric" in exported  # the scrape worked
    for title, expr in _exprs(dashboard):
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= exported, f"{title}: {sorted(names - exported)} is not exported at /metrics"
    deployment = next(v for v in dashboard["templating"]["list"] if v["name"] == "deployment")
    assert metric_names(deployment["definition"].removeprefix("label_values(").split(",")[0]) <= exported


def test_window_metric_panels_name_metrics_the_windows_compute(dashboard: dict[str, Any]) -> None:
    known = {*SOFTWARE, *OUTPUT, *CLASSIFICATION, *REGRESSION, *ESTIMATED, *LABELS, *DATASET, *EXTRACTED}
    for title, expr in _exprs(dashboard):
        for name in re.findall(r'\bmetric="([^"]+)"', expr):
            assert name in known, f"{title}: window metric {name!r} is not computed"
