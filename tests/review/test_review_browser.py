"""The dashboard's review queue in headless Chromium (Debian's ``chromium``, driven by Playwright), issue 16:
a reviewer logs in, opens a deployment's queue, and decides with the keyboard (``a`` approves, ``o``
goes to the override label and Enter sends it, ``s`` skips); each decision brings the next item, and
the workspace sees the decisions and their labels. Without a browser: a viewer is refused the queue,
and a decision without the session's CSRF token, from another site, on an item another reviewer
holds, or with a label the model does not have changes nothing.

One real `matchday serve` on SQLite, with users. The model's input name and one of its classes are
markup: the page must show them as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from support.server_process import ServerProcess, wait_until

from matchday.config import Settings
from matchday.workspace import Workspace

pytestmark = pytest.mark.slow

DEPLOYMENT = "triage"
BLIND = "triage-blind"  # human_led: the model's answer hidden unless the reviewer asks for it
FEATURE = "<img src=x onerror=window.__pwned=1>"  # an input name a page would run if it were not escaped
CLASS = "<img src=y onerror=window.__pwned=2>"  # a class label: the model's answer and an option of the select
PASSWORD = "correct horse battery"
ROWS = 3


@dataclass
class Stage:
    url: str
    workspace: Workspace
    request_ids: list[str]


def _model() -> tuple[Any, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({FEATURE: rng.normal(0, 1, 200), "plain": rng.normal(5, 2, 200)})
    label = np.where(frame[FEATURE] > 0, CLASS, "fine")
    return LogisticRegression().fit(frame, label), frame.assign(label=label)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """``triage`` at human_led_machine_supported (every answer waits for a person) with three answers
    queued; users rhea and remy (reviewers) and vera (viewer)."""
    home = tmp_path_factory.mktemp("review-browser")
    database = f"sqlite:///{home / 'matchday.db'}"
    ws = Workspace(Settings(home=home, database_url=database))
    model, reference = _model()
    ws.registry.register("screening", model, reference=reference, target="label")
    ws.deployments.deploy(DEPLOYMENT, "screening:1")
    ws.automation.set(DEPLOYMENT, {"level": "human_led_machine_supported"}, "test", "people decide for now")
    ws.deployments.deploy(BLIND, "screening:1")
    ws.automation.set(BLIND, {"level": "human_led"}, "test", "people decide alone")
    operator, _ = ws.access.create_token(["operator"], name="client", created_by="test")
    for name, role in (("rhea", "reviewer"), ("remy", "reviewer"), ("vera", "viewer")):
        ws.access.add_user(name, PASSWORD, [role], "test")
    server = ServerProcess(home, database).start()
    try:
        rows = reference.drop(columns=["label"]).head(ROWS).to_dict("records")
        answer = httpx.post(
            f"{server.url}/v1/deployments/{DEPLOYMENT}/predict",
            json={"instances": rows},
            headers={"Authorization": f"Bearer {operator}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert all(p["decision"] == "pending" and p["review_id"] for p in predictions)
        blind = httpx.post(
            f"{server.url}/v1/deployments/{BLIND}/predict",
            json={"instances": rows[:1]},
            headers={"Authorization": f"Bearer {operator}"},
            timeout=30,
        )
        assert blind.status_code == 200, blind.text
        wait_until(lambda: len(ws.review.items(DEPLOYMENT)) == ROWS, 30, "the answers in the review queue")
        wait_until(lambda: len(ws.review.items(BLIND)) == 1, 30, "the blind answer in its queue")
        yield Stage(server.url, ws, [p["request_id"] for p in predictions])
    finally:
        server.stop()
        ws.close()


def _log_in(page: Any, base: str, name: str, next_page: str) -> None:
    page.goto(f"{base}/login?next={next_page}")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
        page.click("#login")
    page.wait_for_load_state()
    assert answer.value.status == 303


def _press(page: Any, key: str) -> Any:
    """Press ``key`` on the page; the response of the decision it sends (after its redirect, loaded)."""
    with page.expect_response(lambda r: "/decide" in r.url and r.request.method == "POST") as answer:
        page.keyboard.press(key)
    page.wait_for_load_state()
    return answer.value


def _shown(page: Any) -> str:
    return page.locator("#review-item").get_attribute("data-review-id")


def _unharmed(page: Any, where: str) -> None:
    page.wait_for_timeout(150)  # an injected <img src=x onerror=...> fires once its request fails
    assert page.evaluate("typeof window.__pwned") == "undefined", f"a name ran as script on {where}"


def test_a_reviewer_claims_and_decides_with_the_keyboard(stage: Stage, browser: Any) -> None:
    base, ws = stage.url, stage.workspace
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}") or d.dismiss())

    _log_in(page, base, "rhea", "/review")
    assert page.url == f"{base}/review"
    row = page.locator(f"#queues tr[data-deployment={DEPLOYMENT}]")
    assert row.locator("td[data-depth]").get_attribute("data-depth") == str(ROWS)
    _unharmed(page, "the queues' list")
    page.click(f"#queues a[href='/review/{DEPLOYMENT}']")
    page.wait_for_selector("#review-item")
    assert page.url == f"{base}/review/{DEPLOYMENT}"

    # the first item: claimed for rhea, its inputs and the model's answer shown as text
    first = _shown(page)
    held = ws.review.get(first)
    assert held.status == "open" and held.lease_owner == "user:rhea"
    inputs = page.inner_text("#inputs")
    assert FEATURE in inputs and "plain" in inputs
    assert str(held.suggestion) in page.inner_text("#suggestion")
    assert "confidence" in page.inner_text("#suggestion")
    options = page.locator("#override-label option").evaluate_all("os => os.map(o => o.value)")
    assert sorted(options) == sorted(["", CLASS, "fine"])
    _unharmed(page, "the item's page")
    page.reload()  # the page again: the item rhea holds, not another one
    assert _shown(page) == first

    # a: approved; the next item appears, with a note of what was decided
    answer = _press(page, "a")
    assert answer.status == 303
    page.wait_for_selector("#just-decided")
    assert page.locator("#just-decided").get_attribute("data-review-id") == first
    assert page.locator("#just-decided").get_attribute("data-action") == "approve"
    second = _shown(page)
    assert second != first
    decided = ws.review.get(first)
    assert decided.status == "decided" and decided.outcome == "approved" and decided.decided_by == ["user:rhea"]
    logged = wait_until(lambda: ws.prediction_log.get(decided.request_id), 10, "the first answer logged")
    assert logged.label == held.suggestion and logged.label_source == "human"

    # o: the label field takes the focus (the key is not typed into it); the other class, and Enter
    held = ws.review.get(second)
    other = "fine" if held.suggestion == CLASS else CLASS
    page.keyboard.press("o")
    assert page.evaluate("document.activeElement.id") == "override-label"
    page.select_option("#override-label", other)
    page.keyboard.press("a")  # while the label field has the focus, a key is the field's, not a decision
    page.wait_for_timeout(200)
    assert ws.review.get(second).status == "open"
    answer = _press(page, "Enter")
    assert answer.status == 303
    page.wait_for_selector("#just-decided[data-action=override]")
    assert other in page.inner_text("#just-decided")
    third = _shown(page)
    assert third not in (first, second)
    overridden = ws.review.get(second)
    assert overridden.status == "decided" and overridden.outcome == "overridden" and overridden.label == other
    logged = wait_until(lambda: ws.prediction_log.get(overridden.request_id), 10, "the second answer logged")
    assert logged.label == other and logged.label_source == "human"

    # s: skipped; it stays open for another reviewer, and nothing else waits for rhea
    answer = _press(page, "s")
    assert answer.status == 303
    page.wait_for_selector("#queue-empty")
    assert page.locator("#just-decided").get_attribute("data-action") == "skip"
    skipped = ws.review.get(third)
    assert skipped.status == "open" and [(d.reviewer, d.action) for d in skipped.decisions] == [("user:rhea", "skip")]
    assert skipped.lease_owner is None
    _unharmed(page, "the empty queue")
    assert problems == []
    context.close()


def _session(base: str, name: str) -> tuple[httpx.Client, str]:
    """A logged-in client and its session's CSRF token (as the pages' forms carry it)."""
    client = httpx.Client(base_url=base, timeout=15, follow_redirects=False)
    answer = client.post("/login", data={"name": name, "password": PASSWORD, "next": "/review"})
    assert answer.status_code == 303, answer.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/review").text)
    return client, found.group(1) if found else ""


def test_the_queue_refuses_viewers_forged_forms_and_bad_decisions(stage: Stage) -> None:
    base, ws = stage.url, stage.workspace
    viewer = httpx.Client(base_url=base, timeout=15, follow_redirects=False)
    assert viewer.post("/login", data={"name": "vera", "password": PASSWORD}).status_code == 303
    assert viewer.get(f"/review/{DEPLOYMENT}").status_code == 403
    assert viewer.get("/review").status_code == 403

    client, csrf = _session(base, "remy")
    assert csrf
    item = ws.review.items(DEPLOYMENT, ("open",))[0]
    before = (item.status, len(item.decisions))
    decide = f"/review/{DEPLOYMENT}/{item.id}/decide"
    own = {"Origin": base}

    # no CSRF token: the door refuses it before the route runs
    refused = client.post(decide, data={"action": "approve"}, headers=own)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    # the token, but sent from another site's page
    forged = client.post(
        decide, data={"action": "approve", "csrf_token": csrf}, headers={"Origin": "http://elsewhere.example"}
    )
    assert forged.status_code == 403
    # a label the model does not have: the error page says which it has
    bad = client.post(decide, data={"action": "override", "label": "maybe", "csrf_token": csrf}, headers=own)
    assert bad.status_code == 400 and "text/html" in bad.headers["content-type"]
    assert "one of the classes" in bad.text and "&lt;img src=y" in bad.text and "<img src=y" not in bad.text
    unknown = client.post(decide, data={"action": "shrug", "csrf_token": csrf}, headers=own)
    assert unknown.status_code == 400 and "approve, override or skip" in unknown.text
    missing = client.post(
        f"/review/{DEPLOYMENT}/no-such-item/decide", data={"action": "skip", "csrf_token": csrf}, headers=own
    )
    assert missing.status_code == 404
    # another reviewer holds it: a conflict, said as such
    ws.review.next(DEPLOYMENT, "user:someone-else", 60)
    held = next(i for i in ws.review.items(DEPLOYMENT, ("open",)) if i.lease_owner == "user:someone-else")
    taken = client.post(
        f"/review/{DEPLOYMENT}/{held.id}/decide", data={"action": "approve", "csrf_token": csrf}, headers=own
    )
    assert taken.status_code == 409 and "claimed by user:someone-else" in taken.text
    assert ws.review.release(held.id, "user:someone-else")
    after = ws.review.get(item.id)
    assert (after.status, len(after.decisions)) == before
    client.close()
    viewer.close()


def test_a_blind_item_hides_the_model_answer_until_asked(stage: Stage) -> None:
    base, ws = stage.url, stage.workspace
    client, csrf = _session(base, "remy")
    (item,) = ws.review.items(BLIND)
    listed = client.get("/review").text
    assert f'data-deployment="{BLIND}"' in listed and "(blind)" in listed
    page = client.get(f"/review/{BLIND}")
    assert page.status_code == 200 and f'data-review-id="{item.id}"' in page.text
    assert 'id="reveal"' in page.text and "confidence" not in page.text
    assert f"<b>{item.suggestion}</b>" not in page.text.replace("&lt;", "<").replace("&gt;", ">")
    shown = client.get(f"/review/{BLIND}?reveal=1")  # the same item, held by remy, with the answer
    assert f'data-review-id="{item.id}"' in shown.text and "confidence" in shown.text
    assert 'name="revealed" value="1"' in shown.text
    done = client.post(
        f"/review/{BLIND}/{item.id}/decide",
        data={"action": "approve", "revealed": "1", "csrf_token": csrf},
        headers={"Origin": base},
    )
    assert done.status_code == 303 and done.headers["location"] == f"/review/{BLIND}?decided={item.id}"
    decided = ws.review.get(item.id)
    assert decided.status == "decided" and [(d.reviewer, d.saw_suggestion) for d in decided.decisions] == [
        ("user:remy", True)
    ]
    after = client.get(done.headers["location"]).text
    assert 'id="queue-empty"' in after and 'data-action="approve"' in after
    client.close()
