"""``POST /v1/deployments/{name}/predict`` as a bare ASGI handler in front of the FastAPI app.

The one route nearly every request takes skips FastAPI's route table, dependency solving and
response encoding (its ``jsonable_encoder`` walks every value): the body is read, handed to the
service, and the answer written with orjson. The same body reading (`read_json`), answers, errors
and limits as the FastAPI route it stands in front of (which still declares it in the OpenAPI document).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from matchday.errors import MatchdayError
from matchday.serving.errors import status_for
from matchday.serving.routes.parts import read_json

log = logging.getLogger("matchday.serving")
_PREDICT = re.compile(r"/v1/deployments/([^/]+)/predict")
_JSON = [(b"content-type", b"application/json")]
Answer = Callable[[str, Any], Awaitable[dict[str, Any]]]


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The status and ``{"error", "details"}`` body of an error on matchday's own routes."""
    if isinstance(exc, MatchdayError):
        return status_for(exc), {"error": exc.message, "details": getattr(exc, "problems", None) or exc.details}
    return 500, {"error": f"internal error: {type(exc).__name__}: {exc}", "details": []}


class FastPredict:
    """Answers the predict route itself (``answer(name, body)``); every other request goes to ``app``."""

    def __init__(self, app: ASGIApp, answer: Answer, max_body_bytes: int) -> None:
        self.app = app
        self.answer = answer
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PREDICT.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        try:
            body, _ = await read_json(Request(scope, receive), self.max_body_bytes)
            status, answer = 200, await self.answer(match.group(1), body)
        except ClientDisconnect:  # the caller went away before sending the whole body: nobody to answer
            return
        except Exception as exc:
            status, answer = error_body(exc)
            if status >= 500:
                log.error("POST %s failed: %s", scope["path"], exc, exc_info=not isinstance(exc, MatchdayError))
        data = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON, (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})
