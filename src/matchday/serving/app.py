"""The FastAPI app: thin endpoints around `PredictionService`, built by `create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from matchday import __version__
from matchday.errors import MatchdayError
from matchday.monitoring import (
    TIME_WIDTHS,
    MonitoringLoop,
    alert_body,
    count_width,
    failure_counts,
    known_metric,
)
from matchday.rollout import Rollouts, event_dict
from matchday.serving.bodies import (
    FeedbackBody,
    PredictBody,
    RolloutActionBody,
    RolloutStartBody,
    V2InferBody,
    body_schema,
)
from matchday.serving.codecs import check_v2_body, decode_v1, decode_v2, split_binary_body, v2_datatype, v2_tensor
from matchday.serving.docs import mount_docs
from matchday.serving.errors import BadRequest, PayloadTooLarge, status_for
from matchday.serving.fast_predict import FastPredict
from matchday.serving.metrics import ServingMetrics, multiprocess
from matchday.serving.service import PredictionService
from matchday.serving.shadow_worker import ShadowWorker
from matchday.serving.window_gauges import WindowGauges
from matchday.workspace import Workspace

log = logging.getLogger("matchday.serving")
MAX_BODY_BYTES = 16 * 1024 * 1024


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def create_app(workspace: Workspace | None = None, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The serving app over ``workspace`` (the environment's settings by default)."""
    ws = workspace or Workspace()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ws.database  # migrations run here, before the first request
        log_store = ws.prediction_log
        writer = ws.log_writer()
        writer.start()
        metrics = ServingMetrics(writer.stats)
        shadows = ShadowWorker(ws.settings, lambda outcome: service.count_shadow(outcome))
        service = PredictionService(ws.deployments, ws.registry, log_store, writer, metrics, shadows)
        rollouts = ws.rollouts
        monitoring = ws.monitoring  # read by the API (it runs in the worker); a bad monitor stops the start here
        alerts = ws.alerts
        metrics.registry.register(WindowGauges(ws.windows.latest, alerts.firing, partial(failure_counts, ws.monitor_state)))
        state.update(service=service, metrics=metrics, writer=writer, rollouts=rollouts, monitoring=monitoring,
                     alerts=alerts, ready=False)
        refresher = asyncio.get_running_loop().create_task(_refresh_every_second(metrics))
        warming = asyncio.get_running_loop().create_task(_warm_then_ready(service, state))
        try:
            yield
        finally:
            for task in (warming, refresher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await service.close()
            writer.close()
            ws.close()
            if multiprocess():
                from prometheus_client import multiprocess as prometheus_multiprocess

                prometheus_multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(title="matchday", version=__version__, lifespan=lifespan, default_response_class=ORJSONResponse,
                  docs_url=None, redoc_url=None)
    mount_docs(app)  # /docs and /redoc with their files served here, not from a CDN
    bodies: dict[str, Any] = {}  # the request bodies' schemas, added to the OpenAPI document's components
    _declare_bodies(app, bodies)

    def service() -> PredictionService:
        return state["service"]

    async def read_json(request: Request) -> tuple[Any, bytes]:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body_bytes:
            raise PayloadTooLarge(f"the body is {int(length):,} bytes; the limit is {max_body_bytes:,}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise PayloadTooLarge(f"the body is over the limit of {max_body_bytes:,} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        header, binary = split_binary_body(raw, request.headers.get("inference-header-content-length"))
        try:
            return orjson.loads(header), binary
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc

    @app.exception_handler(MatchdayError)
    async def domain_error(request: Request, exc: MatchdayError) -> Response:
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        if request.url.path.startswith("/v2"):
            return ORJSONResponse({"error": str(exc)}, status_code=status)
        details = getattr(exc, "problems", None) or exc.details
        return ORJSONResponse({"error": exc.message, "details": details}, status_code=status)

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
        body = {"error": f"internal error: {type(exc).__name__}: {exc}"}
        if not request.url.path.startswith("/v2"):
            body["details"] = []
        return ORJSONResponse(body, status_code=500)

    # -- matchday's own JSON ------------------------------------------------------------------
    @app.get("/v1/deployments")
    async def list_deployments() -> Any:
        records = await asyncio.to_thread(service().deployments.list)
        return {"deployments": [{"name": d.name, "model_ref": d.model_ref, "settings": d.settings} for d in records]}

    async def v1_answer(name: str, body: Any) -> dict[str, Any]:
        result = await service().predict(name, lambda signature: decode_v1(body, signature))
        return {
            "deployment": name,
            "model": result.route.model,
            "version": result.route.version,
            "predictions": [
                {"request_id": p.request_id, "id": p.entity_id, "version": p.version, "prediction": p.prediction,
                 **({"probabilities": p.probabilities} if p.probabilities is not None else {})}
                for p in result.predictions
            ],
            "input_quality": result.quality,
        }

    # answered by `FastPredict` in front of the app; declared here for the OpenAPI document (and for
    # a mount of this app under another, where the ASGI path it sees is not this one)
    @app.post("/v1/deployments/{name}/predict", openapi_extra=body_schema(PredictBody, bodies))
    async def predict(name: str, request: Request) -> Any:
        body, _ = await read_json(request)
        return ORJSONResponse(await v1_answer(name, body))

    app.add_middleware(FastPredict, answer=v1_answer, max_body_bytes=max_body_bytes)

    @app.post("/v1/deployments/{name}/feedback", openapi_extra=body_schema(FeedbackBody, bodies))
    async def feedback(name: str, request: Request) -> Any:
        body, _ = await read_json(request)
        labels = _parse_feedback(body)
        outcomes = await service().feedback(name, labels)
        unknown = [{o.kind if o.kind == "request_id" else "id": o.key} for o in outcomes if o.request_id is None]
        return {"received": len(outcomes), "joined": len(outcomes) - len(unknown), "unknown": unknown}

    # -- rollouts ----------------------------------------------------------------------------
    def rollouts() -> Rollouts:
        return state["rollouts"]

    @app.post("/v1/deployments/{name}/rollout", status_code=201, openapi_extra=body_schema(RolloutStartBody, bodies))
    async def start_rollout(name: str, request: Request) -> Any:
        body, _ = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("candidate"), str):
            raise BadRequest('the body must be {"candidate": "MODEL:VERSION", "strategy": ..., ...plan options}')
        options = {k: v for k, v in body.items() if k != "candidate"}
        record = await asyncio.to_thread(rollouts().start, name, body["candidate"], options, _actor(request))
        status = await asyncio.to_thread(rollouts().status, name)
        assert status.rollout.id == record.id
        return status.as_dict()

    @app.get("/v1/deployments/{name}/rollout")
    async def rollout_status(name: str) -> Any:
        return (await asyncio.to_thread(rollouts().status, name)).as_dict()

    @app.post("/v1/deployments/{name}/rollout/{action}",
              openapi_extra=body_schema(RolloutActionBody, bodies, required=False))
    async def rollout_action(name: str, action: str, request: Request) -> Any:
        acts = {"promote": rollouts().promote, "rollback": rollouts().rollback, "abort": rollouts().rollback,
                "pause": rollouts().pause, "resume": rollouts().resume}
        if action not in acts:
            raise BadRequest(f"unknown rollout action {action!r}; one of {', '.join(acts)}")
        body: Any = {}
        if int(request.headers.get("content-length") or 0):
            body, _ = await read_json(request)
        reason = body.get("reason") if isinstance(body, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise BadRequest('"reason" must be a string')
        await asyncio.to_thread(acts[action], name, _actor(request), reason)
        return (await asyncio.to_thread(rollouts().status, name)).as_dict()

    @app.get("/v1/deployments/{name}/events")
    async def deployment_events(name: str, limit: int = 100) -> Any:
        events = await asyncio.to_thread(rollouts().list_events, name, max(1, min(limit, 1000)))
        return {"events": [event_dict(e) for e in events]}

    # -- monitoring ----------------------------------------------------------------------------
    def monitoring() -> MonitoringLoop:
        return state["monitoring"]

    @app.get("/v1/deployments/{name}/metrics")
    async def deployment_metrics(name: str, window: str = "5m", since: str | None = None, until: str | None = None,
                                 metric: str | None = None, segment: str = "", version: int | None = None,
                                 limit: int = 500) -> Any:
        await asyncio.to_thread(service().deployments.get, name)  # an unknown deployment is a 404
        count = count_width(monitoring().summarizer.config.count_window)
        if window not in TIME_WIDTHS and not re.fullmatch(r"[1-9]\d*rows", window):
            raise BadRequest(f"unknown window {window!r}; one of {', '.join([*TIME_WIDTHS, count])}")
        wanted = [m.strip() for m in metric.split(",")] if metric else None
        for m in wanted or []:
            if not known_metric(m):
                raise BadRequest(f"unknown metric {m!r}", ["see GET /v1/monitors for the metrics monitors use"])
        windows = await asyncio.to_thread(monitoring().windows.series, name, window, since=_time(since, "since"),
                                          until=_time(until, "until"), segment=segment, version=version,
                                          limit=max(1, min(limit, 10_000)))
        diagnoses = await asyncio.to_thread(lambda: [monitoring().diagnosis(w) for w in windows])  # reads references
        return {"deployment": name, "window": window, "segment": segment or None,
                "windows": [{"model": w.model, "version": w.version, "start": w.start.isoformat(),
                             "end": w.end.isoformat(), "rows": w.rows, "diagnosis": diagnosis,
                             "metrics": w.metrics if wanted is None else {m: w.metrics.get(m) for m in wanted}}
                            for w, diagnosis in zip(windows, diagnoses)]}

    @app.get("/v1/monitors")
    async def list_monitors(deployment: str | None = None) -> Any:
        records = await asyncio.to_thread(service().deployments.list)
        names = [d.name for d in records if deployment is None or d.name == deployment]
        if deployment is not None and not names:
            await asyncio.to_thread(service().deployments.get, deployment)  # the 404
        firing = {(a.monitor, a.deployment) for a in await asyncio.to_thread(state["alerts"].firing)}
        declared = {m.name for m in monitoring().monitors}
        return {"monitors": [{"deployment": n, **m.model_dump(mode="json"), "threshold": m.threshold,
                              "source": "matchday.yaml" if m.name in declared else "default",
                              "firing": (m.name, n) in firing}
                             for n in names for m in monitoring().monitors_of(n)]}

    @app.get("/v1/alerts")
    async def list_alerts(deployment: str | None = None, state_: str | None = Query(None, alias="state"),
                          limit: int = 200) -> Any:
        if state_ not in (None, "firing", "resolved"):
            raise BadRequest(f"unknown alert state {state_!r}; firing or resolved")
        if deployment is not None:
            await asyncio.to_thread(service().deployments.get, deployment)  # an unknown deployment is a 404
        alerts = await asyncio.to_thread(state["alerts"].list, deployment, state=state_, limit=max(1, min(limit, 5000)))
        return {"alerts": [alert_body(a, a.state)["alert"] for a in alerts]}

    @app.get("/metrics")
    async def metrics() -> Response:
        state["metrics"].refresh()
        body = await asyncio.to_thread(generate_latest, state["metrics"].registry)  # window gauges read the database
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> Any:
        stats = state["writer"].stats()
        return {"status": "ok", "version": __version__, "prediction_log": stats.__dict__}

    # -- Open Inference Protocol V2 ----------------------------------------------------------
    @app.get("/v2")
    async def v2_server() -> Any:
        return {"name": "matchday", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def v2_live() -> Any:
        return {"live": True}

    @app.get("/v2/health/ready", responses={503: {"description": "still loading and warming the deployed versions"}})
    async def v2_ready() -> Any:
        ready = bool(state.get("ready"))
        return ORJSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def v2_model(name: str, version: str | None) -> Any:
        route, _ = await service().served_route(name, version)
        predictor = await service().predictor(route.ref)
        signature = predictor.signature
        assert signature is not None
        outputs = [{"name": "predict", "datatype": _output_type(signature), "shape": [-1]}]
        if predictor.has_proba:
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(predictor.classes or [])]})
        return {
            "name": name, "versions": [str(route.version)], "platform": f"matchday/{predictor.flavor}",
            "inputs": [{"name": c.name, "datatype": v2_datatype(c.type), "shape": [-1, 1]} for c in signature.inputs],
            "outputs": outputs,
            "parameters": {"model": route.model, "model_ref": route.model_ref},
        }

    @app.get("/v2/models/{name}")
    async def v2_metadata(name: str) -> Any:
        return await v2_model(name, None)

    @app.get("/v2/models/{name}/versions/{version}")
    async def v2_metadata_version(name: str, version: str) -> Any:
        return await v2_model(name, version)

    @app.get("/v2/models/{name}/ready")
    async def v2_model_ready(name: str) -> Any:
        await v2_model(name, None)
        return {"name": name, "ready": True}

    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def v2_model_version_ready(name: str, version: str) -> Any:
        await v2_model(name, version)
        return {"name": name, "ready": True}

    async def v2_infer(name: str, version: str | None, request: Request) -> Any:
        body, binary = await read_json(request)
        if version is not None and not (version.isascii() and version.isdigit()):
            raise BadRequest(f"model version {version!r} is not a number")
        route, _ = await service().served_route(name, version)  # an unknown deployment is a 404 whatever the body
        check_v2_body(body)  # every field's type, before anything is scored
        wanted = {o["name"] for o in body["outputs"]} if body.get("outputs") is not None else None
        if wanted:  # refuse before scoring, so nothing is logged that the caller never sees
            predictor = await service().predictor(route.ref)
            known = {"predict", "predict_proba"} if predictor.has_proba else {"predict"}
            if wanted - known:
                raise BadRequest(f"unknown outputs requested: {', '.join(sorted(wanted - known))}; "
                                 f"this model has {', '.join(sorted(known))}")
        result = await service().predict(name, lambda signature: decode_v2(body, binary, signature),
                                         version=int(version) if version else None)
        outputs = [v2_tensor("predict", result.scored.predictions)]
        if result.scored.probabilities is not None:
            outputs.append(v2_tensor("predict_proba", result.scored.probabilities))
        if wanted:
            outputs = [o for o in outputs if o["name"] in wanted]
        answer = {"model_name": name, "model_version": str(result.route.version), "outputs": outputs,
                  "parameters": {"request_ids": [p.request_id for p in result.predictions],
                                 "versions": [p.version for p in result.predictions]}}
        if isinstance(body, dict) and "id" in body:
            answer["id"] = body["id"]
        return answer

    @app.post("/v2/models/{name}/infer", openapi_extra=body_schema(V2InferBody, bodies))
    async def v2_infer_latest(name: str, request: Request) -> Any:
        return await v2_infer(name, None, request)

    @app.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=body_schema(V2InferBody, bodies))
    async def v2_infer_version(name: str, version: str, request: Request) -> Any:
        return await v2_infer(name, version, request)

    app.state.workspace = ws  # for what is mounted above the API (the dashboard, `matchday.server`)
    return app


