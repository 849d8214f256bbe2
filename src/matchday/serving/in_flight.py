"""A bound on the prediction requests each deployment has in progress in one server process.

Without it, a burst (or a model slower than its traffic) grows the micro-batcher's queue, and every
request's wait with it, until clients time out on answers the server still computes. Past the bound
a request is refused at once (429 with ``Retry-After``), so a client or a load balancer can back off
or go to another replica. A counter and a comparison per request: the predict path stays lean.
"""

from __future__ import annotations

DEFAULT_MAX_IN_FLIGHT = 1024
RETRY_AFTER_SECONDS = 1  # a micro-batch takes milliseconds: a second later the queue has moved on


class InFlight:
    """Requests in progress by deployment, each at most ``limit``."""

    def __init__(self, limit: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def enter(self, deployment: str) -> bool:
        """Count one more request of ``deployment``, unless it already has ``limit`` (then False)."""
        count = self._counts.get(deployment, 0)
        if count >= self.limit:
            return False
        self._counts[deployment] = count + 1
        return True

    def leave(self, deployment: str) -> None:
        """One request of ``deployment`` is answered (an entry goes at zero: names are the callers')."""
        count = self._counts[deployment] - 1
        if count:
            self._counts[deployment] = count
        else:
            del self._counts[deployment]

    def count(self, deployment: str) -> int:
        return self._counts.get(deployment, 0)
