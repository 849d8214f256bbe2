"""The prediction log's ``source``: "batch" or "edge" for rows that are not online traffic, so a rollout's
arms are judged on the traffic it routed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(sa.Column("source", sa.String(10)))


def downgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_column("source")