def _declare_bodies(app: FastAPI, bodies: dict[str, Any]) -> None:
    """The OpenAPI document with the request bodies' schemas (the routes read raw bodies, so FastAPI
    does not see them itself)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(bodies)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _warm_then_ready(service: PredictionService, state: dict[str, Any]) -> None:
    """Warm every deployed version after start-up (in the background: the server answers meanwhile,
    loading on demand), then say ready: a load balancer sends traffic only to a warm server."""
    started = time.perf_counter()
    try:
        warmed = await service.warm_up()
    except Exception:  # readiness must not hang on a bug in warming
        log.exception("warm-up failed")
        warmed = []
    state["ready"] = True
    failed = [w.ref for w in warmed if w.error is not None]
    log.info("ready: %d version(s) warm in %.1fs%s", len(warmed) - len(failed), time.perf_counter() - started,
             f"; could not warm {', '.join(failed)}" if failed else "")


async def _refresh_every_second(metrics: ServingMetrics) -> None:
    """Workers that are not scraped still publish their writer state (multiprocess mode)."""
    while True:
        metrics.refresh()
        await asyncio.sleep(1.0)


def _output_type(signature: Any) -> str:
    if signature.output.task == "regression":
        return "FP64"
    classes = signature.output.classes or []
    return "INT64" if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes) else "BYTES"


def _time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time from a query parameter (UTC when it names no zone)."""
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"{name}={text!r} is not an ISO 8601 time (e.g. 2026-11-27T08:00:00Z)") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _actor(request: Request) -> str:
    """Who asked: the ``X-Matchday-Actor`` header (a name for the audit trail), else the client address."""
    named = request.headers.get("x-matchday-actor", "").strip()[:100]
    return named or f"api:{request.client.host if request.client else 'unknown'}"


