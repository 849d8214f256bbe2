"""The request bodies of the API's POST routes, as Pydantic models: what the OpenAPI document declares.

The endpoints still read the raw body themselves (orjson, the V2 binary tensor extension, a field
path in every error) and check it at least as strictly as these models say; the models give
clients, generated SDKs and fuzzers the shape, which an undeclared body hides from them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from matchday.rollout import RolloutPlan
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


def body_schema(model: type[BaseModel], components: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON body; its nested models go to ``components``."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    name = model.__name__
    components[name] = schema
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }
