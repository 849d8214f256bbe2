"""Rollouts over the API: start one, read its status, act on it (promote, roll back, pause...), list events."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from matchday.rollout import event_dict
from matchday.serving.auth_gate import actor_of
from matchday.serving.bodies import RolloutActionBody, RolloutStartBody, body_schema
from matchday.serving.errors import BadRequest
from matchday.serving.routes.parts import ORJSONResponse, Parts, Schemas, read_json


def router(parts: Parts, bodies: Schemas) -> APIRouter:
    """``/v1/deployments/{name}/rollout[/{action}]`` and ``/v1/deployments/{name}/events``."""
    api = APIRouter(default_response_class=ORJSONResponse)

    @api.post("/v1/deployments/{name}/rollout", status_code=201, openapi_extra=body_schema(RolloutStartBody, bodies))
    async def start_rollout(name: str, request: Request) -> Any:
        body, _ = await read_json(request, parts.body)
        if not isinstance(body, dict) or not isinstance(body.get("candidate"), str):
            raise BadRequest('the body must be {"candidate": "MODEL:VERSION", "strategy": ..., ...plan options}')
        options = {k: v for k, v in body.items() if k != "candidate"}
        record = await asyncio.to_thread(parts.rollouts.start, name, body["candidate"], options, _actor(request))
        status = await asyncio.to_thread(parts.rollouts.status, name)
        assert status.rollout.id == record.id
        return status.as_dict()

    @api.get("/v1/deployments/{name}/rollout")
    async def rollout_status(name: str) -> Any:
        return (await asyncio.to_thread(parts.rollouts.status, name)).as_dict()

    @api.post(
        "/v1/deployments/{name}/rollout/{action}", openapi_extra=body_schema(RolloutActionBody, bodies, required=False)
    )
    async def rollout_action(name: str, action: str, request: Request) -> Any:
        rollouts = parts.rollouts
        acts = {
            "promote": rollouts.promote,
            "rollback": rollouts.rollback,
            "abort": rollouts.rollback,
            "pause": rollouts.pause,
            "resume": rollouts.resume,
        }
        if action not in acts:
            raise BadRequest(f"unknown rollout action {action!r}; one of {', '.join(acts)}")
        body: Any = {}
        if int(request.headers.get("content-length") or 0):
            body, _ = await read_json(request, parts.body)
        reason = body.get("reason") if isinstance(body, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise BadRequest('"reason" must be a string')
        await asyncio.to_thread(acts[action], name, _actor(request), reason)
        return (await asyncio.to_thread(rollouts.status, name)).as_dict()

    @api.get("/v1/deployments/{name}/events")
    async def deployment_events(name: str, limit: int = 100) -> Any:
        events = await asyncio.to_thread(parts.rollouts.list_events, name, max(1, min(limit, 1000)))
        return {"events": [event_dict(e) for e in events]}

    return api


def _actor(request: Request) -> str:
    """Who asked: the caller's user or token; on a server without credentials the ``X-Matchday-Actor``
    header (a name for the audit trail), else the client address."""
    return actor_of(request.scope, f"api:{request.client.host if request.client else 'unknown'}")
