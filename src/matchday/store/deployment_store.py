"""Repository functions for deployments: which model reference each named endpoint serves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from matchday.store.database import Database, rowcount
from matchday.store.errors import NotFound
from matchday.store.records import DeploymentRecord
from matchday.store.schema import DeploymentRow, utcnow


class DeploymentNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no deployment named {name!r}")
        self.name = name


class DeploymentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert(self, name: str, model_ref: str, settings: dict[str, Any]) -> tuple[DeploymentRecord, str | None]:
        """Create or repoint a deployment; returns it with the model reference it had before."""
        with self.db.session(write=True) as s:
            row = s.scalar(sa.select(DeploymentRow).where(DeploymentRow.name == name).with_for_update())
            now = utcnow()
            previous = row.model_ref if row else None
            if row is None:
                row = DeploymentRow(name=name, model_ref=model_ref, settings=settings, created_at=now, updated_at=now)
                s.add(row)
            else:
                row.model_ref, row.settings, row.updated_at = model_ref, settings, now
            s.flush()
            return _record(row), previous

    def change_settings(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> DeploymentRecord:
        """The deployment's settings replaced by ``change(current settings)`` in one locked read and write:
        where it points is not read and written back (a promotion meanwhile is kept)."""
        with self.db.session(write=True) as s:
            row = s.scalar(sa.select(DeploymentRow).where(DeploymentRow.name == name).with_for_update())
            if row is None:
                raise DeploymentNotFound(name)
            row.settings, row.updated_at = change(dict(row.settings)), utcnow()
            s.flush()
            return _record(row)

    def get(self, name: str) -> DeploymentRecord:
        with self.db.session() as s:
            row = s.scalar(sa.select(DeploymentRow).where(DeploymentRow.name == name))
            if row is None:
                raise DeploymentNotFound(name)
            return _record(row)

    def list(self) -> list[DeploymentRecord]:
        with self.db.session() as s:
            return [_record(r) for r in s.scalars(sa.select(DeploymentRow).order_by(DeploymentRow.name))]

    def delete(self, name: str) -> None:
        with self.db.session(write=True) as s:
            if not rowcount(s.execute(sa.delete(DeploymentRow).where(DeploymentRow.name == name))):
                raise DeploymentNotFound(name)


def _record(r: DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(r.name, r.model_ref, dict(r.settings), r.created_at, r.updated_at)
