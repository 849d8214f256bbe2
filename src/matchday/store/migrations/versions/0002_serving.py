"""Deployments and the prediction log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from matchday.store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("model_ref", sa.String(300), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("request_id", sa.String(36), nullable=False, unique=True),
        sa.Column("entity_id", sa.String(200)),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("prediction", sa.JSON),
        sa.Column("probabilities", sa.JSON),
        sa.Column("latency_seconds", sa.Float, nullable=False),
        sa.Column("routing", sa.JSON, nullable=False),
        sa.Column("label", sa.JSON),
        sa.Column("label_at", UTCDateTime()),
    )
    op.create_index("ix_prediction_log_deployment_at", "prediction_log", ["deployment", "at"])
    op.create_index("ix_prediction_log_deployment_entity", "prediction_log", ["deployment", "entity_id"])


def downgrade() -> None:
    op.drop_table("prediction_log")
    op.drop_table("deployments")
