"""Limits that protect the server, through a real `matchday serve` on SQLite and PostgreSQL (issue 15,
item 8): a stalled request body is a 408 within the body timeout (and 50 of them hold nothing up), a
model that hangs is a 504 within the model timeout while everything else answers, a model that
raises is a 500, each logged as failed, and past ``max_in_flight`` a request is a 429 with
``Retry-After``.

One server per database for the module, with short limits: 2 s body timeout, 1 s model timeout, 3
requests in flight per deployment. Each test uses deployments of its own, so their counts are its own.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.flavor_callables import HANG_AMOUNT, HANG_FLAG_ENV
from support.server_process import ServerProcess, http, wait_until

from matchday.config import Settings
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace

BODY_TIMEOUT, MODEL_TIMEOUT, MAX_IN_FLIGHT = 2.0, 1.0, 3
ROW = {"amount": 10.0, "hour": 1, "merchant": "food", "online": False}
MODELS = {  # deployment -> the callable it serves
    "amounts": "support.flavor_callables:regress",
    "hangs": "support.flavor_callables:hang_on_666",
    "broken": "support.flavor_callables:broken",
    "slow": "support.flavor_callables:slow_half",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def limited(
    request: pytest.FixtureRequest, new_database: Any, tmp_path_factory: pytest.TempPathFactory, mixed_frame: Any
) -> Iterator[tuple[ServerProcess, Workspace, Path]]:
    """A server with short limits, the deployments of `MODELS`, and the file the hanging model waits on."""
    folder = tmp_path_factory.mktemp(f"limits-{request.param}")
    flag = folder / "hang"
    with new_database(request.param, folder) as url:
        ws = Workspace(Settings(home=folder / "home", database_url=url))
        reference = mixed_frame.drop(columns="label")
        for name, path in MODELS.items():
            if name == "broken":  # it cannot score a reference: it takes the working one's signature
                ws.registry.register(name, path, signature=ws.registry.get_signature("amounts:1"))
            else:
                ws.registry.register(name, path, reference=reference)
            ws.deployments.deploy(name, f"{name}:1")
        env = {
            "MATCHDAY_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "MATCHDAY_MODEL_TIMEOUT": str(MODEL_TIMEOUT),
            "MATCHDAY_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
            HANG_FLAG_ENV: str(flag),
        }
        server = ServerProcess(ws.settings.home, url, env=env).start()
        try:
            yield server, ws, flag
        finally:
            flag.unlink(missing_ok=True)
            server.stop()
            ws.close()


def predict(url: str, deployment: str, rows: list[dict[str, Any]]) -> httpx.Response:
    return http.post(f"{url}/v1/deployments/{deployment}/predict", json={"instances": rows}, timeout=30)


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one sample on ``/metrics`` (0 when it is not there yet)."""
    for family in text_string_to_metric_families(http.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def stall(port: int, path: str, body_part: bytes) -> socket.socket:
    """A connection that sends its headers (a 100-byte body announced) and ``body_part``, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    sock.sendall(head.encode() + body_part)
    return sock


def answer_of(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, Any], float]:
    """Read until the server closes: the status, headers, JSON body, and when it closed (monotonic)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    closed = time.monotonic()
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body), closed


def test_a_stalled_body_is_a_408_within_the_body_timeout_and_the_server_answers_meanwhile(
    limited: tuple[ServerProcess, Workspace, Path],
) -> None:
    server, _, _ = limited
    cases = [  # the fast predict path (headers only, and part of a body), a V2 route, a route reading JSON
        ("/v1/deployments/amounts/predict", b"", {"error", "details"}),
        ("/v1/deployments/amounts/predict", b'{"instances": [', {"error", "details"}),
        ("/v2/models/amounts/infer", b'{"inputs": [', {"error"}),
        ("/v1/deployments/amounts/feedback", b'{"labels": [', {"error", "details"}),
    ]
    before = metric(server.url, "matchday_body_timeouts_total")
    for path, part, shape in cases:
        started = time.monotonic()
        sock = stall(server.port, path, part)
        meanwhile = predict(server.url, "amounts", [ROW])  # answered at once, while that body stalls
        assert meanwhile.status_code == 200 and time.monotonic() - started < BODY_TIMEOUT, meanwhile.text
        assert http.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
        status, headers, body, closed = answer_of(sock)
        assert status == 408, (path, body)
        assert BODY_TIMEOUT <= closed - started < BODY_TIMEOUT + 1.5, (path, closed - started)
        assert set(body) == shape and "the request body stalled" in body["error"], body
        assert headers["connection"] == "close"  # and the server closed it: `answer_of` read to the end
    assert metric(server.url, "matchday_body_timeouts_total") == before + len(cases)


def test_fifty_stalled_connections_do_not_hold_up_a_normal_request(
    limited: tuple[ServerProcess, Workspace, Path],
) -> None:
    server, _, _ = limited
    started = time.monotonic()
    stalled = [stall(server.port, "/v1/deployments/amounts/predict", b'{"instances": [{"amount": ') for _ in range(50)]
    answered = predict(server.url, "amounts", [ROW])
    assert answered.status_code == 200 and time.monotonic() - started < BODY_TIMEOUT
    answers = [answer_of(sock) for sock in stalled]  # every one let go after the timeout
    assert [a[0] for a in answers] == [408] * 50
    assert max(a[3] for a in answers) - started < BODY_TIMEOUT + 3
    assert predict(server.url, "amounts", [ROW]).status_code == 200


