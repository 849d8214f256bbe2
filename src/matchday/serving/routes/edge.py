"""Edge devices over the API: a device's telemetry sync, and the list of registered devices.

The sync is answered only after its rows are committed (`EdgeTelemetry.receive`); a database that goes
away mid-request is a 503 and nothing is acknowledged, so the device keeps its rows and sends them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from matchday.edge import EdgeTelemetry, device_json
from matchday.serving.auth_gate import principal_of
from matchday.serving.body_reader import BodyReader
from matchday.serving.routes.parts import ORJSONResponse, Parts, Schemas, read_json

MAX_TELEMETRY_BYTES = 8 * 1024 * 1024  # 1,000 rows of a few hundred inputs each; the device sends in batches


def router(parts: Parts, bodies: Schemas, telemetry: Callable[[], EdgeTelemetry]) -> APIRouter:
    """``telemetry`` is called per request (the workspace opens the database in the app's lifespan)."""
    api = APIRouter(default_response_class=ORJSONResponse)
    body = BodyReader(min(parts.body.max_bytes, MAX_TELEMETRY_BYTES), parts.body.timeout)

    @api.post("/v1/edge/devices/{device}/telemetry", openapi_extra=_telemetry_schema(bodies))
    async def telemetry_sync(device: str, request: Request) -> Any:
        """A device's buffered predictions and labels (at most 1,000 each). 200 with what the server now holds
        (the device deletes exactly those); 403 for another device's token, 404 for an unregistered device,
        409 for another deployment than the device's, 422 naming every row that does not fit (nothing written)."""
        parsed, _ = await read_json(request, body)
        sender = principal_of(request.scope)
        ack = await asyncio.to_thread(telemetry().receive, device, parsed, sender)
        return ack.to_json()

    @api.get("/v1/edge/devices")
    async def list_devices(request: Request, deployment: str | None = None) -> Any:
        """Registered devices (of one deployment with ``deployment=``; of a scoped token, its deployments'):
        last sync, rows and labels received."""
        found = await asyncio.to_thread(telemetry().registered, deployment, principal_of(request.scope))
        return {"devices": [device_json(d) for d in found]}

    return api


def _telemetry_schema(bodies: Schemas) -> dict[str, Any]:
    """The sync body's JSON schema in the OpenAPI document (the route reads the raw body itself)."""
    bodies["EdgeTelemetry"] = {
        "type": "object",
        "required": ["deployment", "epoch", "bundle"],
        "properties": {
            "deployment": {"type": "string"},
            "epoch": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
            "bundle": {
                "type": "object",
                "required": ["model", "version"],
                "properties": {
                    "model": {"type": "string"},
                    "version": {"type": "integer", "minimum": 1},
                    "sha256": {"type": "string"},
                },
            },
            "predictions": {
                "type": "array",
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "required": ["seq", "at", "inputs", "model", "version"],
                    "properties": {
                        "seq": {"type": "integer", "minimum": 1},
                        "at": {"type": "string", "format": "date-time"},
                        "inputs": {"type": "object"},
                        "prediction": {},
                        "probabilities": {"type": ["array", "null"], "items": {"type": "number"}},
                        "latency_seconds": {"type": "number", "minimum": 0},
                        "model": {"type": "string"},
                        "version": {"type": "integer", "minimum": 1},
                    },
                },
            },
            "labels": {
                "type": "array",
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "required": ["id", "seq", "label"],
                    "properties": {
                        "id": {"type": "integer"},
                        "seq": {"type": "integer", "minimum": 1},
                        "label": {},
                        "at": {"type": "string"},
                    },
                },
            },
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EdgeTelemetry"}}},
        }
    }
