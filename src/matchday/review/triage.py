"""Which answers go to people, decided on the request path from the policy alone (no database).

Audit sampling is a function of the request id, not a coin flip: the same request is always in or out
of the sample (a retried request does not get a second chance), and any process decides the same.
Each queued row keeps the chance it had of being queued (``inclusion``), so accuracy estimated from
the reviewed rows can be weighted back to the whole stream.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from matchday.registry import Signature
from matchday.review.levels import AutomationLevel
from matchday.review.policy import AutomationPolicy
from matchday.review.rules import ReviewRule

PRIORITY = {"rule": 0, "all": 1, "audit": 2}  # held answers first, then every-row queues, audits last


@dataclass(frozen=True)
class Verdict:
    decision: str  # final | pending
    review: dict[str, Any] | None  # the review item's fields when queued (logged with the row)

    @property
    def review_id(self) -> str | None:
        return None if self.review is None else str(self.review["id"])


FINAL = Verdict("final", None)


def audit_draw(deployment: str, request_id: str) -> float:
    """A number in [0, 1) fixed by the request: under ``rate`` means the request is in the audit sample."""
    digest = hashlib.blake2b(f"{deployment}\x1f{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Triage:
    """One deployment's policy, ready to judge its answered rows."""

    def __init__(self, policy: AutomationPolicy, signature: Signature | None, classes: Sequence[str] | None) -> None:
        self.policy = policy
        self.level = policy.level
        features = [c.name for c in signature.inputs] if signature is not None else []
        self.rule = (
            ReviewRule.parse(policy.review_rule, features=features, classes=classes) if policy.review_rule else None
        )
        self._specs = list(signature.inputs) if signature is not None else []
        self.audit_rate = policy.effective_audit_rate
        self.note: str | None = None  # why every row is held (a policy that no longer fits the version)

    @classmethod
    def holding_all(cls, policy: AutomationPolicy, why: str) -> Triage:
        """A triage that holds every answer for a person, saying why (the fail-safe for a policy that
        cannot be applied to the version answering now)."""
        triage = cls(
            policy.model_copy(update={"level": AutomationLevel.HUMAN_LED_MACHINE_SUPPORTED, "review_rule": None}),
            None,
            None,
        )
        triage.note = f"the deployment's review policy cannot be applied: {why}"
        return triage

    @property
    def quiet(self) -> bool:
        """Nothing is ever queued: the request path can skip the triage."""
        return self.level is AutomationLevel.MACHINE_CONTROLLED and self.audit_rate == 0

    def judge(
        self,
        deployment: str,
        request_id: str,
        prediction: Any,
        probabilities: dict[str, float] | None,
        inputs: dict[str, Any],
        at: datetime,
    ) -> Verdict:
        """Never raises: a row the policy cannot be applied to is held for a person, saying why (a model
        answer is not lost to a 500 because of its review)."""
        try:
            finite = [p for p in (probabilities or {}).values() if isinstance(p, int | float) and math.isfinite(p)]
            confidence = max(finite) if finite else None  # (a NaN probability is logged as null)
            if self.level.person_decides:
                return self._queued("all", True, 1.0, None, confidence, at)
            if self.rule is not None:
                row = {
                    "prediction": prediction,
                    "confidence": confidence,
                    "probability": probabilities or {},
                    "inputs": inputs,
                    "drifted": self._drifted(inputs) if self.rule.uses_drift else False,
                }
                if self.rule.matches(row):
                    return self._queued("rule", True, 1.0, self.rule.text, confidence, at)
            if self.audit_rate > 0 and audit_draw(deployment, request_id) < self.audit_rate:
                return self._queued("audit", False, self.audit_rate, None, confidence, at)
            return FINAL
        except Exception as exc:
            return self._queued("rule", True, 1.0, f"the review policy failed on this row: {exc}", None, at)

    def _queued(
        self, reason: str, pending: bool, inclusion: float, rule: str | None, confidence: float | None, at: datetime
    ) -> Verdict:
        p = self.policy
        review = {
            "id": uuid.uuid4().hex,
            "reason": reason,
            "rule": rule or self.note,
            "level": self.level.value,
            "pending": pending,
            "blind": p.effective_blind,
            "inclusion": inclusion,
            "required": p.reviews_required,
            "priority": PRIORITY[reason],
            "deadline": (at + timedelta(seconds=p.review_deadline_seconds)) if pending else None,
            "fallback": p.deadline_fallback if pending else None,
            "confidence": confidence,
            "webhook": p.decision_webhook,
        }
        return Verdict("pending" if pending else "final", review)

    def _drifted(self, inputs: dict[str, Any]) -> bool:
        """An input outside the reference range, or a category the reference never had."""
        for spec in self._specs:
            value = inputs.get(spec.name)
            if value is None:
                continue
            if spec.min is not None and spec.max is not None and isinstance(value, int | float):
                if value < spec.min or value > spec.max:
                    return True
            elif spec.categories is not None and value not in spec.categories:
                return True
        return False
