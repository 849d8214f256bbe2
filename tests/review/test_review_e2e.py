"""Humans in the loop through a real `matchday serve` with its worker, on SQLite and PostgreSQL:
what each level's answer says and queues, reviewers claiming and deciding over HTTP with their
tokens (and a caller without the role refused), decisions read back by the client and sent to its
webhook, decisions joined to the log as labels, the worker's deadline fallbacks, bad requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support.rollout_support import cancer_frame, fitted
from support.server_process import ServerProcess, http, wait_until

from matchday.config import Settings
from matchday.workspace import Workspace

MODEL = "cancer"
LEVELS = {
    "governed": {"level": "machine_led_human_governed", "review_rule": "prediction == 0", "audit_rate": 0.0},
    "led": {"level": "human_led", "reviews_required": 2},
    "audited": {"level": "machine_led_human_supported", "audit_rate": 1.0},
    "quick": {"level": "human_led_machine_supported", "review_deadline": "2s", "deadline_fallback": "approve"},
    "plain": None,
}


class Hook:
    """Webhook bodies POSTed to 127.0.0.1."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/decisions"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def served(
    store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Workspace, dict[str, str], Hook]]:
    hook = Hook()
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("review-home"), database_url=store_url))
    model, reference = fitted("base")
    ws.registry.register(MODEL, model, reference=reference)
    for name, policy in LEVELS.items():
        ws.deployments.deploy(name, f"{MODEL}:1")
        if policy is not None:
            extra = {"decision_webhook": hook.url} if name == "governed" else {}
            ws.automation.set(name, {**policy, **extra}, "test", "set up")
    tokens = {
        "predictor": ws.access.create_token(["predictor"], name="client", created_by="test", deployments=["governed"])[
            0
        ],
        "alice": ws.access.create_token(["reviewer"], name="alice", created_by="test")[0],
        "bob": ws.access.create_token(["reviewer"], name="bob", created_by="test")[0],
        "viewer": ws.access.create_token(["viewer"], name="watcher", created_by="test")[0],
        "operator": ws.access.create_token(["operator"], name="ops", created_by="test")[0],
    }
    try:
        with ServerProcess(ws.settings.home, store_url, worker=True) as server:
            yield server, ws, tokens, hook
    finally:
        hook.server.shutdown()
        ws.close()


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rows(malignant: int, benign: int) -> list[dict[str, Any]]:
    X, y = cancer_frame()
    picked = list(X[y == 0].head(malignant).to_dict("records")) + list(X[y == 1].head(benign).to_dict("records"))
    return picked


