"""The FastAPI app, built by `create_app`: the route modules (`routes/`) over `PredictionService`,
the parts' lifespan, one table of errors to HTTP, and `FastPredict` in front of the predict route."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from matchday import __version__
from matchday.errors import MatchdayError
from matchday.monitoring import failure_counts
from matchday.serving.auth_gate import AuthGate
from matchday.serving.body_reader import BodyReader
from matchday.serving.docs import mount_docs
from matchday.serving.error_responses import declare_error_responses
from matchday.serving.errors import headers_for, status_for
from matchday.serving.fast_predict import FastPredict, ServingApp, error_body
from matchday.serving.metrics import ServingMetrics, multiprocess
from matchday.serving.review_gauges import ReviewGauges
from matchday.serving.routes import edge, monitoring, registry, retrain, review, rollouts, v1, v2
from matchday.serving.routes.parts import ORJSONResponse, Parts, Schemas
from matchday.serving.service import PredictionService
from matchday.serving.shadow_worker import ShadowWorker
from matchday.serving.window_gauges import WindowGauges
from matchday.workspace import Workspace

log = logging.getLogger("matchday.serving")
MAX_BODY_BYTES = 16 * 1024 * 1024


def create_app(workspace: Workspace | None = None, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The serving app over ``workspace`` (the environment's settings by default)."""
    ws = workspace or Workspace()
    parts = Parts(BodyReader(max_body_bytes, ws.settings.body_timeout))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _ = ws.database  # migrations run here, before the first request
        ws.access.start()  # the tokens in memory before the first request asks
        log_store = ws.prediction_log
        rollouts = ws.rollouts
        monitoring = ws.monitoring  # read by the API (it runs in the worker); a bad monitor stops the start here
        retraining = ws.retraining  # and so does a bad retraining policy, with every bad field
        alerts = ws.alerts
        writer = ws.server_log_writer()
        writer.start()
        tasks: list[asyncio.Task[None]] = []
        services: list[PredictionService] = []
        try:  # from here on, whatever fails (or stops the start) stops what was started
            metrics = ServingMetrics(writer.stats)
            shadows = ShadowWorker(ws.settings, lambda outcome: service.count_shadow(outcome))
            service = PredictionService(
                ws.deployments,
                ws.registry,
                log_store,
                writer,
                metrics,
                shadows,
                model_timeout=ws.settings.model_timeout,
                max_in_flight=ws.settings.max_in_flight,
            )
            parts.body.on_timeout = metrics.body_timeouts.inc
            services.append(service)
            metrics.registry.register(
                WindowGauges(ws.windows.latest, alerts.firing, partial(failure_counts, ws.monitor_state))
            )
            metrics.registry.register(ReviewGauges(ws.review.store.tally))
            parts.start(
                service=service,
                rollouts=rollouts,
                monitoring=monitoring,
                alerts=alerts,
                metrics=metrics,
                writer=writer,
                review=ws.review,
                automation=ws.automation,
                retraining=retraining,
                simulate_retraining=ws.simulate_retraining,
            )
            loop = asyncio.get_running_loop()
            tasks = [
                loop.create_task(_refresh_every_second(metrics)),
                loop.create_task(_warm_then_ready(service, parts)),
            ]
            # listen once warm, as MLflow and MLServer do, so no client waits on a model load; a warm-up
            # longer than this goes on in the background while the server answers /v2/health/live
            await asyncio.wait({tasks[1]}, timeout=ws.settings.warm_before_listen)
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for started in services:
                await started.close()
            writer.close()
            ws.close()
            if multiprocess():
                from prometheus_client import multiprocess as prometheus_multiprocess

                prometheus_multiprocess.mark_process_dead(os.getpid())

    app = ServingApp(
        title="matchday",
        version=__version__,
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        docs_url=None,
        redoc_url=None,
    )
    mount_docs(app)  # /docs and /redoc with their files served here, not from a CDN
    bodies: Schemas = {}  # the request bodies' schemas, added to the OpenAPI document's components
    _declare_bodies(app, bodies)
    _handle_errors(app)

    app.include_router(v1.router(parts, bodies))
    app.fast_predict = FastPredict(partial(v1.answer, parts), parts.body)
    app.include_router(rollouts.router(parts, bodies))
    app.include_router(monitoring.router(parts, bodies))
    app.include_router(review.router(parts, bodies))
    app.include_router(retrain.router(parts, bodies))
    app.include_router(edge.router(parts, bodies, lambda: ws.edge_telemetry))
    app.include_router(v2.router(parts, bodies))
    app.include_router(
        registry.router(
            parts,
            bodies,
            max_upload_bytes=ws.settings.max_upload_bytes,
            spool_dir=(ws.settings.home / "uploads").absolute(),
        )
    )

    app.gate = AuthGate(lambda: ws.access, parts.body, ws.settings.allowed_hosts, ws.settings.open_metrics)
    app.state.workspace = ws  # for what is mounted above the API (the dashboard, `matchday.server`)
    return app


def _handle_errors(app: FastAPI) -> None:
    """One table of errors to HTTP: ``{"error", "details"}`` on matchday's routes, ``{"error"}`` on ``/v2``."""

    @app.exception_handler(MatchdayError)
    async def domain_error(request: Request, exc: MatchdayError) -> Response:
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        headers = headers_for(exc)  # Retry-After on a 429, Connection: close on a 408
        if request.url.path.startswith("/v2"):
            return ORJSONResponse({"error": str(exc)}, status_code=status, headers=headers)
        return ORJSONResponse(error_body(exc)[1], status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> Response:
        details = [{"field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()]
        return ORJSONResponse({"error": "invalid request", "details": details}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        body: dict[str, Any] = {"error": str(exc.detail)}
        if not request.url.path.startswith("/v2"):
            body["details"] = []
        return ORJSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        status, body = error_body(exc)
        if request.url.path.startswith("/v2"):
            body = {"error": body["error"]}
        return ORJSONResponse(body, status_code=status)


def _declare_bodies(app: FastAPI, bodies: Schemas) -> None:
    """The OpenAPI document with the request bodies' schemas (the routes read raw bodies, so FastAPI
    does not see them itself) and every operation's error answers."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(bodies)
            declare_error_responses(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _warm_then_ready(service: PredictionService, parts: Parts) -> None:
    """Warm every deployed version after start-up (in the background: the server answers meanwhile,
    loading on demand), then say ready: a load balancer sends traffic only to a warm server."""
    started = time.perf_counter()
    try:
        warmed = await service.warm_up()
    except Exception:  # readiness must not hang on a bug in warming
        log.exception("warm-up failed")
        warmed = []
    gc.collect()
    gc.freeze()  # what start-up made lives as long as the server: later collections need not walk it
    parts.ready = True
    failed = [w.ref for w in warmed if w.error is not None]
    log.info(
        "ready: %d version(s) warm in %.1fs%s",
        len(warmed) - len(failed),
        time.perf_counter() - started,
        f"; could not warm {', '.join(failed)}" if failed else "",
    )


async def _refresh_every_second(metrics: ServingMetrics) -> None:
    """Workers that are not scraped still publish their writer state (multiprocess mode)."""
    while True:
        metrics.refresh()
        await asyncio.sleep(1.0)


def create_app_from_env() -> FastAPI:
    """The factory `matchday serve` hands to uvicorn (each worker builds its own app)."""
    logging.basicConfig(level=os.environ.get("MATCHDAY_LOG_LEVEL", "INFO"))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return create_app()
