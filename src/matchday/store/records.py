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
    lineage: dict[str, Any] | None = None  # a retrained version: parent, trigger, data snapshot, trainer, run

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
    role: str = "served"
    error: str | None = None
    shadow_of: str | None = None
    label_source: str | None = None  # who gave the label: feedback, human (a reviewer's decision)


@dataclass(frozen=True)
class LabelOutcome:
    """Where one piece of ground truth went: the request id it joined, or None if unknown."""

    kind: str
    key: str
    request_id: str | None


@dataclass(frozen=True)
class RolloutRecord:
    id: int
    deployment: str
    strategy: str
    baseline: str
    candidate: str
    plan: dict[str, Any]
    state: str
    phase: str
    step: int
    weight: float
    failures: int
    reason: str | None
    analysis: dict[str, Any] | None
    revision: int
    started_at: datetime
    step_started_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        return self.state in ("running", "paused")


@dataclass(frozen=True)
class EventRecord:
    id: int
    at: datetime
    deployment: str | None
    rollout_id: int | None
    kind: str
    actor: str
    reason: str
    data: dict[str, Any]


@dataclass(frozen=True)
class UserRecord:
    """A dashboard user; ``password_hash`` is the stored KDF string, never the password."""

    id: int
    name: str
    roles: tuple[str, ...]
    password_hash: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class TokenRecord:
    """An API token as stored: its public key and salted digest, never the secret."""

    id: int
    key: str
    digest: str
    name: str
    roles: tuple[str, ...]
    deployments: tuple[str, ...] | None  # None: every deployment
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class SessionRecord:
    """A dashboard login, with the user it belongs to."""

    id: str
    user: UserRecord
    csrf: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class RetrainRunRecord:
    """A retraining run as stored; ``steps`` is its trail (state, when, what, numbers)."""

    id: int
    deployment: str
    state: str
    trigger: dict[str, Any]
    actor: str
    policy: dict[str, Any]
    parent: str | None
    candidate: str | None
    snapshot: dict[str, Any] | None
    evaluation: dict[str, Any] | None
    rollout_id: int | None
    steps: list[dict[str, Any]]
    reason: str | None
    error: str | None
    attempts: int
    next_attempt_at: datetime | None
    owner: str | None
    heartbeat_at: datetime | None
    revision: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        return self.finished_at is None
