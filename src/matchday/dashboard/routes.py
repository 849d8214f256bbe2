"""The dashboard's HTTP face: thin routes that parse a page's query, ask `DashboardPages`, render HTML.

Bad input is a page, not a traceback: an unknown deployment, feature, model or retraining run is a 404
saying so, a bad time range a 400. Rollout actions are POSTs behind a confirmation page, a retraining
run's approval or cancellation a POST from its page; both are refused from another origin.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from matchday.auth import Access, Forbidden, RouteTable
from matchday.dashboard.errors import BadTimeRange, PageNotFound
from matchday.dashboard.login import login_router
from matchday.dashboard.pages import ACTION_VERBS, DashboardPages
from matchday.dashboard.timerange import PRESETS, parse_range
from matchday.errors import MatchdayError
from matchday.serving import actor_of, principal_of, status_for
from matchday.store import StoreUnavailable

log = logging.getLogger("matchday.dashboard")
REFRESH_SECONDS = 10
STATIC_PATH = "/static/dashboard"
RETRAIN_ACTION = ("POST", "/retrain/{run_id}/{action}")
_ROUTES = RouteTable()


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("matchday.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, pct=_pct, when=_when, secs=_secs, signed=_signed)
    env.globals.update(presets=list(PRESETS), static=STATIC_PATH, quote=quote)
    return env


def mount_dashboard(app: FastAPI, pages: Callable[[], DashboardPages], access: Callable[[], Access]) -> None:
    """Serve the pages at ``/`` and their static files (uPlot, our script and styles) at ``/static/dashboard``.

    ``pages`` and ``access`` are called per request: the app builds its parts in its lifespan, after this runs.
    """
    static = resources.files("matchday.dashboard") / "static"
    app.mount(STATIC_PATH, StaticFiles(directory=str(static)), name="dashboard-static")
    app.include_router(dashboard_router(pages))
    app.include_router(login_router(access, templates()))


def _who(request: Request) -> dict[str, Any]:
    """The signed-in user and the CSRF token the page's forms carry (none on a server without users)."""
    principal = principal_of(request.scope)
    if principal is None or principal.kind != "user":
        return {"user": None, "csrf": ""}
    return {"user": principal.name, "csrf": principal.csrf or ""}


