"""What the API shows of monitoring (which runs in the worker): windows' metrics, monitors, alerts,
and the server's own health: ``/metrics`` for Prometheus, ``/healthz``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from matchday import __version__
from matchday.monitoring import (
    alert_body,
    known_metric,
    parse_segment,
    parse_window,
    segment_features,
    unkept_segment,
    unkept_window,
)
from matchday.serving.errors import BadRequest
from matchday.serving.routes.parts import ORJSONResponse, Parts, Schemas


def router(parts: Parts, bodies: Schemas) -> APIRouter:
    """``/v1/deployments/{name}/metrics``, ``/v1/monitors``, ``/v1/alerts``, ``/metrics``, ``/healthz`` (no bodies)."""
    api = APIRouter(default_response_class=ORJSONResponse)

    @api.get("/v1/deployments/{name}/metrics")
    async def deployment_metrics(
        name: str,
        window: str = "5m",
        since: str | None = None,
        until: str | None = None,
        metric: str | None = None,
        segment: str = "",
        version: int | None = None,
        limit: int = 500,
    ) -> Any:
        await asyncio.to_thread(parts.service.deployments.get, name)  # an unknown deployment is a 404
        monitoring = parts.monitoring
        config = monitoring.summarizer.config
        width = parse_window(window, config.count_window)  # an UnknownWindow is a 400 naming the windows
        parse_segment(segment)
        wanted = [m.strip() for m in metric.split(",")] if metric else None
        for m in wanted or []:
            if not known_metric(m):
                raise BadRequest(f"unknown metric {m!r}", ["see GET /v1/monitors for the metrics monitors use"])
        windows = await asyncio.to_thread(
            monitoring.windows.series,
            name,
            window,
            since=_time(since, "since"),
            until=_time(until, "until"),
            segment=segment,
            version=version,
            limit=max(1, min(limit, 10_000)),
        )
        if not windows:  # a count no one summarises by, or a feature no one slices by, is a 400 saying so
            features = segment_features(config.segments, name)
            unkept = unkept_window(width, config.count_window) or unkept_segment(segment, features, name)
            if unkept is not None:
                raise unkept
        diagnoses = await asyncio.to_thread(lambda: [monitoring.diagnosis(w) for w in windows])  # reads references
        return {
            "deployment": name,
            "window": window,
            "segment": segment or None,
            "windows": [
                {
                    "model": w.model,
                    "version": w.version,
                    "start": w.start.isoformat(),
                    "end": w.end.isoformat(),
                    "rows": w.rows,
                    "diagnosis": diagnosis,
                    "metrics": w.metrics if wanted is None else {m: w.metrics.get(m) for m in wanted},
                }
                for w, diagnosis in zip(windows, diagnoses, strict=True)
            ],
        }

    @api.get("/v1/monitors")
    async def list_monitors(deployment: str | None = None) -> Any:
        records = await asyncio.to_thread(parts.service.deployments.list)
        names = [d.name for d in records if deployment is None or d.name == deployment]
        if deployment is not None and not names:
            await asyncio.to_thread(parts.service.deployments.get, deployment)  # the 404
        firing = {(a.monitor, a.deployment) for a in await asyncio.to_thread(parts.alerts.firing)}
        monitoring = parts.monitoring
        declared = {m.name for m in monitoring.monitors}
        return {
            "monitors": [
                {
                    "deployment": n,
                    **m.model_dump(mode="json"),
                    "threshold": m.threshold,
                    "source": "matchday.yaml" if m.name in declared else "default",
                    "firing": (m.name, n) in firing,
                }
                for n in names
                for m in monitoring.monitors_of(n)
            ]
        }

    @api.get("/v1/alerts")
    async def list_alerts(
        deployment: str | None = None, state_: str | None = Query(None, alias="state"), limit: int = 200
    ) -> Any:
        if state_ not in (None, "firing", "resolved"):
            raise BadRequest(f"unknown alert state {state_!r}; firing or resolved")
        if deployment is not None:
            await asyncio.to_thread(parts.service.deployments.get, deployment)  # an unknown deployment is a 404
        alerts = await asyncio.to_thread(parts.alerts.list, deployment, state=state_, limit=max(1, min(limit, 5000)))
        return {"alerts": [alert_body(a, a.state)["alert"] for a in alerts]}

    @api.get("/metrics")
    async def metrics() -> Response:
        parts.metrics.refresh()
        body = await asyncio.to_thread(generate_latest, parts.metrics.registry)  # window gauges read the database
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @api.get("/healthz")
    async def healthz() -> Any:
        stats = parts.writer.stats()
        return {"status": "ok", "version": __version__, "prediction_log": stats.__dict__}

    return api


def _time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time from a query parameter (UTC when it names no zone)."""
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"{name}={text!r} is not an ISO 8601 time (e.g. 2026-11-27T08:00:00Z)") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
