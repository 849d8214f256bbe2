"""The registry and deployments over the API, for a training job on another machine: list and read
models, upload a new version (the artifact checked against the sha256 its sender computed), move an
alias, deploy. Starting a rollout is ``routes/rollouts.py``'s.

The upload is ``multipart/form-data`` (an ``artifact`` file, an optional ``reference`` Parquet file,
the metadata as text fields), read to a folder of its own as it arrives (`uploads.read_upload`) and
registered from there by the registry's own code: the same checks as ``matchday models register``,
the same trust rules, nothing written unless every one passes. Each state change writes an event
naming the caller (its token or user), as rollouts do.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError

from matchday.registry import (
    InvalidModel,
    InvalidReference,
    Registry,
    Signature,
    UnknownFlavor,
    check_name,
    model_json,
    move_json,
    version_json,
)
from matchday.review import check_policy
from matchday.serving.auth_gate import actor_of, principal_of
from matchday.serving.bodies import AliasBody, DeployBody, ModelUploadBody, body_schema
from matchday.serving.errors import BadRequest, InvalidRequest
from matchday.serving.routes.parts import ORJSONResponse, Parts, Schemas, read_json
from matchday.serving.uploads import Upload, UploadedFile, read_upload
from matchday.store import AliasMove, ModelRecord, ModelVersionRecord

log = logging.getLogger("matchday.serving")

SHA256_HEADER = "X-Matchday-Sha256"
FILE_FIELDS = frozenset({"artifact", "reference"})
TEXT_FIELDS = frozenset({"flavor", "target", "alias", "description", "metrics", "tags", "signature", "trust_pickle"})
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
# what an uploaded file is, by its name's suffix (else by the flavor sent with it)
_MODEL_SUFFIXES = (".skops", ".onnx", ".pkl", ".pickle", ".joblib", ".tar")
_SUFFIX_OF_FLAVOR = {
    "sklearn": ".skops",
    "skops": ".skops",
    "lightgbm": ".skops",
    "xgboost": ".skops",
    "onnx": ".onnx",
    "pickle": ".pkl",
    "joblib": ".joblib",
    "mlflow": ".tar",
    "pyfunc": ".tar",
}
_CALLABLE = ("callable", "python")


class UploadRefused(InvalidRequest):
    """422: the upload arrived whole, but it is not a version matchday registers: its bytes are not the
    ones the sender hashed, the model does not load, the reference is not Parquet or does not fit."""

    def __init__(self, field: str, message: str, details: list[str] | None = None) -> None:
        super().__init__(message, [{"field": field, "problem": d} for d in (details or [message])])


def router(parts: Parts, bodies: Schemas, *, max_upload_bytes: int, spool_dir: Path) -> APIRouter:
    """``/v1/models[/...]`` and ``PUT /v1/deployments/{name}``. Uploads are written under ``spool_dir``
    while they are checked, at most ``max_upload_bytes`` each."""
    api = APIRouter(default_response_class=ORJSONResponse)

    def registry() -> Registry:
        return parts.service.registry

    @api.get("/v1/models")
    async def list_models() -> Any:
        models = await asyncio.to_thread(registry().list_models)
        return {"models": [model_json(m) for m in models]}

    @api.get("/v1/models/{name}")
    async def show_model(name: str) -> Any:
        def read() -> tuple[ModelRecord, list[ModelVersionRecord], list[AliasMove]]:
            r = registry()
            return r.store.get_model(name), r.list_versions(name), r.alias_history(name)

        model, versions, history = await asyncio.to_thread(read)
        return {
            **model_json(model),
            "versions": [version_json(v) for v in versions],
            "alias_history": [move_json(m) for m in history],
        }

    @api.get("/v1/models/{name}/versions/{version}")
    async def show_version(name: str, version: str) -> Any:
        """``version``: a number, or ``latest``."""
        record = await asyncio.to_thread(registry().get_version, f"{name}:{version}")
        return version_json(record, signature=True)

    upload_doc = body_schema(ModelUploadBody, bodies, media_type="multipart/form-data")
    upload_doc["parameters"] = [
        {
            "name": SHA256_HEADER,
            "in": "header",
            "required": True,
            "description": "the artifact's sha256 as the sender computed it: checked on arrival",
            "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        }
    ]

    @api.post("/v1/models/{name}/versions", status_code=201, openapi_extra=upload_doc)
    async def upload_version(name: str, request: Request) -> Any:
        check_name(name)  # before a byte of the body is read
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "multipart/form-data":
            return ORJSONResponse(
                {
                    "error": "a new version is uploaded as multipart/form-data: an artifact file, an optional "
                    f"reference Parquet file and text fields (Content-Type is {kind or 'none'})",
                    "details": [],
                },
                status_code=415,
            )
        expected = request.headers.get(SHA256_HEADER, "").strip().lower()
        if not _SHA256.match(expected):
            raise BadRequest(
                f"send the artifact's sha256 (64 hexadecimal digits) in the {SHA256_HEADER} header: "
                "the server checks the file against it on arrival"
            )
        spool_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=spool_dir))
        try:
            upload = await read_upload(
                request.receive,
                request.headers,
                folder,
                file_fields=FILE_FIELDS,
                text_fields=TEXT_FIELDS,
                max_bytes=max_upload_bytes,
                timeout=parts.body.timeout,
                on_timeout=parts.body.on_timeout,
            )
            options = _options(upload)
            artifact = upload.files.get("artifact")
            if artifact is None:
                raise BadRequest('the upload has no "artifact" file part (the model file)')
            if artifact.sha256 != expected:
                raise UploadRefused(
                    "artifact",
                    f"the artifact arrived with sha256 {artifact.sha256} ({artifact.size:,} bytes), but "
                    f"{SHA256_HEADER} says {expected}: it was changed or cut short on the way; nothing was registered",
                )
            refused = _trust_refused(request, options)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if refused is not None:
            shutil.rmtree(folder, ignore_errors=True)
            return refused
        # the thread removes the folder when it is done with it, even if this request is cancelled meanwhile
        record = await asyncio.to_thread(_register, registry(), name, folder, upload, options)
        actor = _actor(request)
        _event(
            parts,
            "model_registered",
            actor,
            f"{record.ref} registered over the API ({record.flavor}, sha256 {record.artifact_sha256[:12]})"
            + (f" as @{options['alias']}" if options["alias"] else ""),
            {
                "model": record.name,
                "version": record.version,
                "sha256": record.artifact_sha256,
                "uploaded_sha256": expected,
                "alias": options["alias"],
            },
        )
        return version_json(record, signature=True)

    @api.put("/v1/models/{name}/aliases/{alias}", openapi_extra=body_schema(AliasBody, bodies))
    async def move_alias(name: str, alias: str, request: Request) -> Any:
        body, _ = await read_json(request, parts.body)
        shape = '{"version": N, "reason": "..."}'
        if not isinstance(body, dict) or set(body) - {"version", "reason"}:
            raise BadRequest(f"the body must be {shape}")
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BadRequest(f'"version" must be a version number (1 or more): the body is {shape}')
        reason = _text(body, "reason")
        actor = _actor(request)
        move = await asyncio.to_thread(
            registry().set_alias, name, version, alias, reason or f"set over the API by {actor}"
        )
        _event(
            parts,
            "alias_moved",
            actor,
            f"{name}@{alias} -> version {move.to_version}"
            + (f" (was {move.from_version})" if move.from_version else " (new)")
            + (f": {reason}" if reason else ""),
            {"model": name, "alias": alias, "from_version": move.from_version, "to_version": move.to_version},
        )
        return {"name": name, **move_json(move)}

    @api.put("/v1/deployments/{name}", openapi_extra=body_schema(DeployBody, bodies))
    async def deploy(name: str, request: Request) -> Any:
        body, _ = await read_json(request, parts.body)
        shape = '{"model_ref": "MODEL@ALIAS" or "MODEL:VERSION", "settings": {...}, "reason": "..."}'
        if not isinstance(body, dict) or set(body) - {"model_ref", "settings", "reason"}:
            raise BadRequest(f"the body must be {shape}")
        model_ref = body.get("model_ref")
        if not isinstance(model_ref, str):
            raise BadRequest(f'"model_ref" must be a string: the body is {shape}')
        settings = body.get("settings")
        if settings is not None and not isinstance(settings, dict):
            raise BadRequest(
                '"settings" must be an object: {"max_batch_size": 64, "max_wait_ms": 0, "max_rows": 10000}'
            )
        reason = _text(body, "reason")
        automation: dict[str, Any] | None = None
        if settings is not None and "automation" in settings:  # who decides: checked against the version it
            automation = settings.pop("automation")  # will serve first, then set as its own event (below)
            if automation:
                automation = await asyncio.to_thread(_automation, parts, model_ref, automation)
        record, previous = await asyncio.to_thread(parts.service.deployments.deploy, name, model_ref, settings)
        if automation is not None:
            why = reason or f"deployed {record.model_ref} with settings.automation"
            await asyncio.to_thread(parts.automation.set, name, automation or None, _actor(request), why)
            record = await asyncio.to_thread(parts.service.deployments.get, name)
        change = "new" if previous is None else ("unchanged" if previous == record.model_ref else f"was {previous}")
        _event(
            parts,
            "deployed",
            _actor(request),
            f"{name} serves {record.model_ref} ({change})" + (f": {reason}" if reason else ""),
            {"model_ref": record.model_ref, "previous": previous, "settings": record.settings},
            deployment=name,
        )
        answer = {
            "name": record.name,
            "model_ref": record.model_ref,
            "previous": previous,
            "settings": record.settings,
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
        }
        return ORJSONResponse(answer, status_code=201 if previous is None else 200)

    return api


# -- the upload ------------------------------------------------------------------------------------
def _options(upload: Upload) -> dict[str, Any]:
    """The text fields, checked: strings, JSON objects, a boolean."""
    fields = upload.fields
    options: dict[str, Any] = {k: (fields.get(k) or "").strip() or None for k in ("flavor", "target", "alias")}
    options["description"] = fields.get("description") or None
    options["metrics"] = _json_object(fields, "metrics", '{"auc": 0.97}')
    options["tags"] = _json_object(fields, "tags", '{"commit": "3f2a1c"}')
    signature = _json_object(fields, "signature", '{"inputs": [...], "output": {...}}')
    if options["metrics"] is not None:
        bad = [k for k, v in options["metrics"].items() if not _finite(v)]
        if bad:
            raise BadRequest('"metrics" must map names to finite numbers', [f"metrics.{k}" for k in bad])
    if options["tags"] is not None:
        bad = [k for k, v in options["tags"].items() if not isinstance(v, str)]
        if bad:
            raise BadRequest('"tags" must map names to strings', [f"tags.{k}" for k in bad])
    if signature is not None:
        try:
            options["signature"] = Signature.model_validate(signature)
        except ValidationError as exc:
            raise UploadRefused(
                "signature",
                "the signature is not one matchday reads",
                [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()],
            ) from exc
    else:
        options["signature"] = None
    trust = (fields.get("trust_pickle") or "false").strip().lower()
    if trust not in ("true", "false", "1", "0"):
        raise BadRequest('"trust_pickle" must be true or false')
    options["trust_pickle"] = trust in ("true", "1")
    if options["flavor"] in _CALLABLE:
        raise UploadRefused(
            "flavor",
            "a Python callable is registered by its import path on the server itself "
            "(matchday models register NAME module:function there), not uploaded",
        )
    return options


def _trust_refused(request: Request, options: dict[str, Any]) -> ORJSONResponse | None:
    """403 for ``trust_pickle`` from a caller who is not an admin: the flag lets the file run code here."""
    if not options["trust_pickle"]:
        return None
    principal = principal_of(request.scope)
    if principal is not None and "admin" in principal.roles:
        return None
    held = ", ".join(sorted(principal.roles)) if principal is not None else "none"
    message = (
        "trust_pickle needs the admin role: a file it admits runs its code on this server "
        f"when it loads ({_actor(request)} holds {held}); nothing was registered"
    )
    return ORJSONResponse({"error": message, "details": []}, status_code=403)


def _register(
    registry: Registry, name: str, folder: Path, upload: Upload, options: dict[str, Any]
) -> ModelVersionRecord:
    """The uploaded files registered by the registry's own code (the folder removed after), its
    refusals said as the upload's."""
    try:
        return _register_files(registry, name, folder, upload, options)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _register_files(
    registry: Registry, name: str, folder: Path, upload: Upload, options: dict[str, Any]
) -> ModelVersionRecord:
    artifact = upload.files["artifact"]
    model = _model_path(artifact, options["flavor"], folder)
    reference = upload.files.get("reference")
    reference_path = _parquet_path(reference) if reference is not None else None
    flavor = options["flavor"] or ("mlflow" if model.is_dir() else None)
    try:
        return registry.register(
            name,
            model,
            reference=reference_path,
            target=options["target"],
            signature=options["signature"],
            flavor=flavor,
            trust_pickle=options["trust_pickle"],
            description=options["description"],
            metrics=options["metrics"],
            tags=options["tags"],
            alias=options["alias"],
        )
    except UnknownFlavor as exc:
        raise UploadRefused("flavor", exc.message) from exc
    except InvalidReference as exc:
        where = {str(reference_path): reference.filename} if reference and reference_path else {}
        raise UploadRefused("reference", _named(exc.message, where), [_named(d, where) for d in exc.details]) from exc
    except InvalidModel as exc:  # does not load, is not a model, or is not trusted
        where = {str(model): artifact.filename}
        raise UploadRefused("artifact", _named(exc.message, where), [_named(d, where) for d in exc.details]) from exc


