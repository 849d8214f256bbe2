"""The columnar prediction log: inputs, probabilities and routing move from JSON per row into one
Arrow batch per writer flush (``prediction_batches``); each row points into its batch by position.

Rows also say where their label came from (``label_source``; "feedback" for every label so far).
Existing rows are converted in chunks of 5,000 (one batch each), so an existing log stays readable.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from matchday.store import log_batches
from matchday.store.schema import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_CHUNK = 5000
_log = sa.table(
    "prediction_log",
    sa.column("id", sa.BigInteger),
    sa.column("at", UTCDateTime()),
    sa.column("deployment", sa.String),
    sa.column("model", sa.String),
    sa.column("version", sa.Integer),
    sa.column("role", sa.String),
    sa.column("error", sa.Text),
    sa.column("latency_seconds", sa.Float),
    sa.column("prediction", sa.JSON),
    sa.column("inputs", sa.JSON),
    sa.column("probabilities", sa.JSON),
    sa.column("routing", sa.JSON),
    sa.column("batch_id", sa.BigInteger),
    sa.column("position", sa.Integer),
)
_CONVERTED = (
    "at",
    "deployment",
    "model",
    "version",
    "role",
    "error",
    "latency_seconds",
    "prediction",
    "inputs",
    "probabilities",
    "routing",
)
_batches = sa.table(
    "prediction_batches",
    sa.column("id", sa.BigInteger),
    sa.column("created_at", UTCDateTime()),
    sa.column("rows", sa.Integer),
    sa.column("data", sa.LargeBinary),
)


def upgrade() -> None:
    op.create_table(
        "prediction_batches",
        sa.Column("id", _BIGID, primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(
            sa.Column("batch_id", _BIGID, sa.ForeignKey("prediction_batches.id", name="fk_prediction_log_batch"))
        )
        batch.add_column(sa.Column("position", sa.Integer))
        batch.add_column(sa.Column("label_source", sa.String(40)))
    op.execute("UPDATE prediction_log SET label_source = 'feedback' WHERE label_at IS NOT NULL")
    _convert_rows()
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_column("inputs")
        batch.drop_column("probabilities")
        batch.drop_column("routing")


def _convert_rows() -> None:
    """Every row's JSON payload into batches of ``_CHUNK`` rows, in id order."""
    bind = op.get_bind()
    after = -1
    while True:
        rows = bind.execute(
            sa.select(_log.c.id, *(_log.c[c] for c in _CONVERTED))
            .where(_log.c.id > after)
            .order_by(_log.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        data = log_batches.encode([dict(zip(_CONVERTED, r[1:])) for r in rows], [r[0] for r in rows])
        batch_id = bind.execute(
            sa.insert(_batches).values(created_at=datetime.now(UTC), rows=len(rows), data=data).returning(_batches.c.id)
        ).scalar_one()
        bind.execute(
            sa.update(_log)
            .where(_log.c.id == sa.bindparam("row_id"))
            .values(batch_id=batch_id, position=sa.bindparam("pos")),
            [{"row_id": r[0], "pos": i} for i, r in enumerate(rows)],
        )
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(sa.Column("inputs", sa.JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("probabilities", sa.JSON))
        batch.add_column(sa.Column("routing", sa.JSON, nullable=False, server_default="{}"))
    bind = op.get_bind()
    for batch_id, data in bind.execute(sa.select(_batches.c.id, _batches.c.data)).all():
        table = log_batches.decode(data)
        inputs, probabilities, routing = (table.column(c).to_pylist() for c in ("inputs", "probabilities", "routing"))
        rows = bind.execute(sa.select(_log.c.id, _log.c.position).where(_log.c.batch_id == batch_id)).all()
        if rows:
            bind.execute(
                sa.update(_log)
                .where(_log.c.id == sa.bindparam("row_id"))
                .values(inputs=sa.bindparam("i"), probabilities=sa.bindparam("p"), routing=sa.bindparam("r")),
                [
                    {
                        "row_id": r[0],
                        "i": inputs[r[1]] or {},
                        "p": probabilities[r[1]],
                        "r": log_batches.as_dict(routing[r[1]]),
                    }
                    for r in rows
                ],
            )
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_constraint("fk_prediction_log_batch", type_="foreignkey")
        batch.drop_column("batch_id")
        batch.drop_column("position")
        batch.drop_column("label_source")
    op.drop_table("prediction_batches")