def _predict(server: ServerProcess, name: str, token: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = http.post(f"{server.url}/v1/deployments/{name}/predict", json={"instances": rows}, headers=_as(token))
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def test_each_level_answers_and_queues_through_the_server(
    served: tuple[ServerProcess, Workspace, dict[str, str], Hook],
) -> None:
    server, ws, tokens, _ = served
    op = tokens["operator"]
    governed = _predict(server, "governed", op, _rows(3, 3))
    held = [p for p in governed if p["prediction"] == 0]
    final = [p for p in governed if p["prediction"] != 0]
    assert held and final
    assert all(p["decision"] == "pending" and p["review_id"] for p in held)
    assert all(p["decision"] == "final" and "review_id" not in p for p in final)
    led = _predict(server, "led", op, _rows(1, 1))
    assert all(p["decision"] == "pending" for p in led)
    audited = _predict(server, "audited", op, _rows(1, 1))
    assert all(p["decision"] == "final" and p["review_id"] for p in audited)  # final, and sampled for audit
    plain = _predict(server, "plain", op, _rows(1, 1))
    assert all(p["decision"] == "final" and "review_id" not in p for p in plain)

    def queued(name: str) -> list[dict[str, Any]]:
        return http.get(f"{server.url}/v1/review/items?deployment={name}", headers=_as(tokens["alice"])).json()["items"]

    wait_until(lambda: len(queued("governed")) >= len(held), 15, "the held answers in the queue")
    items = {i["request_id"]: i for i in queued("governed")}
    assert {p["request_id"] for p in held} <= items.keys()
    first = items[held[0]["request_id"]]
    assert first["reason"] == "rule" and first["rule"] == "prediction == 0" and first["suggestion"] == 0
    assert first["inputs"]["mean radius"] == pytest.approx(_rows(1, 0)[0]["mean radius"])
    wait_until(lambda: len(queued("led")) >= 2, 15, "human_led's rows")
    blind = queued("led")[0]
    assert blind["blind"] and blind["suggestion"] is None and blind["confidence"] is None  # hidden from reviewers
    shown = http.get(f"{server.url}/v1/review/items/{blind['review_id']}?reveal=true", headers=_as(tokens["alice"]))
    assert shown.json()["suggestion"] in (0, 1)
    # the client reads its answers' state: pending while held, final where never queued
    pending = http.get(
        f"{server.url}/v1/deployments/governed/decisions/{held[0]['request_id']}", headers=_as(tokens["predictor"])
    ).json()
    assert pending["decision"] == "pending" and pending["review_id"] == held[0]["review_id"] and "deadline" in pending
    wait_until(lambda: ws.prediction_log.get(final[0]["request_id"]) is not None, 15, "the final answer logged")
    never = http.get(
        f"{server.url}/v1/deployments/governed/decisions/{final[0]['request_id']}", headers=_as(tokens["predictor"])
    ).json()
    assert never == {
        "request_id": final[0]["request_id"],
        "deployment": "governed",
        "decision": "final",
        "status": "not_queued",
    }
    v2 = http.post(
        f"{server.url}/v2/models/led/infer",
        json={
            "inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in _rows(1, 0)[0].items()]
        },
        headers=_as(op),
    )
    assert v2.status_code == 200 and v2.json()["parameters"]["decisions"] == ["pending"]
    assert v2.json()["parameters"]["review_ids"][0]


def test_reviewers_decide_over_http_and_decisions_become_labels_and_webhooks(
    served: tuple[ServerProcess, Workspace, dict[str, str], Hook],
) -> None:
    server, ws, tokens, hook = served
    answers = _predict(server, "governed", tokens["operator"], _rows(2, 0))
    assert all(a["decision"] == "pending" for a in answers)
    mine = {a["review_id"] for a in answers}
    wait_until(
        lambda: ws.review.store.get(answers[-1]["review_id"]) if _exists(ws, answers[-1]["review_id"]) else None, 15
    )
    decided: dict[str, str] = {}
    while mine - decided.keys():
        claimed = http.post(
            f"{server.url}/v1/review/next", json={"deployment": "governed"}, headers=_as(tokens["alice"])
        )
        assert claimed.status_code == 200, claimed.text
        item = claimed.json()["item"]
        assert item is not None
        if item["review_id"] not in mine:  # another test's item: decide it too, the queue is shared
            http.post(
                f"{server.url}/v1/review/items/{item['review_id']}/decide",
                json={"action": "approve"},
                headers=_as(tokens["alice"]),
            )
            continue
        action = {"action": "override", "label": 1} if not decided else {"action": "approve"}
        done = http.post(
            f"{server.url}/v1/review/items/{item['review_id']}/decide", json=action, headers=_as(tokens["alice"])
        )
        assert done.status_code == 200, done.text
        assert done.json()["decision"]["decision"] == "final"
        decided[item["review_id"]] = action["action"]
    by_request = {a["review_id"]: a["request_id"] for a in answers}
    for review_id, action in decided.items():
        state = http.get(
            f"{server.url}/v1/deployments/governed/decisions/{by_request[review_id]}", headers=_as(tokens["predictor"])
        ).json()
        assert state["decision"] == "final" and state["outcome"] == (
            "overridden" if action == "override" else "approved"
        )
        assert state["decided_by"] == [f"token:{tokens['alice'].split('_')[1]} (alice)"]
        row = ws.prediction_log.get(by_request[review_id])
        assert row is not None and row.label_source == "human_rule"  # held by the rule: not a random sample
        assert row.label == (1 if action == "override" else 0)
    wait_until(lambda: {b["review_id"] for b in hook.bodies} >= mine, 20, "the decisions' webhooks")
    sent = {b["review_id"]: b for b in hook.bodies}
    assert all(sent[r]["kind"] == "review_decision" and sent[r]["decision"] == "final" for r in mine)
    stats = http.get(
        f"{server.url}/v1/deployments/governed/review/stats?window=1h", headers=_as(tokens["viewer"])
    ).json()
    assert stats["decided"] >= 2 and 0 < stats["override_rate"] <= 1 and stats["window"] == "1h"
    bad = http.get(f"{server.url}/v1/deployments/governed/review/stats?window=soon", headers=_as(tokens["viewer"]))
    assert bad.status_code == 400 and "not a duration" in bad.json()["error"]


def _exists(ws: Workspace, review_id: str) -> bool:
    try:
        ws.review.store.get(review_id)
        return True
    except Exception:
        return False


def test_two_reviews_are_needed_and_a_caller_without_the_role_is_refused(
    served: tuple[ServerProcess, Workspace, dict[str, str], Hook],
) -> None:
    server, ws, tokens, _ = served
    for who in ("predictor", "viewer"):
        refused = http.post(f"{server.url}/v1/review/next", json={"deployment": "led"}, headers=_as(tokens[who]))
        assert refused.status_code == 403, (who, refused.text)
    assert http.post(f"{server.url}/v1/review/next", json={"deployment": "led"}).status_code == 401
    (answer,) = _predict(server, "led", tokens["operator"], _rows(1, 0))
    review_id = answer["review_id"]
    wait_until(lambda: _exists(ws, review_id), 15, "the item")
    url = f"{server.url}/v1/review/items/{review_id}/decide"
    first = http.post(url, json={"action": "override", "label": 0}, headers=_as(tokens["alice"]))
    assert first.status_code == 200 and first.json()["decision"]["decision"] == "pending"  # one of two reviews
    again = http.post(url, json={"action": "approve"}, headers=_as(tokens["alice"]))
    assert again.status_code == 409 and "decides once" in again.json()["error"]
    second = http.post(url, json={"action": "override", "label": 0}, headers=_as(tokens["bob"]))
    assert second.status_code == 200 and second.json()["decision"]["outcome"] in ("approved", "overridden")
    assert second.json()["item"]["label"] == 0


def test_the_worker_settles_a_missed_deadline_by_the_policys_fallback(
    served: tuple[ServerProcess, Workspace, dict[str, str], Hook],
) -> None:
    server, ws, tokens, _ = served
    (answer,) = _predict(server, "quick", tokens["operator"], _rows(0, 1))
    assert answer["decision"] == "pending"
    url = f"{server.url}/v1/deployments/quick/decisions/{answer['request_id']}"
    settled = wait_until(
        lambda: (lambda s: s if s.get("decision") == "final" else None)(
            http.get(url, headers=_as(tokens["operator"])).json()
        ),
        20,
        "the deadline's fallback",
    )
    assert settled["outcome"] == "deadline_approved" and settled["decided_by"] == ["deadline:approve"]
    row = ws.prediction_log.get(answer["request_id"])
    assert row is not None and row.label is None  # nobody judged it: no ground truth

    def alerted() -> list[dict[str, Any]]:
        alerts = http.get(f"{server.url}/v1/alerts", headers=_as(tokens["viewer"])).json()["alerts"]
        return [a for a in alerts if a["monitor"] == "review-deadline-misses" and a["deployment"] == "quick"]

    (alert,) = wait_until(alerted, 15, "the deadline-miss alert")
    assert alert["state"] == "firing" and "missed their review deadline" in alert["message"]
    scraped = http.get(f"{server.url}/metrics").text
    assert 'matchday_review_outcomes_total{deployment="quick",outcome="deadline_approved"}' in scraped
    assert 'matchday_review_items{deployment="quick",status="expired"} 1.0' in scraped  # this test's own item


def test_bad_review_and_automation_requests_get_clear_errors(
    served: tuple[ServerProcess, Workspace, dict[str, str], Hook],
) -> None:
    server, ws, tokens, _ = served
    alice, op = _as(tokens["alice"]), _as(tokens["operator"])
    missing = http.post(f"{server.url}/v1/review/items/{'0' * 32}/decide", json={"action": "approve"}, headers=alice)
    assert missing.status_code == 404 and "no review item" in missing.json()["error"]
    assert (
        http.post(f"{server.url}/v1/review/items/x/decide", json={"action": "accept"}, headers=alice).status_code == 400
    )
    assert http.post(f"{server.url}/v1/review/next", json={"deployment": 3}, headers=alice).status_code == 400
    assert http.get(f"{server.url}/v1/review/items?status=lost", headers=alice).status_code == 400
    (answer,) = _predict(server, "led", tokens["operator"], _rows(1, 0))
    wait_until(lambda: _exists(ws, answer["review_id"]), 15, "the item")
    no_label = http.post(
        f"{server.url}/v1/review/items/{answer['review_id']}/decide", json={"action": "override"}, headers=alice
    )
    assert no_label.status_code == 400 and "needs the right label" in no_label.json()["error"]
    not_a_class = http.post(
        f"{server.url}/v1/review/items/{answer['review_id']}/decide",
        json={"action": "override", "label": "maybe"},
        headers=alice,
    )
    assert not_a_class.status_code == 400 and "one of the classes" in not_a_class.json()["error"]
    url = f"{server.url}/v1/deployments/plain/automation"
    assert http.put(url, json={"level": "human_led"}, headers=op).status_code == 400  # no reason
    bad_rule = http.put(
        url, json={"level": "machine_led_human_governed", "review_rule": "amount > 3", "reason": "x"}, headers=op
    )
    assert bad_rule.status_code == 400 and "not a name a rule knows" in json.dumps(bad_rule.json())
    assert http.put(url, json={"level": "human_led", "reason": "x"}, headers=alice).status_code == 403
    moved = http.put(url, json={"level": "machine_controlled", "audit_rate": 0.0, "reason": "trusted"}, headers=op)
    assert moved.status_code == 200 and moved.json()["to"] == "machine_controlled"
    events = http.get(f"{server.url}/v1/deployments/plain/events", headers=op).json()["events"]
    assert any(e["kind"] == "automation_changed" and e["reason"] == "trusted" for e in events)
    deploy = f"{server.url}/v1/deployments/deployed-governed"
    refused = http.put(
        deploy,
        json={"model_ref": f"{MODEL}:1", "settings": {"automation": {"level": "machine_led_human_governed"}}},
        headers=op,
    )
    assert refused.status_code == 400 and "review-rule" in json.dumps(refused.json())
    assert http.get(f"{server.url}/v1/deployments/deployed-governed/automation", headers=op).status_code == 404
    policy = {"level": "machine_led_human_governed", "review_rule": "prediction == 0"}
    deployed = http.put(
        deploy, json={"model_ref": f"{MODEL}:1", "settings": {"automation": policy}, "reason": "new lane"}, headers=op
    )
    assert deployed.status_code == 201 and deployed.json()["settings"]["automation"]["level"] == policy["level"]
    trail = http.get(f"{deploy}/events", headers=op).json()["events"]
    changed = [e for e in trail if e["kind"] == "automation_changed"]
    assert changed and changed[0]["reason"] == "new lane" and changed[0]["actor"].startswith("token:")
    suggestion = http.get(
        f"{server.url}/v1/deployments/audited/automation/suggest", headers=_as(tokens["viewer"])
    ).json()
    assert suggestion["move"] == "stay" and suggestion["level"] == "machine_led_human_supported"
    unknown = http.get(f"{server.url}/v1/deployments/plain/decisions/nope", headers=op)
    assert unknown.status_code == 404 and "no answer with request id" in unknown.json()["error"]


def test_concurrent_reviewers_over_http_never_take_the_same_item(
    served: tuple[ServerProcess, Workspace, dict[str, str], Hook],
) -> None:
    """Three reviewers race for one queue over HTTP, each with a token of their own: every item is decided
    exactly once, and no reviewer is handed an item another holds."""
    server, ws, tokens, _ = served
    carol, _ = ws.access.create_token(["reviewer"], name="carol", created_by="test")
    wait_until(  # the server reloads its tokens twice a second
        lambda: http.get(f"{server.url}/v1/review/items", headers=_as(carol)).status_code == 200, 5, "carol's token"
    )
    answers = _predict(server, "audited", tokens["operator"], _rows(6, 6))
    mine = {a["review_id"] for a in answers}
    wait_until(lambda: all(_exists(ws, r) for r in mine), 15, "the audit items")
    taken: dict[str, list[str]] = {}
    errors: list[str] = []

    def review(name: str, token: str) -> None:
        while True:
            claimed = http.post(f"{server.url}/v1/review/next", json={"deployment": "audited"}, headers=_as(token))
            if claimed.status_code != 200:
                errors.append(f"{name}: next {claimed.status_code} {claimed.text}")
                return
            item = claimed.json()["item"]
            if item is None:
                return
            taken.setdefault(name, []).append(item["review_id"])
            done = http.post(
                f"{server.url}/v1/review/items/{item['review_id']}/decide",
                json={"action": "approve"},
                headers=_as(token),
            )
            if done.status_code != 200:
                errors.append(f"{name}: decide {done.status_code} {done.text}")
                return

    threads = [
        threading.Thread(target=review, args=(name, token))
        for name, token in (("alice", tokens["alice"]), ("bob", tokens["bob"]), ("carol", carol))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every = [i for ids in taken.values() for i in ids]
    assert len(every) == len(set(every))  # nobody was handed an item twice, no item went to two reviewers
    assert mine <= set(every)
    assert all(ws.review.get(r).status == "decided" for r in mine)