def _model_path(artifact: UploadedFile, flavor: str | None, folder: Path) -> Path:
    """The artifact under a name the registry's flavors recognise (an MLflow tar unpacked)."""
    suffix = Path(artifact.filename).suffix.lower()
    if suffix not in _MODEL_SUFFIXES:
        if flavor is None:
            raise UploadRefused(
                "artifact",
                f"cannot tell what kind of model {artifact.filename!r} is: name it .skops, .onnx, .pkl/.joblib "
                "or .tar (an MLflow model directory), or send its flavor",
            )
        suffix = _SUFFIX_OF_FLAVOR.get(flavor, ".bin")  # an unknown flavor is the registry's to refuse
    path = folder / f"artifact{suffix}"
    os.replace(artifact.path, path)
    if suffix != ".tar":
        return path
    target = folder / "model"
    try:
        with tarfile.open(path) as tar:
            tar.extractall(target, filter="data")  # no links out, no absolute paths, no devices
    except (tarfile.TarError, OSError) as exc:
        raise UploadRefused(
            "artifact", f"{artifact.filename} is not a readable tar of a model directory: {exc}"
        ) from exc
    return target


def _parquet_path(reference: UploadedFile) -> Path:
    path = reference.path.with_name("reference.parquet")
    os.replace(reference.path, path)
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(max(0, reference.size - 4))
        tail = fh.read(4)
    if reference.size < 12 or head != b"PAR1" or tail != b"PAR1":
        raise UploadRefused(
            "reference",
            f"the reference {reference.filename!r} is not a Parquet file: send the reference data as Parquet "
            "(DataFrame.to_parquet; `matchday.Client.register_model` converts a DataFrame or a CSV file itself)",
        )
    return path


