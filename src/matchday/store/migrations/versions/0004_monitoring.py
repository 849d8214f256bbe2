"""Monitoring: metric windows, the monitoring loop's state, alerts, the webhook outbox, and an index
on when labels arrived (the loop finds the windows late labels belong to by it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from matchday.store.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_FIRING = sa.text("state = 'firing'")


def upgrade() -> None:
    op.create_index("ix_prediction_log_label_at", "prediction_log", ["label_at"])
    op.create_table(
        "metric_windows",
        sa.Column("id", _BIGID, primary_key=True),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("segment", sa.String(300), nullable=False),
        sa.Column("width", sa.String(20), nullable=False),
        sa.Column("start", UTCDateTime(), nullable=False),
        sa.Column("end", UTCDateTime(), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("performance", sa.JSON),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "deployment", "model", "version", "segment", "width", "start", name="uq_metric_windows_key"
        ),
    )
    op.create_index("ix_metric_windows_deployment_width_start", "metric_windows", ["deployment", "width", "start"])
    op.create_table(
        "monitor_state",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("monitor", sa.String(200), nullable=False),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("segment", sa.String(300), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index(
        "uq_alerts_one_firing",
        "alerts",
        ["monitor", "deployment", "model", "version", "segment"],
        unique=True,
        sqlite_where=_FIRING,
        postgresql_where=_FIRING,
    )
    op.create_index("ix_alerts_deployment_opened", "alerts", ["deployment", "opened_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _BIGID, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime()),
        sa.Column("gave_up_at", UTCDateTime()),
        sa.Column("last_error", sa.Text),
    )
    op.create_index(
        "ix_webhook_deliveries_pending", "webhook_deliveries", ["delivered_at", "gave_up_at", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("alerts")
    op.drop_table("monitor_state")
    op.drop_table("metric_windows")
    op.drop_index("ix_prediction_log_label_at", "prediction_log")