def dashboard_router(pages: Callable[[], DashboardPages]) -> APIRouter:
    env = templates()
    router = APIRouter(include_in_schema=False)

    def page(request: Request, template: str, build: Callable[[], dict[str, Any]], *, refresh: bool = True) -> Response:
        try:
            data = build()
        except MatchdayError as exc:  # an unknown name, a bad range, the database away: a page saying so
            return error(request, exc)
        return HTMLResponse(
            env.get_template(template).render(
                request=request,
                refresh=_refresh(request, refresh and bool(data.pop("refresh", True))),
                query=dict(request.query_params),
                rendered=datetime.now(UTC),
                **_who(request),
                **data,
            )
        )

    def error(request: Request, exc: MatchdayError, title: str | None = None, back: str | None = None) -> Response:
        """The error page, with the status the API answers the same error with (`status_for`)."""
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        if title is None or status == 404:  # what is not there is "Not Found", whatever was tried on it
            title = _title(exc, status)
        body = env.get_template("error.html").render(
            request=request,
            refresh=0,
            query={},
            rendered=datetime.now(UTC),
            status=status,
            title=title,
            message=exc.message,
            details=exc.details,
            back=back,
            **_who(request),
        )
        return HTMLResponse(body, status_code=status)

    def foreign(request: Request, what: str) -> Response:
        """The 403 page of a form posted from another site's page."""
        message = f"{what} must come from the dashboard's own pages (the Origin header names another site)"
        return error(request, Forbidden(message))

    @router.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> Response:
        return page(request, "overview.html", lambda: pages().overview())

    @router.get("/deployments/{name}", response_class=HTMLResponse)
    def deployment(
        request: Request,
        name: str,
        range: str | None = None,
        since: str | None = None,  # noqa: A002
        until: str | None = None,
        window: str | None = None,
        device: str | None = None,
    ) -> Response:
        return page(
            request,
            "deployment.html",
            lambda: pages().deployment(name, parse_range(range, since, until), window or None, device or None),
        )

    @router.get("/edge/devices", response_class=HTMLResponse)
    def devices(request: Request, deployment: str | None = None) -> Response:
        return page(request, "devices.html", lambda: pages().devices(deployment or None))

    @router.get("/deployments/{name}/drift/{feature:path}", response_class=HTMLResponse)  # a name may hold "/"
    def drift(
        request: Request,
        name: str,
        feature: str,
        range: str | None = None,  # noqa: A002
        since: str | None = None,
        until: str | None = None,
        window: str | None = None,
        version: str | None = None,
    ) -> Response:
        def build() -> dict[str, Any]:
            if version is not None and not (version.isascii() and version.isdigit()):
                raise BadTimeRange(f"version={version!r} is not a version number")
            return pages().drift(
                name, feature, parse_range(range, since, until), window or None, int(version) if version else None
            )

        return page(request, "drift.html", build)

    @router.get("/deployments/{name}/rollout", response_class=HTMLResponse)
    def rollout(request: Request, name: str) -> Response:
        return page(
            request, "rollout.html", lambda: {**pages().rollout(name), "done": request.query_params.get("done")}
        )

    @router.get("/deployments/{name}/rollout/{action}", response_class=HTMLResponse)
    def confirm(request: Request, name: str, action: str) -> Response:
        return page(request, "confirm.html", lambda: pages().confirm(name, action), refresh=False)

    @router.post("/deployments/{name}/rollout/{action}")
    async def act(request: Request, name: str, action: str) -> Response:
        if not _same_origin(request):
            return foreign(request, "a rollout action")
        form = parse_qs((await request.body())[:10_000].decode("utf-8", "replace"))  # the confirmation form
        reason = (form.get("reason") or [""])[0].strip()[:500]
        try:
            done = await asyncio.to_thread(pages().act, name, action, _actor(request), reason)
        except MatchdayError as exc:  # no such rollout, nothing to do (already promoted), changed meanwhile
            return error(request, exc, f"Could not {ACTION_VERBS.get(action, action)}")
        return RedirectResponse(f"/deployments/{quote(name)}/rollout?done={quote(done)}", status_code=303)

    @router.get("/review", response_class=HTMLResponse)
    def review_queues(request: Request) -> Response:
        return page(request, "review_list.html", lambda: pages().review_queues())

    @router.get("/review/{name}", response_class=HTMLResponse)
    def review(request: Request, name: str, reveal: str | None = None, decided: str | None = None) -> Response:
        # no refresh: the page holds a claimed item and a form half filled in
        return page(
            request,
            "review.html",
            lambda: pages().review_item(name, _actor(request), reveal == "1", decided or None),
            refresh=False,
        )

    @router.post("/review/{name}/{review_id}/decide")
    async def decide(request: Request, name: str, review_id: str) -> Response:
        if not _same_origin(request):
            return foreign(request, "a review decision")
        form = parse_qs((await request.body())[:10_000].decode("utf-8", "replace"))
        action = (form.get("action") or [""])[0]
        label = (form.get("label") or [""])[0][:500]
        revealed = (form.get("revealed") or [""])[0] == "1"
        try:
            await asyncio.to_thread(pages().review_decide, name, review_id, _actor(request), action, label, revealed)
        except MatchdayError as exc:  # someone else holds it or decided it, not a decision, a label it lacks
            return error(request, exc, back=f"/review/{quote(name)}")
        return RedirectResponse(f"/review/{quote(name)}?decided={quote(review_id)}", status_code=303)

    @router.get("/retrain", response_class=HTMLResponse)
    def retrain_runs(request: Request, deployment: str | None = None) -> Response:
        return page(request, "retrain_list.html", lambda: pages().retrain_runs(deployment or None))

    @router.get("/retrain/{run_id}", response_class=HTMLResponse)
    def retrain_run(request: Request, run_id: str, done: str | None = None) -> Response:
        def build() -> dict[str, Any]:
            data = pages().retrain_run(_run_id(run_id))
            return {**data, "done": done, "may_act": _may(request, *RETRAIN_ACTION)}

        return page(request, "retrain_run.html", build)

    @router.post("/retrain/{run_id}/{action}")
    async def retrain_act(request: Request, run_id: str, action: str) -> Response:
        if not _same_origin(request):
            return foreign(request, "a retraining action")
        form = parse_qs((await request.body())[:10_000].decode("utf-8", "replace"))
        reason = (form.get("reason") or [""])[0].strip()[:500]
        back = f"/retrain/{quote(run_id)}"
        try:
            done = await asyncio.to_thread(pages().retrain_act, _run_id(run_id), action, _actor(request), reason)
        except MatchdayError as exc:  # no such run, not awaiting approval, already ended, changed meanwhile
            return error(request, exc, f"Could not {action}", back=back)
        return RedirectResponse(f"{back}?done={quote(done)}", status_code=303)

    @router.get("/models", response_class=HTMLResponse)
    def models(request: Request) -> Response:
        return page(request, "models.html", lambda: pages().models(), refresh=False)  # changes by hand only

    @router.get("/models/{name}", response_class=HTMLResponse)
    def model(request: Request, name: str) -> Response:
        return page(request, "model.html", lambda: pages().model(name), refresh=False)

    @router.get("/alerts", response_class=HTMLResponse)
    def alerts(request: Request, state: str | None = None, deployment: str | None = None) -> Response:
        return page(request, "alerts.html", lambda: pages().alerts(state or None, deployment or None))

    return router