def _named(text: str, where: dict[str, str]) -> str:
    """A message with the server's temporary paths replaced by the names the sender gave the files."""
    for path, filename in where.items():
        text = text.replace(path, filename)
    return text


def _json_object(fields: dict[str, str], key: str, example: str) -> dict[str, Any] | None:
    raw = fields.get(key)
    if raw is None or not raw.strip():
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f'"{key}" is not valid JSON ({exc}): send an object, like {example}') from exc
    if not isinstance(value, dict):
        raise BadRequest(f'"{key}" must be a JSON object, like {example}')
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- shared ----------------------------------------------------------------------------------------
def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f'"{key}" must be a string')
    return value.strip()[:1000] or None


def _actor(request: Request) -> str:
    return actor_of(request.scope, f"api:{request.client.host if request.client else 'unknown'}")


def _automation(parts: Parts, model_ref: str, automation: Any) -> dict[str, Any]:
    """A deploy's automation policy, checked against the version ``model_ref`` names."""
    if not isinstance(automation, dict):
        raise BadRequest('"settings.automation" must be an object: {"level": ..., "review_rule": ...}')
    version = parts.service.registry.get_version(model_ref)
    signature = Signature.model_validate(version.signature)
    classes = signature.output.classes
    return check_policy(automation, signature, [str(c) for c in classes] if classes else None).stored()


def _event(
    parts: Parts, kind: str, actor: str, reason: str, data: dict[str, Any], deployment: str | None = None
) -> None:
    """The audit trail's row for a change already made: a failure to write it is logged, not answered
    (the caller would retry a change that happened)."""
    try:
        parts.rollouts.events.add(kind, actor, reason, data, deployment=deployment)
    except Exception:
        log.exception("could not record the %s event (%s by %s)", kind, reason, actor)
