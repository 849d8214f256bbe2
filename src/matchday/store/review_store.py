"""The review queue's tables: items (written with the log's batches), leases, and reviewers' decisions.

An item is claimed under a lease that expires, so a reviewer who goes away gives it back; the claim
is one statement-level race on both databases (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write
lock SQLite takes at ``BEGIN IMMEDIATE``), so two reviewers never hold the same item. What a set of
decisions means (agreement, escalation) is the caller's rule (``settle``), applied in the
transaction that records the decision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.dialects import postgresql, sqlite

from matchday.store.database import Database, rowcount
from matchday.store.errors import Conflict, NotFound
from matchday.store.schema import ReviewDecisionRow, ReviewItemRow, utcnow

OPEN = ("open", "escalated")  # an item someone may still claim
_ITEM_FIELDS = (
    "id",
    "request_id",
    "deployment",
    "model",
    "version",
    "created_at",
    "reason",
    "rule",
    "level",
    "pending",
    "blind",
    "inclusion",
    "required",
    "priority",
    "deadline",
    "fallback",
    "inputs",
    "suggestion",
    "confidence",
    "probabilities",
    "webhook",
)


class ReviewItemNotFound(NotFound):
    pass


@dataclass(frozen=True)
class ReviewDecisionRecord:
    reviewer: str
    action: str  # approve | override | skip
    label: Any
    saw_suggestion: bool
    at: datetime


@dataclass(frozen=True)
class ReviewItemRecord:
    id: str
    request_id: str
    deployment: str
    model: str
    version: int
    created_at: datetime
    reason: str
    rule: str | None
    level: str
    pending: bool
    blind: bool
    inclusion: float
    required: int
    priority: int
    deadline: datetime | None
    fallback: str | None
    inputs: dict[str, Any]
    suggestion: Any
    confidence: float | None
    probabilities: Any
    status: str
    lease_owner: str | None
    lease_expires: datetime | None
    outcome: str | None
    label: Any
    decided_at: datetime | None
    decided_by: list[str] | None
    label_applied_at: datetime | None
    webhook: str | None
    deadline_missed_at: datetime | None = None
    decisions: tuple[ReviewDecisionRecord, ...] = ()


@dataclass(frozen=True)
class Settlement:
    """What an item becomes after a decision (the caller's rule): its status, and when decided, the
    outcome, label and who decided; ``required`` and ``priority`` change when it is escalated."""

    status: str
    outcome: str | None = None
    label: Any = None
    decided_by: list[str] | None = None
    required: int | None = None
    priority: int | None = None


def insert_items(connection: sa.Connection, items: Sequence[dict[str, Any]]) -> None:
    """Queue ``items`` (the log's insert calls this in its transaction); an item already queued for
    its request (a replayed batch) is left as it is."""
    if not items:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    values = [{**{k: item.get(k) for k in _ITEM_FIELDS}, "status": "open"} for item in items]
    for v in values:  # (rows reach the log's process as JSON: times as ISO text)
        for key in ("created_at", "deadline"):
            when = v[key]
            if isinstance(when, str):
                v[key] = datetime.fromisoformat(when)
    connection.execute(
        dialect.insert(ReviewItemRow.__table__).on_conflict_do_nothing(index_elements=["request_id"]), values
    )


class ReviewStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading ---------------------------------------------------------------------------------
    def get(self, item_id: str) -> ReviewItemRecord:
        with self.db.session() as s:
            row = s.get(ReviewItemRow, item_id)
            if row is None:
                raise ReviewItemNotFound(f"no review item {item_id!r}")
            return _record(row, _decisions(s, [item_id]).get(item_id, ()))

    def by_request(self, request_id: str) -> ReviewItemRecord | None:
        with self.db.session() as s:
            row = s.scalars(sa.select(ReviewItemRow).where(ReviewItemRow.request_id == request_id)).first()
            return None if row is None else _record(row, _decisions(s, [row.id]).get(row.id, ()))

    def items(
        self, deployment: str | None = None, statuses: Sequence[str] = (), limit: int = 100
    ) -> list[ReviewItemRecord]:
        """Open items first in the order they are handed out, then the rest, newest first."""
        query = sa.select(ReviewItemRow)
        if deployment is not None:
            query = query.where(ReviewItemRow.deployment == deployment)
        if statuses:
            query = query.where(ReviewItemRow.status.in_(statuses))
        waiting = sa.case((ReviewItemRow.status.in_(OPEN), 0), else_=1)
        query = query.order_by(waiting, *_queue_order(), ReviewItemRow.created_at.desc()).limit(limit)
        with self.db.session() as s:
            rows = list(s.scalars(query))
            decisions = _decisions(s, [r.id for r in rows])
            return [_record(r, decisions.get(r.id, ())) for r in rows]

    def settled_since(self, deployment: str, since: datetime | None = None) -> list[ReviewItemRecord]:
        """Items decided by people (each has its label), oldest first: the evidence for accuracy and agreement."""
        query = sa.select(ReviewItemRow).where(
            ReviewItemRow.deployment == deployment, ReviewItemRow.status == "decided"
        )
        if since is not None:
            query = query.where(ReviewItemRow.decided_at >= since)
        with self.db.session() as s:
            rows = list(s.scalars(query.order_by(ReviewItemRow.decided_at)))
            decisions = _decisions(s, [r.id for r in rows])
            return [_record(r, decisions.get(r.id, ())) for r in rows]

    def counts(self, deployment: str, since: datetime | None = None) -> dict[str, int]:
        """Items by status and outcome (those created since ``since``, if given)."""
        query = sa.select(ReviewItemRow.status, ReviewItemRow.outcome, sa.func.count()).where(
            ReviewItemRow.deployment == deployment
        )
        if since is not None:
            query = query.where(ReviewItemRow.created_at >= since)
        missed = sa.select(sa.func.count()).where(
            ReviewItemRow.deployment == deployment, ReviewItemRow.deadline_missed_at.is_not(None)
        )
        if since is not None:
            missed = missed.where(ReviewItemRow.created_at >= since)
        out: dict[str, int] = {}
        with self.db.session() as s:
            for status, outcome, n in s.execute(query.group_by(ReviewItemRow.status, ReviewItemRow.outcome)):
                out[f"status.{status}"] = out.get(f"status.{status}", 0) + int(n)
                if outcome:
                    out[f"outcome.{outcome}"] = out.get(f"outcome.{outcome}", 0) + int(n)
            out["missed"] = int(s.scalar(missed) or 0)
        return out

    def queued_by_inclusion(self, deployment: str, since: datetime | None = None) -> dict[float, int]:
        """Items queued (whatever became of them) by their chance of being queued: the strata of a
        weighted estimate."""
        query = sa.select(ReviewItemRow.inclusion, sa.func.count()).where(ReviewItemRow.deployment == deployment)
        if since is not None:
            query = query.where(ReviewItemRow.created_at >= since)
        with self.db.session() as s:
            return {float(i): int(n) for i, n in s.execute(query.group_by(ReviewItemRow.inclusion))}

    def tally(self) -> list[tuple[str, str, str | None, int, int]]:
        """(deployment, status, outcome, items, of those whose deadline was missed) over every deployment:
        what the gauges show."""
        missed = sa.func.count(ReviewItemRow.deadline_missed_at)
        query = sa.select(
            ReviewItemRow.deployment, ReviewItemRow.status, ReviewItemRow.outcome, sa.func.count(), missed
        )
        with self.db.session() as s:
            rows = s.execute(
                query.group_by(ReviewItemRow.deployment, ReviewItemRow.status, ReviewItemRow.outcome)
            ).all()
            return [(d, st, o, int(n), int(m)) for d, st, o, n, m in rows]

    def missed_since(self, deployment: str, since: datetime) -> int:
        """Held answers whose deadline passed (found since ``since``) before a person decided them."""
        query = sa.select(sa.func.count()).where(
            ReviewItemRow.deployment == deployment, ReviewItemRow.deadline_missed_at >= since
        )
        with self.db.session() as s:
            return int(s.scalar(query) or 0)

    def latest(self, deployment: str) -> ReviewItemRecord | None:
        query = (
            sa.select(ReviewItemRow)
            .where(ReviewItemRow.deployment == deployment)
            .order_by(ReviewItemRow.created_at.desc())
            .limit(1)
        )
        with self.db.session() as s:
            row = s.scalars(query).first()
            return None if row is None else _record(row)

    # -- claiming and deciding -------------------------------------------------------------------
    def claim(
        self, deployment: str, reviewer: str, lease_seconds: float, now: datetime | None = None
    ) -> ReviewItemRecord | None:
        """The next item ``reviewer`` may take (none they decided or skipped), leased to them; the one
        they hold already if they hold one. None when nothing is waiting."""
        now = now or utcnow()
        with self.db.session(write=True) as s:
            held = s.scalars(
                sa.select(ReviewItemRow).where(
                    ReviewItemRow.deployment == deployment,
                    ReviewItemRow.status.in_(OPEN),
                    ReviewItemRow.lease_owner == reviewer,
                    ReviewItemRow.lease_expires > now,
                )
            ).first()
            row = held or self._next(s, deployment, reviewer, now)
            if row is None:
                return None
            row.lease_owner, row.lease_expires = reviewer, now + timedelta(seconds=lease_seconds)
            s.flush()
            return _record(row, _decisions(s, [row.id]).get(row.id, ()))

    @staticmethod
    def _next(s: sa.orm.Session, deployment: str, reviewer: str, now: datetime) -> ReviewItemRow | None:
        seen = sa.select(ReviewDecisionRow.id).where(
            ReviewDecisionRow.item_id == ReviewItemRow.id, ReviewDecisionRow.reviewer == reviewer
        )
        query = (
            sa.select(ReviewItemRow)
            .where(
                ReviewItemRow.deployment == deployment,
                ReviewItemRow.status.in_(OPEN),
                sa.or_(ReviewItemRow.lease_expires.is_(None), ReviewItemRow.lease_expires <= now),
                ~sa.exists(seen),
            )
            .order_by(*_queue_order())
            .limit(1)
        )
        if s.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return s.scalars(query).first()

    def release(self, item_id: str, reviewer: str) -> bool:
        """Give a claimed item back (the lease ends now)."""
        with self.db.session(write=True) as s:
            result = s.execute(
                sa.update(ReviewItemRow)
                .where(ReviewItemRow.id == item_id, ReviewItemRow.lease_owner == reviewer)
                .values(lease_owner=None, lease_expires=None)
            )
            return rowcount(result) > 0

    def decide(
        self,
        item_id: str,
        reviewer: str,
        action: str,
        label: Any,
        saw_suggestion: bool,
        settle: Callable[[ReviewItemRecord, list[ReviewDecisionRecord]], Settlement],
        now: datetime | None = None,
    ) -> ReviewItemRecord:
        """Record ``reviewer``'s decision and settle the item by ``settle`` (given the item and every
        decision on it, this one included), in one transaction. `Conflict` when the item is not open,
        another reviewer holds it, or this reviewer has had their say on it already."""
        now = now or utcnow()
        with self.db.session(write=True) as s:
            query = sa.select(ReviewItemRow).where(ReviewItemRow.id == item_id)
            if s.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()
            row = s.scalars(query).first()
            if row is None:
                raise ReviewItemNotFound(f"no review item {item_id!r}")
            if row.status not in OPEN:
                raise Conflict(f"review item {item_id} is {row.status} already ({row.outcome})")
            if row.lease_owner not in (None, reviewer) and row.lease_expires is not None and row.lease_expires > now:
                raise Conflict(
                    f"review item {item_id} is claimed by {row.lease_owner} until {row.lease_expires.isoformat()}"
                )
            before = _decisions(s, [item_id]).get(item_id, ())
            if any(d.reviewer == reviewer for d in before):
                raise Conflict(f"{reviewer} has decided review item {item_id} already; each reviewer decides once")
            s.add(
                ReviewDecisionRow(
                    item_id=item_id,
                    reviewer=reviewer,
                    action=action,
                    label=label,
                    saw_suggestion=saw_suggestion,
                    at=now,
                )
            )
            mine = ReviewDecisionRecord(reviewer, action, label, saw_suggestion, now)
            settlement = settle(_record(row, before), [*before, mine])
            row.status = settlement.status
            row.lease_owner, row.lease_expires = None, None
            if settlement.required is not None:
                row.required = settlement.required
            if settlement.priority is not None:
                row.priority = settlement.priority
            if settlement.status == "decided":
                row.outcome, row.label, row.decided_at = settlement.outcome, settlement.label, now
                row.decided_by = settlement.decided_by
            s.flush()
            return _record(row, (*before, mine))

    # -- deadlines, labels, announcements (the worker) -------------------------------------------
    def due(self, now: datetime, limit: int = 500) -> list[ReviewItemRecord]:
        """Pending items whose deadline has passed, not yet settled nor handled by their fallback."""
        query = (
            sa.select(ReviewItemRow)
            .where(
                ReviewItemRow.status.in_(OPEN),  # escalated by a disagreement too: its deadline still holds
                ReviewItemRow.pending.is_(True),
                ReviewItemRow.deadline.is_not(None),
                ReviewItemRow.deadline <= now,
                ReviewItemRow.deadline_missed_at.is_(None),
            )
            .order_by(ReviewItemRow.deadline)
            .limit(limit)
        )
        with self.db.session() as s:
            return [_record(r) for r in s.scalars(query)]

    def miss_deadline(
        self,
        item_id: str,
        status: str,
        outcome: str | None,
        decided_by: list[str],
        *,
        priority: int | None = None,
        at: datetime | None = None,
    ) -> bool:
        """An item whose deadline passed without a decision: the miss recorded (once, and kept whatever
        happens to the item later), and the fallback's ``status`` and ``outcome`` (an escalation keeps the
        item waiting, ahead of the rest). False if it was decided or handled meanwhile."""
        now = at or utcnow()
        values: dict[str, Any] = {"status": status, "deadline_missed_at": now}
        if outcome is not None:
            values["outcome"] = outcome
        if status not in OPEN:
            values.update(decided_at=now, decided_by=decided_by, lease_owner=None, lease_expires=None)
        if priority is not None:
            values["priority"] = priority
        with self.db.session(write=True) as s:
            result = s.execute(
                sa.update(ReviewItemRow)
                .where(
                    ReviewItemRow.id == item_id,
                    ReviewItemRow.status.in_(OPEN),
                    ReviewItemRow.deadline_missed_at.is_(None),
                )
                .values(**values)
            )
            return rowcount(result) > 0

    def unlabelled(self, limit: int = 500) -> list[ReviewItemRecord]:
        """Items people decided whose label has not reached the log yet."""
        query = (
            sa.select(ReviewItemRow)
            .where(
                ReviewItemRow.status == "decided",  # (only people decide: a deadline's fallback expires an item)
                ReviewItemRow.label_applied_at.is_(None),
            )
            .order_by(ReviewItemRow.decided_at)
            .limit(limit)
        )
        with self.db.session() as s:
            return [_record(r) for r in s.scalars(query)]

    def mark_labelled(self, item_ids: Sequence[str]) -> None:
        self._mark(item_ids, label_applied_at=utcnow())

    def unannounced(self, limit: int = 500) -> list[ReviewItemRecord]:
        """Settled items with a webhook to tell."""
        query = (
            sa.select(ReviewItemRow)
            .where(
                ReviewItemRow.status.in_(("decided", "expired")),
                ReviewItemRow.webhook.is_not(None),
                ReviewItemRow.announced_at.is_(None),
            )
            .order_by(ReviewItemRow.decided_at)
            .limit(limit)
        )
        with self.db.session() as s:
            return [_record(r) for r in s.scalars(query)]

    def mark_announced(self, item_ids: Sequence[str]) -> None:
        self._mark(item_ids, announced_at=utcnow())

    def _mark(self, item_ids: Sequence[str], **values: Any) -> None:
        if not item_ids:
            return
        with self.db.session(write=True) as s:
            s.execute(sa.update(ReviewItemRow).where(ReviewItemRow.id.in_(list(item_ids))).values(**values))


def _queue_order() -> tuple[Any, ...]:
    """Most urgent first: priority, then the nearest deadline (none last), then the oldest."""
    return (
        ReviewItemRow.priority,
        sa.case((ReviewItemRow.deadline.is_(None), 1), else_=0),
        ReviewItemRow.deadline,
        ReviewItemRow.created_at,
        ReviewItemRow.id,
    )


def _decisions(s: sa.orm.Session, item_ids: Sequence[str]) -> dict[str, tuple[ReviewDecisionRecord, ...]]:
    if not item_ids:
        return {}
    out: dict[str, list[ReviewDecisionRecord]] = {}
    query = (
        sa.select(ReviewDecisionRow).where(ReviewDecisionRow.item_id.in_(list(item_ids))).order_by(ReviewDecisionRow.id)
    )
    for d in s.scalars(query):
        out.setdefault(d.item_id, []).append(
            ReviewDecisionRecord(d.reviewer, d.action, d.label, d.saw_suggestion, d.at)
        )
    return {k: tuple(v) for k, v in out.items()}


def _record(row: ReviewItemRow, decisions: Sequence[ReviewDecisionRecord] = ()) -> ReviewItemRecord:
    return ReviewItemRecord(
        **{k: getattr(row, k) for k in _ITEM_FIELDS},
        status=row.status,
        lease_owner=row.lease_owner,
        lease_expires=row.lease_expires,
        outcome=row.outcome,
        label=row.label,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        label_applied_at=row.label_applied_at,
        deadline_missed_at=row.deadline_missed_at,
        decisions=tuple(decisions),
    )
