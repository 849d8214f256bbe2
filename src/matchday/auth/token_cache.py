"""The tokens in memory, so a request is checked without the database: reloaded whenever the stored
credentials change (polled twice a second, one small query), so a revoke or a new token takes
effect on every replica within the poll interval; last-used times written back in one go. A key the
cache does not know is looked for once more at once (at most every ``MISS_RECHECK_SECONDS``, so made-up
keys cannot turn into a query each): a script that makes a token and uses it straight away is answered."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from matchday.store import PrincipalStore, StoreError, TokenRecord

log = logging.getLogger("matchday.auth")
Revision = tuple[int, datetime | None, int]
MISS_RECHECK_SECONDS = 0.1


class TokenCache:
    def __init__(self, store: PrincipalStore, poll_seconds: float = 0.5) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._tokens: dict[str, TokenRecord] = {}
        self._users = 0
        self._revision: Revision | None = None
        self._used: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rechecked = float("-inf")

    @property
    def loaded(self) -> bool:
        return self._revision is not None

    def any_credential(self) -> bool:
        """Whether a user or a token (revoked ones too: revoking the last token must not open the door) exists."""
        if not self.loaded:
            self.refresh()
        return self._users > 0 or bool(self._tokens)

    def token(self, key: str) -> TokenRecord | None:
        if not self.loaded:
            self.refresh()
        found = self._tokens.get(key)
        if found is None and time.monotonic() - self._rechecked >= MISS_RECHECK_SECONDS:
            self._rechecked = time.monotonic()
            try:  # made since the last poll? (the store down: unknown, as it would be until the next poll)
                self.refresh()
            except StoreError:
                return None
            found = self._tokens.get(key)
        return found

    def used(self, key: str) -> None:
        self._used[key] = datetime.now(UTC)

    def refresh(self) -> bool:
        """Reload when the stored credentials changed; True when they did."""
        revision = self.store.revision()
        if revision == self._revision:
            return False
        tokens = {t.key: t for t in self.store.tokens()}
        with self._lock:
            self._tokens, self._users, self._revision = tokens, revision[2], revision
        return True

    def flush_used(self) -> None:
        used, self._used = self._used, {}
        try:
            self.store.mark_used(used)
        except StoreError:
            for key, at in used.items():  # next time
                self._used.setdefault(key, at)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="matchday-token-cache", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush_used()

    def _poll(self) -> None:
        ticks = 0
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
                ticks += 1
                if ticks % 20 == 0:  # last-used times every ten seconds
                    self.flush_used()
            except StoreError as exc:  # the database away: keep what was loaded, try again
                log.warning("could not reload the API tokens: %s", exc)
            except Exception:
                log.exception("reloading the API tokens failed")
