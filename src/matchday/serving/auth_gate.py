"""The door every request passes, in front of the app (the fast predict path too): who is asking
(a bearer token, a dashboard session cookie, or nobody), whether the route table lets them, and,
for a browser, whether the request really came from our own pages.

Bearer-token requests are checked in memory (the tokens are cached and polled), so predictions never
wait on the database; a session cookie is looked up (the dashboard's pages read the database anyway).
A browser's state change (a session cookie on an unsafe method) needs the session's CSRF token and
an Origin of this very server; JSON routes refuse the body types a cross-site form or a no-cors
``fetch`` can send. While no credential exists, the server answers as today, only to loopback
Host names (a DNS-rebinding page cannot reach it by another name).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from matchday.auth import OPEN, RULES, Access, Principal, RouteRule, RouteTable, Unauthenticated, local_admin
from matchday.errors import MatchdayError
from matchday.serving.body_reader import BodyReader
from matchday.serving.errors import headers_for, status_for
from matchday.serving.raw_answers import send_json

log = logging.getLogger("matchday.auth")
SESSION_COOKIE = "matchday_session"
CSRF_HEADER = b"x-csrf-token"
CSRF_FIELD = "csrf_token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON_TYPES = (b"application/json",)
_V2_TYPES = (b"application/json", b"application/octet-stream")  # the binary tensor extension
UPLOAD_HEADER, UPLOAD_NAME = b"x-matchday-sha256", "X-Matchday-Sha256"  # the artifact's hash, sent with each upload


class AuthGate:
    """``access`` is called per request (the workspace opens it in the app's lifespan); ``body`` reads
    a dashboard form's body, for its CSRF token, within the app's size limit and body timeout."""

    def __init__(
        self, access: Callable[[], Access], body: BodyReader, allowed_hosts: str = "", open_metrics: bool = True
    ) -> None:
        self.access = access
        self.body = body
        self.table = RouteTable(RULES if open_metrics else tuple(_closed_metrics(r) for r in RULES))
        self.any_host = allowed_hosts.strip() == "*"
        self.hosts = LOOPBACK_HOSTS | {h.strip().lower() for h in allowed_hosts.split(",") if h.strip()}

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The ``receive`` to go on with (the body replayed when a form was read here), or None when
        the request was answered here (refused)."""
        method, path = scope["method"], scope["path"]
        headers = _headers(scope)
        found = self.table.match(method, path)
        rule, params = found if found is not None else (None, {})
        access = self.access()
        enforced = access.enforced()
        try:
            principal, by_cookie = await self._principal(access, headers, enforced)
        except Unauthenticated as exc:
            await _refuse(send, path, 401, str(exc), bearer=True)
            return None
        if not enforced:
            host = _host(headers)
            if not self.any_host and host not in self.hosts:
                await _refuse(
                    send,
                    path,
                    403,
                    f"this server answers for {', '.join(sorted(self.hosts))}, "
                    f"not the Host {host!r} (set MATCHDAY_ALLOWED_HOSTS to add a name)",
                )
                return None
            client = scope.get("client")
            principal = local_admin(client[0] if client else "unknown")
        if rule is None or rule.role != OPEN:
            if principal is None:
                if _wants_page(method, path):
                    await _redirect(send, "/login?next=" + quote(_target(scope), safe=""))
                    return None
                await _refuse(
                    send, path, 401, "this route needs a credential: send Authorization: Bearer <token>", bearer=True
                )
                return None
            if rule is None and "admin" not in principal.roles:
                await _refuse(send, path, 403, f"{method} {path} is not in the access table: only an admin may call it")
                return None
            if rule is not None and not principal.may(rule, params):
                await _refuse(send, path, 403, _why_not(principal, rule, params))
                return None
        if method in _UNSAFE and principal is not None and principal.kind != "token":
            problem = _content_type_problem(path, headers, rule)
            if problem is None and by_cookie:
                problem = _origin_problem(scope, headers, self.hosts if not self.any_host else None)
                # logging in (again) acts with no session's authority, it starts a new one, and the login
                # page has no session to take a token from: its Origin is checked, not a CSRF token
                if problem is None and not (rule is not None and rule.template == "/login"):
                    try:
                        receive, problem = await self._csrf_problem(principal, headers, receive)
                    except ClientDisconnect:  # gone before sending its form: nobody to answer
                        return None
                    except MatchdayError as exc:  # the form over the size limit, or stalled (408)
                        await _refuse(send, path, status_for(exc), exc.message, headers=headers_for(exc))
                        return None
            if problem is not None:
                status = 415 if problem.startswith("the body") else 403
                await _refuse(send, path, status, problem)
                return None
        scope.setdefault("state", {})["principal"] = principal
        return receive

    async def _csrf_problem(
        self, principal: Principal, headers: dict[bytes, bytes], receive: Receive
    ) -> tuple[Receive, str | None]:
        """The session's CSRF token, from the ``X-CSRF-Token`` header or a form's ``csrf_token`` field
        (the form is read here and handed on unchanged)."""
        given = headers.get(CSRF_HEADER, b"").decode("latin-1")
        if not given and _content_type(headers) == b"application/x-www-form-urlencoded":
            length = headers.get(b"content-length")
            body = await self.body.read(receive, length.decode("latin-1") if length else None)
            given = (parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD) or [""])[0]
            receive = _replay({"type": "http.request", "body": body, "more_body": False}, receive)
        if not principal.csrf or not given or not hmac.compare_digest(given.encode(), principal.csrf.encode()):
            return (
                receive,
                "the form is stale or came from another site: its CSRF token is missing or wrong (reload the page)",
            )
        return receive, None

    async def _principal(
        self, access: Access, headers: dict[bytes, bytes], enforced: bool
    ) -> tuple[Principal | None, bool]:
        """(the caller, whether by session cookie); `Unauthenticated` for a bad bearer token."""
        authorization = headers.get(b"authorization")
        if authorization is not None:
            scheme, _, credential = authorization.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise Unauthenticated("send the token as Authorization: Bearer <token>")
            if not enforced:  # no credential exists: the token cannot be one, and none is asked for
                return None, False
            return access.bearer(credential.strip()), False
        secret = _cookie(headers, SESSION_COOKIE)
        if secret and enforced:
            try:
                principal = await asyncio.to_thread(access.session, secret)
            except MatchdayError as exc:  # the database away: the session cannot be checked
                log.warning("could not check a session: %s", exc)
                principal = None
            return principal, principal is not None
        return None, False


