"""From verdicts to alerts: consecutive breaches open one alert, the first clean window resolves it.

The state of each monitor on each series (its breach count, its cooldown) lives in the database, so
a restarted server, or another replica that becomes the leader, carries on where this one stopped.
Actions other than the alert itself are callables given by the layer above (roll back a rollout,
queue a review, trigger retraining): monitoring decides, it does not reach into other parts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from matchday.monitoring.alerts.monitors import MonitorSpec, Verdict
from matchday.monitoring.windows import MonitorKey, SeriesKey
from matchday.store import (
    AlertAlreadyFiring,
    AlertRecord,
    AlertStore,
    MetricWindow,
    MonitorStateStore,
)

log = logging.getLogger("matchday.alerts")
ActionHook = Callable[[str, AlertRecord], None]  # (deployment, alert): rollback, review, retrain


@dataclass
class AlertChange:
    kind: str  # opened | resolved
    alert: AlertRecord


class AlertEngine:
    def __init__(
        self,
        alerts: AlertStore,
        state: MonitorStateStore,
        *,
        enqueue_webhook: Callable[[str, dict[str, Any]], Any] | None = None,
        hooks: dict[str, ActionHook] | None = None,
        record_event: Callable[[str, str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.alerts = alerts
        self.state = state
        self.enqueue_webhook = enqueue_webhook
        self.hooks = hooks or {}
        self.record_event = record_event  # (deployment, kind, reason, data)

    def observe(
        self, window: MetricWindow, verdict: Verdict, now: datetime | None = None, *, step: str | None = None
    ) -> AlertChange | None:
        """Count a breach or a recovery of ``verdict.monitor`` on ``window``'s series; open or resolve.
        ``step``: which step of a sliding window this is (the start of its newest pane): each step counts
        as a window of its own, while a window judged again as it grows counts once."""
        now = now or datetime.now(UTC)
        monitor = verdict.monitor
        if verdict.breached is None:
            return None
        series = SeriesKey(window.deployment, window.model, window.version)
        key = MonitorKey("monitor", monitor.name, series, window.segment).to_text()
        state = self.state.get(key) or {"breaches": 0, "last_window": None, "alert": None, "resolved_at": None}
        window_id = f"{window.model}:{window.version}@{window.start.isoformat()}" + (f"/{step}" if step else "")
        change: AlertChange | None = None
        if verdict.breached:
            if state["last_window"] != window_id:  # one window counts once, however often it is updated
                state["breaches"] += 1
            if (
                state["alert"] is None
                and state["breaches"] >= monitor.breaches
                and not self._cooling(state, monitor, now)
            ):
                alert = self._open(window, verdict, now, step)
                if alert is not None:
                    state["alert"] = alert.id
                    change = AlertChange("opened", alert)
            elif state["alert"] is not None:
                self.alerts.seen(state["alert"], verdict.value, now)
        else:
            state["breaches"] = 0
            if state["alert"] is not None:
                resolved = self.alerts.resolve(state["alert"], verdict.value, now)
                state["alert"], state["resolved_at"] = None, now.isoformat()
                if resolved is not None:
                    change = AlertChange("resolved", resolved)
                    self._act(resolved, monitor, "resolved")
        state["last_window"] = window_id
        self.state.put({key: state})
        return change

    @staticmethod
    def _cooling(state: dict[str, Any], monitor: MonitorSpec, now: datetime) -> bool:
        if not state.get("resolved_at") or monitor.cooldown <= 0:
            return False
        return (now - datetime.fromisoformat(state["resolved_at"])).total_seconds() < monitor.cooldown

    def _open(self, window: MetricWindow, verdict: Verdict, now: datetime, step: str | None) -> AlertRecord | None:
        monitor = verdict.monitor
        segment = f" [{window.segment}]" if window.segment else ""
        message = (
            f"{monitor.name} on {window.deployment}{segment} ({window.model}:{window.version}, "
            f"{'sliding ' if step else ''}{monitor.window} window from {window.start:%Y-%m-%d %H:%M:%S}): "
            f"{verdict.reason}"
        )
        shape: dict[str, Any] = {"width": window.width, "start": window.start.isoformat(), "rows": window.rows}
        if step:
            shape.update(sliding=True, step=step)  # the latest rows: from start to the newest pane's
        data = {
            "window": shape,
            "breaches": monitor.breaches,
            "condition": monitor.when,
            "relative_to": monitor.relative_to,
            "compared": verdict.compared,
            **verdict.data,
        }
        try:
            alert = self.alerts.open(
                monitor=monitor.name,
                deployment=window.deployment,
                model=window.model,
                version=window.version,
                segment=window.segment,
                severity=monitor.severity,
                metric=monitor.metric,
                value=verdict.value,
                threshold=_threshold(monitor, verdict),
                message=message,
                data=data,
                at=now,
            )
        except AlertAlreadyFiring:  # opened by another process (or before a restart): adopt it
            firing = [
                a
                for a in self.alerts.firing(window.deployment)
                if (a.monitor, a.model, a.version, a.segment)
                == (monitor.name, window.model, window.version, window.segment)
            ]
            return firing[0] if firing else None
        self._act(alert, monitor, "opened")
        return alert

    def _act(self, alert: AlertRecord, monitor: MonitorSpec, change: str) -> None:
        """Run the monitor's actions; one failing action never stops the others (each is logged)."""
        body = alert_body(alert, change)
        if self.record_event is not None:
            try:
                self.record_event(alert.deployment, f"alert_{change}", alert.message, body)
            except Exception as exc:
                log.warning("alert %s: event not recorded: %s", alert.id, exc)
        for action in monitor.actions:
            try:
                if action.kind in ("alert", "log"):
                    level = logging.WARNING if change == "opened" else logging.INFO
                    log.log(level, "alert %s %s [%s]: %s", alert.id, change, alert.severity, alert.message)
                elif action.kind == "webhook" and self.enqueue_webhook is not None:
                    assert action.url is not None
                    self.enqueue_webhook(action.url, body)
                elif change == "opened" and action.kind in self.hooks:
                    self.hooks[action.kind](alert.deployment, alert)
                elif change == "opened":
                    log.warning("alert %s: action %r is not available in this process", alert.id, action.kind)
            except Exception as exc:
                log.error("alert %s: action %s failed: %s: %s", alert.id, action.kind, type(exc).__name__, exc)


def _threshold(monitor: MonitorSpec, verdict: Verdict) -> float:
    """The threshold on the alert's value: a relative monitor's (``< -0.05`` vs the reference) moved by the
    value it was relative to, so an accuracy of 0.692 stands beside 0.90, not beside -0.05."""
    reference = verdict.data.get("reference")
    if monitor.relative_to is None or reference is None:
        return monitor.threshold
    return monitor.threshold + float(reference)


def alert_body(alert: AlertRecord, change: str) -> dict[str, Any]:
    """The JSON a webhook receives (and the API shows): one shape for opened and resolved."""
    return {
        "event": f"alert.{change}",
        "alert": {
            "id": alert.id,
            "monitor": alert.monitor,
            "deployment": alert.deployment,
            "model": alert.model,
            "version": alert.version,
            "segment": alert.segment or None,
            "severity": alert.severity,
            "state": alert.state,
            "metric": alert.metric,
            "value": alert.value,
            "threshold": alert.threshold,
            "message": alert.message,
            "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "data": alert.data,
        },
    }
