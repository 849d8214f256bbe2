"""Deadlines for many waits, kept by one timer that ticks while any of them is pending.

Every request body read and every model call waits under a deadline. A timer of its own per wait
(``asyncio.timeout``, ``wait_for``) costs 3 to 15 us each; the request path is ~300 us of CPU, and
nearly every wait ends at once (the body came with the headers, the model answered). Here a wait
costs a clock read and a dict entry; one timer per `Deadlines` sweeps them every ``tick`` seconds
while any is pending, so a deadline fires up to one tick late. The timer is armed at most once a
tick, and not at all while nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger("matchday.serving")
K = TypeVar("K", bound=Hashable)
TICK_SECONDS = 0.1  # how late a deadline may fire: a tenth of a second on timeouts of seconds


class Deadlines(Generic[K]):
    """Keys with a deadline each; ``expire(key)`` is called on the event loop once a key's has passed."""

    def __init__(self, expire: Callable[[K], None], tick: float = TICK_SECONDS) -> None:
        self.expire = expire
        self.tick = tick
        self._pending: dict[K, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, key: K, seconds: float) -> None:
        """Expire ``key`` ``seconds`` from now unless it is forgotten first (called on the event loop)."""
        self._pending[key] = time.monotonic() + seconds
        loop = asyncio.get_running_loop()
        if self._timer is None or self._loop is not loop:  # (a timer of a loop that ended never fires)
            self._loop = loop
            self._timer = loop.call_later(self.tick, self._sweep)

    def forget(self, key: K) -> None:
        """The wait for ``key`` ended in time (or was expired already)."""
        self._pending.pop(key, None)

    def __len__(self) -> int:
        return len(self._pending)

    def _sweep(self) -> None:
        self._timer = None
        now = time.monotonic()
        late = [key for key, deadline in self._pending.items() if deadline <= now]
        for key in late:
            del self._pending[key]
            try:
                self.expire(key)
            except Exception:  # one failed expiry must not stop the timer that keeps every other deadline
                log.exception("expiring %r failed", key)
        if self._pending and self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self.tick, self._sweep)