def test_a_model_that_raises_is_a_500_logged_as_failed_and_the_server_keeps_serving(
    limited: tuple[ServerProcess, Workspace, Path],
) -> None:
    server, ws, _ = limited
    failed = predict(server.url, "broken", [ROW, ROW])
    assert failed.status_code == 500, failed.text
    assert "broken:1 failed to score 2 row(s): ValueError: this model is broken" in failed.json()["error"]
    assert predict(server.url, "amounts", [ROW]).status_code == 200
    log = PredictionLogStore(ws.database)
    rows = wait_until(lambda: log.recent("broken", errors=None), 30, "the failed rows in the log")
    wait_until(lambda: len(log.recent("broken", errors=None)) == 2, 10, "both failed rows")
    assert all("this model is broken" in (r.error or "") for r in log.recent("broken", errors=None)), rows


def test_a_hanging_model_is_a_504_within_the_model_timeout_and_everything_else_answers(
    limited: tuple[ServerProcess, Workspace, Path],
) -> None:
    """Two hangs in a row leave two stuck calls (their threads cannot be stopped): the version then
    fails fast (503) until one returns, and answers again after."""
    server, ws, flag = limited
    hang = {**ROW, "amount": HANG_AMOUNT}
    labels = {"deployment": "hangs", "model": "hangs", "version": "1"}
    flag.touch()
    hung: list[tuple[httpx.Response, float]] = []

    def hang_once() -> None:
        started = time.monotonic()
        hung.append((predict(server.url, "hangs", [hang]), time.monotonic() - started))

    caller = threading.Thread(target=hang_once)
    caller.start()
    time.sleep(0.2)  # the model is hanging now: everything else still answers
    started = time.monotonic()
    assert http.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
    assert predict(server.url, "amounts", [ROW]).status_code == 200
    assert http.get(f"{server.url}/metrics", timeout=5).status_code == 200
    assert time.monotonic() - started < MODEL_TIMEOUT
    caller.join(30)
    (timed_out, took) = hung[0]
    assert timed_out.status_code == 504, timed_out.text
    assert MODEL_TIMEOUT <= took < MODEL_TIMEOUT + 1.5, took
    message = timed_out.json()["error"]
    assert "deployment 'hangs': hangs:1 did not answer within 1 s (the model timeout" in message, message

    assert predict(server.url, "hangs", [ROW]).json()["predictions"][0]["prediction"] == 5.0  # a fresh thread
    assert predict(server.url, "hangs", [hang]).status_code == 504  # a second stuck call
    started = time.monotonic()
    refused = predict(server.url, "hangs", [ROW])
    assert refused.status_code == 503 and time.monotonic() - started < MODEL_TIMEOUT, refused.text
    assert "was not called: 2 earlier call(s) are still running" in refused.json()["error"]
    assert metric(server.url, "matchday_model_timeouts_total", **labels) == 2
    assert metric(server.url, "matchday_model_stuck_calls", **labels) == 2

    flag.unlink()  # the stuck calls return: the version is called again
    wait_until(lambda: metric(server.url, "matchday_model_stuck_calls", **labels) == 0, 10, "no stuck call")
    assert predict(server.url, "hangs", [ROW]).status_code == 200

    log = PredictionLogStore(ws.database)  # every answered request left its row: 2 answers, 2 timeouts, 1 refusal
    wait_until(lambda: len(log.recent("hangs", errors=None)) == 5, 30, "five rows of 'hangs' in the log")
    errors = sorted((r.error or "").split(":")[0] for r in log.recent("hangs", errors=None))
    assert errors == ["", "", "ModelStuck", "ModelTimeout", "ModelTimeout"], errors


def test_past_max_in_flight_a_request_is_a_429_with_retry_after(
    limited: tuple[ServerProcess, Workspace, Path],
) -> None:
    server, _, _ = limited
    start = threading.Barrier(12)

    def one(i: int) -> httpx.Response:
        start.wait()
        if i % 4 == 3:  # the Open Inference Protocol's route has the same bound
            inputs = [{"name": k, "shape": [1], "datatype": _v2_type(v), "data": [v]} for k, v in ROW.items()]
            return http.post(f"{server.url}/v2/models/slow/infer", json={"inputs": inputs}, timeout=30)
        return predict(server.url, "slow", [ROW])

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(12)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 429}, [a.text for a in answers]
    refused = [a for a in answers if a.status_code == 429]
    assert refused and statuses.count(200) >= MAX_IN_FLIGHT, statuses
    for answer in refused:
        assert answer.headers["retry-after"] == "1"
        body = answer.json()
        assert set(body) == ({"error"} if answer.request.url.path.startswith("/v2") else {"error", "details"}), body
        assert f"already has {MAX_IN_FLIGHT} requests in progress" in body["error"]
    assert metric(server.url, "matchday_requests_over_limit_total", deployment="slow") == len(refused)
    assert predict(server.url, "slow", [ROW]).status_code == 200  # the bound is on what is in progress, not a quota


def _v2_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    return "FP64" if isinstance(value, float) else "BYTES"
