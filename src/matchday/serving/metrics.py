"""Prometheus metrics of one server process (names: ``matchday_*``, base units, bounded labels)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, disable_created_metrics, Counter, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from matchday.monitoring import WriterStats

LABELS = ("deployment", "model", "version")
disable_created_metrics()  # the *_created series only add noise to every counter
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    def __init__(self, writer_stats: Callable[[], WriterStats]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, process_cpu_seconds_total
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter("matchday_requests_total", "Prediction requests answered", LABELS, registry=r)
        self.rows = Counter("matchday_predictions_total", "Rows scored", LABELS, registry=r)
        self.errors = Counter("matchday_request_errors_total", "Prediction requests that failed on our side (5xx)",
                              ("deployment",), registry=r)
        self.invalid = Counter("matchday_invalid_requests_total", "Prediction requests refused as invalid (4xx)",
                               ("deployment",), registry=r)
        self.latency = Histogram("matchday_request_duration_seconds", "Time to answer a prediction request",
                                 LABELS, buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("matchday_batch_size_rows", "Rows per model call after micro-batching",
                                    LABELS, buckets=_BATCH_BUCKETS, registry=r)
        self.out_of_range = Counter("matchday_input_out_of_range_total",
                                    "Input values outside the reference range (scored anyway)", LABELS, registry=r)
        self.unseen = Counter("matchday_input_unseen_category_total",
                              "Input categories never seen in the reference (scored anyway)", LABELS, registry=r)
        self.feedback = Counter("matchday_feedback_labels_total", "Ground-truth labels joined to predictions",
                                ("deployment",), registry=r)
        self.registry.register(_WriterCollector(writer_stats))


class _WriterCollector(Collector):
    """Read the prediction-log writer's state at scrape time."""

    def __init__(self, stats: Callable[[], WriterStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats()
        yield GaugeMetricFamily("matchday_prediction_log_queue_rows", "Rows waiting to be written", value=s.queue_depth)
        yield GaugeMetricFamily("matchday_prediction_log_lag_seconds", "Age of the oldest unwritten row", value=s.lag_seconds)
        yield GaugeMetricFamily("matchday_prediction_log_spooled_rows",
                                "Rows held in the local spool file until the database is back", value=s.spooled_rows)
        yield GaugeMetricFamily("matchday_prediction_log_written_rows", "Rows this process has written",
                                value=s.written_rows)
        yield GaugeMetricFamily("matchday_prediction_log_database_up", "1 when the last write reached the database",
                                value=1.0 if s.database_available else 0.0)

    def describe(self) -> Iterator[Metric]:
        return iter(())
