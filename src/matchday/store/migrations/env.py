"""Alembic environment: runs on the connection `Database.upgrade` hands over (online only)."""

from __future__ import annotations

from alembic import context

from matchday.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("matchday migrations run through matchday.store.Database.upgrade()")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
