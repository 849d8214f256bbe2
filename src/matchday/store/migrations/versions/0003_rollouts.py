"""Rollouts, the event trail, and the prediction log's role, error and shadow columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from matchday.store.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("state IN ('running', 'paused')")


def upgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(sa.Column("role", sa.String(20), nullable=False, server_default="served"))
        batch.add_column(sa.Column("error", sa.Text))
        batch.add_column(sa.Column("shadow_of", sa.String(36)))
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment", sa.String(200), nullable=False, index=True),
        sa.Column("strategy", sa.String(20), nullable=False),
        sa.Column("baseline", sa.String(300), nullable=False),
        sa.Column("candidate", sa.String(300), nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("phase", sa.String(30), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("analysis", sa.JSON),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("step_started_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
    )
    op.create_index(
        "uq_rollouts_one_active",
        "rollouts",
        ["deployment"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("deployment", sa.String(200)),
        sa.Column("rollout_id", sa.Integer, index=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_events_deployment_at", "events", ["deployment", "at"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("rollouts")
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_column("shadow_of")
        batch.drop_column("error")
        batch.drop_column("role")