def actor_of(scope: Scope, fallback: str) -> str:
    """Who the audit trail names for a request: its principal (a user or a token), or, on a server
    without credentials, the ``X-Matchday-Actor`` header or ``fallback``."""
    principal = scope.get("state", {}).get("principal")
    if isinstance(principal, Principal) and principal.kind != "local":
        return principal.actor
    for key, value in scope["headers"]:
        if key == b"x-matchday-actor":
            named = value.decode("latin-1").strip()[:100]
            if named:
                return named
    return fallback


def principal_of(scope: Scope) -> Principal | None:
    found = scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else None


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k: v for k, v in scope["headers"]}


def _host(headers: dict[bytes, bytes]) -> str:
    raw = headers.get(b"host", b"").decode("latin-1").strip().lower()
    if raw.startswith("["):  # [::1]:8000
        return raw[: raw.find("]") + 1] if "]" in raw else raw
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw


def _cookie(headers: dict[bytes, bytes], name: str) -> str | None:
    raw = headers.get(b"cookie")
    if not raw:
        return None
    for part in raw.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _closed_metrics(rule: RouteRule) -> RouteRule:
    """With ``open_metrics`` off, /metrics and /healthz need a viewer like the rest."""
    if rule.role == OPEN and rule.template in ("/metrics", "/healthz"):
        return RouteRule(rule.method, rule.template, "viewer")
    return rule


def _content_type(headers: dict[bytes, bytes]) -> bytes:
    return headers.get(b"content-type", b"").split(b";")[0].strip().lower()


def _wants_page(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and not path.startswith(("/v1", "/v2", "/metrics", "/healthz", "/openapi.json"))


def _target(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    return scope["path"] + (f"?{query}" if query else "")


def _why_not(principal: Principal, rule: RouteRule, params: dict[str, str]) -> str:
    if rule.role in principal.roles and rule.deployment is not None:
        return f"{principal.actor} may not use deployment {params.get(rule.deployment)!r}"
    held = ", ".join(sorted(principal.roles)) or "none"
    return f"{rule.method} {rule.template} needs the {rule.role} role; {principal.actor} holds {held}"


def _content_type_problem(path: str, headers: dict[bytes, bytes], rule: RouteRule | None) -> str | None:
    """JSON routes take JSON only: a form or ``text/plain`` is what another site's page can send unasked."""
    if not path.startswith(("/v1/", "/v2/")):
        return None
    if headers.get(b"content-length", b"0") in (b"0", b"") and b"transfer-encoding" not in headers:
        return None  # no body (a rollout action without a reason)
    kind = _content_type(headers)
    if path.startswith("/v2/") and (not kind or b"inference-header-content-length" in headers):
        return None  # tritonclient names no type; V2 only scores (a form or text/plain is still refused)
    if rule is not None and rule.upload:  # a file upload (the registry's): any page can send a multipart form,
        # but not with a header of its own to another site without asking first (a preflight never granted here)
        if kind == b"multipart/form-data" and headers.get(UPLOAD_HEADER):
            return None
        shown = kind.decode("latin-1") or "none"
        return f"the body must be sent as multipart/form-data with an {UPLOAD_NAME} header (Content-Type is {shown})"
    allowed = _V2_TYPES if path.startswith("/v2/") else _JSON_TYPES
    if kind not in allowed:
        shown = kind.decode("latin-1") or "none"
        return f"the body must be sent as {' or '.join(a.decode() for a in allowed)} (Content-Type is {shown})"
    return None


def _origin_problem(scope: Scope, headers: dict[bytes, bytes], hosts: frozenset[str] | set[str] | None) -> str | None:
    """A browser's state change must come from this server's own pages (same scheme and host)."""
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin or origin == "null":
        return "a browser request that changes something must carry an Origin header of this server"
    parts = urlsplit(origin)
    host = headers.get(b"host", b"").decode("latin-1").lower()
    if parts.scheme != scope.get("scheme", "http"):
        return f"the Origin's scheme {parts.scheme!r} is not this server's {scope.get('scheme', 'http')!r}"
    if parts.netloc.lower() != host:
        return f"the request came from another site ({origin})"
    if hosts is not None and len(hosts) > len(LOOPBACK_HOSTS) and _host(headers) not in hosts:
        return f"this server is not reached as {host!r}"
    return None


def _replay(message: Message, receive: Receive) -> Receive:
    """``receive`` with the body already read handed out first."""
    pending = [message]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def _refuse(
    send: Send, path: str, status: int, message: str, *, bearer: bool = False, headers: dict[str, str] | None = None
) -> None:
    body: dict[str, Any] = {"error": message}
    if not path.startswith("/v2"):
        body["details"] = []
    extra = dict(headers or {})
    if bearer:
        extra["www-authenticate"] = 'Bearer realm="matchday"'
    await send_json(send, status, body, extra)


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
