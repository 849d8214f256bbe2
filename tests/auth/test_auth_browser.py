"""Logging in and out in headless Chromium (Debian's ``chromium``, driven by Playwright), and names
with HTML and script in them shown on every dashboard page without ever running (issue 15).

One real `matchday serve` (with its worker) on SQLite, with users, so every page asks for a login. Its
deployment ``evil`` serves a model whose input names, category values and class labels are markup, and
carries a rollout, an alias move, monitors, alerts, a token name and event reasons made of the same:
each page that shows them must show them as text. A second small HTTP server plays another site whose
pages post forms to matchday while the browser holds a session: nothing changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from support.server_process import ServerProcess, free_port, wait_until

from matchday.config import Settings
from matchday.workspace import Workspace

pytestmark = pytest.mark.slow

# names a page would run if it put them into its HTML unescaped: each sets window.__pwned
NUMBER = "<img src=x onerror=window.__pwned=1>"  # an input (column) name
CATEGORY = "<script>window.__pwned=2</script>"  # another input name, with a "/" in it
VALUES = ['"><svg onload=window.__pwned=3>', "'><img src=v onerror=window.__pwned=4>", "plain"]  # its categories
CLASS = "<img src=y onerror=window.__pwned=5>"  # a class label (the output chart's series, the signature)
DESCRIPTION = "<b>boosted</b><script>window.__pwned=6</script>"
METRIC = "<svg/onload=window.__pwned=7>recall"  # an offline metric's name
ALIAS_REASON = "<iframe srcdoc='<script>parent.__pwned=8</script>'></iframe>"
TOKEN_NAME = "<img src=z onerror=window.__pwned=9> pipeline"  # the actor of the rollout's events
PAUSE_REASON = "<svg><script>window.__pwned=10</script></svg> held"
MONITOR = "<img src=w onerror=window.__pwned=11> rows"  # a monitor segmented by CATEGORY
DRIFT_MONITOR = "<details open ontoggle=window.__pwned=12>drift"
PASSWORD = "correct horse battery"
DEPLOYMENT = "evil"


@dataclass
class Stage:
    url: str
    workspace: Workspace


def _model() -> tuple[Any, pd.DataFrame]:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({NUMBER: rng.normal(0, 1, 300), CATEGORY: rng.choice(VALUES, 300)})
    label = np.where(frame[NUMBER] > 0, CLASS, "fine")
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), [CATEGORY]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, label)
    return model, frame.assign(label=label)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """The hostile deployment with 150 rows logged and summarised, both monitors firing, a canary of
    version 2 paused by a token, and three users: olga (operator), vera (viewer), rita (viewer)."""
    home = tmp_path_factory.mktemp("auth-browser")
    database = f"sqlite:///{home / 'matchday.db'}"
    monitor = {"when": ">= 0", "min_rows": 1, "deployment": DEPLOYMENT}
    (home / "matchday.yaml").write_text(
        yaml.safe_dump(
            {
                "monitoring": {"count_window": 50, "segments": {DEPLOYMENT: [CATEGORY]}},
                "monitors": [
                    {**monitor, "name": MONITOR, "metric": "rows", "window": "5m", "segment": CATEGORY},
                    {**monitor, "name": DRIFT_MONITOR, "metric": f"drift.{NUMBER}", "window": "50rows"},
                ],
            }
        )
    )
    ws = Workspace(Settings(home=home, database_url=database))
    model, reference = _model()
    for version in (1, 2):
        ws.registry.register(
            "hostile",
            model,
            reference=reference,
            target="label",
            metrics={METRIC: 0.9},
            description=DESCRIPTION,
            alias="champion" if version == 1 else None,
        )
    ws.registry.set_alias("hostile", 2, "challenger", reason=ALIAS_REASON)
    ws.deployments.deploy(DEPLOYMENT, "hostile@champion")
    operator, _ = ws.access.create_token(["operator"], name=TOKEN_NAME, created_by="test")
    for name, role in (("olga", "operator"), ("vera", "viewer"), ("rita", "viewer")):
        ws.access.add_user(name, PASSWORD, [role], "test")
    env = {"MATCHDAY_MONITOR_INTERVAL": "0.3", "MATCHDAY_CONTROLLER_INTERVAL": "0.2"}
    server = ServerProcess(home, database, env=env, worker=True).start()
    try:
        auth = {"Authorization": f"Bearer {operator}"}
        with httpx.Client(base_url=server.url, timeout=30, headers=auth) as client:
            rows = reference.drop(columns=["label"]).to_dict("records")
            for i in range(0, 150, 50):
                answer = client.post(f"/v1/deployments/{DEPLOYMENT}/predict", json={"instances": rows[i : i + 50]})
                assert answer.status_code == 200, answer.text
            started = client.post(
                f"/v1/deployments/{DEPLOYMENT}/rollout",
                json={"candidate": "hostile:2", "steps": [20, 100], "interval": "1h", "min_requests": 100_000},
            )
            assert started.status_code == 201, started.text
            paused = client.post(f"/v1/deployments/{DEPLOYMENT}/rollout/pause", json={"reason": PAUSE_REASON})
            assert paused.status_code == 200, paused.text

        wait_until(
            lambda: [a.monitor for a in ws.alerts.firing(DEPLOYMENT)] == [DRIFT_MONITOR],
            60,
            "the drift monitor to fire on the summarised rows",
        )
        # a segmented monitor is judged on 5-minute windows once they close: its alert is opened here,
        # as the monitoring loop would word it
        segment = f"{CATEGORY}={VALUES[0]}"
        ws.alerts.open(
            monitor=MONITOR,
            deployment=DEPLOYMENT,
            model="hostile",
            version=1,
            segment=segment,
            severity="critical",
            metric="rows",
            value=54.0,
            threshold=0.0,
            message=f"{MONITOR} on {DEPLOYMENT} [{segment}] (hostile:1, 5m window): rows = 54 (meets >= 0)",
            data={},
        )
        yield Stage(server.url, ws)
    finally:
        server.stop()
        ws.close()


class OtherSite:
    """Another site on 127.0.0.1 (or ``localhost``) and another port: its pages, by path."""

    def __init__(self, pages: dict[str, str]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not here").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtherSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _attack_form(action: str) -> str:
    """A page that posts a rollout action to matchday as soon as it loads (it cannot know the CSRF token)."""
    return (
        f'<!doctype html><form id="f" method="post" action="{action}">'
        '<input name="reason" value="from another site"><input name="csrf_token" value="guessed"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )


def _attack_fetch(url: str) -> str:
    """A page that sends what a page may send unasked: a no-cors text/plain POST, with the cookies."""
    return (
        "<!doctype html><script>fetch("
        f"{url!r}, {{method: 'POST', mode: 'no-cors', credentials: 'include', body: '{{\"reason\": \"x\"}}'}})"
        ".finally(() => { document.title = 'sent'; })</script>"
    )


def _rollout(ws: Workspace) -> tuple[str, int]:
    """The rollout's state and how many events it has (what an action would change)."""
    return ws.rollouts.current(DEPLOYMENT).state, len(ws.rollouts.list_events(DEPLOYMENT, 500))


