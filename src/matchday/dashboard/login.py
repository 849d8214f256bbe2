"""The login page, logging in and out. The session lives in the database (any replica knows it, a
logout ends it everywhere); the cookie holds only its random secret, HttpOnly and SameSite=Strict,
Secure when the page came over TLS. Failed logins are rate-limited per user name and address."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment

from matchday.auth import SESSION_HOURS, Access
from matchday.errors import MatchdayError
from matchday.serving import SESSION_COOKIE, headers_for, principal_of, status_for

_FORM_LIMIT = 10_000


def login_router(access: Callable[[], Access], env: Environment) -> APIRouter:
    """``GET/POST /login`` and ``POST /logout``; ``access`` is called per request (built in the lifespan)."""
    router = APIRouter(include_in_schema=False)

    def form(request: Request, status: int, message: str = "", name: str = "", next_page: str = "/") -> Response:
        html = env.get_template("login.html").render(
            request=request,
            refresh=0,
            query={},
            rendered=datetime.now(UTC),
            user=None,
            csrf="",
            enforced=access().enforced(),
            message=message,
            name=name,
            next=_local(next_page),
        )
        return HTMLResponse(html, status_code=status)

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> Response:
        return form(request, 200, next_page=next)

    @router.post("/login")
    async def login(request: Request) -> Response:
        fields = parse_qs((await request.body())[:_FORM_LIMIT].decode("utf-8", "replace"))
        name = (fields.get("name") or [""])[0].strip()
        password = (fields.get("password") or [""])[0]
        next_page = (fields.get("next") or ["/"])[0]
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
            return form(request, 403, "a login must come from this server's own login page", name, next_page)
        if not name or not password:
            return form(request, 400, "give a user name and a password", name, next_page)
        address = request.client.host if request.client else "unknown"
        try:
            secret, _ = await asyncio.to_thread(access().login, name, password, address)
        except MatchdayError as exc:  # a wrong password (401), too many tries (429), the database away (503)
            status = status_for(exc)
            message = exc.message if status < 500 else f"cannot log in now: {exc.message}"
            response = form(request, status, message, name, next_page)
            response.headers.update(headers_for(exc) or {})  # Retry-After
            return response
        response = RedirectResponse(_local(next_page), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=SESSION_HOURS * 3600,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        principal = principal_of(request.scope)
        secret = request.cookies.get(SESSION_COOKIE)
        if principal is not None and principal.kind == "user" and secret:
            await asyncio.to_thread(access().logout, secret)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return router


def _local(target: str) -> str:
    """Where to go after logging in: a path on this server only (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or "\n" in target or "\r" in target:
        return "/"
    return target
