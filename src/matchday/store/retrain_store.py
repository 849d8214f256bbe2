"""Repository functions for retraining runs.

One active run per deployment is a unique index, not a check, so two triggers (or a trigger and an
operator) cannot both start one. Updates name the revision they read; a stale one is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from matchday.store.database import Database, rowcount
from matchday.store.errors import Conflict, NotFound
from matchday.store.records import RetrainRunRecord
from matchday.store.schema import ACTIVE_RETRAIN_STATES, EventRow, RetrainRunRow, utcnow

_UPDATABLE = {
    "state",
    "parent",
    "candidate",
    "snapshot",
    "evaluation",
    "rollout_id",
    "steps",
    "reason",
    "error",
    "attempts",
    "next_attempt_at",
    "owner",
    "heartbeat_at",
    "finished_at",
}
Event = tuple[str, str, str, dict[str, Any]]  # kind, actor, reason, data


class RetrainRunNotFound(NotFound):
    """No retraining run with that id."""


class RetrainAlreadyActive(Conflict):
    def __init__(self, deployment: str, existing: int | None) -> None:
        which = f" (run {existing})" if existing else ""
        super().__init__(
            f"deployment {deployment!r} already has a retraining run in progress{which}; "
            "let it finish or cancel it first"
        )
        self.deployment = deployment
        self.existing = existing


class StaleRetrainRun(Conflict):
    """The run changed since it was read (the worker and an operator acted at once)."""


class RetrainStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        deployment: str,
        trigger: dict[str, Any],
        actor: str,
        policy: dict[str, Any],
        parent: str | None,
        event: Event,
    ) -> RetrainRunRecord:
        """Queue a run and write its first event in the same transaction."""
        now = utcnow()
        try:
            with self.db.session(write=True) as s:
                row = RetrainRunRow(
                    deployment=deployment,
                    state="queued",
                    trigger=trigger,
                    actor=actor,
                    policy=policy,
                    parent=parent,
                    steps=[{"state": "queued", "at": now.isoformat(), "message": event[2], "data": event[3]}],
                    attempts=0,
                    revision=1,
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
                s.flush()
                _add_event(s, deployment, now, event, row.id)
                return _record(row)
        except Conflict as exc:
            existing = self.active(deployment)
            raise RetrainAlreadyActive(deployment, existing.id if existing else None) from exc

    def get(self, run_id: int) -> RetrainRunRecord:
        with self.db.session() as s:
            row = s.get(RetrainRunRow, run_id)
            if row is None:
                raise RetrainRunNotFound(f"no retraining run with id {run_id}")
            return _record(row)

    def active(self, deployment: str) -> RetrainRunRecord | None:
        with self.db.session() as s:
            row = s.scalar(
                sa.select(RetrainRunRow).where(
                    RetrainRunRow.deployment == deployment, RetrainRunRow.state.in_(ACTIVE_RETRAIN_STATES)
                )
            )
            return None if row is None else _record(row)

    def all_active(self) -> list[RetrainRunRecord]:
        with self.db.session() as s:
            rows = s.scalars(
                sa.select(RetrainRunRow)
                .where(RetrainRunRow.state.in_(ACTIVE_RETRAIN_STATES))
                .order_by(RetrainRunRow.id)
            )
            return [_record(r) for r in rows]

    def list(
        self, deployment: str | None = None, *, since: datetime | None = None, limit: int = 50
    ) -> list[RetrainRunRecord]:
        """Newest first."""
        query = sa.select(RetrainRunRow)
        if deployment is not None:
            query = query.where(RetrainRunRow.deployment == deployment)
        if since is not None:
            query = query.where(RetrainRunRow.created_at >= since)
        with self.db.session() as s:
            rows = s.scalars(query.order_by(RetrainRunRow.id.desc()).limit(limit))
            return [_record(r) for r in rows]

    def update(
        self,
        current: RetrainRunRecord,
        changes: dict[str, Any],
        step: tuple[str, dict[str, Any]] | None = None,
        event: Event | None = None,
    ) -> RetrainRunRecord:
        """Apply ``changes`` if nobody changed the run since ``current`` was read; ``step`` (message, numbers)
        is appended to its trail under the new state, and ``event`` logged, in the same transaction."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"retraining run fields that cannot be updated: {sorted(unknown)}")
        now = utcnow()
        values = dict(changes)
        if step is not None:
            message, data = step
            entry = {"state": values.get("state", current.state), "at": now.isoformat(), "message": message}
            values["steps"] = [*current.steps, {**entry, "data": data}]
        with self.db.session(write=True) as s:
            done = rowcount(
                s.execute(
                    sa.update(RetrainRunRow)
                    .where(RetrainRunRow.id == current.id, RetrainRunRow.revision == current.revision)
                    .values(**values, revision=current.revision + 1, updated_at=now)
                )
            )
            if not done:
                raise StaleRetrainRun(
                    f"retraining run {current.id} of {current.deployment!r} changed meanwhile; read it again"
                )
            if event is not None:
                _add_event(s, current.deployment, now, event, current.id)
            row = s.get(RetrainRunRow, current.id)
            assert row is not None
            s.refresh(row)
            return _record(row)

    def heartbeat(self, run_id: int, owner: str) -> None:
        """Say the run is being worked on (a resumed worker takes over a run whose heartbeat went stale)."""
        with self.db.session(write=True) as s:
            s.execute(
                sa.update(RetrainRunRow)
                .where(RetrainRunRow.id == run_id, RetrainRunRow.finished_at.is_(None))
                .values(owner=owner, heartbeat_at=utcnow())
            )


def _add_event(s: Any, deployment: str, at: datetime, event: Event, run_id: int) -> None:
    kind, actor, reason, data = event
    s.add(EventRow(at=at, deployment=deployment, kind=kind, actor=actor, reason=reason, data={**data, "run": run_id}))


def _record(r: RetrainRunRow) -> RetrainRunRecord:
    return RetrainRunRecord(
        id=r.id,
        deployment=r.deployment,
        state=r.state,
        trigger=dict(r.trigger),
        actor=r.actor,
        policy=dict(r.policy),
        parent=r.parent,
        candidate=r.candidate,
        snapshot=dict(r.snapshot) if r.snapshot else None,
        evaluation=dict(r.evaluation) if r.evaluation else None,
        rollout_id=r.rollout_id,
        steps=list(r.steps),
        reason=r.reason,
        error=r.error,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at,
        owner=r.owner,
        heartbeat_at=r.heartbeat_at,
        revision=r.revision,
        created_at=r.created_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
    )
