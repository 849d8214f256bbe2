"""Retraining over HTTP through a real `matchday serve` (without its worker: a run started here stays queued
unless a test moves it), on SQLite and PostgreSQL, with access control on: the routes' shapes, their
errors (404, 409, 400), who may call them (401, 403), and the Python client's methods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.retrain_surface_support import policy, set_up, write_config
from support.server_process import ServerProcess, http

from matchday.client import Client, ServerError
from matchday.config import load_settings
from matchday.workspace import Workspace

WITH_POLICY = ("cancer", "gated", "client")  # one deployment per test that starts runs: one run at a time each
Served = tuple[ServerProcess, Workspace, dict[str, str]]


@pytest.fixture(scope="module")
def served(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("retrain-http")
    config = write_config(home, *(policy(name) for name in WITH_POLICY))  # read by the server from its cwd
    ws = Workspace(load_settings({"MATCHDAY_HOME": str(home), "MATCHDAY_DATABASE_URL": store_url}, config))
    for name in (*WITH_POLICY, "plain"):
        set_up(ws, name)
    tokens = {
        role: ws.access.create_token([role], name=f"{role} token", created_by="test")[0]
        for role in ("viewer", "reviewer", "operator")
    }
    try:
        with ServerProcess(home, store_url) as server:
            yield server, ws, tokens
    finally:
        ws.close()


def call(server: ServerProcess, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.request(method, server.url + path, headers=headers, timeout=30, **kwargs)


def test_a_policy_and_its_dry_run_are_read_and_what_is_not_there_is_404(served: Served) -> None:
    server, _, tokens = served
    viewer = tokens["viewer"]
    answer = call(server, "GET", "/v1/deployments/cancer/retrain/policy", viewer)
    assert answer.status_code == 200, answer.text
    effective = answer.json()
    assert effective["deployment"] == "cancer" and effective["policy"]["trainer"] == "support.retrain_support:train"
    assert effective["policy"]["guards"] == {
        "cooldown": 21600.0,
        "max_per_day": 3,
        "stop_after_rejections": 2,
        "approval": "before_rollout",
    }  # the defaults filled in, durations in seconds
    for path in ("/v1/deployments/plain/retrain/policy", "/v1/deployments/nowhere/retrain/policy"):
        missing = call(server, "GET", path, viewer)
        assert missing.status_code == 404 and "has no retraining policy" in missing.json()["error"], missing.text

    dry = call(server, "GET", "/v1/deployments/cancer/retrain/simulate?since=1d", viewer)
    assert dry.status_code == 200, dry.text
    found = dry.json()
    assert found["deployment"] == "cancer" and found["windows"] == {"accuracy-drop": 0}
    assert [t["trigger"] for t in found["triggers"]] == ["schedule"] * 4 and found["runs"] == 0
    assert {t["outcome"] for t in found["triggers"]} == {"suppressed"}  # no labels in this database
    assert found["triggers"][0]["reason"].startswith("too few labels") and found["notes"]
    for query, said in (("since=soon", "since: 'soon' is neither"), ("since=1h&until=2h", "must come after")):
        bad = call(server, "GET", f"/v1/deployments/cancer/retrain/simulate?{query}", viewer)
        assert bad.status_code == 400 and said in bad.json()["error"], bad.text
    assert call(server, "GET", "/v1/deployments/plain/retrain/simulate", viewer).status_code == 404

    for run_id in ("999999", "0", "-3", str(2**63)):
        gone = call(server, "GET", f"/v1/retrain/runs/{run_id}", viewer)
        assert gone.status_code == 404 and "no retraining run with id" in gone.json()["error"], (run_id, gone.text)
    assert call(server, "GET", "/v1/retrain/runs", None).status_code == 401
    assert call(server, "GET", "/v1/deployments/cancer/retrain/policy", None).status_code == 401


def test_an_operator_runs_and_cancels_and_a_second_run_is_refused(served: Served) -> None:
    server, _, tokens = served
    path = "/v1/deployments/cancer/retrain"
    assert call(server, "POST", path, None, json={}).status_code == 401
    for role in ("viewer", "reviewer"):  # reading is theirs, acting is an operator's
        refused = call(server, "POST", path, tokens[role], json={})
        assert refused.status_code == 403, (role, refused.text)
    operator = tokens["operator"]
    started = call(server, "POST", path, operator, json={"reason": "labels arrived"})
    assert started.status_code == 201, started.text
    run = started.json()
    assert (run["deployment"], run["state"], run["parent"], run["candidate"]) == ("cancer", "queued", "cancer:1", None)
    assert run["actor"].startswith("token:") and run["actor"].endswith(" (operator token)")  # who asked
    assert run["trigger"] == {"kind": "manual", "reason": "labels arrived"} and run["active"]
    assert run["steps"][0]["message"] == "retraining of cancer:1 queued: labels arrived"
    again = call(server, "POST", path, operator)  # no body at all
    assert again.status_code == 409 and f"in progress (run {run['id']})" in again.json()["error"], again.text
    assert call(server, "POST", "/v1/deployments/plain/retrain", operator).status_code == 404

    listed = call(server, "GET", "/v1/retrain/runs?deployment=cancer&limit=5", tokens["viewer"]).json()["runs"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert call(server, "GET", "/v1/retrain/runs?deployment=plain", tokens["viewer"]).json() == {"runs": []}
    one = call(server, "GET", f"/v1/retrain/runs/{run['id']}", tokens["viewer"])
    assert one.status_code == 200 and one.json() == run

    premature = call(server, "POST", f"/v1/retrain/runs/{run['id']}/approve", operator, json={})
    assert premature.status_code == 409 and "queued, not awaiting approval" in premature.json()["error"]
    for body, said in (
        ({"why": "x"}, "unknown field(s) why"),
        ({"reason": 5}, '"reason" must be a string'),
        ([1], "the body, if any, must be"),
    ):
        bad = call(server, "POST", f"/v1/retrain/runs/{run['id']}/cancel", operator, json=body)
        assert bad.status_code == 400 and said in bad.json()["error"], bad.text
    refused = call(server, "POST", f"/v1/retrain/runs/{run['id']}/cancel", tokens["viewer"], json={})
    assert refused.status_code == 403
    cancelled = call(server, "POST", f"/v1/retrain/runs/{run['id']}/cancel", operator, json={"reason": "wrong data"})
    assert cancelled.status_code == 200, cancelled.text
    ended = cancelled.json()
    assert ended["state"] == "cancelled" and not ended["active"] and ended["finished_at"] is not None
    assert ended["reason"].startswith("cancelled by token:") and ended["reason"].endswith(": wrong data")
    twice = call(server, "POST", f"/v1/retrain/runs/{run['id']}/cancel", operator)
    assert twice.status_code == 409 and "has already ended (cancelled)" in twice.json()["error"]
    assert call(server, "POST", "/v1/retrain/runs/424242/cancel", operator).status_code == 404


def test_a_run_awaiting_approval_is_approved_by_an_operator(served: Served) -> None:
    server, ws, tokens = served
    operator = tokens["operator"]
    run = call(server, "POST", "/v1/deployments/gated/retrain", operator).json()
    # what the worker's evaluation step leaves (this server runs no worker, and no trainer runs here)
    record = ws.retraining.get(run["id"])
    ws.retraining.parts.store.update(
        record, {"state": "awaiting_approval", "candidate": "cancer:1"}, ("accepted (set by the test)", {})
    )
    refused = call(server, "POST", f"/v1/retrain/runs/{run['id']}/approve", tokens["viewer"])
    assert refused.status_code == 403
    approved = call(server, "POST", f"/v1/retrain/runs/{run['id']}/approve", operator, json={"reason": "looked fine"})
    assert approved.status_code == 200, approved.text
    after = approved.json()
    assert after["state"] == "rolling_out" and after["active"]
    assert after["steps"][-1]["message"].startswith("approved by token:")
    assert after["steps"][-1]["message"].endswith(": looked fine")
    again = call(server, "POST", f"/v1/retrain/runs/{run['id']}/approve", operator)
    assert again.status_code == 409 and "rolling_out, not awaiting approval" in again.json()["error"]
    assert call(server, "POST", f"/v1/retrain/runs/{run['id']}/cancel", operator).json()["state"] == "cancelled"


def test_the_client_reads_and_acts_on_runs(served: Served) -> None:
    server, _, tokens = served
    with Client(server.url, token=tokens["operator"]) as client:
        assert client.retrain_policy("client")["deployment"] == "client"
        run = client.retrain("client", reason="from the client")
        assert run["state"] == "queued" and run["trigger"]["reason"] == "from the client"
        assert [r["id"] for r in client.retrain_runs("client")] == [run["id"]]
        assert run["id"] in [r["id"] for r in client.retrain_runs(limit=100)]
        assert client.retrain_run(run["id"])["id"] == run["id"]
        with pytest.raises(ServerError) as conflict:
            client.retrain("client")
        assert conflict.value.status == 409
        with pytest.raises(ServerError) as premature:
            client.approve_retrain(run["id"])
        assert premature.value.status == 409
        assert client.cancel_retrain(run["id"], reason="done")["state"] == "cancelled"
        with pytest.raises(ServerError) as missing:
            client.retrain_run(10**6)
        assert missing.value.status == 404
        dry = client.simulate_retraining("client", since="1d")
        assert dry["deployment"] == "client" and len(dry["triggers"]) == 4
    with Client(server.url, token=tokens["viewer"]) as reader, pytest.raises(ServerError) as refused:
        reader.retrain("client")
    assert refused.value.status == 403
