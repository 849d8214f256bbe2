"""Humans in the loop: the review queue (items written with the log's batches) and reviewers' decisions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from matchday.store.schema import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("deployment", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("rule", sa.Text),
        sa.Column("level", sa.String(40), nullable=False),
        sa.Column("pending", sa.Boolean, nullable=False),
        sa.Column("blind", sa.Boolean, nullable=False),
        sa.Column("inclusion", sa.Float, nullable=False),
        sa.Column("required", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("deadline", UTCDateTime()),
        sa.Column("fallback", sa.String(20)),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("suggestion", sa.JSON),
        sa.Column("confidence", sa.Float),
        sa.Column("probabilities", sa.JSON),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_expires", UTCDateTime()),
        sa.Column("outcome", sa.String(40)),
        sa.Column("label", sa.JSON),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("decided_by", sa.JSON),
        sa.Column("label_applied_at", UTCDateTime()),
        sa.Column("webhook", sa.Text),
        sa.Column("announced_at", UTCDateTime()),
        sa.Column("deadline_missed_at", UTCDateTime()),
    )
    op.create_index("ix_review_items_queue", "review_items", ["deployment", "status", "priority", "created_at"])
    op.create_index("ix_review_items_due", "review_items", ["status", "deadline"])
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column(
            "item_id", sa.String(32), sa.ForeignKey("review_items.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("label", sa.JSON),
        sa.Column("saw_suggestion", sa.Boolean, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("item_id", "reviewer", name="uq_review_decisions_item_reviewer"),
    )


def downgrade() -> None:
    op.drop_table("review_decisions")
    op.drop_table("review_items")
