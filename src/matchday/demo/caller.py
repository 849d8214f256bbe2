"""The demo's own credential. The server asks every caller for one as soon as any credential exists (the edge
step's till gets a token), so the demo gives itself an admin token first, in ``MATCHDAY_TOKEN`` where
:class:`matchday.Client` reads it, and sends it on its plain HTTP calls too."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from matchday.errors import MatchdayError
from matchday.workspace import Workspace

ENV = "MATCHDAY_TOKEN"
USER = "demo"


def headers() -> dict[str, str]:
    token = os.environ.get(ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def http(url: str) -> httpx.Client:
    """An HTTP client for a demo server that sends the demo's token."""
    return httpx.Client(base_url=url, timeout=30, headers=headers())


@dataclass(frozen=True)
class Credentials:
    """The demo's admin token, and the dashboard user it logs in as (a password made up for this run)."""

    token: str
    user: str
    password: str


def login(http: httpx.Client, credentials: Credentials) -> int:
    """Log ``http`` in to the dashboard (its cookie jar keeps the session); the login's status."""
    answer = http.post(
        "/login",
        data={"name": credentials.user, "password": credentials.password, "next": "/"},
        headers={"Origin": str(http.base_url).rstrip("/")},
    )
    return answer.status_code


@contextmanager
def demo_credentials(ws: Workspace) -> Iterator[Credentials]:
    """An admin token for the demo's calls while the demo runs (the variable restored afterwards), and an admin
    user for the dashboard."""
    token, _ = ws.access.create_token(["admin"], name="matchday demo", created_by="demo", expires="1d")
    password = secrets.token_urlsafe(12)
    try:  # an earlier demo's user, in a home the demo did not make (and so did not start over)
        ws.access.remove_user(USER, "demo")
    except MatchdayError:
        pass
    ws.access.add_user(USER, password, ["admin"], "demo")
    before = os.environ.get(ENV)
    os.environ[ENV] = token
    try:
        yield Credentials(token, USER, password)
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
