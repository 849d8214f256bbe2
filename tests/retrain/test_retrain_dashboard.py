"""The dashboard's retraining pages through the whole app (the auth gate in front, users logged in),
over runs made by the real retraining core on a real database: a run approved, rolled out and
promoted, and a second one, retrained from the first's candidate, waiting for an operator.

What is checked: the runs' list and the policies in force, a run's steps, evaluation and snapshot,
approve and cancel as POSTs with the session's CSRF token (an operator's; a viewer sees no buttons
and is refused), the lineage chain on the model page, and the pages' empty states and 404s.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support.retrain_support import champion_model, log_labelled
from support.rollout_support import cancer_frame

from matchday.config import Settings
from matchday.dashboard import DashboardPages, mount_dashboard
from matchday.server import create_server
from matchday.workspace import Workspace

PASSWORD = "correct horse battery"
ORIGIN = "http://127.0.0.1"


def policy(**over: Any) -> dict[str, Any]:
    """The retraining core's test policy (tests/retrain/test_retrain_core.py), with an operator's approval
    before rollout and a gain any retrained model reaches (the second run's parent is retrained too)."""
    base: dict[str, Any] = {
        "deployment": "cancer",
        "trainer": "support.retrain_support:train",
        "triggers": {"monitors": ["accuracy-drop"]},
        "data": {"reference": True, "production": {"window": "1d"}},
        "holdout": {"newest": 0.25, "min_rows": 40},
        "accept": {"min_gain": -0.5, "no_worse_segments": ["mean texture"], "resamples": 200},
        "rollout": {"steps": [50, 100], "interval": "1s", "min_requests": 20, "gates": {"min_labels": 20}},
        "guards": {"cooldown": "1h", "max_per_day": 5, "stop_after_rejections": 2, "approval": "before_rollout"},
    }
    base.update(over)
    return base


@dataclass
class Stage:
    ws: Workspace
    promoted: int  # run 1: approved, rolled out, promoted (cancer:2)
    waiting: int  # run 2: retrained from cancer:2, accepted, awaiting an operator (cancer:3)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only: the pages read through the parts, whose stores are tested on both backends."""
    return f"sqlite:///{tmp_path_factory.mktemp('retrain-dashboard') / 'matchday.db'}"


@pytest.fixture(scope="module")
def stage(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    home = tmp_path_factory.mktemp("retrain-dashboard")
    ws = Workspace(Settings(home=home, database_url=store_url, retrain=[policy()]))
    X, y = cancer_frame()
    ws.registry.register(
        "cancer", champion_model(), reference=X.head(200).assign(label=y.head(200)), target="label", alias="champion"
    )
    ws.deployments.deploy("cancer", "cancer@champion")
    log_labelled(ws, 400)
    retraining = ws.retraining
    first = retraining.run("cancer", actor="user:tess", reason="the new season's labels are in")
    assert [retraining.tick()[0][1] for _ in range(2)] == ["trained", "awaiting_approval"]
    retraining.approve(first.id, "user:tess", "looks right")
    assert retraining.tick() == [(first.id, "rollout_started")]
    ws.rollouts.promote("cancer", "user:tess", "enough seen")
    assert retraining.tick() == [(first.id, "promoted")]
    second = retraining.run("cancer", actor="user:tess")
    assert [retraining.tick()[0][1] for _ in range(2)] == ["trained", "awaiting_approval"]
    assert retraining.get(second.id).parent == "cancer:2"
    for name, roles in (("olga", ["operator", "reviewer"]), ("vera", ["viewer"])):  # olga also reviews
        ws.access.add_user(name, PASSWORD, roles, "test")
    yield Stage(ws, first.id, second.id)  # the app's lifespan closes the workspace


@pytest.fixture(scope="module")
def client(stage: Stage) -> Iterator[TestClient]:
    """The whole server in-process: the auth gate (users exist, so every page needs a login) and the dashboard."""
    with TestClient(create_server(stage.ws), base_url=ORIGIN) as c:
        yield c


def log_in(client: TestClient, name: str) -> None:
    client.cookies.clear()
    answer = client.post("/login", data={"name": name, "password": PASSWORD}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def text_of(answer: Any) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", answer.text))


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def test_the_runs_list_shows_each_run_and_the_policies_in_force(client: TestClient, stage: Stage) -> None:
    log_in(client, "vera")
    answer = client.get("/retrain")
    assert answer.status_code == 200, answer.text[:2000]
    page = answer.text
    ids = [int(i) for i in re.findall(r'<tr data-run="(\d+)"', page)]
    assert ids[:2] == [stage.waiting, stage.promoted]  # newest first
    promoted = stage.ws.retraining.get(stage.promoted)
    row = page.split(f'<tr data-run="{stage.promoted}"')[1].split("</tr>")[0]
    assert row.startswith(' data-state="promoted"')
    assert "cancer:1" in row and 'href="/models/cancer"' in row and "cancer:2" in row
    assert "by hand: the new season" in html.unescape(row)
    assert promoted.evaluation is not None
    gain, interval = promoted.evaluation["gain"], promoted.evaluation["interval"]
    assert f"{gain:+.4f}" in row and f"{interval['low']:+.4f} to {interval['high']:+.4f}" in row
    # the policy in force, with its trainer, triggers and guards, and the run active now
    policies = page.split('id="policies"')[1].split("</table>")[0]
    if stage.ws.retraining.get(stage.waiting).active:
        assert f'data-active="{stage.waiting}"' in policies and "awaiting approval" in policies
    else:  # the approval test, on this worker before this one, cancelled it
        assert 'data-active=""' in policies and f'the last, <a href="/retrain/{stage.waiting}">' in policies
    words = html.unescape(policies)
    assert "support.retrain_support:train" in words and "alerts of accuracy-drop" in words
    assert "cooldown 1h" in words and "an operator approves before rollout" in words
    # the deployment filter, and an unknown deployment
    assert re.findall(r'<tr data-run="(\d+)"', client.get("/retrain?deployment=cancer").text)[:2] == [
        str(stage.waiting),
        str(stage.promoted),
    ]
    missing = client.get("/retrain?deployment=nowhere")
    assert missing.status_code == 404 and "no deployment 'nowhere'" in html.unescape(missing.text)


def test_a_run_page_shows_its_steps_evaluation_snapshot_and_links(client: TestClient, stage: Stage) -> None:
    log_in(client, "vera")
    run = stage.ws.retraining.get(stage.promoted)
    answer = client.get(f"/retrain/{run.id}")
    assert answer.status_code == 200, answer.text[:2000]
    page, words = answer.text, text_of(answer)
    # the steps as a timeline: every state the run went through, with its numbers
    states = re.findall(r'<tr data-step-state="([a-z_]+)"', page)
    assert states == [s["state"] for s in run.steps]
    assert states[0] == "queued" and states[-1] == "promoted" and "awaiting_approval" in states
    assert "approved by user:tess: looks right" in words and "production=300" in words
    # the evaluation: champion against candidate, the gain and its interval, the segments with verdicts
    evaluation = run.evaluation
    assert evaluation is not None and evaluation["accepted"]
    assert 'data-accepted="true"' in page
    summary = page.split('id="evaluation-summary"')[1].split("</table>")[0]
    assert f"{evaluation['gain']:+.4f}" in summary
    assert f"{evaluation['interval']['low']:+.4f} to {evaluation['interval']['high']:+.4f}" in summary
    verdicts = re.findall(r'data-verdict="([a-z_]+)"', page)
    assert verdicts == [s["verdict"] for s in evaluation["segments"]] and verdicts
    # the data snapshot, and where the candidate and the rollout are
    assert run.snapshot is not None and run.snapshot["sha256"] in page
    assert "feedback 400" in " ".join(words.split())
    assert 'id="candidate-link"' in page and 'href="/models/cancer"' in page
    rollout = page.split('id="rollout"')[1].split("</dd>")[0]
    assert (
        f"rollout #{run.rollout_id}" in rollout and "/deployments/cancer/rollout" in rollout and "promoted" in rollout
    )
    assert 'id="actions"' not in page and 'csrf_token" value' not in page.split("<main")[1]  # a finished run


def test_an_operator_approves_and_cancels_a_viewer_may_not(client: TestClient, stage: Stage) -> None:
    ws, run_id = stage.ws, stage.waiting
    path = f"/retrain/{run_id}"
    # a viewer: the page says who may act, and the POST is refused by the gate
    log_in(client, "vera")
    page = client.get(path).text
    assert 'id="approve"' not in page and 'id="no-actions"' in page
    refused = client.post(f"{path}/approve", data={"csrf_token": csrf_of(page)}, headers={"Origin": ORIGIN})
    assert refused.status_code == 403 and "needs the operator role" in refused.text
    assert ws.retraining.get(run_id).state == "awaiting_approval"
    # an operator: the review page lists it among what waits for people; the run page has the buttons;
    # a form without the session's token, or from another site, changes nothing
    log_in(client, "olga")
    queues = client.get("/review").text
    assert f'data-run="{run_id}"' in queues and f'href="/retrain/{run_id}"' in queues
    page = client.get(path).text
    assert 'id="approve"' in page and 'id="cancel"' in page
    csrf = csrf_of(page.split('id="actions"')[1])
    assert f'formaction="/retrain/{run_id}/approve"' in page
    for data, origin in (({}, ORIGIN), ({"csrf_token": "forged"}, ORIGIN), ({"csrf_token": csrf}, "http://evil.test")):
        answer = client.post(f"{path}/approve", data=data, headers={"Origin": origin}, follow_redirects=False)
        assert answer.status_code == 403, answer.text
    assert ws.retraining.get(run_id).state == "awaiting_approval"
    # approved, with the operator as actor and the reason typed
    answer = client.post(
        f"{path}/approve",
        data={"csrf_token": csrf, "reason": "gain holds"},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith(f"{path}?done=")
    approved = ws.retraining.get(run_id)
    assert approved.state == "rolling_out" and approved.steps[-1]["message"] == "approved by user:olga: gain holds"
    shown = client.get(answer.headers["location"])
    assert 'id="done"' in shown.text and "rolling out" in text_of(shown)
    assert 'id="approve"' not in shown.text and 'id="cancel"' in shown.text  # still going on: it may be cancelled
    again = client.post(f"{path}/approve", data={"csrf_token": csrf}, headers={"Origin": ORIGIN})
    assert again.status_code == 409 and "not awaiting approval" in html.unescape(again.text)
    # cancelled while rolling out; a second cancel is a conflict, an unknown action a 404
    answer = client.post(
        f"{path}/cancel", data={"csrf_token": csrf}, headers={"Origin": ORIGIN}, follow_redirects=False
    )
    assert answer.status_code == 303
    cancelled = ws.retraining.get(run_id)
    assert cancelled.state == "cancelled" and cancelled.reason == "cancelled by user:olga"
    assert (
        f'data-run="{run_id}"' not in client.get("/review").text and 'id="no-candidates"' in client.get("/review").text
    )
    assert client.post(f"{path}/cancel", data={"csrf_token": csrf}, headers={"Origin": ORIGIN}).status_code == 409
    assert client.post(f"{path}/explode", data={"csrf_token": csrf}, headers={"Origin": ORIGIN}).status_code == 404
    assert (
        client.post("/retrain/999999/cancel", data={"csrf_token": csrf}, headers={"Origin": ORIGIN}).status_code == 404
    )


def test_the_model_page_shows_the_lineage_chain(client: TestClient, stage: Stage) -> None:
    log_in(client, "vera")
    answer = client.get("/models/cancer")
    assert answer.status_code == 200
    table = answer.text.split('id="lineage"')[1].split("</table>")[0]
    rows = dict(re.findall(r'<tr data-version="(\d+)">(.*?)</tr>', table, re.S))
    assert set(rows) == {"2", "3"}  # cancer:1 was not retrained
    chain = [r.ref for r in stage.ws.registry.lineage_chain("cancer:3")]
    assert chain == ["cancer:3", "cancer:2", "cancer:1"]
    shown = re.sub(r"<[^>]+>", "", rows["3"])
    assert "cancer:1 ← cancer:2 ← cancer:3" in shown
    assert f'href="/retrain/{stage.promoted}"' in rows["2"] and f'href="/retrain/{stage.waiting}"' in rows["3"]
    lineage = stage.ws.registry.get_version("cancer:2").lineage
    assert lineage is not None
    assert f"{lineage['evaluation']['gain']:+.4f}" in rows["2"]
    assert "promoted" in rows["2"] and f"rollout #{lineage['rollout']['id']}" in rows["2"]
    assert "by hand: the new season" in html.unescape(rows["2"])


def test_an_unknown_run_is_a_404_page(client: TestClient) -> None:
    log_in(client, "vera")
    for path in ("/retrain/999999", "/retrain/abc", "/retrain/-1"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html") and "no retraining run" in html.unescape(
            answer.text
        )


def bare_client(ws: Workspace) -> TestClient:
    app = FastAPI()
    pages = DashboardPages.from_workspace(ws)
    mount_dashboard(app, lambda: pages, lambda: ws.access)
    return TestClient(app, base_url=ORIGIN)


def test_without_a_policy_the_page_says_what_to_add(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'matchday.db'}"))
    try:
        with bare_client(ws) as client:
            answer = client.get("/retrain")
            words = " ".join(text_of(answer).split())
            assert answer.status_code == 200
            assert "add a retrain: policy to matchday.yaml" in words and "docs/retraining.md" in words
            assert "No run yet" in words
    finally:
        ws.close()


def test_a_policy_that_does_not_read_is_a_503_page_naming_each_problem(tmp_path: Path) -> None:
    bad = policy(trainer="nowhere_module:train")
    ws = Workspace(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'matchday.db'}", retrain=[bad]))
    try:
        with bare_client(ws) as client:
            answer = client.get("/retrain")
            assert answer.status_code == 503
            assert "nowhere_module" in html.unescape(answer.text) and "Traceback" not in answer.text
            assert client.get("/models").status_code == 200  # the other pages do not care
    finally:
        ws.close()


@pytest.mark.slow
def test_an_operator_approves_a_run_in_the_browser(tmp_path: Path, browser: Any) -> None:
    """Headless Chromium against a real `matchday serve` (its matchday.yaml holding the policy): the
    runs' list, the run's page, and Approve clicked; the store sees the run rolling out, by the operator."""
    import yaml
    from support.server_process import ServerProcess

    database = f"sqlite:///{tmp_path / 'matchday.db'}"
    plain = policy(accept={"min_gain": -0.5, "resamples": 200})  # no segments: the screenshot stays short
    (tmp_path / "matchday.yaml").write_text(yaml.safe_dump({"retrain": [plain]}))
    ws = Workspace(Settings(home=tmp_path, database_url=database, retrain=[plain]))
    try:
        X, y = cancer_frame()
        ws.registry.register(
            "cancer",
            champion_model(),
            reference=X.head(200).assign(label=y.head(200)),
            target="label",
            alias="champion",
        )
        ws.deployments.deploy("cancer", "cancer@champion")
        log_labelled(ws, 400)
        run = ws.retraining.run("cancer", actor="user:tess")
        assert [ws.retraining.tick()[0][1] for _ in range(2)] == ["trained", "awaiting_approval"]
        ws.access.add_user("olga", PASSWORD, ["operator"], "test")
        with ServerProcess(tmp_path, database) as server:
            context = browser.new_context()
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            page.goto(f"{server.url}/login?next=/retrain")
            page.fill("input[name=name]", "olga")
            page.fill("input[name=password]", PASSWORD)
            page.click("#login")
            page.wait_for_selector("#runs")
            assert page.locator(f"#policies tr[data-active='{run.id}']").count() == 1
            page.click(f"#runs tr[data-run='{run.id}'] a[href='/retrain/{run.id}']")
            page.wait_for_selector("#evaluation")
            assert page.url == f"{server.url}/retrain/{run.id}"
            assert page.locator("#evaluation").get_attribute("data-accepted") == "true"
            folder = os.environ.get("MATCHDAY_SCREENSHOTS")  # how docs/screenshots/retrain-run.png is made
            if folder:
                page.set_viewport_size({"width": 1280, "height": 900})
                page.screenshot(path=str(Path(folder) / "retrain-run.png"), full_page=True)
            page.fill("#reason", "checked in the browser")
            with page.expect_response(lambda r: r.url.endswith("/approve") and r.request.method == "POST") as sent:
                page.click("#approve")
            page.wait_for_selector("#done")
            assert sent.value.status == 303
            approved = ws.retraining.get(run.id)
            assert approved.state == "rolling_out"
            assert approved.steps[-1]["message"] == "approved by user:olga: checked in the browser"
            assert page.locator("#run").get_attribute("data-state") == "rolling_out"
            assert problems == []
            context.close()
    finally:
        ws.close()
