"""Edge devices: each registered to a deployment with its API token, and what it has synced.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from matchday.store.schema import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edge_devices",
        sa.Column("device", sa.String(100), primary_key=True),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("token_key", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("last_sync_at", UTCDateTime()),
        sa.Column("last_model_ref", sa.String(300)),
        sa.Column("rows_received", sa.BigInteger, nullable=False),
        sa.Column("labels_received", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_edge_devices_deployment", "edge_devices", ["deployment"])


def downgrade() -> None:
    op.drop_table("edge_devices")
