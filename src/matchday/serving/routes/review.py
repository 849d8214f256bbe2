"""People in the loop over the API: a deployment's automation policy, the review queue (claim, decide,
release), the final decision on a queued answer, and the queue's numbers."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import APIRouter, Request

from matchday.review import ACTIONS, ReviewError, decision_json, item_json, window_start
from matchday.serving.auth_gate import actor_of, principal_of
from matchday.serving.bodies import AutomationBody, ReviewDecideBody, ReviewNextBody, ReviewReleaseBody, body_schema
from matchday.serving.errors import BadRequest
from matchday.serving.routes.parts import ORJSONResponse, Parts, Schemas, read_json
from matchday.store import NotFound

_STATUSES = ("open", "escalated", "decided", "expired")


def router(parts: Parts, bodies: Schemas) -> APIRouter:
    api = APIRouter(default_response_class=ORJSONResponse)

    @api.get("/v1/deployments/{name}/decisions/{request_id}")
    async def decision(name: str, request_id: str) -> Any:
        """A queued answer's state: pending until a person decides (or its deadline settles it)."""
        found = await asyncio.to_thread(parts.review.decision, name, request_id)
        if found is not None:
            return found
        recent = parts.service.recently_queued.get(request_id)
        if recent is not None and recent["deployment"] == name:  # answered here, not yet in the log
            return recent
        logged = await asyncio.to_thread(parts.service.log_store.get, request_id)
        if logged is None or logged.deployment != name:
            raise NotFound(
                f"deployment {name!r} has no answer with request id {request_id!r} (an answer is logged within "
                "a fraction of a second; ask again if it was just given)"
            )
        return {"request_id": request_id, "deployment": name, "decision": "final", "status": "not_queued"}

    @api.get("/v1/deployments/{name}/automation")
    async def get_automation(name: str) -> Any:
        policy = await asyncio.to_thread(parts.automation.policy, name)
        return {"deployment": name, "automation": policy.stored() if policy else None}

    @api.put("/v1/deployments/{name}/automation", openapi_extra=body_schema(AutomationBody, bodies))
    async def set_automation(name: str, request: Request) -> Any:
        body, _ = await read_json(request, parts.body)
        if not isinstance(body, dict) or not isinstance(body.get("reason"), str) or not body["reason"].strip():
            raise BadRequest('the body must be {"level": ..., ..., "reason": "why"} (a reason is required)')
        unknown = sorted(set(body) - set(AutomationBody.model_fields))
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(unknown)}; see AutomationBody in /openapi.json")
        settings = {k: v for k, v in body.items() if k != "reason" and v is not None}
        change = await asyncio.to_thread(parts.automation.set, name, settings, _actor(request), body["reason"])
        return {
            "deployment": name,
            "from": change.before.level.value if change.before else None,
            "to": change.after.level.value if change.after else None,
            "automation": change.after.stored() if change.after else None,
        }

    @api.get("/v1/deployments/{name}/automation/suggest")
    async def suggest(name: str) -> Any:
        found = await asyncio.to_thread(parts.automation.suggest, name)
        out = dataclasses.asdict(found)
        out["level"] = found.level.value
        out["to"] = found.to.value if found.to else None
        return out

    @api.get("/v1/deployments/{name}/review/stats")
    async def stats(name: str, window: str | None = None) -> Any:
        """The queue's numbers over the items created in the last ``window`` (``1h``, ``1d``; all if absent)."""
        await asyncio.to_thread(parts.service.deployments.get, name)  # 404 for a deployment that does not exist
        try:
            since = window_start(window)
        except ValueError as exc:
            raise BadRequest(f"window={window!r}: {exc}") from exc
        found = await asyncio.to_thread(parts.review.stats, name, since)
        return {"deployment": name, "window": window, **found}

    @api.get("/v1/review/items")
    async def list_items(deployment: str | None = None, status: str | None = None, limit: int = 100) -> Any:
        statuses = tuple(s for s in (status or "").split(",") if s)
        bad = [s for s in statuses if s not in _STATUSES]
        if bad:
            raise BadRequest(f"unknown status {', '.join(bad)}; one of {', '.join(_STATUSES)}")
        items = await asyncio.to_thread(parts.review.items, deployment, statuses, max(1, min(limit, 1000)))
        return {"items": [item_json(i) for i in items]}

    @api.post("/v1/review/next", openapi_extra=body_schema(ReviewNextBody, bodies))
    async def claim_next(request: Request) -> Any:
        body, _ = await read_json(request, parts.body)
        if not isinstance(body, dict) or not isinstance(body.get("deployment"), str):
            raise BadRequest('the body must be {"deployment": NAME} (and optionally "lease_seconds")')
        lease = body.get("lease_seconds")
        if lease is not None and (
            isinstance(lease, bool) or not isinstance(lease, int | float) or not 5 <= lease <= 86400
        ):
            raise BadRequest('"lease_seconds" must be a number of seconds from 5 to 86400')
        name = body["deployment"]
        seconds = float(lease) if lease is not None else await asyncio.to_thread(parts.automation.lease_seconds, name)
        item = await asyncio.to_thread(parts.review.next, name, _reviewer(request, body), seconds)
        return {"item": item_json(item) if item is not None else None}

    @api.get("/v1/review/items/{review_id}")
    async def get_item(review_id: str, reveal: bool = False) -> Any:
        return item_json(await asyncio.to_thread(parts.review.get, review_id), reveal=reveal)

    @api.post("/v1/review/items/{review_id}/decide", openapi_extra=body_schema(ReviewDecideBody, bodies))
    async def decide(review_id: str, request: Request) -> Any:
        body, _ = await read_json(request, parts.body)
        if not isinstance(body, dict) or body.get("action") not in ACTIONS:
            raise BadRequest('the body must be {"action": "approve" | "override" | "skip", "label": ... (override)}')
        label = body.get("label")
        if isinstance(label, dict | list):
            raise BadRequest('"label" must be a single value')
        seen = body.get("saw_suggestion")
        if seen is not None and not isinstance(seen, bool):
            raise BadRequest('"saw_suggestion" must be true or false')
        try:
            item = await asyncio.to_thread(
                parts.review.decide, review_id, _reviewer(request, body), body["action"], label, saw_suggestion=seen
            )
        except ReviewError as exc:
            raise BadRequest(exc.message, exc.details) from exc
        return {"item": item_json(item, reveal=True), "decision": decision_json(item)}

    @api.post(
        "/v1/review/items/{review_id}/release", openapi_extra=body_schema(ReviewReleaseBody, bodies, required=False)
    )
    async def release(review_id: str, request: Request) -> Any:
        body: Any = {}
        if int(request.headers.get("content-length") or 0):
            body, _ = await read_json(request, parts.body)
        if not isinstance(body, dict):
            raise BadRequest('the body, if any, must be {"reviewer": NAME}')
        released = await asyncio.to_thread(parts.review.release, review_id, _reviewer(request, body))
        return {"review_id": review_id, "released": released}

    return api


def _actor(request: Request) -> str:
    return actor_of(request.scope, f"api:{request.client.host if request.client else 'unknown'}")


def _reviewer(request: Request, body: dict[str, Any]) -> str:
    """Who decides: the signed-in user or the token's name; on a server without credentials, the body's
    ``reviewer`` (or the ``X-Matchday-Actor`` header, or the client's address)."""
    principal = principal_of(request.scope)
    if principal is not None and principal.kind != "local":
        return principal.actor
    named = body.get("reviewer")
    if isinstance(named, str) and named.strip():
        return named.strip()[:100]
    return _actor(request)
