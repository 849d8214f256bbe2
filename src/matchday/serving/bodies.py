"""The request bodies of the API's POST and PUT routes, as Pydantic models: what the OpenAPI document declares.

The endpoints still read the raw body themselves (orjson, the V2 binary tensor extension, a field
path in every error) and check it at least as strictly as these models say; the models give
clients, generated SDKs and fuzzers the shape, which an undeclared body hides from them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from matchday.review import AutomationLevel
from matchday.rollout import DeploymentSettings, RolloutPlan
from matchday.serving.codecs import V2Datatype

Scalar = str | int | float | bool | None
EntityKey = str | int | None
Label = str | int | float | bool
LABEL = (
    'the ground truth: one of the deployed version\'s classes (1, 1.0 and "1" are the same), '
    "or a finite number for a regressor"
)


class InstancesBody(BaseModel):
    """Rows as objects, one per row: ``{"instances": [{"amount": 12.5, ...}], "ids": [...]}``."""

    instances: list[dict[str, Scalar]] = Field(min_length=1, description="one object per row, keyed by input name")
    ids: list[EntityKey] | None = Field(default=None, description='one entity key per row (else each row\'s own "id")')


class ColumnsBody(BaseModel):
    """Rows as a table: ``{"columns": ["amount", ...], "data": [[12.5, ...], ...]}``."""

    columns: list[str] = Field(description="input names, in the order of each row's values")
    data: list[list[Scalar]] = Field(min_length=1, description="one list of values per row")
    ids: list[EntityKey] | None = Field(default=None, description="one entity key per row")


class PredictBody(RootModel[InstancesBody | ColumnsBody]):
    """``POST /v1/deployments/{name}/predict``."""


class LabelByRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(description="the request_id a prediction was answered with")
    label: Label = Field(description=LABEL)


class LabelByEntity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | int = Field(description="an entity key: labels the latest prediction made for it")
    label: Label = Field(description=LABEL)


class FeedbackBody(BaseModel):
    """``POST /v1/deployments/{name}/feedback``."""

    labels: list[LabelByRequest | LabelByEntity] = Field(min_length=1)


class RolloutStartBody(RolloutPlan):
    """``POST /v1/deployments/{name}/rollout``: the candidate and the plan's options."""

    candidate: str = Field(description="the version to roll out, NAME:VERSION or NAME@ALIAS")


class RolloutActionBody(BaseModel):
    """``POST /v1/deployments/{name}/rollout/{action}`` (the body is optional)."""

    reason: str | None = Field(default=None, description="kept with the event, for the audit trail")


class ModelUploadBody(BaseModel):
    """``POST /v1/models/{name}/versions``, as ``multipart/form-data`` with the artifact's sha256 in the
    ``X-Matchday-Sha256`` header: a new version, from a training job on another machine."""

    artifact: bytes = Field(
        description="the model file: .skops, .onnx, .pkl/.joblib (with trust_pickle), or a .tar of an MLflow "
        "model directory (with trust_pickle); its file name says which unless flavor does"
    )
    reference: bytes | None = Field(
        default=None, description="reference data as a Parquet file (the signature and the drift baseline)"
    )
    flavor: str | None = Field(default=None, description="force a flavor instead of reading the file name's")
    target: str | None = Field(default=None, description="the label column in the reference (profiled, not an input)")
    alias: str | None = Field(default=None, description="point this alias at the new version")
    description: str | None = None
    metrics: str | None = Field(default=None, description='a JSON object of numbers: {"auc": 0.97}')
    tags: str | None = Field(default=None, description='a JSON object of strings: {"commit": "3f2a1c"}')
    signature: str | None = Field(default=None, description="the signature as JSON, for a version without reference")
    trust_pickle: bool = Field(
        default=False, description="allow a file that can run code when loaded (needs the admin role)"
    )


