"""Repository functions for monitoring: metric windows, the loop's named state, alerts, the webhook outbox.

The store keeps what `monitoring/` computed; merging summaries and judging thresholds stay there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from matchday.store.database import Database, rowcount
from matchday.store.errors import Conflict
from matchday.store.schema import AlertRow, MetricWindowRow, MonitorStateRow, WebhookDeliveryRow, utcnow

WindowKey = tuple[str, str, int, str, str, datetime]  # deployment, model, version, segment, width, start


@dataclass(frozen=True)
class MetricWindow:
    deployment: str
    model: str
    version: int
    segment: str
    width: str
    start: datetime
    end: datetime
    rows: int
    summary: dict[str, Any]
    performance: dict[str, Any] | None
    metrics: dict[str, Any]

    @property
    def key(self) -> WindowKey:
        return (self.deployment, self.model, self.version, self.segment, self.width, self.start)


@dataclass(frozen=True)
class AlertRecord:
    id: int
    monitor: str
    deployment: str
    model: str
    version: int
    segment: str
    severity: str
    state: str
    metric: str
    value: float | None
    threshold: float | None
    message: str
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    data: dict[str, Any]


@dataclass(frozen=True)
class WebhookDelivery:
    id: int
    url: str
    body: dict[str, Any]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    gave_up_at: datetime | None
    last_error: str | None


class AlertAlreadyFiring(Conflict):
    """A second firing alert for one monitor, deployment and segment (another process opened it)."""


class WindowStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get_many(self, keys: Iterable[WindowKey]) -> dict[WindowKey, MetricWindow]:
        keys = list(dict.fromkeys(keys))
        out: dict[WindowKey, MetricWindow] = {}
        if not keys:
            return out
        with self.db.session() as s:
            for chunk in _chunks(keys, 200):
                for row in s.scalars(sa.select(MetricWindowRow).where(_keys_match(chunk))):
                    window = _window(row)
                    out[window.key] = window
        return out

    def put_many(self, windows: Sequence[MetricWindow], *, state: dict[str, dict[str, Any]] | None = None) -> None:
        """Insert or replace windows by key (one writer: the monitoring loop's leader), and in the same
        transaction the loop's named ``state`` (its cursors), so both land or neither does."""
        if not windows and not state:
            return
        now = utcnow()
        key_columns = (
            MetricWindowRow.deployment,
            MetricWindowRow.model,
            MetricWindowRow.version,
            MetricWindowRow.segment,
            MetricWindowRow.width,
            MetricWindowRow.start,
        )
        with self.db.session(write=True) as s:
            ids: dict[WindowKey, int] = {}
            for chunk in _chunks([w.key for w in windows], 200):  # ids only: the summaries are not read back
                for row in s.execute(sa.select(MetricWindowRow.id, *key_columns).where(_keys_match(chunk))):
                    ids[tuple(row[1:])] = row[0]  # type: ignore[index]
            values = [
                {
                    "end": w.end,
                    "rows": w.rows,
                    "summary": w.summary,
                    "performance": w.performance,
                    "metrics": w.metrics,
                    "updated_at": now,
                }
                for w in windows
            ]
            updates = [{"id": ids[w.key], **v} for w, v in zip(windows, values) if w.key in ids]
            inserts = [
                {
                    "deployment": w.deployment,
                    "model": w.model,
                    "version": w.version,
                    "segment": w.segment,
                    "width": w.width,
                    "start": w.start,
                    **v,
                }
                for w, v in zip(windows, values)
                if w.key not in ids
            ]
            if updates:
                s.execute(sa.update(MetricWindowRow), updates)
            if inserts:
                s.execute(sa.insert(MetricWindowRow), inserts)
            for key, value in (state or {}).items():
                state_row = s.get(MonitorStateRow, key)
                if state_row is None:
                    s.add(MonitorStateRow(key=key, state=value, updated_at=now))
                else:
                    state_row.state, state_row.updated_at = value, now

    def series(
        self,
        deployment: str,
        width: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        segment: str | None = "",
        version: int | None = None,
        model: str | None = None,
        with_summary: bool = False,
        limit: int = 10_000,
    ) -> list[MetricWindow]:
        """Windows in time order; ``segment=None`` means every segment."""
        columns = [
            MetricWindowRow.deployment,
            MetricWindowRow.model,
            MetricWindowRow.version,
            MetricWindowRow.segment,
            MetricWindowRow.width,
            MetricWindowRow.start,
            MetricWindowRow.end,
            MetricWindowRow.rows,
            MetricWindowRow.metrics,
        ]
        if with_summary:
            columns += [MetricWindowRow.summary, MetricWindowRow.performance]
        query = sa.select(*columns).where(MetricWindowRow.deployment == deployment, MetricWindowRow.width == width)
        if since is not None:
            query = query.where(MetricWindowRow.end > since)
        if until is not None:
            query = query.where(MetricWindowRow.start < until)
        if segment is not None:
            query = query.where(MetricWindowRow.segment == segment)
        if version is not None:
            query = query.where(MetricWindowRow.version == version)
        if model is not None:
            query = query.where(MetricWindowRow.model == model)
        query = query.order_by(MetricWindowRow.start.desc(), MetricWindowRow.version, MetricWindowRow.segment)
        with self.db.session() as s:
            rows = s.execute(query.limit(limit)).all()
        out = [
            MetricWindow(
                r.deployment,
                r.model,
                r.version,
                r.segment,
                r.width,
                r.start,
                r.end,
                r.rows,
                r.summary if with_summary else {},
                r.performance if with_summary else None,
                r.metrics,
            )
            for r in rows
        ]
        return out[::-1]

    def latest(self, width: str, since: datetime) -> list[MetricWindow]:
        """The newest whole-traffic window of ``width`` per deployment version, among those ending after ``since``."""
        with self.db.session() as s:
            rows = s.execute(
                sa.select(
                    MetricWindowRow.deployment,
                    MetricWindowRow.model,
                    MetricWindowRow.version,
                    MetricWindowRow.segment,
                    MetricWindowRow.width,
                    MetricWindowRow.start,
                    MetricWindowRow.end,
                    MetricWindowRow.rows,
                    MetricWindowRow.metrics,
                )
                .where(MetricWindowRow.width == width, MetricWindowRow.segment == "", MetricWindowRow.end > since)
                .order_by(MetricWindowRow.start)
            ).all()
        newest: dict[tuple[str, str, int], MetricWindow] = {}
        for r in rows:
            newest[(r.deployment, r.model, r.version)] = MetricWindow(
                r.deployment, r.model, r.version, r.segment, r.width, r.start, r.end, r.rows, {}, None, r.metrics
            )
        return list(newest.values())

    def performance_within(
        self, deployment: str, model: str, version: int, segment: str, width: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, dict[str, Any]]]:
        """(start, performance) of the windows of one width starting in [start, end) (only that column)."""
        with self.db.session() as s:
            return [
                (t, p)
                for t, p in s.execute(
                    sa.select(MetricWindowRow.start, MetricWindowRow.performance).where(
                        MetricWindowRow.deployment == deployment,
                        MetricWindowRow.model == model,
                        MetricWindowRow.version == version,
                        MetricWindowRow.segment == segment,
                        MetricWindowRow.width == width,
                        MetricWindowRow.start >= start,
                        MetricWindowRow.start < end,
                        MetricWindowRow.performance.isnot(None),
                    )
                ).all()
                if p
            ]


class MonitorStateStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(MonitorStateRow, key)
            return dict(row.state) if row is not None else None

    def put(self, items: dict[str, dict[str, Any]]) -> None:
        if not items:
            return
        now = utcnow()
        with self.db.session(write=True) as s:
            for key, state in items.items():
                row = s.get(MonitorStateRow, key)
                if row is None:
                    s.add(MonitorStateRow(key=key, state=state, updated_at=now))
                else:
                    row.state, row.updated_at = state, now


class AlertStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def open(
        self,
        *,
        monitor: str,
        deployment: str,
        model: str,
        version: int,
        segment: str,
        severity: str,
        metric: str,
        value: float | None,
        threshold: float | None,
        message: str,
        data: dict[str, Any],
        at: datetime | None = None,
    ) -> AlertRecord:
        at = at or utcnow()
        try:
            with self.db.session(write=True) as s:
                row = AlertRow(
                    monitor=monitor,
                    deployment=deployment,
                    model=model,
                    version=version,
                    segment=segment,
                    severity=severity,
                    state="firing",
                    metric=metric,
                    value=value,
                    threshold=threshold,
                    message=message,
                    opened_at=at,
                    last_seen_at=at,
                    data=data,
                )
                s.add(row)
                s.flush()
                return _alert(row)
        except Conflict as exc:
            raise AlertAlreadyFiring(f"monitor {monitor!r} already has a firing alert on {deployment!r}") from exc

    def firing(self, deployment: str | None = None) -> list[AlertRecord]:
        query = sa.select(AlertRow).where(AlertRow.state == "firing")
        if deployment is not None:
            query = query.where(AlertRow.deployment == deployment)
        with self.db.session() as s:
            return [_alert(r) for r in s.scalars(query.order_by(AlertRow.opened_at))]

    def seen(self, alert_id: int, value: float | None, at: datetime | None = None) -> None:
        with self.db.session(write=True) as s:
            s.execute(
                sa.update(AlertRow).where(AlertRow.id == alert_id).values(value=value, last_seen_at=at or utcnow())
            )

    def resolve(self, alert_id: int, value: float | None, at: datetime | None = None) -> AlertRecord | None:
        """Resolve a firing alert; None if it was no longer firing. Its value stays the last one that
        breached, as its message says; ``value``, the one that resolved it, is kept in its data as
        ``resolved_value``."""
        at = at or utcnow()
        with self.db.session(write=True) as s:
            done = s.execute(
                sa.update(AlertRow)
                .where(AlertRow.id == alert_id, AlertRow.state == "firing")
                .values(state="resolved", resolved_at=at, last_seen_at=at)
            )
            if not rowcount(done):
                return None
            row = s.get(AlertRow, alert_id)
            assert row is not None
            row.data = {**row.data, "resolved_value": value}
            s.flush()
            return _alert(row)

    def list(self, deployment: str | None = None, *, state: str | None = None, limit: int = 200) -> list[AlertRecord]:
        query = sa.select(AlertRow)
        if deployment is not None:
            query = query.where(AlertRow.deployment == deployment)
        if state is not None:
            query = query.where(AlertRow.state == state)
        with self.db.session() as s:
            return [
                _alert(r) for r in s.scalars(query.order_by(AlertRow.opened_at.desc(), AlertRow.id.desc()).limit(limit))
            ]


class WebhookOutbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, url: str, body: dict[str, Any]) -> int:
        now = utcnow()
        with self.db.session(write=True) as s:
            row = WebhookDeliveryRow(url=url, body=body, created_at=now, attempts=0, next_attempt_at=now)
            s.add(row)
            s.flush()
            return row.id

    def due(self, now: datetime | None = None, limit: int = 50) -> list[WebhookDelivery]:
        now = now or utcnow()
        with self.db.session() as s:
            rows = s.scalars(
                sa.select(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.delivered_at.is_(None),
                    WebhookDeliveryRow.gave_up_at.is_(None),
                    WebhookDeliveryRow.next_attempt_at <= now,
                )
                .order_by(WebhookDeliveryRow.id)
                .limit(limit)
            )
            return [_delivery(r) for r in rows]

    def delivered(self, delivery_id: int) -> None:
        now = utcnow()
        with self.db.session(write=True) as s:
            s.execute(
                sa.update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id)
                .values(delivered_at=now, attempts=WebhookDeliveryRow.attempts + 1, last_error=None)
            )

    def failed(self, delivery_id: int, error: str, next_attempt_at: datetime | None) -> None:
        """Record a failed attempt; ``next_attempt_at=None`` gives up on it."""
        now = utcnow()
        values: dict[str, Any] = {"attempts": WebhookDeliveryRow.attempts + 1, "last_error": error[:2000]}
        if next_attempt_at is None:
            values["gave_up_at"] = now
        else:
            values["next_attempt_at"] = next_attempt_at
        with self.db.session(write=True) as s:
            s.execute(sa.update(WebhookDeliveryRow).where(WebhookDeliveryRow.id == delivery_id).values(**values))

    def all(self, limit: int = 200) -> list[WebhookDelivery]:
        with self.db.session() as s:
            return [
                _delivery(r)
                for r in s.scalars(sa.select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id.desc()).limit(limit))
            ]


def _keys_match(keys: list[WindowKey]) -> Any:
    return sa.or_(
        *[
            sa.and_(
                MetricWindowRow.deployment == d,
                MetricWindowRow.model == m,
                MetricWindowRow.version == v,
                MetricWindowRow.segment == g,
                MetricWindowRow.width == w,
                MetricWindowRow.start == t,
            )
            for d, m, v, g, w, t in keys
        ]
    )


def _chunks(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _window(r: MetricWindowRow) -> MetricWindow:
    return MetricWindow(
        r.deployment,
        r.model,
        r.version,
        r.segment,
        r.width,
        r.start,
        r.end,
        r.rows,
        r.summary,
        r.performance,
        r.metrics,
    )


def _alert(r: AlertRow) -> AlertRecord:
    return AlertRecord(
        r.id,
        r.monitor,
        r.deployment,
        r.model,
        r.version,
        r.segment,
        r.severity,
        r.state,
        r.metric,
        r.value,
        r.threshold,
        r.message,
        r.opened_at,
        r.last_seen_at,
        r.resolved_at,
        dict(r.data),
    )


def _delivery(r: WebhookDeliveryRow) -> WebhookDelivery:
    return WebhookDelivery(
        r.id,
        r.url,
        dict(r.body),
        r.attempts,
        r.created_at,
        r.next_attempt_at,
        r.delivered_at,
        r.gave_up_at,
        r.last_error,
    )
