"""The review queue's default monitors, judged by the worker's review round: held answers that missed
their deadline (the last hour), and people agreeing with the model less often than the policy's floor
(the last day's reviewed rows, when the upper end of its Wilson interval is under the floor, so a few
unlucky rows do not fire it). Each opens an alert while its condition holds and resolves it after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from matchday.review.estimates import agreement, wilson_interval
from matchday.review.policy import AutomationPolicy
from matchday.store import AlertAlreadyFiring, AlertStore, ReviewStore

DEADLINES = "review-deadline-misses"
AGREEMENT = "review-agreement"
MIN_ROWS = 30  # reviewed rows of the last day before agreement is judged


@dataclass(frozen=True)
class Change:
    monitor: str
    deployment: str
    change: str  # opened | resolved
    message: str


class ReviewMonitors:
    def __init__(
        self,
        store: ReviewStore,
        alerts: AlertStore,
        policies: Callable[[], Iterable[tuple[str, AutomationPolicy]]],
    ) -> None:
        self.store, self.alerts, self.policies = store, alerts, policies

    def check(self, now: datetime | None = None) -> list[Change]:
        now = now or datetime.now(UTC)
        changes: list[Change] = []
        for deployment, policy in self.policies():
            missed = self.store.missed_since(deployment, now - timedelta(hours=1))
            changes += self._judge(
                DEADLINES,
                deployment,
                missed > 0,
                float(missed),
                0.0,
                f"{missed} held answer(s) of {deployment} missed their review deadline in the last hour",
                now,
            )
            reviewed = [
                i for i in self.store.settled_since(deployment, now - timedelta(days=1)) if i.reason in ("audit", "all")
            ]
            seen = agreement(reviewed)
            if seen.rows >= MIN_ROWS:
                _, high = wilson_interval(seen.agreed, seen.rows)
                rate = seen.agreed / seen.rows
                changes += self._judge(
                    AGREEMENT,
                    deployment,
                    high < policy.agreement_floor,
                    rate,
                    policy.agreement_floor,
                    f"reviewers agreed with {deployment}'s model on {rate:.1%} of {seen.rows} rows in the last "
                    f"day (at most {high:.1%} at 95 %), under the floor of {policy.agreement_floor:.0%}",
                    now,
                )
        return changes

    def _judge(
        self, monitor: str, deployment: str, firing: bool, value: float, threshold: float, message: str, now: datetime
    ) -> list[Change]:
        open_ = [a for a in self.alerts.firing(deployment) if a.monitor == monitor]
        if firing and not open_:
            latest = self.store.latest(deployment)
            try:
                self.alerts.open(
                    monitor=monitor,
                    deployment=deployment,
                    model=latest.model if latest else "",
                    version=latest.version if latest else 0,
                    segment="",
                    severity="warning",
                    metric=monitor.replace("-", "_"),
                    value=value,
                    threshold=threshold,
                    message=message,
                    data={"source": "review"},
                    at=now,
                )
            except AlertAlreadyFiring:  # another worker opened it meanwhile
                return []
            return [Change(monitor, deployment, "opened", message)]
        if firing:
            for alert in open_:
                self.alerts.seen(alert.id, value, now)
            return []
        resolved = [self.alerts.resolve(a.id, value, now) for a in open_]
        return [Change(monitor, deployment, "resolved", message) for r in resolved if r is not None]
