"""Alert webhooks: an outbox in the database and a sender that drains it.

Deciding to alert and telling the world are two steps. `WebhookSender.enqueue` only writes the
body to the outbox (`store.WebhookOutbox`), so whoever decides never waits on a network; the
sender's background thread (or a caller of `deliver_due`) POSTs what is due:

- 2xx: delivered.
- a timeout, a connection error, 408, 429 or 5xx: tried again later with exponential backoff and
  full jitter, ``uniform(0, min(max_delay, base_delay * 2**attempts))`` seconds, or at least as long
  as the receiver's ``Retry-After`` asks on 429/503 (up to an hour); after ``max_attempts`` it gives up.
- any other answer (a 4xx, a redirect): the receiver refused the body, so it gives up at once.

Giving up is logged at ERROR and reported to ``on_give_up``. Delivery is at least once: a crash
between the POST and the write that records it sends the body again, so every request carries
``X-Matchday-Delivery: <id>`` for the receiver to drop duplicates. The outbox survives restarts; a
new sender picks up what the last one left.

URLs are logged without their path and query: webhook URLs (Slack's, for one) carry their secret there.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from matchday.errors import MatchdayError
from matchday.store import StoreUnavailable, WebhookDelivery, WebhookOutbox

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 429})  # and every 5xx
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_RETRY_AFTER_CEILING = 3600.0  # seconds: a receiver asking for more is waited on for an hour
_BATCH = 50  # deliveries per database read
_ERROR_BODY_BYTES = 500  # how much of a refusal's body goes into the error message


class InvalidWebhook(MatchdayError, ValueError):
    """A webhook URL that cannot be delivered to (only http and https URLs with a host)."""


def validate_webhook_url(url: str) -> str:
    """Return ``url`` if a webhook can be POSTed to it; raise `InvalidWebhook` saying why not.

    >>> validate_webhook_url("https://hooks.example.com/alerts")
    'https://hooks.example.com/alerts'
    >>> validate_webhook_url("ftp://example.com/x")
    Traceback (most recent call last):
    ...
    matchday.monitoring.alerts.webhooks.InvalidWebhook: webhook URL must start with http:// or https:// ('ftp:' given)
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidWebhook("webhook URL is empty")
    if url != url.strip() or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidWebhook(f"webhook URL contains whitespace or control characters: {_safe_url(url)!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError as exc:
        raise InvalidWebhook(f"webhook URL is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise InvalidWebhook(f"webhook URL must start with http:// or https:// ({shown!r} given)")
    if not parts.hostname:
        raise InvalidWebhook(f"webhook URL has no host: {_safe_url(url)!r}")
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidWebhook(f"webhook URL is not a valid URL: {exc}") from None
    return url


def backoff_delay(attempts: int, *, base_delay: float, max_delay: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the attempt numbered ``attempts + 1`` failed: full jitter.

    >>> d = backoff_delay(3, base_delay=1.0, max_delay=300.0, rng=random.Random(1))
    >>> 0.0 <= d <= 8.0
    True
    """
    ceiling = min(max_delay, base_delay * 2.0 ** min(attempts, 62))
    return (rng or random).uniform(0.0, max(ceiling, 0.0))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delay-seconds or an HTTP date); None if absent or unreadable.

    >>> parse_retry_after("120")
    120.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), _RETRY_AFTER_CEILING)  # a date in the past asks for no wait


class WebhookSender:
    """POSTs the outbox's due deliveries; ``start()`` runs that in a daemon thread every ``poll_interval``."""

    def __init__(
        self,
        outbox: WebhookOutbox,
        *,
        timeout: float = 5.0,
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        on_give_up: Callable[[WebhookDelivery, str], None] | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("base_delay and max_delay must not be negative")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, not {poll_interval}")
        from matchday import (
            __version__,  # here, not at the top: `matchday` imports this part
        )

        self.outbox = outbox
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.on_give_up = on_give_up
        self.poll_interval = poll_interval
        self.user_agent = f"matchday/{__version__}"
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)
        self._pass_lock = threading.Lock()  # one pass at a time: the thread and a direct caller
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the caller's side ------------------------------------------------------------------
    def enqueue(self, url: str, body: dict[str, Any]) -> int:
        """Write a delivery to the outbox (no network) and wake the runner; returns its id."""
        validate_webhook_url(url)
        if not isinstance(body, dict):
            raise InvalidWebhook(f"webhook body must be a JSON object (a dict), not {type(body).__name__}")
        delivery_id = self.outbox.add(url, body)
        self.wake()
        return delivery_id

    def wake(self) -> None:
        """Make the runner look at the outbox now instead of at its next poll; never blocks."""
        self._wake.set()

    # -- delivering ---------------------------------------------------------------------------
    def deliver_due(self) -> int:
        """One pass over the due deliveries; returns how many were attempted.

        Raises `StoreUnavailable` if the outbox cannot be read or written (the runner logs it and
        tries again at its next poll).
        """
        with self._pass_lock:
            return self._deliver_pass(stop=None)

    def _deliver_pass(self, stop: threading.Event | None) -> int:
        attempted = 0
        for delivery in self.outbox.due(limit=_BATCH):
            if stop is not None and stop.is_set():
                break
            self._deliver_one(delivery)
            attempted += 1
        return attempted

    def _deliver_one(self, delivery: WebhookDelivery) -> None:
        attempt = delivery.attempts + 1
        retry_after: float | None = None
        try:
            status, headers, snippet = self._post(delivery)
        except httpx.TimeoutException as exc:
            outcome, reason = "retry", f"timed out after {self.timeout:g}s ({type(exc).__name__})"
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            outcome, reason = "give_up", f"cannot send to this URL: {exc}"
        except httpx.TransportError as exc:
            outcome, reason = "retry", f"connection failed: {type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug of ours must not stop the other deliveries
            log.exception("webhook %d to %s: unexpected error", delivery.id, _safe_url(delivery.url))
            outcome, reason = "retry", f"unexpected error: {type(exc).__name__}: {exc}"
        else:
            if 200 <= status < 300:
                self.outbox.delivered(delivery.id)
                log.info(
                    "webhook %d to %s: delivered (HTTP %d, attempt %d)",
                    delivery.id,
                    _safe_url(delivery.url),
                    status,
                    attempt,
                )
                return
            reason = f"HTTP {status}" + (f": {snippet}" if snippet else "")
            if status >= 500 or status in _RETRY_STATUSES:
                outcome = "retry"
                if status in _RETRY_AFTER_STATUSES:
                    retry_after = parse_retry_after(headers.get("retry-after"))
            elif 300 <= status < 400:
                outcome = "give_up"
                reason += (
                    f" (a redirect to {_safe_url(headers.get('location', '?'))}; webhooks do not follow redirects)"
                )
            else:
                outcome = "give_up"  # the receiver refused this body: sending it again will not help
        if outcome == "retry" and attempt >= self.max_attempts:
            outcome, reason = "give_up", f"{reason} (gave up after {attempt} attempts)"
        if outcome == "give_up":
            self._give_up(delivery, attempt, reason)
            return
        delay = backoff_delay(delivery.attempts, base_delay=self.base_delay, max_delay=self.max_delay)
        if retry_after is not None:
            delay = max(delay, retry_after)
        self.outbox.failed(delivery.id, reason, datetime.now(UTC) + timedelta(seconds=delay))
        log.warning(
            "webhook %d to %s: attempt %d of %d failed (%s); next try in %.1fs",
            delivery.id,
            _safe_url(delivery.url),
            attempt,
            self.max_attempts,
            reason,
            delay,
        )

    def _post(self, delivery: WebhookDelivery) -> tuple[int, httpx.Headers, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            "X-Matchday-Delivery": str(delivery.id),
        }
        with self._client.stream("POST", delivery.url, content=orjson.dumps(delivery.body), headers=headers) as r:
            snippet = b""
            if not r.is_success:  # a little of the refusal, for the error message; never the whole body
                for chunk in r.iter_bytes():
                    snippet += chunk
                    if len(snippet) >= _ERROR_BODY_BYTES:
                        break
            text = snippet[:_ERROR_BODY_BYTES].decode("utf-8", "replace").strip()
            return r.status_code, r.headers, " ".join(text.split())

    def _give_up(self, delivery: WebhookDelivery, attempt: int, reason: str) -> None:
        self.outbox.failed(delivery.id, reason, None)
        log.error(
            "webhook %d to %s: giving up after %d attempt(s): %s", delivery.id, _safe_url(delivery.url), attempt, reason
        )
        if self.on_give_up is None:
            return
        final = replace(delivery, attempts=attempt, gave_up_at=datetime.now(UTC), last_error=reason)
        try:
            self.on_give_up(final, reason)
        except Exception:
            log.exception("webhook %d: the on_give_up callback failed", delivery.id)

    # -- the background runner ----------------------------------------------------------------
    def start(self) -> None:
        """Deliver in a daemon thread: every ``poll_interval`` seconds, and at once after `wake()`."""
        if self._thread is not None:
            raise RuntimeError("this WebhookSender was already started")
        self._thread = threading.Thread(target=self._run, name="matchday-webhooks", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the runner (after the POST in flight, if any) and release connections.

        Pending deliveries stay in the outbox for the next sender.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("webhooks: sender still busy after %.0fs; leaving it to finish as a daemon", timeout)
                return
        self._client.close()

    def _run(self) -> None:
        db_down = False
        while not self._stop.is_set():
            self._wake.clear()
            attempted = 0
            try:
                with self._pass_lock:
                    attempted = self._deliver_pass(stop=self._stop)
                if db_down:
                    log.info("webhooks: the database is reachable again")
                db_down = False
            except StoreUnavailable as exc:
                if not db_down:  # once per outage, not once per poll
                    log.warning("webhooks: cannot read the outbox, retrying every %.1fs: %s", self.poll_interval, exc)
                db_down = True
            except Exception:  # never let the thread die: alerts would silently stop
                log.exception("webhooks: unexpected error in the delivery loop")
            if attempted >= _BATCH:
                continue  # a backlog: the next batch may already be due
            self._wake.wait(self.poll_interval)


def _safe_url(url: str) -> str:
    """Scheme, host and port only: the path and query of a webhook URL are often its secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{rest}" if parts.scheme else "<URL without a scheme>"
