"""Who may do what (issue 15): tokens, users, sessions, the route table, and the server's door.

The logic on its own (credentials, roles, limits, the table covering every route), then through a
real `matchday serve` on SQLite and PostgreSQL: every route of the table called by each role (and
by no one), tokens that expire and are revoked on another replica, logging in and out with CSRF,
cross-site requests refused, the refusal to listen beyond loopback without a credential.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.rollout_support import fitted
from support.server_process import MATCHDAY, ServerProcess, free_port, http, wait_until

from matchday.auth import ROLES, RULES, Access, InvalidPrincipal, RouteTable, TooManyAttempts, Unauthenticated
from matchday.auth.credentials import NewToken, new_token, password_matches, token_matches
from matchday.auth.login_limits import LoginLimits
from matchday.config import Settings
from matchday.store import Conflict
from matchday.workspace import Workspace

DEPLOYMENT = "cancer"


def viewer_token_expiring(access: Access, after: timedelta) -> NewToken:
    """A viewer's token stored as running out ``after`` from now (in the past, when negative)."""
    made = new_token()
    access.store.add_token(
        key=made.key,
        digest=made.digest,
        name=f"expiring {after}",
        roles=["viewer"],
        deployments=None,
        created_by="test",
        expires_at=datetime.now(UTC) + after,
    )
    return made


# -- the logic --------------------------------------------------------------------------------------
def test_a_token_is_stored_only_as_a_salted_digest(workspace: Workspace) -> None:
    token, record = workspace.access.create_token(["predictor"], name="ci", created_by="test")
    assert token.startswith("md_") and record.key in token
    secret = token.rsplit("_", 1)[1]
    stored = workspace.access.list_tokens()[0]
    assert secret not in stored.digest and token_matches(secret, stored.digest)
    assert not token_matches(secret[:-1] + ("0" if secret[-1] != "0" else "1"), stored.digest)
    other = new_token()
    assert other.digest.split("$")[1] != stored.digest.split("$")[1]  # each with its own salt
    principal = workspace.access.bearer(token)
    assert principal.actor == f"token:{record.key} (ci)" and principal.roles == {"predictor"}


def test_unknown_revoked_and_expired_tokens_are_refused_saying_why(workspace: Workspace) -> None:
    access = workspace.access
    token, record = access.create_token(["viewer"], name="reader", created_by="test")
    with pytest.raises(Unauthenticated, match="not a matchday token"):
        access.bearer("Bearer nonsense")
    with pytest.raises(Unauthenticated, match="unknown token"):
        access.bearer(token[:-4] + "0000" if not token.endswith("0000") else token[:-4] + "1111")
    made = viewer_token_expiring(access, timedelta(seconds=-1))
    access.tokens.refresh()
    with pytest.raises(Unauthenticated, match="expired"):
        access.bearer(made.token)
    access.revoke_token(record.key, "test")
    with pytest.raises(Unauthenticated, match="revoked"):
        access.bearer(token)
    events = {e.kind: e for e in access.events.list(kinds=("token_created", "token_revoked"))}
    assert events["token_revoked"].actor == "test" and record.key in events["token_revoked"].reason


def test_a_token_made_elsewhere_is_known_at_once_and_made_up_keys_cost_one_query_a_tenth_of_a_second(
    workspace: Workspace,
) -> None:
    access = workspace.access
    access.tokens.refresh()  # the cache is loaded and its poller is not running: only a miss reloads it
    other = Workspace(workspace.settings)  # another process, as `matchday tokens create` is
    try:
        token, _ = other.access.create_token(["viewer"], name="script", created_by="test")
    finally:
        other.close()
    assert access.bearer(token).name == "script"
    queries = []
    revision = access.tokens.store.revision
    access.tokens.store.revision = lambda: queries.append(1) or revision()  # type: ignore[method-assign]
    _, key, secret = token.split("_", 2)
    for i in range(50):
        with pytest.raises(Unauthenticated, match="unknown token"):
            access.bearer(f"md_{i:0{len(key)}d}_{secret}")
    assert len(queries) <= 2