def _log_in(page: Any, name: str, password: str) -> Any:
    """Fill and send the login form on the page; the response the form's POST got."""
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
        page.click("#login")
    page.wait_for_load_state()
    return answer.value


def _submit(page: Any, selector: str) -> Any:
    """Click a form's button; the response its POST got."""
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click(selector)
    page.wait_for_load_state()
    return answer.value


def test_login_csrf_refusal_logout_and_rate_limit_in_a_browser(stage: Stage, browser: Any) -> None:
    base, ws = stage.url, stage.workspace
    context = browser.new_context()
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))

    # logged out: a page sends to the login page, which remembers where we were going
    page.goto(f"{base}/deployments/{DEPLOYMENT}/rollout")
    assert page.url == f"{base}/login?next=%2Fdeployments%2F{DEPLOYMENT}%2Frollout"
    assert page.input_value("input[name=next]") == f"/deployments/{DEPLOYMENT}/rollout"
    wrong = _log_in(page, "olga", "not her password")
    assert wrong.status == 401
    assert page.inner_text("#login-error") == "wrong user name or password"
    assert page.input_value("input[name=name]") == "olga"
    assert not [c for c in context.cookies() if c["name"] == "matchday_session"]
    right = _log_in(page, "olga", PASSWORD)
    assert right.status == 303
    assert page.url == f"{base}/deployments/{DEPLOYMENT}/rollout"
    assert page.inner_text("header .who") == "olga"
    (cookie,) = [c for c in context.cookies() if c["name"] == "matchday_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script of the page can read it

    # another site's pages, while the browser holds olga's session, try to resume the paused rollout
    assert _rollout(ws)[0] == "paused"
    before = _rollout(ws)
    action = f"{base}/deployments/{DEPLOYMENT}/rollout/resume"
    api = f"{base}/v1/deployments/{DEPLOYMENT}/rollout/resume"
    with OtherSite({"/form": _attack_form(action), "/fetch": _attack_fetch(api)}) as other:
        # 127.0.0.1 on another port is another origin but the same site (ports do not make sites):
        # SameSite=Strict sends the cookie, and the door's Origin check refuses
        with page.expect_response(lambda r: r.url == action) as answer:
            page.goto(f"http://127.0.0.1:{other.port}/form")
        assert answer.value.request.header_value("cookie") is not None
        assert answer.value.status == 403 and "another site" in answer.value.json()["error"]
        # the no-cors fetch of JSON as text/plain, cookie included: refused for its body type
        with page.expect_response(lambda r: r.url == api) as answer:
            page.goto(f"http://127.0.0.1:{other.port}/fetch")
        assert answer.value.status == 415
        # localhost is another site: the Strict cookie is not even sent, so there is no one to act for
        with page.expect_response(lambda r: r.url == action) as answer:
            page.goto(f"http://localhost:{other.port}/form")
        assert answer.value.request.header_value("cookie") is None
        assert answer.value.status == 401
    assert _rollout(ws) == before

    # olga, on the dashboard's own pages: the confirmation form goes through the door to the route
    page.goto(f"{base}/deployments/{DEPLOYMENT}/rollout")
    page.click("#action-resume")
    page.wait_for_selector("#confirm-form")
    page.fill("input[name=reason]", "resumed in the browser test")
    done = _submit(page, "#confirm")
    assert done.status == 303, done.text()
    assert page.locator("#rollout").get_attribute("data-state") == "running"
    assert "running" in page.inner_text("#done")
    page.click("#action-pause")
    page.wait_for_selector("#confirm-form")
    assert _submit(page, "#confirm").status == 303
    record = ws.rollouts.current(DEPLOYMENT)
    assert record.state == "paused"
    events = ws.rollouts.list_events(DEPLOYMENT, 500)
    assert [e.actor for e in events[:2]] == ["user:olga", "user:olga"]
    assert "resumed in the browser test" in [e.reason for e in events]

    # logging in again while logged in (as someone else, or the same user in a second tab)
    page.goto(f"{base}/login")
    again = _log_in(page, "vera", PASSWORD)
    assert again.status == 303, again.text()
    assert page.inner_text("header .who") == "vera"

    # logging out ends the session: in this browser and for anyone holding its cookie; a second tab's
    # "Log out", on a page shown before, then finds no session and still lands on the login page
    (cookie,) = [c for c in context.cookies() if c["name"] == "matchday_session"]
    second = context.new_page()
    second.goto(f"{base}/alerts?refresh=0")
    assert _submit(page, "#logout").status == 303
    assert page.url == f"{base}/login"
    assert not [c for c in context.cookies() if c["name"] == "matchday_session"]
    page.goto(f"{base}/models")
    assert page.url == f"{base}/login?next=%2Fmodels"
    stolen = httpx.get(
        f"{base}/models", cookies={"matchday_session": cookie["value"]}, follow_redirects=False, timeout=10
    )
    assert stolen.status_code == 303 and stolen.headers["location"] == "/login?next=%2Fmodels"
    assert _submit(second, "#logout").status == 303
    assert second.url == f"{base}/login"

    # five wrong passwords for one user: the sixth attempt is refused before its password is checked
    statuses = [_log_in(page, "rita", f"wrong password {i}").status for i in range(6)]
    assert statuses == [401] * 5 + [429]
    assert "too many failed logins" in page.inner_text("#login-error")
    still = _log_in(page, "rita", PASSWORD)  # even the right password, until the window passes
    assert still.status == 429 and int(still.headers["retry-after"]) > 0
    assert page_errors == []
    context.close()


# -- escaping --------------------------------------------------------------------------------------
def _badge(text: str) -> str:
    """How a badge shows a name: its underscores as spaces (a badge is for words like rolled_back)."""
    return " ".join(text.replace("_", " ").split())


def _pages() -> list[tuple[str, list[str]]]:
    """Each page that shows a hostile name, and the names it must show as text."""
    deployment = f"/deployments/{DEPLOYMENT}"
    return [
        ("/?refresh=0", [_badge(MONITOR), _badge(DRIFT_MONITOR)]),
        (f"{deployment}?refresh=0", [NUMBER, CATEGORY, PAUSE_REASON, MONITOR, DRIFT_MONITOR, CLASS]),
        (f"{deployment}/drift/{quote(NUMBER, safe='')}?refresh=0", [NUMBER]),
        (f"{deployment}/drift/{quote(CATEGORY, safe='')}?refresh=0", [CATEGORY]),
        (f"{deployment}/rollout?refresh=0", [TOKEN_NAME, PAUSE_REASON]),
        ("/models", [DESCRIPTION]),
        ("/models/hostile", [NUMBER, CATEGORY, *VALUES, CLASS, METRIC, ALIAS_REASON]),
        ("/alerts?refresh=0", [MONITOR, DRIFT_MONITOR, f"{CATEGORY}={VALUES[0]}", f"drift.{NUMBER}"]),
        (f"/alerts?deployment={DEPLOYMENT}&refresh=0", [MONITOR, DRIFT_MONITOR]),
    ]


def _unharmed(page: Any, where: str) -> None:
    page.wait_for_timeout(150)  # an injected <img src=x onerror=...> fires once its request fails
    assert page.evaluate("typeof window.__pwned") == "undefined", f"a name ran as script on {where}"


def test_names_with_html_and_script_are_shown_as_text_on_every_page(stage: Stage, browser: Any) -> None:
    base = stage.url
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}") or d.dismiss())

    # a hostile `next` and a hostile user name typed into the login form come back as values, not markup
    hostile_next = '/"><script>window.__pwned=13</script>'
    page.goto(f"{base}/login?next={quote(hostile_next, safe='')}")
    assert page.input_value("input[name=next]") == hostile_next
    assert _log_in(page, VALUES[0], "not a password at all").status == 401
    assert page.input_value("input[name=name]") == VALUES[0]
    _unharmed(page, "the login page")
    page.goto(f"{base}/login?next={quote('/models', safe='')}")
    assert _log_in(page, "vera", PASSWORD).status == 303
    assert page.url == f"{base}/models"

    for path, names in _pages():
        answer = page.goto(base + path)
        assert answer is not None and answer.status == 200, path
        page.wait_for_function("[...document.querySelectorAll('.chart')].every(c => c.dataset.rendered)")
        for chart in page.locator(".chart .u-over").all():  # the cursor's legend values and hover hooks
            chart.hover()
        _unharmed(page, path)
        shown = page.inner_text("body")
        missing = [n for n in names if n not in shown]
        assert missing == [], (path, missing)

    # the drill-down's links, the heatmap's hover titles and a chart's legend keep the names as text
    page.goto(f"{base}/deployments/{DEPLOYMENT}?refresh=0")
    titles = page.locator("#heatmap td.cell[title]").evaluate_all("cells => cells.map(c => c.title)")
    assert any(t.startswith(f"{NUMBER} at ") for t in titles) and any(t.startswith(f"{CATEGORY} at ") for t in titles)
    assert CLASS in page.inner_text("#chart-outputs .u-legend")
    page.click(f"#heatmap th a:text-is({NUMBER!r})")
    page.wait_for_selector("#verdict")
    assert page.inner_text("h1 code") == NUMBER
    _unharmed(page, "the drift page reached by its link")
    page.goto(f"{base}/deployments/{DEPLOYMENT}/drift/{quote(CATEGORY, safe='')}?refresh=0")
    assert page.locator("#chart-histogram").get_attribute("data-points") not in (None, "0")
    _unharmed(page, "the categorical drift page")

    # the page refreshes its content in place (parsed and swapped in by script): still text
    page.goto(f"{base}/deployments/{DEPLOYMENT}?refresh=1")
    page.wait_for_function("Number(document.body.dataset.refreshed || 0) >= 1", timeout=15_000)
    _unharmed(page, "the refreshed deployment page")
    assert PAUSE_REASON in page.inner_text("#events")

    # error pages repeat what was asked for
    for path, status, shown in [
        (f"/models/{quote(NUMBER, safe='')}", 404, f"there is no model '{NUMBER}'"),
        (f"/deployments/{DEPLOYMENT}/drift/{quote(CLASS, safe='')}", 404, f"no input feature '{CLASS}'"),
        (f"/deployments/{DEPLOYMENT}?since={quote(CATEGORY, safe='')}", 400, CATEGORY),
        (f"/alerts?deployment={quote(DRIFT_MONITOR, safe='')}", 404, DRIFT_MONITOR),
    ]:
        answer = page.goto(base + path)
        assert answer is not None and answer.status == status, path
        _unharmed(page, path)
        assert shown in page.inner_text("#error"), path
    problems = [p for p in problems if "status of 40" not in p]  # the error pages' own statuses
    assert problems == []
    context.close()
