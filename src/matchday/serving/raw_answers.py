"""A JSON answer written straight to the ASGI ``send``: for the handlers in front of FastAPI (the
door, the fast predict path), which answer without a Response object."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Send

_JSON = (b"content-type", b"application/json")


async def send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    """``body`` as JSON (NumPy values too) with ``headers`` besides its type and length."""
    data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    raw = [_JSON, (b"content-length", b"%d" % len(data))]
    if headers:
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