def test_expiry_durations_roles_and_names_are_checked(workspace: Workspace) -> None:
    access = workspace.access
    with pytest.raises(InvalidPrincipal, match="unknown role"):
        access.create_token(["superuser"], name="x", created_by="test")
    with pytest.raises(InvalidPrincipal, match="expiry"):
        access.create_token(["viewer"], name="x", created_by="test", expires="forever")
    with pytest.raises(InvalidPrincipal, match="one line"):
        access.create_token(["viewer"], name="two\nlines", created_by="test")
    with pytest.raises(InvalidPrincipal, match="user name"):
        access.add_user("alice\n", "a long enough password", ["viewer"], "test")  # `$` would have let it in
    with pytest.raises(InvalidPrincipal, match="too short"):
        access.add_user("alice", "short", ["viewer"], "test")
    access.add_user("alice", "correct horse battery", ["reviewer"], "test")
    with pytest.raises(Conflict, match="already exists"):
        access.add_user("alice", "correct horse battery", ["viewer"], "test")
    stored = access.store.user("alice")
    assert stored is not None and "correct horse" not in stored.password_hash
    assert stored.password_hash.startswith("scrypt$") and password_matches(
        "correct horse battery", stored.password_hash
    )


def test_login_sessions_end_with_logout_password_change_and_removal(workspace: Workspace) -> None:
    access = workspace.access
    access.add_user("bob", "correct horse battery", ["operator"], "test")
    with pytest.raises(Unauthenticated, match="wrong user name or password"):
        access.login("bob", "wrong password!!", "10.0.0.1")
    with pytest.raises(Unauthenticated, match="wrong user name or password"):
        access.login("nobody", "wrong password!!", "10.0.0.1")
    secret, principal = access.login("bob", "correct horse battery", "10.0.0.1")
    assert principal.roles >= {"operator", "viewer", "predictor"} and principal.csrf
    found = access.session(secret)
    assert found is not None and found.name == "bob" and found.csrf == principal.csrf
    access.logout(secret)
    assert access.session(secret) is None
    secret, _ = access.login("bob", "correct horse battery", "10.0.0.1")
    access.set_password("bob", "another long password", "test")
    assert access.session(secret) is None
    secret, _ = access.login("bob", "another long password", "10.0.0.1")
    access.remove_user("bob", "test")
    assert access.session(secret) is None


def test_failed_logins_are_limited_per_user_and_per_address() -> None:
    limits = LoginLimits(per_user=3, per_address=5, window=60)
    for _ in range(3):
        limits.check("alice", "10.0.0.1")
        limits.failed("alice", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as refused:
        limits.check("alice", "10.0.0.2")  # another address, the same user
    assert 1 <= refused.value.retry_after <= 60
    limits.check("carol", "10.0.0.3")
    for name in ("d1", "d2"):
        limits.failed(name, "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        limits.check("erin", "10.0.0.1")  # five failures from one address, whatever the names


def test_every_route_of_the_app_has_an_entry_in_the_table(tmp_path: Path) -> None:
    from matchday.server import create_server

    app = create_server(Workspace(Settings(home=tmp_path)))
    table, missing = RouteTable(), []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if type(route).__name__ == "_IncludedRouter":  # FastAPI's included router
                walk(route.original_router.routes)
                continue
            methods = getattr(route, "methods", None) or {"GET"}  # a mount serves files
            template = route.path if getattr(route, "methods", None) else route.path + "/{path:path}"
            for method in methods - {"HEAD"}:
                if table.rule_for(method, template) is None:
                    missing.append(f"{method} {template}")

    walk(app.routes)
    assert missing == []
    assert len({(r.method, r.template) for r in RULES}) == len(RULES)
    assert {r.role for r in RULES} <= {*ROLES, "open"}


# -- through the real server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared(
    store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, dict[str, str], Workspace]]:
    """One served deployment for the module's server tests, with one token per role (the predictor's
    limited to the deployment): starting a server takes seconds, and each test makes its own users."""
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("auth-home"), database_url=store_url))
    model, reference = fitted("base")
    ws.registry.register(DEPLOYMENT, model, reference=reference)
    ws.registry.register(DEPLOYMENT, fitted("better")[0], reference=fitted("better")[1])
    ws.deployments.deploy(DEPLOYMENT, f"{DEPLOYMENT}:1")
    tokens = {
        role: ws.access.create_token(
            [role], name=f"{role} token", created_by="test", deployments=[DEPLOYMENT] if role == "predictor" else None
        )[0]
        for role in ROLES
    }
    try:
        with ServerProcess(ws.settings.home, store_url) as server:
            yield server, tokens, ws
    finally:
        ws.close()


