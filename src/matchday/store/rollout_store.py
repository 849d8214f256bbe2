"""Repository functions for rollouts and the event trail.

One active rollout per deployment is a unique index, not a check, so two writers cannot both
start one. Updates name the revision they read; a stale one is refused (`StaleRollout`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from matchday.store.database import Database, rowcount
from matchday.store.errors import Conflict, NotFound
from matchday.store.records import EventRecord, RolloutRecord
from matchday.store.schema import ACTIVE_ROLLOUT_STATES, EventRow, RolloutRow, utcnow

_UPDATABLE = {
    "state",
    "phase",
    "step",
    "weight",
    "failures",
    "reason",
    "analysis",
    "step_started_at",
    "finished_at",
    "plan",
}


class RolloutNotFound(NotFound):
    """No rollout (or no active one) where one was asked for."""


class RolloutAlreadyActive(Conflict):
    def __init__(self, deployment: str, existing: int | None) -> None:
        which = f" (rollout {existing})" if existing else ""
        super().__init__(
            f"deployment {deployment!r} already has a rollout in progress{which}; "
            "promote, roll back or wait for it first"
        )
        self.deployment = deployment


class StaleRollout(Conflict):
    """The rollout changed since it was read (the controller and a human acted at once)."""


class RolloutStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        deployment: str,
        strategy: str,
        baseline: str,
        candidate: str,
        plan: dict[str, Any],
        *,
        phase: str,
        weight: float,
        event: tuple[str, str, str, dict[str, Any]],
    ) -> RolloutRecord:
        """Start a rollout and write its first event in the same transaction."""
        now = utcnow()
        try:
            with self.db.session(write=True) as s:
                row = RolloutRow(
                    deployment=deployment,
                    strategy=strategy,
                    baseline=baseline,
                    candidate=candidate,
                    plan=plan,
                    state="running",
                    phase=phase,
                    step=0,
                    weight=weight,
                    failures=0,
                    revision=1,
                    started_at=now,
                    step_started_at=now,
                    updated_at=now,
                )
                s.add(row)
                s.flush()
                kind, actor, reason, data = event
                s.add(
                    EventRow(
                        at=now,
                        deployment=deployment,
                        rollout_id=row.id,
                        kind=kind,
                        actor=actor,
                        reason=reason,
                        data=data,
                    )
                )
                s.flush()
                return _record(row)
        except Conflict as exc:
            if isinstance(exc, RolloutAlreadyActive):
                raise
            existing = self.active(deployment)
            raise RolloutAlreadyActive(deployment, existing.id if existing else None) from exc

    def get(self, rollout_id: int) -> RolloutRecord:
        with self.db.session() as s:
            row = s.get(RolloutRow, rollout_id)
            if row is None:
                raise RolloutNotFound(f"no rollout with id {rollout_id}")
            return _record(row)

    def active(self, deployment: str) -> RolloutRecord | None:
        with self.db.session() as s:
            row = s.scalar(
                sa.select(RolloutRow).where(
                    RolloutRow.deployment == deployment, RolloutRow.state.in_(ACTIVE_ROLLOUT_STATES)
                )
            )
            return None if row is None else _record(row)

    def latest(self, deployment: str) -> RolloutRecord | None:
        with self.db.session() as s:
            row = s.scalar(
                sa.select(RolloutRow).where(RolloutRow.deployment == deployment).order_by(RolloutRow.id.desc()).limit(1)
            )
            return None if row is None else _record(row)

    def all_active(self) -> list[RolloutRecord]:
        with self.db.session() as s:
            rows = s.scalars(
                sa.select(RolloutRow).where(RolloutRow.state.in_(ACTIVE_ROLLOUT_STATES)).order_by(RolloutRow.id)
            )
            return [_record(r) for r in rows]

    def history(self, deployment: str, limit: int = 20) -> list[RolloutRecord]:
        with self.db.session() as s:
            rows = s.scalars(
                sa.select(RolloutRow)
                .where(RolloutRow.deployment == deployment)
                .order_by(RolloutRow.id.desc())
                .limit(limit)
            )
            return [_record(r) for r in rows]

    def update(
        self, current: RolloutRecord, changes: dict[str, Any], event: tuple[str, str, str, dict[str, Any]] | None = None
    ) -> RolloutRecord:
        """Apply ``changes`` if nobody changed the rollout since ``current`` was read; log ``event`` with it."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"rollout fields that cannot be updated: {sorted(unknown)}")
        now = utcnow()
        with self.db.session(write=True) as s:
            done = rowcount(
                s.execute(
                    sa.update(RolloutRow)
                    .where(RolloutRow.id == current.id, RolloutRow.revision == current.revision)
                    .values(**changes, revision=current.revision + 1, updated_at=now)
                )
            )
            if not done:
                raise StaleRollout(f"rollout {current.id} of {current.deployment!r} changed meanwhile; read it again")
            if event is not None:
                kind, actor, reason, data = event
                s.add(
                    EventRow(
                        at=now,
                        deployment=current.deployment,
                        rollout_id=current.id,
                        kind=kind,
                        actor=actor,
                        reason=reason,
                        data=data,
                    )
                )
            row = s.get(RolloutRow, current.id, populate_existing=True)
            assert row is not None
            return _record(row)


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        kind: str,
        actor: str,
        reason: str,
        data: dict[str, Any] | None = None,
        *,
        deployment: str | None = None,
        rollout_id: int | None = None,
    ) -> EventRecord:
        with self.db.session(write=True) as s:
            row = EventRow(
                at=utcnow(),
                deployment=deployment,
                rollout_id=rollout_id,
                kind=kind,
                actor=actor,
                reason=reason,
                data=data or {},
            )
            s.add(row)
            s.flush()
            return _event(row)

    def list(
        self,
        deployment: str | None = None,
        *,
        rollout_id: int | None = None,
        since: datetime | None = None,
        kinds: tuple[str, ...] = (),
        limit: int = 100,
    ) -> list[EventRecord]:
        """Newest first."""
        query = sa.select(EventRow)
        if deployment is not None:
            query = query.where(EventRow.deployment == deployment)
        if rollout_id is not None:
            query = query.where(EventRow.rollout_id == rollout_id)
        if since is not None:
            query = query.where(EventRow.at >= since)
        if kinds:
            query = query.where(EventRow.kind.in_(kinds))
        with self.db.session() as s:
            return [_event(r) for r in s.scalars(query.order_by(EventRow.id.desc()).limit(limit))]


def _record(r: RolloutRow) -> RolloutRecord:
    return RolloutRecord(
        id=r.id,
        deployment=r.deployment,
        strategy=r.strategy,
        baseline=r.baseline,
        candidate=r.candidate,
        plan=dict(r.plan),
        state=r.state,
        phase=r.phase,
        step=r.step,
        weight=r.weight,
        failures=r.failures,
        reason=r.reason,
        analysis=None if r.analysis is None else dict(r.analysis),
        revision=r.revision,
        started_at=r.started_at,
        step_started_at=r.step_started_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
    )


def _event(r: EventRow) -> EventRecord:
    return EventRecord(r.id, r.at, r.deployment, r.rollout_id, r.kind, r.actor, r.reason, dict(r.data))
