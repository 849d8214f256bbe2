"""``POST /v1/deployments/{name}/predict`` answered before the FastAPI app and its middleware.

The one route nearly every request takes skips FastAPI's middleware stack (error, body-limit and
telemetry middleware, which read the environment on every request), its route table, dependency
solving and response encoding (its ``jsonable_encoder`` walks every value): the body is read from
the ASGI messages, handed to the service, and the answer written with orjson. The same limits,
answers and errors as the FastAPI route behind it (which declares it in the OpenAPI document).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from matchday.errors import MatchdayError
from matchday.serving.auth_gate import AuthGate
from matchday.serving.body_reader import BodyReader
from matchday.serving.errors import headers_for, status_for
from matchday.serving.raw_answers import send_json
from matchday.serving.routes.parts import parse_json

log = logging.getLogger("matchday.serving")
_PREDICT = re.compile(r"/v1/deployments/([^/]+)/predict")
Answer = Callable[[str, Any], Awaitable[dict[str, Any]]]


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The status and ``{"error", "details"}`` body of an error on matchday's own routes."""
    if isinstance(exc, MatchdayError):
        return status_for(exc), {"error": exc.message, "details": getattr(exc, "problems", None) or exc.details}
    return 500, {"error": f"internal error: {type(exc).__name__}: {exc}", "details": []}


class FastPredict:
    """Answers the predict route itself (``answer(name, body)``)."""

    def __init__(self, answer: Answer, body: BodyReader) -> None:
        self.answer = answer
        self.body = body

    @staticmethod
    def deployment(scope: Scope) -> str | None:
        """The deployment a request predicts with, when it is one this handler answers."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        match = _PREDICT.fullmatch(scope["path"])
        return match.group(1) if match else None

    async def __call__(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        extra: dict[str, str] | None = None
        try:
            body, _ = parse_json(*await self._body(scope, receive))
            status, answer = 200, await self.answer(name, body)
        except ClientDisconnect:  # the caller went away before sending the whole body: nobody to answer
            return
        except Exception as exc:
            status, answer = error_body(exc)
            extra = headers_for(exc)  # Retry-After on a 429, Connection: close on a 408
            if status >= 500:
                log.error("POST %s failed: %s", scope["path"], exc, exc_info=not isinstance(exc, MatchdayError))
        await send_json(send, status, answer, extra)

    async def _body(self, scope: Scope, receive: Receive) -> tuple[bytes, str | None]:
        """The raw body and the binary-extension header, read from the ASGI messages (`read_json`'s limits)."""
        length: str | None = None
        header: str | None = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value.decode("latin-1")
            elif key == b"inference-header-content-length":
                header = value.decode("latin-1")
        return await self.body.read(receive, length), header


class ServingApp(FastAPI):
    """The FastAPI app, behind its `AuthGate`, with `FastPredict` (once set) answering the predict route."""

    fast_predict: FastPredict | None = None
    gate: AuthGate | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.gate is not None and scope["type"] == "http":
            admitted = await self.gate.admit(scope, receive, send)
            if admitted is None:
                return
            receive = admitted
        if self.fast_predict is not None:
            name = FastPredict.deployment(scope)
            if name is not None:
                await self.fast_predict(name, scope, receive, send)
                return
        await super().__call__(scope, receive, send)
