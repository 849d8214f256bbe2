"""matchday's own JSON for predictions: the deployments, predict, and feedback (ground truth, late)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from matchday.serving.bodies import FeedbackBody, PredictBody, body_schema
from matchday.serving.codecs import decode_v1
from matchday.serving.errors import BadRequest
from matchday.serving.routes.parts import ORJSONResponse, Parts, Schemas, read_json


def router(parts: Parts, bodies: Schemas) -> APIRouter:
    """``/v1/deployments``, ``.../{name}/predict`` and ``.../{name}/feedback``."""
    api = APIRouter(default_response_class=ORJSONResponse)

    @api.get("/v1/deployments")
    async def list_deployments() -> Any:
        records = await asyncio.to_thread(parts.service.deployments.list)
        return {"deployments": [{"name": d.name, "model_ref": d.model_ref, "settings": d.settings} for d in records]}

    # answered by `FastPredict` in front of the app; declared here for the OpenAPI document (and for
    # a mount of this app under another, where the ASGI path it sees is not this one)
    @api.post("/v1/deployments/{name}/predict", openapi_extra=body_schema(PredictBody, bodies))
    async def predict(name: str, request: Request) -> Any:
        body, _ = await read_json(request, parts.body)
        return ORJSONResponse(await answer(parts, name, body))

    @api.post("/v1/deployments/{name}/feedback", openapi_extra=body_schema(FeedbackBody, bodies))
    async def feedback(name: str, request: Request) -> Any:
        body, _ = await read_json(request, parts.body)
        labels = _parse_feedback(body)
        outcomes = await parts.service.feedback(name, labels)
        unknown = [{o.kind if o.kind == "request_id" else "id": o.key} for o in outcomes if o.request_id is None]
        return {"received": len(outcomes), "joined": len(outcomes) - len(unknown), "unknown": unknown}

    return api


async def answer(parts: Parts, name: str, body: Any) -> dict[str, Any]:
    """The predict route's answer to a parsed body: one function for the route and for `FastPredict`."""
    result = await parts.service.predict(name, lambda signature: decode_v1(body, signature))
    return {
        "deployment": name,
        "model": result.route.model,
        "version": result.route.version,
        "predictions": [
            {
                "request_id": p.request_id,
                "id": p.entity_id,
                "version": p.version,
                "prediction": p.prediction,
                **({"probabilities": p.probabilities} if p.probabilities is not None else {}),
                "decision": p.decision,
                **({"review_id": p.review_id} if p.review_id is not None else {}),
            }
            for p in result.predictions
        ],
        "input_quality": result.quality,
    }


def _parse_feedback(body: Any) -> list[tuple[str, str, Any]]:
    """``{"labels": [{"request_id": ..., "label": ...} | {"id": ..., "label": ...}]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("labels"), list) or not body["labels"]:
        raise BadRequest('the body must be {"labels": [{"request_id" or "id": ..., "label": ...}, ...]}')
    out: list[tuple[str, str, Any]] = []
    problems = []
    for i, item in enumerate(body["labels"]):
        if not isinstance(item, dict) or "label" not in item or ("request_id" in item) == ("id" in item):
            problems.append(f'labels[{i}]: needs "label" and exactly one of "request_id" or "id"')
            continue
        if isinstance(item["label"], (dict, list)):
            problems.append(f"labels[{i}].label: must be a single value")
            continue
        kind = "request_id" if "request_id" in item else "entity_id"
        key = str(item["request_id"] if kind == "request_id" else item["id"])
        if "\x00" in key or len(key) > 200:
            problems.append(f"labels[{i}]: the {'request id' if kind == 'request_id' else 'id'} is not a valid key")
            continue
        out.append((kind, key, item["label"]))
    if problems:
        raise BadRequest(f"{len(problems)} invalid label(s)", problems)
    return out
