"""Alert webhooks go out through the outbox to a real HTTP receiver: delivered once, retried with
backoff on what may pass, given up on at once when refused, and never lost across a restart."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import matchday
from matchday.errors import MatchdayError
from matchday.monitoring.alerts.webhooks import InvalidWebhook, WebhookSender, parse_retry_after, validate_webhook_url
from matchday.store import Database, StoreUnavailable, WebhookDelivery, WebhookOutbox
from matchday.workspace import Workspace

BODY = {
    "alert": "drift",
    "deployment": "fraud",
    "value": 0.31,
    "threshold": 0.2,
    "columns": ["amount", "hour"],
    "message": "PSI 0.31 > 0.2 — éclairage faible",
    "nested": {"ok": False, "n": None},
}


# -- a small receiver ---------------------------------------------------------------------------
@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    sleep: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An HTTP server on 127.0.0.1 answering POSTs from a script of replies (then 200s)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: list[Reply] = []
        self._always: Reply | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server convention
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                reply = receiver._record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(reply.sleep)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender timed out and hung up, as the test intends

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def plan(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def always(self, reply: Reply) -> None:
        with self._lock:
            self._always = reply

    def _record(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.pop(0)
            return self._always or Reply()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def outbox(workspace: Workspace) -> WebhookOutbox:
    return WebhookOutbox(workspace.database)


@pytest.fixture
def make_sender(outbox: WebhookOutbox) -> Iterator[Callable[..., WebhookSender]]:
    senders: list[WebhookSender] = []

    def make(box: WebhookOutbox | None = None, **kwargs: Any) -> WebhookSender:
        kwargs.setdefault("base_delay", 0.01)
        kwargs.setdefault("max_delay", 0.05)
        kwargs.setdefault("timeout", 2.0)
        sender = WebhookSender(box or outbox, **kwargs)
        senders.append(sender)
        return sender

    yield make
    for s in senders:
        s.close()


def get(outbox: WebhookOutbox, delivery_id: int) -> WebhookDelivery:
    return next(d for d in outbox.all() if d.id == delivery_id)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """A guard against hanging, not a speed assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def settle(sender: WebhookSender, outbox: WebhookOutbox, delivery_id: int) -> WebhookDelivery:
    """Call deliver_due until the delivery is delivered or given up on."""

    def done() -> bool:
        sender.deliver_due()
        d = get(outbox, delivery_id)
        return d.delivered_at is not None or d.gave_up_at is not None

    wait_until(done)
    return get(outbox, delivery_id)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- delivering ---------------------------------------------------------------------------------
def test_delivered_once_with_the_exact_body_and_headers(
    receiver: Receiver, outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]
) -> None:
    sender = make_sender()
    delivery_id = sender.enqueue(receiver.url("/alerts?team=ml"), BODY)
    assert receiver.requests == []  # enqueueing never touches the network

    assert sender.deliver_due() == 1
    assert sender.deliver_due() == 0

    [request] = receiver.requests
    assert request.path == "/alerts?team=ml"
    assert json.loads(request.body) == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"matchday/{matchday.__version__}"
    assert request.headers["x-matchday-delivery"] == str(delivery_id)
    d = get(outbox, delivery_id)
    assert d.delivered_at is not None and d.gave_up_at is None
    assert d.attempts == 1 and d.last_error is None
    assert d.body == BODY


