"""Prometheus metrics of the server (names: ``matchday_*``, base units, bounded labels).

With several uvicorn workers, `matchday serve` sets ``PROMETHEUS_MULTIPROC_DIR`` and every worker
writes its numbers there; ``/metrics`` in any worker then reports the sum over all workers.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.multiprocess import MultiProcessCollector

from matchday.monitoring import WriterStats

LABELS = ("deployment", "model", "version")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
disable_created_metrics()  # the *_created series only add noise to every counter


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class AnsweredSeries(NamedTuple):
    requests: Counter
    rows: Counter
    latency: Histogram


class ServingMetrics:
    def __init__(self, writer_stats: Callable[[], WriterStats]) -> None:
        self.writer_stats = writer_stats
        # In multiprocess mode values live in shared files, and the exposition registry only
        # holds the collector that sums them; the metric objects must not register anywhere.
        self.registry = CollectorRegistry()
        r: CollectorRegistry | None = self.registry
        if multiprocess():
            MultiProcessCollector(self.registry)
            r = None
        else:
            ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, process_cpu_seconds_total
            PlatformCollector(registry=self.registry)
        self._answered: dict[tuple[str, str, str], AnsweredSeries] = {}
        self.requests = Counter("matchday_requests_total", "Prediction requests answered", LABELS, registry=r)
        self.rows = Counter("matchday_predictions_total", "Rows scored", LABELS, registry=r)
        self.errors = Counter(
            "matchday_request_errors_total",
            "Prediction requests that failed on our side (5xx)",
            ("deployment",),
            registry=r,
        )
        self.invalid = Counter(
            "matchday_invalid_requests_total",
            "Prediction requests refused as invalid (4xx)",
            ("deployment",),
            registry=r,
        )
        self.latency = Histogram(
            "matchday_request_duration_seconds",
            "Time to answer a prediction request",
            LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "matchday_batch_size_rows",
            "Rows per model call after micro-batching",
            LABELS,
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.out_of_range = Counter(
            "matchday_input_out_of_range_total",
            "Input values outside the reference range (scored anyway)",
            LABELS,
            registry=r,
        )
        self.unseen = Counter(
            "matchday_input_unseen_category_total",
            "Input categories never seen in the reference (scored anyway)",
            LABELS,
            registry=r,
        )
        self.model_errors = Counter("matchday_model_errors_total", "Rows a model failed to score", LABELS, registry=r)
        self.model_timeouts = Counter(
            "matchday_model_timeouts_total",
            "Model calls that took longer than the model timeout (their requests answered 504)",
            LABELS,
            registry=r,
        )
        self.model_stuck = Gauge(
            "matchday_model_stuck_calls",
            "Model calls still running past the model timeout (a thread cannot be stopped)",
            LABELS,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.over_limit = Counter(
            "matchday_requests_over_limit_total",
            "Prediction requests refused with 429: the deployment had max_in_flight requests in progress",
            ("deployment",),
            registry=r,
        )
        self.body_timeouts = Counter(
            "matchday_body_timeouts_total",
            "Requests whose body stalled past the body timeout (answered 408)",
            registry=r,
        )
        self.fallback = Counter(
            "matchday_fallback_rows_total",
            "Rows a candidate failed and its baseline answered instead",
            LABELS,
            registry=r,
        )
        self.shadow_rows = Counter(
            "matchday_shadow_predictions_total",
            "Rows mirrored to a shadow version and scored (never returned)",
            LABELS,
            registry=r,
        )
        self.shadow_dropped = Counter(
            "matchday_shadow_dropped_total",
            "Rows not mirrored because the shadow was too far behind",
            ("deployment",),
            registry=r,
        )
        self.feedback = Counter(
            "matchday_feedback_labels_total", "Ground-truth labels joined to predictions", ("deployment",), registry=r
        )
        self.queue = Gauge(
            "matchday_prediction_log_queue_rows", "Rows waiting to be written", registry=r, multiprocess_mode="livesum"
        )
        self.lag = Gauge(
            "matchday_prediction_log_lag_seconds",
            "Age of the oldest unwritten row",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.spooled = Gauge(
            "matchday_prediction_log_spooled_rows",
            "Rows in the local journal (spool file) not yet in the database",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.written = Gauge(
            "matchday_prediction_log_written_rows",
            "Rows written to the database since start",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.database_up = Gauge(
            "matchday_prediction_log_database_up",
            "1 when the last write reached the database",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.memory = (
            Gauge(
                "matchday_server_resident_memory_bytes",
                "Peak resident memory of the server processes",
                registry=r,
                multiprocess_mode="livesum",
            )
            if multiprocess()
            else None
        )
        self.cpu = (
            Gauge(
                "matchday_server_cpu_seconds",
                "CPU time used by the server processes",
                registry=r,
                multiprocess_mode="livesum",
            )
            if multiprocess()
            else None
        )

    def answered(self, deployment: str, model: str, version: str) -> AnsweredSeries:
        """The requests, rows and latency series of one version, looked up once (``labels`` takes a
        lock and builds a key at every call; the request path asks at every request)."""
        key = (deployment, model, version)
        series = self._answered.get(key)
        if series is None:
            series = self._answered[key] = AnsweredSeries(
                self.requests.labels(*key), self.rows.labels(*key), self.latency.labels(*key)
            )
        return series

    def refresh(self) -> None:
        """Copy this process's writer state (and, with workers, its memory and CPU) into the gauges."""
        s = self.writer_stats()
        self.queue.set(s.queue_depth)
        self.lag.set(s.lag_seconds)
        self.spooled.set(s.spooled_rows)
        self.written.set(s.written_rows)
        self.database_up.set(1.0 if s.database_available else 0.0)
        if self.memory is not None and self.cpu is not None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.memory.set(usage.ru_maxrss * 1024)
            self.cpu.set(usage.ru_utime + usage.ru_stime)
