"""Repository functions for the prediction log: idempotent batch inserts and label joins."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from matchday.store.database import Database
from matchday.store.records import LabelOutcome, PredictionRecord
from matchday.store.schema import PredictionRow, utcnow

_FIELDS = ("request_id", "entity_id", "deployment", "model", "version", "at", "inputs", "prediction",
           "probabilities", "latency_seconds", "routing")


class PredictionLogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert logged rows; a ``request_id`` already present is skipped, so replays are safe."""
        if not rows:
            return 0
        values = [{k: row.get(k) for k in _FIELDS} for row in rows]
        for v in values:
            if isinstance(v["at"], str):
                v["at"] = datetime.fromisoformat(v["at"])
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        table = PredictionRow.__table__
        statement = (dialect.insert(table).on_conflict_do_nothing(index_elements=["request_id"])
                     .returning(table.c.request_id))
        with self.db.session(write=True) as s:
            return len(s.connection().execute(statement, values).all())

    def apply_labels(self, deployment: str, labels: Iterable[tuple[str, str, Any]]) -> list[LabelOutcome]:
        """Join ground truth to logged rows by ``("request_id", id, label)`` or ``("entity_id", key, label)``.

        An entity key labels the most recent prediction made for it (by time, then insertion).
        """
        outcomes: list[LabelOutcome] = []
        now = utcnow()
        with self.db.session(write=True) as s:
            for kind, key, label in labels:
                if kind == "request_id":
                    target = sa.select(PredictionRow.id).where(
                        PredictionRow.deployment == deployment, PredictionRow.request_id == key)
                else:
                    target = (sa.select(PredictionRow.id)
                              .where(PredictionRow.deployment == deployment, PredictionRow.entity_id == key)
                              .order_by(PredictionRow.at.desc(), PredictionRow.id.desc()).limit(1))
                row_id = s.scalar(target)
                if row_id is None:
                    outcomes.append(LabelOutcome(kind, key, None))
                    continue
                s.execute(sa.update(PredictionRow).where(PredictionRow.id == row_id).values(label=label, label_at=now))
                request_id = s.scalar(sa.select(PredictionRow.request_id).where(PredictionRow.id == row_id))
                outcomes.append(LabelOutcome(kind, key, request_id))
        return outcomes

    def count(self, deployment: str | None = None) -> int:
        with self.db.session() as s:
            query = sa.select(sa.func.count()).select_from(PredictionRow)
            if deployment is not None:
                query = query.where(PredictionRow.deployment == deployment)
            return s.scalar(query) or 0

    def recent(self, deployment: str, limit: int = 100) -> list[PredictionRecord]:
        with self.db.session() as s:
            rows = s.scalars(sa.select(PredictionRow).where(PredictionRow.deployment == deployment)
                             .order_by(PredictionRow.id.desc()).limit(limit))
            return [_record(r) for r in rows]

    def get(self, request_id: str) -> PredictionRecord | None:
        with self.db.session() as s:
            row = s.scalar(sa.select(PredictionRow).where(PredictionRow.request_id == request_id))
            return None if row is None else _record(row)

    def request_ids(self, deployment: str | None = None) -> list[str]:
        with self.db.session() as s:
            query = sa.select(PredictionRow.request_id)
            if deployment is not None:
                query = query.where(PredictionRow.deployment == deployment)
            return list(s.scalars(query))


def _record(r: PredictionRow) -> PredictionRecord:
    return PredictionRecord(
        request_id=r.request_id, entity_id=r.entity_id, deployment=r.deployment, model=r.model, version=r.version,
        at=r.at, inputs=dict(r.inputs), prediction=r.prediction, probabilities=r.probabilities,
        latency_seconds=r.latency_seconds, routing=dict(r.routing), label=r.label, label_at=r.label_at,
    )
