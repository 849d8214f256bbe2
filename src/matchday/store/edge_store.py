"""Edge devices: which deployment each one sends its telemetry to, its token, and what it has synced.

The rules (who may register a device, what a sync must hold) are `matchday.edge`'s; this keeps the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from matchday.store.database import Database, rowcount
from matchday.store.errors import Conflict, NotFound
from matchday.store.schema import EdgeDeviceRow, utcnow


@dataclass(frozen=True)
class EdgeDeviceRecord:
    """A registered device. ``rows_received``/``labels_received`` count rows written (replays not counted)."""

    device: str
    deployment: str
    token_key: str
    created_at: datetime
    created_by: str
    last_sync_at: datetime | None
    last_model_ref: str | None
    rows_received: int
    labels_received: int


class EdgeDeviceNotFound(NotFound):
    def __init__(self, device: str) -> None:
        super().__init__(
            f"no edge device {device!r} is registered "
            f"(register it with: matchday edge devices add {device} --deployment NAME)"
        )
        self.device = device


class EdgeDeviceExists(Conflict):
    def __init__(self, device: str, deployment: str) -> None:
        super().__init__(
            f"edge device {device!r} is already registered (to deployment {deployment!r}); "
            f"remove it first: matchday edge devices remove {device}"
        )
        self.device, self.deployment = device, deployment


class EdgeDeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, device: str, deployment: str, token_key: str, created_by: str) -> EdgeDeviceRecord:
        with self.db.session(write=True) as s:
            found = s.get(EdgeDeviceRow, device)
            if found is not None:
                raise EdgeDeviceExists(device, found.deployment)
            row = EdgeDeviceRow(
                device=device,
                deployment=deployment,
                token_key=token_key,
                created_at=utcnow(),
                created_by=created_by,
                rows_received=0,
                labels_received=0,
            )
            s.add(row)
            s.flush()
            return _record(row)

    def get(self, device: str) -> EdgeDeviceRecord:
        with self.db.session() as s:
            row = s.get(EdgeDeviceRow, device)
            if row is None:
                raise EdgeDeviceNotFound(device)
            return _record(row)

    def list(self, deployment: str | None = None) -> list[EdgeDeviceRecord]:
        """Every device (of one deployment), by name."""
        query = sa.select(EdgeDeviceRow).order_by(EdgeDeviceRow.device)
        if deployment is not None:
            query = query.where(EdgeDeviceRow.deployment == deployment)
        with self.db.session() as s:
            return [_record(r) for r in s.scalars(query)]

    def remove(self, device: str) -> EdgeDeviceRecord:
        """The device's row deleted; returned as it was (its token key, to revoke)."""
        with self.db.session(write=True) as s:
            row = s.get(EdgeDeviceRow, device)
            if row is None:
                raise EdgeDeviceNotFound(device)
            record = _record(row)
            if not rowcount(s.execute(sa.delete(EdgeDeviceRow).where(EdgeDeviceRow.device == device))):
                raise EdgeDeviceNotFound(device)  # removed by another caller meanwhile
            return record

    def record_sync(
        self, device: str, *, at: datetime, rows: int, labels: int, model_ref: str | None
    ) -> EdgeDeviceRecord:
        """A sync counted in one update (concurrent syncs of one device add up, none is lost)."""
        with self.db.session(write=True) as s:
            values: dict[str, object] = {
                "last_sync_at": at,
                "rows_received": EdgeDeviceRow.rows_received + rows,
                "labels_received": EdgeDeviceRow.labels_received + labels,
            }
            if model_ref is not None:
                values["last_model_ref"] = model_ref
            if not rowcount(s.execute(sa.update(EdgeDeviceRow).where(EdgeDeviceRow.device == device).values(values))):
                raise EdgeDeviceNotFound(device)
            row = s.get(EdgeDeviceRow, device, populate_existing=True)
            if row is None:  # (updated just above, in this transaction)
                raise EdgeDeviceNotFound(device)
            return _record(row)


def _record(row: EdgeDeviceRow) -> EdgeDeviceRecord:
    return EdgeDeviceRecord(
        device=row.device,
        deployment=row.deployment,
        token_key=row.token_key,
        created_at=row.created_at,
        created_by=row.created_by,
        last_sync_at=row.last_sync_at,
        last_model_ref=row.last_model_ref,
        rows_received=int(row.rows_received or 0),
        labels_received=int(row.labels_received or 0),
    )