def _title(exc: MatchdayError, status: int) -> str:
    """An error page's heading: what the status means, or that the database is away."""
    if isinstance(exc, StoreUnavailable):
        return "The database is unavailable"
    return HTTPStatus(status).phrase


def _refresh(request: Request, allowed: bool) -> int:
    """Seconds between refreshes: ``?refresh=N`` (0 turns it off), else the default."""
    if not allowed:
        return 0
    asked = request.query_params.get("refresh", "")
    return min(int(asked), 3600) if asked.isdigit() else REFRESH_SECONDS


def _same_origin(request: Request) -> bool:
    """A browser names the page a form was posted from; another site's page may not act on a rollout."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _run_id(text: str) -> int:
    """A run's id from its address; anything but a number names no run (a 404, not a 422)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise PageNotFound(f"there is no retraining run {text!r}")
    return int(text)


def _may(request: Request, method: str, template: str) -> bool:
    """Whether the viewer's role may call a route (its buttons are shown only then); a dashboard
    mounted without the gate in front has nobody to ask, and shows them."""
    principal = principal_of(request.scope)
    rule = _ROUTES.rule_for(method, template)
    if principal is None:
        return True
    return rule is not None and principal.may(rule, {})


def _actor(request: Request) -> str:
    return actor_of(request.scope, f"dashboard:{request.client.host if request.client else 'unknown'}")


def _num(value: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant figures; a dash for none (or a metric the window lacks)."""
    if isinstance(value, bool):
        return str(value).lower()
    if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e9):
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def _signed(value: Any) -> str:
    """A gain with its sign, to four decimals (``+0.1234``); a dash for none or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value:+.4f}"


def _pct(value: Any) -> str:
    return f"{100 * float(value):.3g}%" if isinstance(value, (int, float)) else "–"


def _when(value: datetime | None) -> str:
    if value is None:
        return "–"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _secs(value: Any) -> str:
    """Seconds as the unit that reads best (ms under a second)."""
    if not isinstance(value, (int, float)):
        return "–"
    return f"{1000 * value:.3g} ms" if value < 1 else f"{value:.3g} s"
