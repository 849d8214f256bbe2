"""Edge telemetry through a real `matchday serve`, posted with nothing but the standard library's urllib
(as a device would): the acknowledgement, a replay, every refusal with its status and message, the body
limit, the devices list and page, and a database that goes away (a 503, nothing acknowledged, the same
sync accepted whole once it is back)."""

from __future__ import annotations

import http.client as http_client
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.postgres_outage import set_connections
from support.server_process import ServerProcess, http

from matchday.client import Client
from matchday.config import Settings
from matchday.edge import request_id
from matchday.store import PredictionLogStore
from matchday.workspace import Workspace

FEATURES = ["f0", "f1"]
pytestmark = pytest.mark.slow  # one server for the module


@pytest.fixture(scope="module")
def store_url(new_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """PostgreSQL only: the route's service and store run on both backends in test_edge_telemetry.py, and
    the outage below needs a server that can refuse connections."""
    with new_database("postgresql", tmp_path_factory.mktemp("module-db")) as url:
        yield url


@pytest.fixture(scope="module")
def workspace(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("edge-http")
    ws = Workspace(Settings(home=folder / "home", database_url=store_url))
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=FEATURES)
    frame["y"] = (frame["f0"] > 0).astype(int)
    ws.registry.register("churn", LogisticRegression().fit(frame[FEATURES], frame["y"]), reference=frame, target="y")
    ws.deployments.deploy("checkout", "churn:1")
    ws.deployments.deploy("other", "churn:1")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def tokens(workspace: Workspace) -> dict[str, str]:
    """Two devices' tokens and a viewer's (made before the server starts: it asks for credentials from then on)."""
    edge = workspace.edge_telemetry
    made = {name: edge.register(name, "checkout", "test")[0] for name in ("d1", "d2", "d-outage")}
    made["viewer"] = workspace.access.create_token(["viewer"], name="a viewer", created_by="test")[0]
    return made


@pytest.fixture(scope="module")
def server(workspace: Workspace, tokens: dict[str, str]) -> Iterator[ServerProcess]:
    running = ServerProcess(workspace.settings.home, workspace.settings.database_url).start()
    yield running
    running.stop()


def _body(seqs: list[int], epoch: str, **extra: Any) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(minutes=30)
    return {
        "deployment": "checkout",
        "epoch": epoch,
        "bundle": {"model": "churn", "version": 1, "sha256": "ab" * 32},
        "predictions": [
            {
                "seq": s,
                "at": (at + timedelta(seconds=s)).isoformat(),
                "inputs": {"f0": 0.5, "f1": -1.0 * s},
                "prediction": 1,
                "probabilities": [0.3, 0.7],
                "latency_seconds": 0.0004,
                "model": "churn",
                "version": 1,
            }
            for s in seqs
        ],
        "labels": [],
        **extra,
    }


def _post(server: ServerProcess, device: str, body: Any, token: str | None) -> tuple[int, dict[str, Any]]:
    """A sync the way a device sends it: urllib, JSON, a bearer token."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{server.url}/v1/edge/devices/{device}/telemetry", data=json.dumps(body).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_sync_is_acknowledged_and_a_replay_acknowledged_again(
    server: ServerProcess, workspace: Workspace, tokens: dict[str, str]
) -> None:
    epoch = secrets.token_hex(16)
    labels = [{"id": 1, "seq": 2, "label": 1}, {"id": 2, "seq": 50, "label": 0}]
    status, ack = _post(server, "d1", _body([1, 2, 3], epoch, labels=labels), tokens["d1"])
    assert status == 200, ack
    assert (ack["device"], ack["written"], ack["already_logged"], ack["labels_applied"]) == ("d1", 3, 0, 1)
    assert ack["acknowledged"] == {"predictions": [1, 2, 3], "labels": [1, 2]}
    assert [u["id"] for u in ack["labels_unmatched"]] == [2]
    status, again = _post(server, "d1", _body([2, 3, 4], epoch), tokens["d1"])
    assert status == 200 and (again["written"], again["already_logged"]) == (1, 2)
    row = PredictionLogStore(workspace.database).get(request_id("d1", epoch, 2))
    assert row is not None and row.routing["source"] == "edge" and row.routing["device"] == "d1"
    assert (row.label, row.label_source) == (1, "edge")


@pytest.mark.parametrize(
    ("device", "token", "change", "status", "message"),
    [
        ("d1", None, {}, 401, "needs a credential"),
        ("d1", "md_nonsense", {}, 401, "not a matchday token"),
        ("d1", "d2", {}, 403, "may not send telemetry for device d1"),
        ("ghost", "d1", {}, 404, "matchday edge devices add ghost --deployment NAME"),
        ("d1", "d1", {"deployment": "other"}, 409, "registered to deployment 'checkout', not 'other'"),
        ("d1", "d1", {"epoch": "nope"}, 422, "problem(s) in the telemetry"),
        ("d1", "viewer", {}, 403, "needs the predictor role"),
    ],
    ids=["no-token", "bad-token", "another-devices-token", "unknown-device", "wrong-deployment", "bad-epoch", "viewer"],
)
def test_refusals(
    server: ServerProcess,
    workspace: Workspace,
    tokens: dict[str, str],
    device: str,
    token: str | None,
    change: dict[str, Any],
    status: int,
    message: str,
) -> None:
    epoch = secrets.token_hex(16)
    given = tokens.get(token, token) if token is not None else None
    got, answer = _post(server, device, {**_body([1], epoch), **change}, given)
    assert got == status and message in answer["error"], answer
    assert "details" in answer
    assert PredictionLogStore(workspace.database).get(request_id(device, epoch, 1)) is None


def test_rows_that_do_not_fit_are_named_and_nothing_is_written(
    server: ServerProcess, workspace: Workspace, tokens: dict[str, str]
) -> None:
    epoch = secrets.token_hex(16)
    body = _body([1, 2, 3], epoch)
    body["predictions"][2]["inputs"]["f1"] = "warm"
    del body["predictions"][1]["inputs"]["f0"]
    status, answer = _post(server, "d1", body, tokens["d1"])
    assert status == 422, answer
    fields = {(d["field"], d.get("seq")) for d in answer["details"]}
    assert fields == {("predictions[1].inputs", 2), ("predictions[2].inputs", 3)}
    assert all(PredictionLogStore(workspace.database).get(request_id("d1", epoch, s)) is None for s in (1, 2, 3))


def test_bodies_past_the_limits(server: ServerProcess, tokens: dict[str, str]) -> None:
    status, answer = _post(server, "d1", _body(list(range(1, 1002)), secrets.token_hex(16)), tokens["d1"])
    assert status == 413 and "at most 1,000" in answer["error"]
    connection = http_client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:  # a body announced past the byte limit is refused before it is read
        connection.putrequest("POST", "/v1/edge/devices/d1/telemetry")
        connection.putheader("Authorization", f"Bearer {tokens['d1']}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(64 * 1024 * 1024))
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 413 and "the limit is 8,388,608" in json.loads(answer.read())["error"]
    finally:
        connection.close()


def test_devices_are_listed_for_viewers(server: ServerProcess, tokens: dict[str, str]) -> None:
    _post(server, "d2", _body([1], secrets.token_hex(16)), tokens["d2"])
    answer = http.get(f"{server.url}/v1/edge/devices", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert answer.status_code == 200
    devices = {d["device"]: d for d in answer.json()["devices"]}
    assert {"d1", "d2", "d-outage"} <= set(devices)
    assert devices["d2"]["deployment"] == "checkout" and devices["d2"]["rows_received"] >= 1
    assert devices["d2"]["last_sync_at"] is not None and "token" not in devices["d2"]
    refused = http.get(f"{server.url}/v1/edge/devices", headers={"Authorization": f"Bearer {tokens['d2']}"})
    assert refused.status_code == 403  # a device's token predicts; it reads nothing
    with Client(server.url, token=tokens["viewer"]) as client:
        assert {d["device"] for d in client.edge_devices("checkout")} == set(devices)
        assert client.edge_devices("other") == []
    page = http.get(f"{server.url}/edge/devices", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert page.status_code == 200 and 'data-device="d2"' in page.text


def test_a_database_that_goes_away_acknowledges_nothing(
    server: ServerProcess, workspace: Workspace, tokens: dict[str, str]
) -> None:
    """PostgreSQL refuses connections (the tokens are in the server's memory, so the device is let in):
    a clear 503 with no acknowledgement; once it is back, the same sync is written whole (nothing was before)."""
    url = workspace.settings.database_url
    if not url.startswith("postgresql"):
        pytest.skip("the outage is made by refusing connections to a PostgreSQL database")
    epoch = secrets.token_hex(16)
    body = _body([1, 2, 3], epoch, labels=[{"id": 9, "seq": 1, "label": 1}])
    workspace.database.dispose()
    set_connections(url, False)
    try:
        status, answer = _post(server, "d-outage", body, tokens["d-outage"])
    finally:
        set_connections(url, True)
    assert status == 503, answer
    assert "cannot reach the database" in answer["error"] and "acknowledged" not in answer
    status, ack = _post(server, "d-outage", body, tokens["d-outage"])
    assert status == 200 and (ack["written"], ack["already_logged"], ack["labels_applied"]) == (3, 0, 1), ack