class AliasBody(BaseModel):
    """``PUT /v1/models/{name}/aliases/{alias}``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="the version the alias points at from now on")
    reason: str | None = Field(default=None, description="kept in the alias history and the event")


class DeployBody(BaseModel):
    """``PUT /v1/deployments/{name}``: create the deployment or repoint it (`matchday deploy`)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_ref: str = Field(description="MODEL@ALIAS (follows the alias) or MODEL:VERSION")
    settings: DeploymentSettings | None = Field(default=None, description="serving settings (defaults if absent)")
    reason: str | None = Field(default=None, description="kept with the event, for the audit trail")


class V2Parameters(BaseModel):
    model_config = ConfigDict(extra="allow")

    binary_data_size: int | None = Field(default=None, ge=0, description="bytes of this tensor in the binary tail")


class V2Input(BaseModel):
    name: str
    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, max_length=2)
    datatype: V2Datatype
    parameters: V2Parameters | None = None
    data: list[Any] | None = Field(
        default=None, description="row-major values (nested lists allowed); absent with binary data"
    )


class V2Output(BaseModel):
    name: str = Field(description="predict, or predict_proba for classifiers")
    parameters: dict[str, Any] | None = None


class V2InferBody(BaseModel):
    """``POST /v2/models/{name}[/versions/{v}]/infer``, the Open Inference Protocol's request."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[V2Input] = Field(min_length=1)
    outputs: list[V2Output] | None = None


def body_schema(
    model: type[BaseModel],
    components: dict[str, Any],
    *,
    required: bool = True,
    media_type: str = "application/json",
) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the body (JSON unless ``media_type`` says); its nested
    models go to ``components``."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    name = model.__name__
    components[name] = schema
    return {
        "requestBody": {
            "required": required,
            "content": {media_type: {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


class ReviewNextBody(BaseModel):
    """``POST /v1/review/next``: claim the next item of a deployment's queue under a lease."""

    model_config = ConfigDict(extra="forbid")

    deployment: str = Field(description="whose queue")
    lease_seconds: float | None = Field(
        default=None, ge=5, le=86400, description="how long the item is held (the deployment's policy if absent)"
    )
    reviewer: str | None = Field(
        default=None, max_length=100, description="on a server without credentials only: who is reviewing"
    )


class ReviewDecideBody(BaseModel):
    """``POST /v1/review/items/{review_id}/decide``."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "override", "skip"] = Field(description="approve the model's answer, override it, skip")
    label: Label | None = Field(default=None, description="override: " + LABEL)
    saw_suggestion: bool | None = Field(default=None, description="whether the model's answer was shown")
    reviewer: str | None = Field(
        default=None, max_length=100, description="on a server without credentials only: who is reviewing"
    )


class AutomationBody(BaseModel):
    """``PUT /v1/deployments/{name}/automation``: the deployment's automation policy (an event)."""

    model_config = ConfigDict(extra="forbid")

    level: AutomationLevel | None = Field(default=None, description="none: no policy (the model alone, nothing queued)")
    review_rule: str | None = Field(default=None, description='machine_led_human_governed: e.g. prediction == "fraud"')
    review_deadline: str | float | None = Field(default=None, description="4h, 30m, or seconds")
    deadline_fallback: Literal["approve", "reject", "escalate"] | None = None
    audit_rate: float | None = Field(default=None, ge=0, le=1)
    reviews_required: int | None = Field(default=None, ge=1, le=3)
    blind: bool | None = None
    lease_seconds: float | None = Field(default=None, ge=5, le=86400)
    decision_webhook: str | None = None
    reason: str = Field(min_length=1, description="why: kept with the event, for the audit trail")


class ReviewReleaseBody(BaseModel):
    """``POST /v1/review/items/{review_id}/release`` (the body is optional): give a claimed item back."""

    model_config = ConfigDict(extra="forbid")

    reviewer: str | None = Field(
        default=None, max_length=100, description="on a server without credentials only: who held it"
    )


class RetrainBody(BaseModel):
    """``POST /v1/deployments/{name}/retrain`` and ``POST /v1/retrain/runs/{run_id}/approve|cancel`` (the
    body is optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000, description="kept with the run and its event")
