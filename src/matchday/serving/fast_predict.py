"""``POST /v1/deployments/{name}/predict`` as a bare ASGI handler in front of the FastAPI app.

The one route nearly every request takes skips FastAPI's route table, dependency solving and
response encoding (its ``jsonable_encoder`` walks every value): the body is read, handed to the
service, and the answer written with orjson. The same answers, errors and limits as the FastAPI
route it stands in front of (which still declares it in the OpenAPI document).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matchday.errors import MatchdayError
from matchday.serving.codecs import split_binary_body
from matchday.serving.errors import BadRequest, PayloadTooLarge, status_for

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
            body = await self._body(scope, receive)
            status, answer = 200, await self.answer(match.group(1), body)
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

    async def _body(self, scope: Scope, receive: Receive) -> Any:
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                raise PayloadTooLarge(f"the body is {int(value):,} bytes; the limit is {self.max_body_bytes:,}")
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("the client went away before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"the body is over the limit of {self.max_body_bytes:,} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        header, _ = split_binary_body(
            raw, next((v.decode() for k, v in scope["headers"] if k == b"inference-header-content-length"), None)
        )
        try:
            return orjson.loads(header)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
