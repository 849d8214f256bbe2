"""The tables of the metadata database (SQLAlchemy 2). Only `store/` touches them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import text as sa_text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone, so we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; times are UTC and timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(50))
    artifact_sha256: Mapped[str] = mapped_column(String(64), index=True)
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    flavor_options: Mapped[dict[str, Any]]
    signature: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lineage: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a retrained version: parent, trigger, data, ...


class ReferenceProfileRow(Base):
    """Kept apart from the version row so listing versions never drags the profiles along."""

    __tablename__ = "reference_profiles"

    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)
    profile: Mapped[dict[str, Any]]


class AliasRow(Base):
    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias", name="uq_model_aliases_model_alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasMoveRow(Base):
    """The history of every alias: when it moved, from which version to which, and why."""

    __tablename__ = "model_alias_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    alias: Mapped[str] = mapped_column(String(100))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DeploymentRow(Base):
    """A named endpoint serving one model reference (``NAME@ALIAS`` follows the alias)."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model_ref: Mapped[str] = mapped_column(String(300))
    settings: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PredictionBatchRow(Base):
    """One flush of the log's writer: its rows' inputs, probabilities and routing as one Arrow stream
    (`log_batches`). The rows themselves (`PredictionRow`) point into it by position."""

    __tablename__ = "prediction_batches"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rows: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class PredictionRow(Base):
    """One scored row: what feedback and rollouts look it up by, what went out, (later) the ground
    truth, and where its inputs are (row ``position`` of batch ``batch_id``)."""

    __tablename__ = "prediction_log"
    __table_args__ = (
        Index("ix_prediction_log_deployment_at", "deployment", "at"),
        Index("ix_prediction_log_deployment_entity", "deployment", "entity_id"),
        Index("ix_prediction_log_label_at", "label_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    entity_id: Mapped[str | None] = mapped_column(String(200))
    deployment: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    prediction: Mapped[Any] = mapped_column(JSON)
    latency_seconds: Mapped[float] = mapped_column(Float)
    label: Mapped[Any | None] = mapped_column(JSON)
    label_at: Mapped[datetime | None]
    label_source: Mapped[str | None] = mapped_column(String(40))  # who said so: "feedback", later "review"
    role: Mapped[str] = mapped_column(String(20), default="served", server_default="served")
    error: Mapped[str | None] = mapped_column(Text)
    shadow_of: Mapped[str | None] = mapped_column(String(36))
    # where the row came from when not online traffic: "batch" or "edge" (its routing says which job or
    # device); a rollout's arms are judged on online rows only
    source: Mapped[str | None] = mapped_column(String(10))
    batch_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("prediction_batches.id")
    )
    position: Mapped[int | None] = mapped_column(Integer)


ACTIVE_ROLLOUT_STATES = ("running", "paused")


class RolloutRow(Base):
    """A traffic plan moving a deployment from a baseline version to a candidate, and where it stands.

    ``revision`` guards every update, so the controller and a human never overwrite each other.
    """

    __tablename__ = "rollouts"
    __table_args__ = (
        Index(
            "uq_rollouts_one_active",
            "deployment",
            unique=True,
            sqlite_where=sa_text("state IN ('running', 'paused')"),
            postgresql_where=sa_text("state IN ('running', 'paused')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200), index=True)
    strategy: Mapped[str] = mapped_column(String(20))
    baseline: Mapped[str] = mapped_column(String(300))
    candidate: Mapped[str] = mapped_column(String(300))
    plan: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(20))
    phase: Mapped[str] = mapped_column(String(30))
    step: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[float] = mapped_column(Float, default=0.0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    step_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class EventRow(Base):
    """The audit trail: every decision with its reason and the numbers behind it."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_deployment_at", "deployment", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    deployment: Mapped[str | None] = mapped_column(String(200))
    rollout_id: Mapped[int | None] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]


class MetricWindowRow(Base):
    """One window of one deployment version (and segment): its mergeable summary and its metrics.

    ``width`` is ``5m``, ``1h``, ``1d`` or ``{n}rows``; ``segment`` is ``""`` for all rows or
    ``feature=value``. The summary is added to as rows arrive; performance is recomputed when labels land.
    """

    __tablename__ = "metric_windows"
    __table_args__ = (
        UniqueConstraint("deployment", "model", "version", "segment", "width", "start", name="uq_metric_windows_key"),
        Index("ix_metric_windows_deployment_width_start", "deployment", "width", "start"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(String(300))
    width: Mapped[str] = mapped_column(String(20))
    start: Mapped[datetime]
    end: Mapped[datetime]
    rows: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]]
    performance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitorStateRow(Base):
    """Small named state the monitoring loop keeps between ticks (cursors, detectors, breach counts)."""

    __tablename__ = "monitor_state"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertRow(Base):
    """An alert: opened when a monitor's condition holds long enough, resolved when it stops holding.

    One firing alert per monitor, deployment version and segment (a partial unique index): alerts deduplicate.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_one_firing",
            "monitor",
            "deployment",
            "model",
            "version",
            "segment",
            unique=True,
            sqlite_where=sa_text("state = 'firing'"),
            postgresql_where=sa_text("state = 'firing'"),
        ),
        Index("ix_alerts_deployment_opened", "deployment", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor: Mapped[str] = mapped_column(String(200))
    deployment: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(String(300))
    severity: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    metric: Mapped[str] = mapped_column(String(200))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    data: Mapped[dict[str, Any]]


class WebhookDeliveryRow(Base):
    """A webhook body waiting to be delivered (an outbox): retried with backoff, never lost on a restart."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_pending", "delivered_at", "gave_up_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    gave_up_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class UserRow(Base):
    """A person who logs in to the dashboard: a password hash (never the password) and roles."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))


class ApiTokenRow(Base):
    """A machine's credential: the public ``key`` finds it, the salted ``digest`` checks the secret.

    ``changed_at`` moves on every change (revoked, created): servers poll its maximum to reload.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    digest: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON)
    deployments: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    changed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SessionRow(Base):
    """A dashboard login: the id is the SHA-256 of the cookie's secret, so a read of this table logs no one in."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewItemRow(Base):
    """A logged prediction a person is asked to look at: written with the log's batch (one transaction),
    claimed under a lease, decided by one to three reviewers, its final label joined to the log."""

    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_queue", "deployment", "status", "priority", "created_at"),
        Index("ix_review_items_due", "status", "deadline"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    deployment: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(20))  # all | rule | audit
    rule: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(40))
    pending: Mapped[bool]  # the answer said "pending": a decision (or the deadline's fallback) settles it
    blind: Mapped[bool]
    inclusion: Mapped[float] = mapped_column(Float)  # the chance this row had of being queued
    required: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    deadline: Mapped[datetime | None]
    fallback: Mapped[str | None] = mapped_column(String(20))
    inputs: Mapped[dict[str, Any]]
    suggestion: Mapped[Any] = mapped_column(JSON)
    confidence: Mapped[float | None] = mapped_column(Float)
    probabilities: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # open | escalated | decided | expired
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(40))
    label: Mapped[Any] = mapped_column(JSON)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[list[str] | None] = mapped_column(JSON)
    label_applied_at: Mapped[datetime | None]
    webhook: Mapped[str | None] = mapped_column(Text)  # where the decision is announced
    announced_at: Mapped[datetime | None]
    deadline_missed_at: Mapped[datetime | None]  # set once, when the deadline passed undecided


class ReviewDecisionRow(Base):
    """One reviewer's say on one item (a skip included): who, when, what, and whether they saw the model's answer."""

    __tablename__ = "review_decisions"
    __table_args__ = (UniqueConstraint("item_id", "reviewer", name="uq_review_decisions_item_reviewer"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))  # approve | override | skip
    label: Mapped[Any] = mapped_column(JSON)
    saw_suggestion: Mapped[bool]
    at: Mapped[datetime]


ACTIVE_RETRAIN_STATES = ("queued", "training", "evaluating", "awaiting_approval", "rolling_out")


class RetrainRunRow(Base):
    """One retraining run of a deployment, from its trigger to promoted, rejected, failed or cancelled.

    One active run per deployment is a unique index (like rollouts); ``revision`` guards every update,
    so a worker that resumed a run and an operator who cancelled it never overwrite each other.
    """

    __tablename__ = "retrain_runs"
    __table_args__ = (
        Index(
            "uq_retrain_runs_one_active",
            "deployment",
            unique=True,
            sqlite_where=sa_text("state IN ('queued', 'training', 'evaluating', 'awaiting_approval', 'rolling_out')"),
            postgresql_where=sa_text(
                "state IN ('queued', 'training', 'evaluating', 'awaiting_approval', 'rolling_out')"
            ),
        ),
        Index("ix_retrain_runs_deployment_created", "deployment", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    trigger: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(100))
    policy: Mapped[dict[str, Any]]
    parent: Mapped[str | None] = mapped_column(String(300))
    candidate: Mapped[str | None] = mapped_column(String(300))
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rollout_id: Mapped[int | None] = mapped_column(Integer)
    steps: Mapped[list[Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[datetime | None]
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class EdgeDeviceRow(Base):
    """A device registered to send a deployment its telemetry: its API token (by key) and what it has sent.

    ``rows_received`` and ``labels_received`` count what was written, not replays of a lost acknowledgement.
    """

    __tablename__ = "edge_devices"

    device: Mapped[str] = mapped_column(String(100), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200), index=True)
    token_key: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    last_sync_at: Mapped[datetime | None]
    last_model_ref: Mapped[str | None] = mapped_column(String(300))  # the bundle it ran at its last sync
    rows_received: Mapped[int] = mapped_column(BigInteger, default=0)
    labels_received: Mapped[int] = mapped_column(BigInteger, default=0)
