"""Prometheus gauges of the monitoring windows: the latest value of each metric, read at scrape time.

Read from the database (not kept in process memory), so every replica reports the same numbers,
whichever one runs the monitoring loop. Drift per feature has its own family; a metric per
feature or class is bounded by the model's signature, never by traffic. The monitoring loop's
failures per series (a window it could not summarise or judge, passed over) are a counter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from matchday.monitoring import FailureCount
from matchday.store import AlertRecord, MetricWindow

log = logging.getLogger("matchday.serving")
GAUGE_WIDTH = "5m"
FRESH = timedelta(minutes=15)  # a version with no window this recent is not reported (it stopped serving)


class WindowGauges(Collector):
    def __init__(
        self,
        latest: Callable[[str, datetime], list[MetricWindow]],
        firing: Callable[[], list[AlertRecord]],
        failures: Callable[[], list[FailureCount]] | None = None,
    ) -> None:
        self.latest = latest
        self.firing = firing
        self.failures = failures  # e.g. partial(failure_counts, MonitorStateStore(db))

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["deployment", "model", "version"]
        values = GaugeMetricFamily(
            "matchday_window_metric", f"Latest {GAUGE_WIDTH} window's value of each metric", labels=[*labels, "metric"]
        )
        drift = GaugeMetricFamily(
            "matchday_feature_drift_score",
            f"Latest {GAUGE_WIDTH} window's drift score per input feature (p-value or distance)",
            labels=[*labels, "feature"],
        )
        alerts = GaugeMetricFamily("matchday_alerts_firing", "Alerts firing now", labels=["deployment", "severity"])
        failed = CounterMetricFamily(
            "matchday_monitoring_failures",
            "Times the monitoring loop passed over a series' window it could not "
            "summarise, merge or judge (the last error is in the log)",
            labels=labels,
        )
        try:
            windows = self.latest(GAUGE_WIDTH, datetime.now(UTC) - FRESH)
            firing = self.firing()
            failures = self.failures() if self.failures is not None else []
        except Exception as exc:  # the database is away: /metrics still answers with the serving metrics
            log.warning("window gauges not available: %s", exc)
            return
        for w in windows:
            base = [w.deployment, w.model, str(w.version)]
            for name, value in sorted(w.metrics.items()):
                if value is None:
                    continue
                kind, _, feature = name.partition(".")
                if kind == "drift" and feature:
                    drift.add_metric([*base, feature], float(value))
                elif not feature:
                    values.add_metric([*base, name], float(value))
        counts: dict[tuple[str, str], int] = {}
        for a in firing:
            counts[(a.deployment, a.severity)] = counts.get((a.deployment, a.severity), 0) + 1
        for (deployment, severity), n in sorted(counts.items()):
            alerts.add_metric([deployment, severity], n)
        for f in failures:
            failed.add_metric([f.deployment, f.model, str(f.version)], f.count)
        yield values
        yield drift
        yield alerts
        if self.failures is not None:
            yield failed
