"""Failed logins counted per client address and per user name over a sliding window; past the limit
the next attempt is refused before its password is checked (the KDF is the expensive part)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from matchday.auth.errors import TooManyAttempts


class LoginLimits:
    """At most ``per_user`` failures per user name and ``per_address`` per client address within
    ``window`` seconds. Kept in each server process: a replica counts its own attempts."""

    def __init__(self, per_user: int = 5, per_address: int = 20, window: float = 300.0) -> None:
        self.per_user, self.per_address, self.window = per_user, per_address, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, user: str, address: str) -> None:
        """Raise `TooManyAttempts` (with the seconds to wait) when either count is at its limit."""
        now = time.monotonic()
        with self._lock:
            for key, limit in ((f"user:{user.lower()}", self.per_user), (f"address:{address}", self.per_address)):
                failures = self._recent(key, now)
                if len(failures) >= limit:
                    wait = max(1, math.ceil(failures[0] + self.window - now))
                    raise TooManyAttempts(f"too many failed logins; try again in {wait} s", retry_after=wait)

    def failed(self, user: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (f"user:{user.lower()}", f"address:{address}"):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 10_000:  # many addresses: forget the quiet ones
                for key in [k for k, v in self._failures.items() if not v or v[-1] < now - self.window]:
                    del self._failures[key]

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user.lower()}", None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] < now - self.window:
            failures.popleft()
        return failures
