"""The Open Inference Protocol V2 (KServe, Triton, MLServer): server and model metadata, health, infer.

Errors here are ``{"error": "..."}`` as the protocol says (the app's handlers do that for ``/v2``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from matchday import __version__
from matchday.registry import Signature
from matchday.serving.bodies import V2InferBody, body_schema
from matchday.serving.codecs import check_v2_body, decode_v2, v2_datatype, v2_tensor
from matchday.serving.errors import BadRequest
from matchday.serving.routes.parts import ORJSONResponse, Parts, Schemas, read_json


def router(parts: Parts, bodies: Schemas) -> APIRouter:
    """``/v2``, ``/v2/health/{live,ready}``, ``/v2/models/{name}[/versions/{version}][/ready|/infer]``."""
    api = APIRouter(default_response_class=ORJSONResponse)

    @api.get("/v2")
    async def v2_server() -> Any:
        return {"name": "matchday", "version": __version__, "extensions": ["binary_tensor_data"]}

    @api.get("/v2/health/live")
    async def v2_live() -> Any:
        return {"live": True}

    @api.get("/v2/health/ready", responses={503: {"description": "still loading and warming the deployed versions"}})
    async def v2_ready() -> Any:
        ready = parts.ready
        return ORJSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @api.get("/v2/models/{name}")
    async def v2_metadata(name: str) -> Any:
        return await _model(parts, name, None)

    @api.get("/v2/models/{name}/versions/{version}")
    async def v2_metadata_version(name: str, version: str) -> Any:
        return await _model(parts, name, version)

    @api.get("/v2/models/{name}/ready")
    async def v2_model_ready(name: str) -> Any:
        await _model(parts, name, None)
        return {"name": name, "ready": True}

    @api.get("/v2/models/{name}/versions/{version}/ready")
    async def v2_model_version_ready(name: str, version: str) -> Any:
        await _model(parts, name, version)
        return {"name": name, "ready": True}

    @api.post("/v2/models/{name}/infer", openapi_extra=body_schema(V2InferBody, bodies))
    async def v2_infer_latest(name: str, request: Request) -> Any:
        return await _infer(parts, name, None, request)

    @api.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=body_schema(V2InferBody, bodies))
    async def v2_infer_version(name: str, version: str, request: Request) -> Any:
        return await _infer(parts, name, version, request)

    return api


async def _model(parts: Parts, name: str, version: str | None) -> dict[str, Any]:
    """The model metadata of the version that answers ``name`` (or of ``version``, if it is served)."""
    route, _ = await parts.service.served_route(name, version)
    predictor = await parts.service.predictor(route.ref)
    signature = predictor.signature
    assert signature is not None
    outputs = [{"name": "predict", "datatype": _output_type(signature), "shape": [-1]}]
    if predictor.has_proba:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(predictor.classes or [])]})
    return {
        "name": name,
        "versions": [str(route.version)],
        "platform": f"matchday/{predictor.flavor}",
        "inputs": [{"name": c.name, "datatype": v2_datatype(c.type), "shape": [-1, 1]} for c in signature.inputs],
        "outputs": outputs,
        "parameters": {"model": route.model, "model_ref": route.model_ref},
    }


async def _infer(parts: Parts, name: str, version: str | None, request: Request) -> dict[str, Any]:
    """An inference request, checked whole before anything is scored (so nothing is logged in vain)."""
    body, binary = await read_json(request, parts.body)
    if version is not None and not (version.isascii() and version.isdigit()):
        raise BadRequest(f"model version {version!r} is not a number")
    route, _ = await parts.service.served_route(name, version)  # an unknown deployment is a 404 whatever the body
    check_v2_body(body)  # every field's type, before anything is scored
    wanted = {o["name"] for o in body["outputs"]} if body.get("outputs") is not None else None
    if wanted:  # refuse before scoring, so nothing is logged that the caller never sees
        predictor = await parts.service.predictor(route.ref)
        known = {"predict", "predict_proba"} if predictor.has_proba else {"predict"}
        if wanted - known:
            raise BadRequest(
                f"unknown outputs requested: {', '.join(sorted(wanted - known))}; "
                f"this model has {', '.join(sorted(known))}"
            )
    result = await parts.service.predict(
        name, lambda signature: decode_v2(body, binary, signature), version=int(version) if version else None
    )
    outputs = [v2_tensor("predict", result.scored.predictions)]
    if result.scored.probabilities is not None:
        outputs.append(v2_tensor("predict_proba", result.scored.probabilities))
    if wanted:
        outputs = [o for o in outputs if o["name"] in wanted]
    answer = {
        "model_name": name,
        "model_version": str(result.route.version),
        "outputs": outputs,
        "parameters": {
            "request_ids": [p.request_id for p in result.predictions],
            "versions": [p.version for p in result.predictions],
            "decisions": [p.decision for p in result.predictions],
            "review_ids": [p.review_id for p in result.predictions],
        },
    }
    if isinstance(body, dict) and "id" in body:
        answer["id"] = body["id"]
    return answer


def _output_type(signature: Signature) -> str:
    """The V2 datatype of ``predict``: FP64 for a regressor, INT64 for integer classes, else BYTES."""
    if signature.output.task == "regression":
        return "FP64"
    classes = signature.output.classes or []
    return "INT64" if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes) else "BYTES"
