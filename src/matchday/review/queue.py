"""The review queue as people and the worker use it: claim the next item, decide, see decisions.

A decision becomes ground truth through the feedback path (the log's labels, ``source: human``), so
performance windows, the concept-drift detector and accuracy monitors see it like any label. The
label is joined after the decision is recorded; if the database refuses it then, the worker joins it
on its next round (`ReviewQueue.tick`), so no decision is lost between the two writes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from matchday.monitoring import label_text
from matchday.registry import ModelRef, Registry, Signature
from matchday.review.agreement import ESCALATED_PRIORITY, settle
from matchday.review.errors import ReviewError
from matchday.review.estimates import AccuracyEstimate, agreement, estimate_accuracy
from matchday.review.policy import DEFAULT_LEASE_SECONDS
from matchday.store import PredictionLogStore, ReviewItemRecord, ReviewStore, StoreError

log = logging.getLogger("matchday.review")
Action = Literal["approve", "override", "skip"]
ACTIONS = ("approve", "override", "skip")
HUMAN = "human"  # the label source of a reviewer's decision on a row queued at random (audit) or with all rows
HUMAN_RULE = "human_rule"  # ... on a row a review rule picked: not a random sample of the stream (docs/review.md)


@dataclass(frozen=True)
class TickResult:
    expired: int = 0
    escalated: int = 0
    labelled: int = 0
    announced: int = 0


class ReviewQueue:
    def __init__(
        self,
        store: ReviewStore,
        log_store: PredictionLogStore,
        registry: Registry,
        announce: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self.store = store
        self.log_store = log_store
        self.registry = registry
        self.announce = announce  # (url, body): a webhook enqueued (the worker's sender delivers it)

    # -- people ----------------------------------------------------------------------------------
    def next(
        self, deployment: str, reviewer: str, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> ReviewItemRecord | None:
        """The next item for ``reviewer`` (never one they already decided or skipped), claimed under a lease."""
        return self.store.claim(deployment, reviewer, lease_seconds)

    def get(self, item_id: str) -> ReviewItemRecord:
        return self.store.get(item_id)

    def items(
        self, deployment: str | None = None, statuses: tuple[str, ...] = (), limit: int = 100
    ) -> list[ReviewItemRecord]:
        return self.store.items(deployment, statuses, limit)

    def release(self, item_id: str, reviewer: str) -> bool:
        return self.store.release(item_id, reviewer)

    def decide(
        self, item_id: str, reviewer: str, action: str, label: Any = None, *, saw_suggestion: bool | None = None
    ) -> ReviewItemRecord:
        """``approve`` (the model's answer is right), ``override`` with the right ``label``, or ``skip``;
        recorded with who and when. A settled item's label is joined to its logged prediction."""
        if action not in ACTIONS:
            raise ReviewError(f"{action!r} is not a decision: approve, override or skip")
        item = self.store.get(item_id)
        if action == "override":
            if label is None:
                raise ReviewError("override needs the right label (--label)")
            self._check_label(item, label)
        elif action == "approve" and item.suggestion is None:
            raise ReviewError("the model gave no answer to approve (a null prediction): override with the label")
        elif label is not None and action == "approve" and label_text(label) != label_text(item.suggestion):
            answer = "the model's answer" if item.blind else f"the model's answer {item.suggestion!r}"  # blind: unsaid
            raise ReviewError(f"approve keeps {answer}; to give {label!r}, override instead")
        seen = (not item.blind) if saw_suggestion is None else saw_suggestion
        decided = self.store.decide(item_id, reviewer, action, label if action == "override" else None, seen, settle)
        if decided.status == "decided":
            self._label([decided])
            self._announce([decided])
        return decided

    def decision(self, deployment: str, request_id: str) -> dict[str, Any] | None:
        """What became of a queued answer (None: the request was never queued, its answer was final)."""
        item = self.store.by_request(request_id)
        if item is None or item.deployment != deployment:
            return None
        return decision_json(item)

    def _check_label(self, item: ReviewItemRecord, label: Any) -> None:
        version = self.registry.get_version(ModelRef(item.model, version=item.version))
        output = Signature.model_validate(version.signature).output
        if output.task == "regression":
            if isinstance(label, bool) or not isinstance(label, int | float) or not math.isfinite(label):
                raise ReviewError(f"{label!r} is not a label for {item.model}:{item.version}: a finite number")
            return
        classes = output.classes or []
        if classes and label_text(label) not in {label_text(c) for c in classes}:
            raise ReviewError(
                f"{label!r} is not a label for {item.model}:{item.version}: one of the classes {list(classes)}"
            )

    # -- the worker --------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> TickResult:
        """One round: deadlines' fallbacks, labels not yet joined, decisions not yet announced."""
        now = now or datetime.now(UTC)
        expired = escalated = 0
        for item in self.store.due(now):
            if item.fallback == "escalate":
                # nobody decided in time: to the front of the queue, flagged; the answer stays pending
                if self.store.miss_deadline(item.id, "escalated", None, [], priority=ESCALATED_PRIORITY, at=now):
                    escalated += 1
                continue
            outcome = "deadline_approved" if item.fallback == "approve" else "deadline_rejected"
            # a fallback is not a person's judgement: the item settles, but no label comes of it
            if self.store.miss_deadline(item.id, "expired", outcome, [f"deadline:{item.fallback}"], at=now):
                expired += 1
        labelled = self._label(self.store.unlabelled())
        announced = self._announce(self.store.unannounced())
        return TickResult(expired, escalated, labelled, announced)

    def _label(self, items: list[ReviewItemRecord]) -> int:
        groups: dict[tuple[str, str], list[ReviewItemRecord]] = {}
        for item in items:
            source = HUMAN_RULE if item.reason == "rule" else HUMAN
            groups.setdefault((item.deployment, source), []).append(item)
        done = 0
        for (deployment, source), mine in groups.items():
            try:
                self.log_store.apply_labels(deployment, [("request_id", i.request_id, i.label) for i in mine], source)
                self.store.mark_labelled([i.id for i in mine])
                done += len(mine)
            except StoreError as exc:  # the decision is recorded; the worker joins its label later
                log.warning("review: %d decided label(s) of %s wait to be joined: %s", len(mine), deployment, exc)
        return done

    def _announce(self, items: list[ReviewItemRecord]) -> int:
        if self.announce is None:
            return 0
        sent = []
        for item in items:
            if item.webhook:
                try:
                    self.announce(item.webhook, {"kind": "review_decision", **decision_json(item)})
                except StoreError as exc:  # the outbox is away: the next round tries again
                    log.warning("review: the decision on %s is not announced yet: %s", item.id, exc)
                    continue
                except ValueError as exc:  # a URL no webhook can go to: given up, not retried every second
                    log.error("review: the decision on %s cannot be announced to its webhook: %s", item.id, exc)
            sent.append(item.id)
        self.store.mark_announced(sent)
        return len(sent)

    # -- numbers ---------------------------------------------------------------------------------
    def depth(self, deployment: str) -> int:
        """Items waiting for a person (open and escalated): a count, without reading the items."""
        counts = self.store.counts(deployment)
        return counts.get("status.open", 0) + counts.get("status.escalated", 0)

    def stats(self, deployment: str, since: datetime | None = None) -> dict[str, Any]:
        """Queue depth, review latency, deadline misses, override rate, agreement and the estimated
        accuracy, of the items created since ``since`` (every one if None)."""
        counts = self.store.counts(deployment, since)
        decided = [i for i in self.store.settled_since(deployment, since) if since is None or i.created_at >= since]
        latencies = sorted((i.decided_at - i.created_at).total_seconds() for i in decided if i.decided_at)
        seen = agreement(decided)
        audited = [i for i in decided if i.reason == "audit"]
        estimate: AccuracyEstimate = estimate_accuracy(decided, self.store.queued_by_inclusion(deployment, since))
        misses = counts.get("missed", 0)  # each held answer whose deadline passed undecided, once
        return {
            "queue_depth": counts.get("status.open", 0) + counts.get("status.escalated", 0),
            "decided": len(decided),
            "review_latency_p50_seconds": _quantile(latencies, 0.5),
            "review_latency_p95_seconds": _quantile(latencies, 0.95),
            "deadline_misses": misses,
            "override_rate": (counts.get("outcome.overridden", 0) / len(decided)) if decided else None,
            "agreement": seen.rate,
            "agreement_lower_bound": seen.lower_bound if seen.rows else None,
            "agreement_by_class": {c: (a / n if n else None) for c, (n, a, _) in seen.by_class.items()},
            "audited": len(audited),
            "estimated_accuracy": estimate.accuracy,
            "estimated_accuracy_interval": [estimate.low, estimate.high] if estimate.accuracy is not None else None,
        }


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def decision_json(item: ReviewItemRecord) -> dict[str, Any]:
    """A queued answer's state as clients read it: pending until settled, then final with its outcome."""
    pending = item.pending and item.status in ("open", "escalated")
    out: dict[str, Any] = {
        "request_id": item.request_id,
        "deployment": item.deployment,
        "review_id": item.id,
        "decision": "pending" if pending else "final",
        "status": item.status,
        "reason": item.reason,
        "model_answer": item.suggestion,
    }
    if item.deadline is not None:
        out["deadline"] = item.deadline.isoformat()
    if item.status in ("decided", "expired"):
        out.update(
            outcome=item.outcome,
            decided_by=item.decided_by,
            decided_at=item.decided_at.isoformat() if item.decided_at else None,
        )
    if item.status == "decided":
        out["label"] = item.label
    if item.status == "escalated":
        out["escalated"] = True
    if item.deadline_missed_at is not None:
        out["deadline_missed"] = True
    return out


def item_json(item: ReviewItemRecord, *, reveal: bool = False) -> dict[str, Any]:
    """An item as a reviewer sees it: the model's answer hidden when the item is blind, unless asked for."""
    show = reveal or not item.blind
    return {
        "review_id": item.id,
        "deployment": item.deployment,
        "request_id": item.request_id,
        "model": item.model,
        "version": item.version,
        "created_at": item.created_at.isoformat(),
        "reason": item.reason,
        "rule": item.rule,
        "level": item.level,
        "pending": item.pending,
        "blind": item.blind,
        "priority": item.priority,
        "deadline": item.deadline.isoformat() if item.deadline else None,
        "inputs": item.inputs,
        "suggestion": item.suggestion if show else None,
        "confidence": item.confidence if show else None,
        "probabilities": item.probabilities if show else None,
        "status": item.status,
        "required_reviews": item.required,
        "reviews": [{"reviewer": d.reviewer, "action": d.action, "at": d.at.isoformat()} for d in item.decisions],
        "lease_owner": item.lease_owner,
        "lease_expires": item.lease_expires.isoformat() if item.lease_expires else None,
        "outcome": item.outcome,
        "label": item.label,
    }
