"""What every route module shares: the parts the app's lifespan builds, the body reader, the response class."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse

from matchday.monitoring import LogWriter, MonitoringLoop
from matchday.retrain import Retraining, Simulation
from matchday.review import Automation, ReviewQueue
from matchday.rollout import Rollouts
from matchday.serving.body_reader import BodyReader
from matchday.serving.codecs import split_binary_body
from matchday.serving.errors import BadRequest
from matchday.serving.metrics import ServingMetrics
from matchday.serving.service import PredictionService
from matchday.store import AlertStore

SimulateRetraining = Callable[[str, datetime, datetime | None], Simulation]  # deployment, since, until
Schemas = dict[str, Any]  # the request bodies' JSON schemas by name, for the OpenAPI document's components


class ORJSONResponse(JSONResponse):
    """orjson renders NumPy values and non-string keys, and is several times faster than the standard library."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


class Parts:
    """What the routes reach. The routes are declared when the app is built, but the parts exist only
    once its lifespan has started (the database, the log writer), which fills them in with `start`."""

    service: PredictionService
    rollouts: Rollouts
    monitoring: MonitoringLoop
    alerts: AlertStore
    metrics: ServingMetrics
    writer: LogWriter
    review: ReviewQueue
    automation: Automation
    retraining: Retraining
    simulate_retraining: SimulateRetraining

    def __init__(self, body: BodyReader) -> None:
        self.body = body  # the bodies' limits: size, and how long a client may stall sending one
        self.ready = False  # every deployed version warm: what ``/v2/health/ready`` answers

    def start(
        self,
        *,
        service: PredictionService,
        rollouts: Rollouts,
        monitoring: MonitoringLoop,
        alerts: AlertStore,
        metrics: ServingMetrics,
        writer: LogWriter,
        review: ReviewQueue,
        automation: Automation,
        retraining: Retraining,
        simulate_retraining: SimulateRetraining,
    ) -> None:
        """The lifespan's parts, not yet warm."""
        self.service, self.rollouts, self.monitoring = service, rollouts, monitoring
        self.alerts, self.metrics, self.writer = alerts, metrics, writer
        self.review, self.automation = review, automation
        self.retraining, self.simulate_retraining = retraining, simulate_retraining
        self.ready = False


async def read_json(request: Request, body: BodyReader) -> tuple[Any, bytes]:
    """The body's JSON and its binary tail (the V2 binary tensor extension), read within ``body``'s limits
    (413 past its size, 408 when the client stalls).

    The routes read raw bodies rather than let FastAPI parse them: orjson, the binary tail, the limits,
    and errors with the project's messages and field paths.
    """
    raw = await body.read(request.receive, request.headers.get("content-length"))
    return parse_json(raw, request.headers.get("inference-header-content-length"))


def parse_json(raw: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """A body's JSON (orjson) and its binary tail, or a 400 saying what is wrong."""
    header, binary = split_binary_body(raw, header_length)
    try:
        return orjson.loads(header), binary
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
