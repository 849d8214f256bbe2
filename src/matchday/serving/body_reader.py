"""A request body read from its ASGI messages within the server's limits: ``max_bytes`` in all, and
``timeout`` seconds for each wait on the client.

uvicorn bounds neither: a client that sends its headers and then stalls (or trickles a byte now and
then) kept its connection and its task for as long as it liked; 500 of them were all held. Each wait
for the next part of the body (the first included: a client may stall before sending any) ends after
``timeout`` seconds with a 408 that closes the connection. The waits are watched by one `Deadlines`
timer, not a timer each: a body that came whole with its headers, nearly every one, costs a clock
read and a dict entry. The predict route in front of the app (`fast_predict.py`) and every route that
reads its body through ``read_json`` read it here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from matchday.serving.deadlines import Deadlines
from matchday.serving.errors import BodyTimeout, PayloadTooLarge


class BodyReader:
    """Reads bodies of at most ``max_bytes``, waiting at most ``timeout`` seconds for each part."""

    def __init__(self, max_bytes: int, timeout: float) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.on_timeout: Callable[[], None] | None = None  # counts a 408 (set once the app's metrics exist)
        self._waits: Deadlines[asyncio.Task[Any]] = Deadlines(self._expire)
        self._expired: dict[asyncio.Task[Any], int] = {}  # cancelled by us -> its cancel requests before ours

    async def read(self, receive: Receive, content_length: str | None) -> bytes:
        """The whole body; 413 past ``max_bytes`` (refused before reading when the header says so), 408
        when the client stops sending, `ClientDisconnect` when it goes away."""
        check_length(content_length, self.max_bytes)
        message = await self._receive(receive)
        body: bytes = message.get("body", b"")
        parts, size = [body], len(body)
        while message.get("more_body", False) and size <= self.max_bytes:  # nearly every body came whole
            message = await self._receive(receive)
            chunk: bytes = message.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
        if size > self.max_bytes:
            raise PayloadTooLarge(f"the body is over the limit of {self.max_bytes:,} bytes")
        return body if len(parts) == 1 else b"".join(parts)

    async def _receive(self, receive: Receive) -> Message:
        """The next message, or `BodyTimeout` once it has been awaited for ``timeout`` seconds."""
        task = asyncio.current_task()
        assert task is not None  # ASGI apps run in tasks
        self._waits.watch(task, self.timeout)
        try:
            message = await receive()
        except asyncio.CancelledError:
            before = self._expired.pop(task, None)
            if before is None or task.uncancel() > before:  # not ours, or the server stops too: that wins
                raise
            if self.on_timeout is not None:
                self.on_timeout()
            raise BodyTimeout(
                f"the request body stalled: nothing more of it arrived for {self.timeout:g} s "
                "(the body timeout, MATCHDAY_BODY_TIMEOUT)"
            ) from None
        finally:
            self._waits.forget(task)
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        return message

    def _expire(self, task: asyncio.Task[Any]) -> None:
        """Interrupt the wait of ``task``: it is suspended in ``receive()``, the only place it is watched."""
        self._expired[task] = task.cancelling()
        task.cancel()


def check_length(length: str | None, max_bytes: int) -> None:
    """Refuse a body whose announced length is over the limit before reading any of it."""
    if length and length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLarge(f"the body is {int(length):,} bytes; the limit is {max_bytes:,}")