@pytest.fixture
def served(shared: tuple[ServerProcess, dict[str, str], Workspace]) -> tuple[ServerProcess, dict[str, str]]:
    return shared[0], shared[1]


@pytest.fixture
def served_workspace(shared: tuple[ServerProcess, dict[str, str], Workspace]) -> Workspace:
    return shared[2]


def _call(server: ServerProcess, method: str, template: str, token: str | None) -> int:
    path = (
        template.replace("{name}", DEPLOYMENT)
        .replace("{version}", "1")
        .replace("{action}", "pause")
        .replace("{feature:path}", "mean radius")
        .replace("{path:path}", "dashboard.css" if "dashboard" in template else "swagger-ui.css")
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "POST":
        response = http.request(method, server.url + path, json={}, headers=headers, follow_redirects=False)
    else:
        response = http.request(method, server.url + path, headers=headers, follow_redirects=False)
    return response.status_code


def test_each_role_may_call_what_the_table_says_and_nothing_else(
    served: tuple[ServerProcess, dict[str, str]], served_workspace: Workspace
) -> None:
    from matchday.auth.roles import effective

    server, tokens = served
    wrong: list[str] = []
    for rule in RULES:
        if rule.template in ("/logout", "/login") and rule.method == "POST":
            continue  # forms, tested below
        anonymous = _call(server, rule.method, rule.template, None)
        if rule.role == "open":
            if anonymous in (401, 403):
                wrong.append(f"{rule.method} {rule.template}: open, but {anonymous} without a token")
            continue
        if anonymous not in (401, 303):
            wrong.append(f"{rule.method} {rule.template}: {anonymous} without a token")
        for role, token in tokens.items():
            status = _call(server, rule.method, rule.template, token)
            allowed = rule.role in effective([role])
            if allowed and status in (401, 403):
                wrong.append(f"{rule.method} {rule.template}: {role} refused ({status})")
            if not allowed and status != 403:
                wrong.append(f"{rule.method} {rule.template}: {role} got {status}, not 403")
    assert wrong == []
    other = http.post(
        f"{server.url}/v1/deployments/elsewhere/predict",
        json={"instances": [{}]},
        headers={"Authorization": f"Bearer {tokens['predictor']}"},
    )
    assert other.status_code == 403 and "may not use deployment 'elsewhere'" in other.json()["error"]


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_revoked_token_is_refused_by_every_replica_at_once(
    served: tuple[ServerProcess, dict[str, str]], served_workspace: Workspace, store_url: str
) -> None:
    """On PostgreSQL, which replicas share; the token store's polled revision is read on both databases by
    the tests of the logic above (a token made elsewhere, revoked, expired)."""
    server, _ = served
    doomed, _ = served_workspace.access.create_token(["viewer"], name="doomed", created_by="test")
    headers = {"Authorization": f"Bearer {doomed}"}
    with ServerProcess(served_workspace.settings.home, store_url) as replica:
        for s in (server, replica):
            assert http.get(f"{s.url}/v1/deployments", headers=headers).status_code == 200
        for s in (server, replica):  # the new token reaches both within their poll
            wait_until(lambda s=s: http.get(f"{s.url}/v1/deployments", headers=headers).status_code == 200, 5)
        key = doomed.split("_")[1]
        Workspace(served_workspace.settings).access.revoke_token(key, "test")  # another process's revoke, in effect
        revoked_at = time.monotonic()
        for s in (server, replica):
            wait_until(lambda s=s: http.get(f"{s.url}/v1/deployments", headers=headers).status_code == 401, 5)
        assert time.monotonic() - revoked_at < 2.0
        answer = http.get(f"{replica.url}/v1/deployments", headers=headers)
        assert answer.json()["error"] == "the token was revoked"
        assert answer.headers["www-authenticate"].startswith("Bearer")
        made = viewer_token_expiring(served_workspace.access, timedelta(seconds=1.5))  # made elsewhere
        short = {"Authorization": f"Bearer {made.token}"}
        wait_until(lambda: http.get(f"{replica.url}/v1/deployments", headers=short).status_code == 200, 5)
        wait_until(lambda: http.get(f"{replica.url}/v1/deployments", headers=short).status_code == 401, 5)
        assert http.get(f"{server.url}/v1/deployments", headers=short).json()["error"] == "the token has expired"


def test_state_changes_record_the_token_that_made_them(
    served: tuple[ServerProcess, dict[str, str]], served_workspace: Workspace
) -> None:
    server, tokens = served
    started = http.post(
        f"{server.url}/v1/deployments/{DEPLOYMENT}/rollout",
        json={"candidate": f"{DEPLOYMENT}:2", "strategy": "canary"},
        headers={"Authorization": f"Bearer {tokens['operator']}", "X-Matchday-Actor": "someone else"},
    )
    assert started.status_code == 201, started.text
    key = tokens["operator"].split("_")[1]
    events = http.get(
        f"{server.url}/v1/deployments/{DEPLOYMENT}/events", headers={"Authorization": f"Bearer {tokens['viewer']}"}
    ).json()["events"]
    assert events and all(e["actor"] == f"token:{key} (operator token)" for e in events if e["kind"] == "started")


def test_last_use_is_kept(served: tuple[ServerProcess, dict[str, str]], served_workspace: Workspace) -> None:
    server, tokens = served
    http.get(f"{server.url}/v1/deployments", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    key = tokens["viewer"].split("_")[1]

    def used() -> bool:
        return any(t.key == key and t.last_used_at is not None for t in served_workspace.access.list_tokens())

    wait_until(used, 20, "the last-used time to be written")


def _login(server: ServerProcess, name: str, password: str) -> Any:
    return http.post(
        f"{server.url}/login",
        data={"name": name, "password": password, "next": "/models"},
        headers={"Origin": server.url},
        follow_redirects=False,
    )


def test_login_csrf_and_logout_over_http(
    served: tuple[ServerProcess, dict[str, str]], served_workspace: Workspace
) -> None:
    server, _ = served
    served_workspace.access.add_user("olga", "correct horse battery", ["operator"], "test")
    assert http.get(f"{server.url}/models", follow_redirects=False).headers["location"] == "/login?next=%2Fmodels"
    assert _login(server, "olga", "wrong password here").status_code == 401
    answer = _login(server, "olga", "correct horse battery")
    assert answer.status_code == 303 and answer.headers["location"] == "/models"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    secret = answer.cookies["matchday_session"]
    jar = {"Cookie": f"matchday_session={secret}"}
    page = http.get(f"{server.url}/models", headers=jar)
    assert page.status_code == 200 and "olga" in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    action = f"{server.url}/deployments/{DEPLOYMENT}/rollout/pause"
    no_token = http.post(action, data={"reason": "x"}, headers={**jar, "Origin": server.url})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]
    elsewhere = http.post(
        action, data={"reason": "x", "csrf_token": csrf}, headers={**jar, "Origin": "http://evil.test"}
    )
    assert elsewhere.status_code == 403 and "another site" in elsewhere.json()["error"]
    no_origin = http.post(action, data={"reason": "x", "csrf_token": csrf}, headers=jar)
    assert no_origin.status_code == 403 and "Origin" in no_origin.json()["error"]
    through = http.post(action, data={"reason": "x", "csrf_token": csrf}, headers={**jar, "Origin": server.url})
    assert through.status_code in (303, 409)  # past the door: paused, or no rollout (another test's) to pause
    api = http.post(
        f"{server.url}/v1/deployments/{DEPLOYMENT}/rollout/pause",
        content=b'{"reason": "x"}',
        headers={**jar, "Origin": server.url, "Content-Type": "text/plain"},
    )
    assert api.status_code == 415  # what a no-cors fetch from another page can send
    out = http.post(f"{server.url}/logout", data={"csrf_token": csrf}, headers={**jar, "Origin": server.url})
    assert out.status_code == 303
    assert http.get(f"{server.url}/models", headers=jar, follow_redirects=False).status_code == 303


def test_failed_logins_are_rate_limited_over_http(
    served: tuple[ServerProcess, dict[str, str]], served_workspace: Workspace
) -> None:
    server, _ = served
    served_workspace.access.add_user("pat", "correct horse battery", ["viewer"], "test")
    statuses = [_login(server, "pat", f"wrong password {i}").status_code for i in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    limited = _login(server, "pat", "correct horse battery")  # even the right one, for a while
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # refused at the door, before any query
def test_without_credentials_json_routes_refuse_what_another_site_can_send(
    workspace: Workspace, database_url: str
) -> None:
    model, reference = fitted("base")
    workspace.registry.register(DEPLOYMENT, model, reference=reference)
    workspace.deployments.deploy(DEPLOYMENT, f"{DEPLOYMENT}:1")
    with ServerProcess(workspace.settings.home, database_url) as server:
        url = f"{server.url}/v1/deployments/{DEPLOYMENT}/rollout/pause"
        for kind in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": kind} if kind else {}
            answer = http.post(url, content=b'{"reason": "x"}', headers=headers)
            assert answer.status_code == 415, (kind, answer.text)
        rebound = http.get(f"{server.url}/v1/deployments", headers={"Host": "attacker.example:8000"})
        assert rebound.status_code == 403 and "Host" in rebound.json()["error"]
        assert http.get(f"{server.url}/v1/deployments").status_code == 200


def test_serve_refuses_to_listen_beyond_loopback_without_a_credential(tmp_path: Path) -> None:
    env = {"MATCHDAY_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    refused = subprocess.run(
        [MATCHDAY, "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--no-worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "refusing to listen on 0.0.0.0" in refused.stderr and "--insecure" in refused.stderr


def test_the_cli_makes_lists_and_revokes_tokens_and_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.cli_in_process import run_in_process

    import matchday.workspace

    def forget() -> None:
        with matchday.workspace._lock:
            if matchday.workspace._default is not None:
                matchday.workspace._default.close()
                matchday.workspace._default = None

    monkeypatch.chdir(tmp_path)
    env = {"MATCHDAY_HOME": str(tmp_path), "COLUMNS": "200"}

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_in_process(args, env, input=input, after=forget)

    made = run("tokens", "create", "--role", "predictor", "--deployment", "fraud", "--name", "checkout")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("md_") and "\n" not in token and "Shown once" in made.stderr
    key = token.split("_")[1]
    listed = run("tokens", "list")
    assert key in listed.stdout and "active" in listed.stdout and "fraud" in listed.stdout
    assert token.rsplit("_", 1)[1] not in listed.stdout
    assert run("tokens", "revoke", key).returncode == 0
    assert "revoked" in run("tokens", "list").stdout
    bad = run("tokens", "create", "--role", "root", "--name", "x")
    assert bad.returncode == 1 and "unknown role(s) root" in bad.stderr
    weak = run("users", "add", "alice", "--role", "viewer", "--password-stdin", input="short\n")
    assert weak.returncode == 1 and "too short" in weak.stderr
    added = run("users", "add", "alice", "--role", "viewer", "--password-stdin", input="a long enough secret\n")
    assert added.returncode == 0, added.stderr
    assert "alice" in run("users", "list").stdout
    trail = run("events")
    assert "token_created" in trail.stdout and "token_revoked" in trail.stdout and "user_added" in trail.stdout
    assert "cli:" in trail.stdout
    user = Workspace(Settings(home=tmp_path)).access.store.user("alice")
    assert user is not None and password_matches("a long enough secret", user.password_hash)


def test_metrics_and_healthz_need_a_viewer_when_open_metrics_is_off() -> None:
    from matchday.serving.auth_gate import AuthGate
    from matchday.serving.body_reader import BodyReader

    def roles(open_metrics: bool) -> list[str]:
        gate = AuthGate(lambda: None, BodyReader(1024, 1.0), open_metrics=open_metrics)  # type: ignore[arg-type,return-value]
        return [gate.table.match("GET", path)[0].role for path in ("/metrics", "/healthz")]  # type: ignore[index]

    assert roles(True) == ["open", "open"] and roles(False) == ["viewer", "viewer"]