def test_server_errors_are_retried_until_delivered(
    receiver: Receiver, outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver.plan(Reply(500, body=b"oops"), Reply(502))
    sender = make_sender()
    delivery_id = sender.enqueue(receiver.url(), BODY)

    sender.deliver_due()
    first = get(outbox, delivery_id)
    assert first.delivered_at is None and first.gave_up_at is None
    assert first.attempts == 1 and first.last_error is not None and "HTTP 500" in first.last_error

    d = settle(sender, outbox, delivery_id)
    assert d.delivered_at is not None and d.attempts == 3 and d.last_error is None
    assert len(receiver.requests) == 3
    assert {r.headers["x-matchday-delivery"] for r in receiver.requests} == {str(delivery_id)}
    assert all(json.loads(r.body) == BODY for r in receiver.requests)


def test_a_receiver_slower_than_the_timeout_is_retried(
    receiver: Receiver, outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver.plan(Reply(200, sleep=3.0))
    sender = make_sender(timeout=0.5)
    delivery_id = sender.enqueue(receiver.url(), BODY)

    assert sender.deliver_due() == 1
    first = get(outbox, delivery_id)
    assert first.delivered_at is None and first.attempts == 1
    assert first.last_error is not None and "timed out" in first.last_error

    d = settle(sender, outbox, delivery_id)
    assert d.delivered_at is not None and d.attempts == 2


def test_an_unreachable_receiver_stays_pending(
    outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]
) -> None:
    sender = make_sender()
    delivery_id = sender.enqueue(f"http://127.0.0.1:{closed_port()}/hook", BODY)
    assert sender.deliver_due() == 1
    d = get(outbox, delivery_id)
    assert d.delivered_at is None and d.gave_up_at is None and d.attempts == 1
    assert d.last_error is not None and "connection failed" in d.last_error


def test_a_refusal_gives_up_at_once(
    receiver: Receiver,
    outbox: WebhookOutbox,
    make_sender: Callable[..., WebhookSender],
    caplog: pytest.LogCaptureFixture,
) -> None:
    statuses = [400, 404, 410, 422, 302]
    for status in statuses:
        headers = {"Location": "https://elsewhere.example/secret-path"} if status == 302 else {}
        receiver.plan(Reply(status, headers, b'{"error": "field \\"value\\" is not allowed"}'))
    gave_up: list[tuple[WebhookDelivery, str]] = []
    sender = make_sender(on_give_up=lambda d, reason: gave_up.append((d, reason)))
    ids = [sender.enqueue(receiver.url("/services/T000/B000/secret-token"), BODY) for _ in statuses]

    with caplog.at_level(logging.INFO, logger="matchday.monitoring.alerts.webhooks"):
        assert sender.deliver_due() == len(statuses)  # delivered in id order, so each meets its status
    assert sender.deliver_due() == 0

    assert len(receiver.requests) == len(statuses)
    assert [g.id for g, _ in gave_up] == ids
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == len(statuses)
    for status, delivery_id, (given, reason), error in zip(statuses, ids, gave_up, errors, strict=True):
        d = get(outbox, delivery_id)
        assert d.gave_up_at is not None and d.delivered_at is None and d.attempts == 1
        assert d.last_error is not None and d.last_error.startswith(f"HTTP {status}")
        if status != 302:
            assert "is not allowed" in d.last_error  # the receiver's own words, for whoever reads the error
        assert given.gave_up_at is not None and given.attempts == 1 and reason == d.last_error
        assert f"HTTP {status}" in error
    assert "secret" not in caplog.text  # webhook URLs carry their secret in the path


def test_gives_up_when_attempts_are_exhausted(
    receiver: Receiver, outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver.always(Reply(503))
    gave_up: list[tuple[WebhookDelivery, str]] = []
    sender = make_sender(max_attempts=3, on_give_up=lambda d, reason: gave_up.append((d, reason)))
    delivery_id = sender.enqueue(receiver.url(), BODY)

    d = settle(sender, outbox, delivery_id)
    assert d.gave_up_at is not None and d.delivered_at is None and d.attempts == 3
    assert d.last_error is not None and "HTTP 503" in d.last_error and "3 attempts" in d.last_error
    assert len(receiver.requests) == 3
    assert [g.id for g, _ in gave_up] == [delivery_id]


def test_a_failing_give_up_callback_is_logged_not_raised(
    receiver: Receiver,
    outbox: WebhookOutbox,
    make_sender: Callable[..., WebhookSender],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(delivery: WebhookDelivery, reason: str) -> None:
        raise RuntimeError("pager is down")

    receiver.plan(Reply(400))
    sender = make_sender(on_give_up=broken)
    first = sender.enqueue(receiver.url(), BODY)
    second = sender.enqueue(receiver.url(), BODY)
    with caplog.at_level(logging.ERROR, logger="matchday.monitoring.alerts.webhooks"):
        assert sender.deliver_due() == 2
    assert get(outbox, first).gave_up_at is not None
    assert get(outbox, second).delivered_at is not None  # the rest of the pass went on
    assert "on_give_up callback failed" in caplog.text


def test_retry_after_is_honoured(
    receiver: Receiver, outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver.plan(Reply(429, {"Retry-After": "30"}), Reply(503, {"Retry-After": "45"}))
    sender = make_sender()
    too_many = sender.enqueue(receiver.url(), BODY)
    unavailable = sender.enqueue(receiver.url(), BODY)
    before = datetime.now(UTC)
    assert sender.deliver_due() == 2

    for delivery_id, seconds in [(too_many, 30), (unavailable, 45)]:
        d = get(outbox, delivery_id)
        assert d.attempts == 1 and d.delivered_at is None and d.gave_up_at is None
        assert d.next_attempt_at >= before + timedelta(seconds=seconds)
    assert sender.deliver_due() == 0  # not due yet
    assert len(receiver.requests) == 2


def test_backoff_stays_within_its_jitter_bound(
    receiver: Receiver, outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver.always(Reply(500))
    sender = make_sender(base_delay=10.0, max_delay=1000.0)
    delivery_id = sender.enqueue(receiver.url(), BODY)
    before = datetime.now(UTC)
    sender.deliver_due()
    after = datetime.now(UTC)
    d = get(outbox, delivery_id)
    assert before <= d.next_attempt_at <= after + timedelta(seconds=10)  # first retry: uniform(0, base_delay)


def test_parse_retry_after() -> None:
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("999999") == 3600.0  # capped
    assert parse_retry_after("nan") is None and parse_retry_after("") is None and parse_retry_after(None) is None
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 May 2024 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0


# -- restarts and the runner ---------------------------------------------------------------------
def test_a_pending_delivery_survives_a_restart(
    receiver: Receiver, workspace: Workspace, outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver.plan(Reply(500))
    before = make_sender()
    delivery_id = before.enqueue(receiver.url(), BODY)
    before.deliver_due()
    before.close()
    assert get(outbox, delivery_id).attempts == 1

    restarted_db = Database(workspace.database.url)  # a new process would open its own
    try:
        restarted_box = WebhookOutbox(restarted_db)
        after = make_sender(restarted_box)
        d = settle(after, restarted_box, delivery_id)
    finally:
        restarted_db.dispose()
    assert d.delivered_at is not None and d.attempts == 2
    assert [r.headers["x-matchday-delivery"] for r in receiver.requests] == [str(delivery_id)] * 2
    assert json.loads(receiver.requests[-1].body) == BODY


def test_the_runner_delivers_after_wake(
    receiver: Receiver, outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]
) -> None:
    sender = make_sender(poll_interval=60.0)  # only wake() can make it look again within the test
    sender.start()
    time.sleep(0.05)  # let its first pass find the outbox empty and go to sleep
    delivery_id = sender.outbox.add(receiver.url(), BODY)  # added behind its back...
    sender.wake()  # ...and pointed out
    wait_until(lambda: get(outbox, delivery_id).delivered_at is not None)
    second = sender.enqueue(receiver.url(), {"n": 2})  # enqueue wakes it by itself
    wait_until(lambda: get(outbox, second).delivered_at is not None)
    assert sender.running
    sender.close()
    assert not sender.running
    assert len(receiver.requests) == 2


class FlakyOutbox(WebhookOutbox):
    """The database goes away for the first reads."""

    def __init__(self, db: Database, outages: int) -> None:
        super().__init__(db)
        self.outages = outages

    def due(self, now: datetime | None = None, limit: int = 50) -> list[WebhookDelivery]:
        if self.outages > 0:
            self.outages -= 1
            raise StoreUnavailable("cannot reach the database (test)")
        return super().due(now, limit)


def test_the_runner_survives_database_outages(
    receiver: Receiver,
    workspace: Workspace,
    outbox: WebhookOutbox,
    make_sender: Callable[..., WebhookSender],
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = FlakyOutbox(workspace.database, outages=3)
    sender = make_sender(flaky, poll_interval=0.02)
    delivery_id = outbox.add(receiver.url(), BODY)
    with caplog.at_level(logging.WARNING, logger="matchday.monitoring.alerts.webhooks"):
        sender.start()
        wait_until(lambda: get(outbox, delivery_id).delivered_at is not None)
    assert flaky.outages == 0 and sender.running
    assert sum("cannot read the outbox" in r.getMessage() for r in caplog.records) == 1  # once per outage
    with pytest.raises(RuntimeError):
        sender.start()


# -- what may be enqueued -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "example.com/hook",
        "http://",
        "https:///path",
        "http://exa mple.com/",
        " http://example.com/",
        "http://example.com:99999/",
        "http://example.com:port/",
        "javascript:alert(1)",
        "mailto:ops@example.com",
    ],
    ids=lambda u: repr(u),
)
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidWebhook) as info:
        validate_webhook_url(url)
    assert isinstance(info.value, ValueError) and isinstance(info.value, MatchdayError)
    assert "webhook URL" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/hook",
        "https://hooks.example.com/services/T/B/x?a=1",
        "HTTPS://EXAMPLE.COM",
        "http://[::1]:9000/h",
        "http://user:pw@example.com/",
    ],
)
def test_valid_urls_pass(url: str) -> None:
    assert validate_webhook_url(url) == url


def test_enqueue_refuses_before_writing(outbox: WebhookOutbox, make_sender: Callable[..., WebhookSender]) -> None:
    sender = make_sender()
    with pytest.raises(InvalidWebhook):
        sender.enqueue("ftp://example.com/hook", BODY)
    with pytest.raises(InvalidWebhook):
        sender.enqueue("https://example.com/hook", ["not", "an", "object"])  # type: ignore[arg-type]
    assert outbox.all() == []
    sender.close()  # never started: closes all the same
    assert not sender.running