def _parse_feedback(body: Any) -> list[tuple[str, str, Any]]:
    """``{"labels": [{"request_id": ..., "label": ...} | {"id": ..., "label": ...}]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("labels"), list) or not body["labels"]:
        raise BadRequest('the body must be {"labels": [{"request_id" or "id": ..., "label": ...}, ...]}')
    out: list[tuple[str, str, Any]] = []
    problems = []
    for i, item in enumerate(body["labels"]):
        if not isinstance(item, dict) or "label" not in item or ("request_id" in item) == ("id" in item):
            problems.append(f"labels[{i}]: needs \"label\" and exactly one of \"request_id\" or \"id\"")
            continue
        if isinstance(item["label"], (dict, list)):
            problems.append(f"labels[{i}].label: must be a single value")
            continue
        kind = "request_id" if "request_id" in item else "entity_id"
        key = str(item["request_id"] if kind == "request_id" else item["id"])
        if "\x00" in key or len(key) > 200:
            problems.append(f"labels[{i}]: the {'request id' if kind == 'request_id' else 'id'} is not a valid key")
            continue
        out.append((kind, key, item["label"]))
    if problems:
        raise BadRequest(f"{len(problems)} invalid label(s)", problems)
    return out


def create_app_from_env() -> FastAPI:
    """The factory `matchday serve` hands to uvicorn (each worker builds its own app)."""
    logging.basicConfig(level=os.environ.get("MATCHDAY_LOG_LEVEL", "INFO"))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return create_app()
