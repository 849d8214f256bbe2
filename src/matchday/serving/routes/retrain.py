"""Retraining over the API: its runs (list, one in detail), a run started by hand, approved or cancelled,
a deployment's effective policy, and the dry run of a policy over the stored windows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from matchday.retrain import RetrainRunNotFound, period_start, policy_json, run_json
from matchday.serving.auth_gate import actor_of
from matchday.serving.bodies import RetrainBody, body_schema
from matchday.serving.errors import BadRequest
from matchday.serving.routes.parts import ORJSONResponse, Parts, Schemas, read_json

MAX_RUN_ID = 2**31 - 1  # the column's range: a larger id names no run (and would not reach the database)


def router(parts: Parts, bodies: Schemas) -> APIRouter:
    api = APIRouter(default_response_class=ORJSONResponse)

    @api.get("/v1/retrain/runs")
    async def list_runs(deployment: str | None = None, limit: int = 50) -> Any:
        """Runs, newest first (of one deployment with ``deployment=``)."""
        runs = await asyncio.to_thread(parts.retraining.runs, deployment, max(1, min(limit, 1000)))
        return {"runs": [run_json(r) for r in runs]}

    @api.get("/v1/retrain/runs/{run_id}")
    async def get_run(run_id: int) -> Any:
        """Every field of a run: its trigger, its steps with times and messages, the data snapshot's counts,
        the evaluation report with its segments, and the rollout it went through."""
        return run_json(await asyncio.to_thread(parts.retraining.get, _checked(run_id)))

    @api.post(
        "/v1/deployments/{name}/retrain",
        status_code=201,
        openapi_extra=body_schema(RetrainBody, bodies, required=False),
    )
    async def start_run(name: str, request: Request) -> Any:
        """Queue a run of the deployment's policy now (409 while one is in progress); the worker takes it on."""
        reason = await _reason(request, parts)
        return run_json(await asyncio.to_thread(parts.retraining.run, name, _actor(request), reason))

    @api.post("/v1/retrain/runs/{run_id}/approve", openapi_extra=body_schema(RetrainBody, bodies, required=False))
    async def approve_run(run_id: int, request: Request) -> Any:
        """Let a candidate that waits for an operator go to its rollout (409 for a run not awaiting approval)."""
        reason = await _reason(request, parts)
        return run_json(await asyncio.to_thread(parts.retraining.approve, _checked(run_id), _actor(request), reason))

    @api.post("/v1/retrain/runs/{run_id}/cancel", openapi_extra=body_schema(RetrainBody, bodies, required=False))
    async def cancel_run(run_id: int, request: Request) -> Any:
        """End a run; a rollout it started is rolled back (409 for a run that has already ended)."""
        reason = await _reason(request, parts)
        return run_json(await asyncio.to_thread(parts.retraining.cancel, _checked(run_id), _actor(request), reason))

    @api.get("/v1/deployments/{name}/retrain/policy")
    async def get_policy(name: str) -> Any:
        """The deployment's retraining policy as the worker applies it, defaults filled in, durations in seconds."""
        return {"deployment": name, "policy": policy_json(parts.retraining.policy(name))}

    @api.get("/v1/deployments/{name}/retrain/simulate")
    async def simulate(name: str, since: str = "30d", until: str | None = None) -> Any:
        """When the policy would have fired over the stored windows from ``since`` to ``until`` (each a duration
        back from now, ``30d``, or an ISO time; ``until`` is now if absent), what its guards would have stopped,
        and how many labelled rows each run would have had."""
        now = datetime.now(UTC)
        try:
            start = period_start(since, now)
        except ValueError as exc:
            raise BadRequest(f"since: {exc}") from exc
        try:
            end = now if until is None else period_start(until, now)
        except ValueError as exc:
            raise BadRequest(f"until: {exc}") from exc
        if end <= start:
            raise BadRequest(f"until ({until}) must come after since ({since})")
        parts.retraining.policy(name)  # 404 before any work for a deployment without a policy
        found = await asyncio.to_thread(parts.simulate_retraining, name, start, end)
        return found.to_json()

    return api


def _checked(run_id: int) -> int:
    if not 1 <= run_id <= MAX_RUN_ID:
        raise RetrainRunNotFound(f"no retraining run with id {run_id}")
    return run_id


async def _reason(request: Request, parts: Parts) -> str | None:
    """The optional body's ``reason``."""
    if not int(request.headers.get("content-length") or 0):
        return None
    body, _ = await read_json(request, parts.body)
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BadRequest('the body, if any, must be {"reason": "why"}')
    unknown = sorted(set(body) - set(RetrainBody.model_fields))
    if unknown:
        raise BadRequest(f'unknown field(s) {", ".join(unknown)}; the body, if any, is {{"reason": "why"}}')
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        raise BadRequest('"reason" must be a string of at most 1000 characters')
    return reason.strip() or None if isinstance(reason, str) else None


def _actor(request: Request) -> str:
    """Who asked: the caller's user or token; on a server without credentials the ``X-Matchday-Actor``
    header, else the client address."""
    return actor_of(request.scope, f"api:{request.client.host if request.client else 'unknown'}")
