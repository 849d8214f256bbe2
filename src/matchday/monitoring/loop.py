"""The monitoring loop the server runs (one leader among replicas): summarise, judge, alert.

What a monitor is judged on, by its window:

- a time window (``5m``, ``1h``, ``1d``): once it has closed, and again whenever late labels change it;
- the count window, on a metric of the rows themselves (drift, confidence, errors, latency): the
  **sliding window**, the latest ``count_window`` rows, at every tick that brought rows (so at least
  every ``slide_rows`` rows at a tick per step), once it holds ``min_rows``. ``breaches`` counts
  consecutive steps; its p-value tests are held to ``SLIDING_ALPHA`` (the same rows are looked at
  again and again);
- the count window, on a metric of labels (performance, ``labelled``, ``concept_drift``): the window by
  count that holds the labelled rows, in progress as soon as it has ``min_rows`` labelled rows
  (``min_rows`` rows for the others), complete, and again whenever late labels change it. A window
  judged again as it grows counts as one breach.

A series is never judged on a window older than the last one it was judged on. A monitor that cannot
be judged on a window is logged, counted against its series (`matchday.monitoring.windows.failures`)
and passed over; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from matchday.monitoring.alerts import (
    AlertChange,
    AlertEngine,
    MonitorSpec,
    Verdict,
    WebhookSender,
    default_monitors,
    judge,
    monitors_for,
)
from matchday.monitoring.log import label_text
from matchday.monitoring.windows import (
    CLASSIFICATION,
    FAILURES_KEY,
    LABELS,
    REGRESSION,
    TIME_WIDTHS,
    Failures,
    MonitorKey,
    SeriesFailure,
    SeriesKey,
    Summarizer,
    describe,
    diagnose,
    join_key,
    reference_brightness,
    stored_summary,
)
from matchday.store import LeaderLock, MetricWindow, MonitorStateStore, WindowStore

log = logging.getLogger("matchday.monitoring")
CLOSE_GRACE = timedelta(seconds=10)  # rows logged just before a window closed have reached the store
PERFORMANCE = (*CLASSIFICATION, *REGRESSION)
LABELLED = (*PERFORMANCE, *LABELS)  # metrics of labels: judged on the window by count that holds them
WATCHED_KEY = join_key("loop", "deployments")  # the monitor state's key of the deployments the loop watches


@dataclass
class LoopResult:
    rows: int = 0
    windows: int = 0
    judged: int = 0
    changes: list[AlertChange] = field(default_factory=list)
    failures: list[SeriesFailure] = field(default_factory=list)  # the summarizer's and the judging's, this tick
    sliding: list[MetricWindow] = field(default_factory=list)  # each version's latest rows, judged this tick


class MonitoringLoop:
    def __init__(
        self,
        summarizer: Summarizer,
        windows: WindowStore,
        state: MonitorStateStore,
        engine: AlertEngine,
        monitors: list[MonitorSpec],
        *,
        defaults: list[MonitorSpec] | None = None,
    ) -> None:
        self.summarizer = summarizer
        self.windows = windows
        self.state = state
        self.engine = engine
        self.monitors = monitors
        self.defaults = default_monitors(summarizer.config.count_window) if defaults is None else defaults

    async def run(self, leader: LeaderLock, interval: float, webhooks: WebhookSender | None = None) -> None:
        """Tick forever (cancel to stop), only while this process holds ``leader``; it also sends the webhooks."""
        try:
            while True:
                try:
                    if await asyncio.to_thread(leader.acquire):
                        if webhooks is not None and not webhooks.running:
                            webhooks.start()
                        ticking = asyncio.ensure_future(asyncio.to_thread(self.tick))
                        try:
                            await asyncio.shield(ticking)
                        except asyncio.CancelledError:  # shutting down: let the tick in flight write its state
                            await asyncio.wait([ticking])
                            raise
                except Exception:  # the database went away, a bug in one tick: keep the loop alive
                    log.exception("monitoring tick failed; trying again in %.1fs", interval)
                await asyncio.sleep(interval)
        finally:
            if webhooks is not None and webhooks.running:
                await asyncio.to_thread(webhooks.close)
            await asyncio.to_thread(leader.release)

    def diagnosis(self, window: MetricWindow) -> str:
        """`diagnose` of ``window`` against its version's reference performance."""
        ref = self.summarizer.reference(window.model, window.version)
        return diagnose(window.metrics, ref.reference_metrics if ref is not None else None)

    def monitors_of(self, deployment: str) -> list[MonitorSpec]:
        return monitors_for(deployment, self.monitors, self.defaults)

    def tick(self, now: datetime | None = None) -> LoopResult:
        now = now or datetime.now(UTC)
        summary = self.summarizer.tick(now)
        result = LoopResult(rows=summary.rows, windows=len(summary.windows), sliding=summary.sliding)
        candidates = {w.key: w for w in summary.windows}
        sliding = {w.key: w for w in summary.sliding}
        for deployment in {w.deployment for w in summary.windows} | set(self._watched()):
            for width in {m.window for m in self.monitors_of(deployment)} & TIME_WIDTHS.keys():
                since = now - timedelta(seconds=2 * TIME_WIDTHS[width]) - CLOSE_GRACE
                for w in self.windows.series(deployment, width, since=since, segment=None, with_summary=False):
                    candidates.setdefault(w.key, w)
        watched = self._watched()
        failures = Failures(lambda: self.state.get(FAILURES_KEY), now)
        judged = [(w, False) for w in candidates.values()] + [(w, True) for w in sliding.values()]
        for window, slides in sorted(judged, key=lambda item: (item[0].start, item[1])):
            watched.add(window.deployment)
            if window.width in TIME_WIDTHS and now < window.end + CLOSE_GRACE:
                continue  # a time window is judged once it has closed (rows logged just before are in)
            for monitor in self.monitors_of(window.deployment):
                if not self._applies(monitor, window):
                    continue
                if window.width not in TIME_WIDTHS and slides == (monitor.metric in LABELLED):
                    continue  # by count: labels on the windows that hold them, the rest on the sliding one
                with failures.guard(
                    (window.deployment, window.model, window.version),
                    "judge",
                    f"{monitor.name} on the {'sliding ' if slides else ''}{describe(window.key)}",
                ):
                    verdict = self._judge(monitor, window)
                    if verdict.breached is None or not self._advance(monitor, window):
                        continue  # inconclusive (e.g. labels not in yet) never moves the series on
                    result.judged += 1
                    step = stored_summary(window).get("step") if slides else None
                    change = self.engine.observe(window, verdict, now, step=step)
                    if change is not None:
                        result.changes.append(change)
        result.failures = summary.failures + failures.new
        self.state.put({WATCHED_KEY: {"names": sorted(watched)}, **failures.to_state()})
        return result

    def _watched(self) -> set[str]:
        return set((self.state.get(WATCHED_KEY) or {}).get("names", []))

    @staticmethod
    def _applies(monitor: MonitorSpec, window: MetricWindow) -> bool:
        if monitor.window != window.width:
            return False
        if monitor.segment is None:
            return window.segment == ""
        return window.segment.startswith(f"{monitor.segment}=")

    def _advance(self, monitor: MonitorSpec, window: MetricWindow) -> bool:
        """Whether ``window`` is not older than the last one this monitor judged on the series."""
        series = SeriesKey(window.deployment, window.model, window.version)
        key = MonitorKey("judged", monitor.name, series, window.segment).to_text()
        last = (self.state.get(key) or {}).get("start")
        if last is not None and window.start < datetime.fromisoformat(last):
            return False
        self.state.put({key: {"start": window.start.isoformat()}})
        return True

    def verdict(self, monitor: MonitorSpec, window: MetricWindow) -> Verdict:
        """``monitor`` judged on a stored window, as the loop judges it (the retraining dry run replays these)."""
        return self._judge(monitor, window)

    def _judge(self, monitor: MonitorSpec, window: MetricWindow) -> Verdict:
        metrics = dict(window.metrics)
        if monitor.metric in PERFORMANCE:  # performance needs labelled rows, not just rows
            metrics["rows"] = metrics.get("labelled") or 0
        reference = None
        if monitor.relative_to == "reference":
            reference = self._reference_value(monitor.metric, window)
        elif monitor.relative_to == "baseline":
            reference = self._baseline_value(monitor.metric, window)
        return judge(monitor, metrics, reference=reference)

    def _reference_value(self, metric: str, window: MetricWindow) -> float | None:
        ref = self.summarizer.reference(window.model, window.version)
        if ref is None:
            return None
        if ref.reference_metrics and metric in ref.reference_metrics:
            value = ref.reference_metrics[metric]
            return None if value is None else float(value)
        if metric == "image_brightness":
            return reference_brightness(
                ref.profile, self.summarizer.image_columns(window.deployment, window.model, window.version)
            )
        kind, _, name = metric.partition(".")
        if kind == "class_share" and ref.profile and "prediction" in ref.profile:
            prediction = ref.profile["prediction"]
            if prediction["kind"] == "categorical":
                categories = prediction["categories"]
            else:  # integer classes were profiled as numbers, with the count of each value
                values, counts = prediction.get("values", []), prediction.get("value_counts", [])
                categories = {label_text(v): c for v, c in zip(values, counts)}
            total = sum(categories.values())
            return categories.get(name, 0) / total if total else None
        return None

    def _baseline_value(self, metric: str, window: MetricWindow) -> float | None:
        """The same metric of the deployment's other version in the same time window (during a rollout)."""
        if window.width not in TIME_WIDTHS:
            return None
        others = [
            w
            for w in self.windows.series(
                window.deployment,
                window.width,
                since=window.start - timedelta(seconds=1),
                until=window.end,
                segment=window.segment,
            )
            if w.start == window.start and (w.model, w.version) != (window.model, window.version)
        ]
        if not others:
            return None
        other = max(others, key=lambda w: w.rows)
        value: Any = other.metrics.get(metric)
        return None if value is None else float(value)
