"""What the store hands out: plain frozen records, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ModelRecord:
    name: str
    description: str | None
    created_at: datetime
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersionRecord:
    name: str
    version: int
    flavor: str
    artifact_sha256: str
    artifact_size: int
    flavor_options: dict[str, Any]
    signature: dict[str, Any]
    metrics: dict[str, Any]
    tags: dict[str, Any]
    description: str | None
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class AliasMove:
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    model_ref: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PredictionRecord:
    request_id: str
    entity_id: str | None
    deployment: str
    model: str
    version: int
    at: datetime
    inputs: dict[str, Any]
    prediction: Any
    probabilities: list[float] | None
    latency_seconds: float
    routing: dict[str, Any]
    label: Any = None
    label_at: datetime | None = None


@dataclass(frozen=True)
class LabelOutcome:
    """Where one piece of ground truth went: the request id it joined, or None if unknown."""

    kind: str
    key: str
    request_id: str | None
