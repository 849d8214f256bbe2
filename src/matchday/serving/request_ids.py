"""Request ids: random version-4 UUIDs, drawn from the OS's random source 256 at a time.

`uuid.uuid4` asks the kernel for 16 bytes per id; on the request path that is a system call per
row. Reading 4 KiB at once keeps the ids as unpredictable (a caller who could guess another's id
could send labels for it) at a fraction of the cost.
"""

from __future__ import annotations

import os
import threading
import uuid

_BATCH = 256


class RequestIds:
    """Thread-safe: the service calls it from the event loop, the shadow process from its own threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)  # a forked child must not hand out its parent's ids

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._at = b"", 0

    def take(self, n: int) -> list[str]:
        """``n`` new ids as text (``str(uuid.UUID)``)."""
        with self._lock:
            need = 16 * n
            if self._at + need > len(self._pool):
                self._pool = self._pool[self._at :] + os.urandom(max(16 * _BATCH, need))
                self._at = 0
            raw = self._pool[self._at : self._at + need]
            self._at += need
        return [str(uuid.UUID(bytes=raw[i : i + 16], version=4)) for i in range(0, need, 16)]

    def one(self) -> str:
        return self.take(1)[0]
