"""Moving a deployment between automation levels: checked against the version it serves, recorded as
an event with its actor and reason, and suggested from the evidence (`estimates.suggest`).

The deployment's settings belong to `rollout/`, its events to the store and the firing alerts to
`monitoring/`: they arrive here as functions (the workspace wires them), so this part does not reach
up or across into them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from matchday.registry import Signature
from matchday.review.errors import InvalidPolicy
from matchday.review.estimates import Suggestion, suggest
from matchday.review.levels import AutomationLevel
from matchday.review.policy import DEFAULT_LEASE_SECONDS, AutomationPolicy, policy_of
from matchday.review.rules import ReviewRule
from matchday.store import ReviewStore

Served = tuple[Signature, list[str] | None]  # the serving version's signature and its classes (as text)


@dataclass(frozen=True)
class AutomationChange:
    deployment: str
    before: AutomationPolicy | None
    after: AutomationPolicy | None
    actor: str
    reason: str


class Automation:
    def __init__(
        self,
        read: Callable[[str], dict[str, Any]],
        write: Callable[[str, dict[str, Any]], Any],
        served: Callable[[str], Served],
        record: Callable[[str, str, str, str, dict[str, Any]], Any],
        store: ReviewStore,
        critical_alerts: Callable[[str], Sequence[str]] = lambda deployment: (),
    ) -> None:
        self._read, self._write, self._served, self._record = read, write, served, record
        self.store = store
        self.critical_alerts = critical_alerts

    def policy(self, deployment: str) -> AutomationPolicy | None:
        """The deployment's policy; None when it has none (the model alone, nothing queued)."""
        stored = self._read(deployment)
        return policy_of(stored) if stored else None

    def lease_seconds(self, deployment: str) -> float:
        """How long a claim on ``deployment``'s queue holds an item: its policy's, or the default."""
        policy = self.policy(deployment)
        return policy.lease_seconds if policy is not None else DEFAULT_LEASE_SECONDS

    def check(self, deployment: str, settings: dict[str, Any]) -> AutomationPolicy:
        """``settings`` as a policy for what ``deployment`` serves now (its rule's names must exist)."""
        return check_policy(settings, *self._served(deployment))

    def set(self, deployment: str, settings: dict[str, Any] | None, actor: str, reason: str) -> AutomationChange:
        """Give ``deployment`` this policy (None or {}: none), as ``actor`` says, for ``reason``; an event."""
        if not reason or not reason.strip():
            raise InvalidPolicy("say why the automation changes (a reason): it goes into the audit trail")
        before = self.policy(deployment)
        after = self.check(deployment, settings) if settings else None
        self._write(deployment, after.stored() if after is not None else {})
        self._record(
            deployment,
            "automation_changed",
            actor,
            reason,
            {
                "from": before.level.value if before else None,
                "to": after.level.value if after else None,
                "policy": after.stored() if after else {},
            },
        )
        return AutomationChange(deployment, before, after, actor, reason)

    def suggest(self, deployment: str, **limits: Any) -> Suggestion:
        """Whether the evidence supports a step up (audited agreement) or calls for a step down (a critical alert)."""
        policy = self.policy(deployment)
        level = policy.level if policy else AutomationLevel.MACHINE_CONTROLLED
        audited = [i for i in self.store.settled_since(deployment) if i.reason in ("audit", "all")]
        _, classes = self._served(deployment)
        return suggest(
            deployment, level, audited, list(self.critical_alerts(deployment)), classes=classes or (), **limits
        )

    def step_down_on_alert(self, deployment: str, alert: str, actor: str = "monitor") -> AutomationChange | None:
        """The optional policy: a critical alert moves the deployment one level toward people, at once.
        (Moving up always waits for a person: `suggest`, then `set`.)"""
        policy = self.policy(deployment)
        if policy is None:
            return None
        down = policy.level.step(-1)
        if down is AutomationLevel.MACHINE_LED_HUMAN_GOVERNED and not policy.review_rule:
            down = down.step(-1)  # governed needs a rule saying which answers to hold: one more step, to audits
        if down is None:
            return None
        settings = {**policy.stored(), "level": down.value}
        if down is not AutomationLevel.MACHINE_LED_HUMAN_GOVERNED:
            settings.pop("review_rule", None)
        return self.set(deployment, settings, actor, f"critical alert: {alert}")


def check_policy(settings: dict[str, Any], signature: Signature | None, classes: list[str] | None) -> AutomationPolicy:
    """A policy from ``settings``, its rule checked against the version's inputs and classes."""
    policy = policy_of(settings)
    if policy.review_rule and signature is not None:
        ReviewRule.parse(policy.review_rule, features=[c.name for c in signature.inputs], classes=classes)
    return policy
