"""Retraining: the runs (trigger to promotion or rejection) and the lineage of retrained versions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from matchday.store.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ACTIVE = "state IN ('queued', 'training', 'evaluating', 'awaiting_approval', 'rolling_out')"


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("lineage", sa.JSON))
    op.create_table(
        "retrain_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("trigger", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("parent", sa.String(300)),
        sa.Column("candidate", sa.String(300)),
        sa.Column("snapshot", sa.JSON),
        sa.Column("evaluation", sa.JSON),
        sa.Column("rollout_id", sa.Integer),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime()),
        sa.Column("owner", sa.String(100)),
        sa.Column("heartbeat_at", UTCDateTime()),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
    )
    op.create_index(
        "uq_retrain_runs_one_active",
        "retrain_runs",
        ["deployment"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    )
    op.create_index("ix_retrain_runs_deployment_created", "retrain_runs", ["deployment", "created_at"])


def downgrade() -> None:
    op.drop_table("retrain_runs")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("lineage")
