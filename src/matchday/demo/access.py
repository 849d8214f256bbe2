"""The access part of the demo: tokens with roles, a deployment-limited predictor, a revoke that takes
effect at once, a dashboard login, and the audit trail naming who did what.

It runs in a workspace of its own (beside the demo's): once a user or token exists a server asks
every caller for one, and the rest of the demo (and its dashboard) stays open on loopback.
"""

from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console

from matchday.client import Client, ServerError
from matchday.demo.serving import running_server
from matchday.workspace import Workspace


@dataclass(frozen=True)
class Outcome:
    """The HTTP status each caller got: the unknown and the revoked 401, the wrong role and the forged form 403."""

    statuses: dict[str, int | None]


def run(console: Console, ws: Workspace, model: Any, reference: Any) -> Outcome:
    home = ws.settings.home / "access-demo"
    shutil.rmtree(home, ignore_errors=True)
    secured = Workspace(ws.settings.model_copy(update={"home": home, "database_url": None, "artifact_url": None}))
    try:
        return _run(console, secured, model, reference)
    finally:
        secured.close()


def _run(console: Console, ws: Workspace, model: Any, reference: Any) -> Outcome:
    ws.registry.register("demo-fraud", model, reference=reference, target="is_fraud", alias="champion")
    ws.deployments.deploy("fraud", "demo-fraud@champion")
    access = ws.access
    ops, ops_record = access.create_token(["operator"], name="deploy pipeline", created_by="demo", expires="90d")
    app, app_record = access.create_token(
        ["predictor"], name="checkout service", created_by="demo", deployments=["fraud"], expires="30d"
    )
    password = secrets.token_urlsafe(12)
    access.add_user("demo-admin", password, ["admin"], "demo")
    console.print(
        f"$ matchday tokens create --role operator --name 'deploy pipeline'        -> md_{ops_record.key}_…\n"
        f"$ matchday tokens create --role predictor --deployment fraud --name 'checkout service' "
        f"-> md_{app_record.key}_…\n"
        "$ matchday users add demo-admin --role admin   (password asked; stored as a scrypt hash)\n"
        f"in {ws.settings.home}: only salted hashes are stored; each token is shown once"
    )
    row = reference.drop(columns=["is_fraud"]).head(1).to_dict("records")
    statuses: dict[str, int | None] = {}
    with running_server(ws) as url:
        with Client(url, token="") as anonymous:
            statuses["no token"] = _said(console, "no token", lambda: anonymous.predict("fraud", row))
        with Client(url, token=app) as checkout:
            answer = checkout.predict("fraud", row)
            console.print(f"checkout service's token: fraud answered {answer['predictions'][0]['prediction']!r}")
            statuses["wrong role"] = _said(console, "the same token reading the deployments", checkout.deployments)
        access.revoke_token(app_record.key, "demo")
        revoked_at = time.perf_counter()
        with Client(url, token=app) as revoked:
            while True:  # the server polls the stored tokens twice a second
                try:
                    revoked.predict("fraud", row)
                except ServerError as exc:
                    statuses["revoked"] = exc.status
                    waited = 1000 * (time.perf_counter() - revoked_at)
                    console.print(
                        f"after `matchday tokens revoke {app_record.key}`: {exc.message} ({waited:.0f} ms later)"
                    )
                    break
                time.sleep(0.05)
        paused = httpx.post(
            f"{url}/v1/deployments/fraud/rollout/pause",
            json={"reason": "demo"},
            headers={"Authorization": f"Bearer {ops}"},
        )
        console.print(
            f"the operator token pausing a deployment with no rollout: {paused.status_code} {paused.json()['error']}"
        )
        # -- a training job on another machine: a version uploaded and deployed with the operator's token
        with Client(url, token=ops) as ci:
            uploaded = ci.register_model("demo-fraud", model, reference=reference, target="is_fraud")
            deployed = ci.deploy("fraud-ci", uploaded["ref"])
        console.print(
            f"the operator token uploading a version: {uploaded['ref']} (sha256 {uploaded['artifact_sha256'][:12]}, "
            f"checked on arrival), deployed as {deployed['name']}"
        )
        login = httpx.post(
            f"{url}/login",
            data={"name": "demo-admin", "password": password, "next": "/"},
            headers={"Origin": url},
            follow_redirects=False,
        )
        cookie = login.headers.get("set-cookie", "")
        flags = [f for f in ("HttpOnly", "SameSite=strict") if f.lower() in cookie.lower()]
        console.print(
            f"dashboard login as demo-admin: {login.status_code} -> {login.headers.get('location')}, "
            f"session cookie {', '.join(flags)}"
        )
        forged = httpx.post(
            f"{url}/deployments/fraud/rollout/pause",
            data={"reason": "forged"},
            headers={
                "Origin": "http://evil.example",
                "Cookie": f"matchday_session={login.cookies.get('matchday_session')}",
            },
        )
        console.print(
            f"a form posted from another site with that cookie: {forged.status_code} {forged.json()['error']}"
        )
        statuses["login"], statuses["forged form"] = login.status_code, forged.status_code
    trail = [e for e in ws.access.events.list(limit=10) if e.kind.startswith(("token", "user"))]
    console.print("audit trail: " + "; ".join(f"{e.actor}: {e.reason}" for e in reversed(trail)))
    return Outcome(statuses)


def _said(console: Console, who: str, call: Any) -> int | None:
    """The status of a call that should be refused (None: it was answered)."""
    try:
        call()
    except ServerError as exc:
        console.print(f"{who}: {exc.message}")
        return exc.status
    console.print(f"{who}: answered (unexpected)")
    return None
