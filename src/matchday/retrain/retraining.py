"""Retraining as the worker, the CLI and the API see it: policies, triggers, runs, and the operator's verbs.

`tick` is the worker's round: start the runs that triggers ask for and guards allow, then move every
active run one step. Triggers are read from the state of the other parts (alerts open on the
deployment, the time since its last run, its labels), never from a queue of their own, so a
restarted worker sees the same triggers a dead one did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from matchday.retrain.errors import NoPolicy, RetrainConflict
from matchday.retrain.guards import blocked, past_run
from matchday.retrain.jobs import RunParts, RunSteps
from matchday.retrain.policy import RetrainPolicy
from matchday.store import AlertRecord, EventStore, RetrainRunRecord

log = logging.getLogger("matchday.retrain")
FiringAlerts = Callable[[str], list[AlertRecord]]


class Retraining:
    def __init__(
        self,
        policies: dict[str, RetrainPolicy],
        parts: RunParts,
        firing: FiringAlerts,
        events: EventStore,
    ) -> None:
        self.policies = policies
        self.parts = parts
        self.steps = RunSteps(parts)
        self.firing = firing
        self.events = events
        self._said: dict[str, str] = {}  # the last reason a deployment's trigger waited, said once

    # -- reading -------------------------------------------------------------------------------
    def policy(self, deployment: str) -> RetrainPolicy:
        try:
            return self.policies[deployment]
        except KeyError:
            known = ", ".join(sorted(self.policies)) or "none"
            raise NoPolicy(
                f"deployment {deployment!r} has no retraining policy in matchday.yaml (policies: {known})"
            ) from None

    def runs(self, deployment: str | None = None, limit: int = 50) -> list[RetrainRunRecord]:
        return self.parts.store.list(deployment, limit=limit)

    def get(self, run_id: int) -> RetrainRunRecord:
        return self.parts.store.get(run_id)

    def awaiting_approval(self) -> list[RetrainRunRecord]:
        """Runs whose candidate waits for an operator before its rollout (the review page lists them)."""
        return [r for r in self.parts.store.all_active() if r.state == "awaiting_approval"]

    # -- acting --------------------------------------------------------------------------------
    def run(self, deployment: str, actor: str, reason: str | None = None) -> RetrainRunRecord:
        """Start a run now, by hand: guards other than one run at a time do not apply (and it restarts triggers
        a streak of rejections stopped)."""
        self.policy(deployment)
        why = reason or f"started by {actor}"
        return self._start(deployment, {"kind": "manual", "reason": why}, actor, why)

    def approve(self, run_id: int, actor: str, reason: str | None = None) -> RetrainRunRecord:
        run = self.get(run_id)
        if run.state != "awaiting_approval":
            raise RetrainConflict(f"run {run_id} is {run.state}, not awaiting approval")
        why = f"approved by {actor}" + (f": {reason}" if reason else "")
        return self.parts.store.update(
            run,
            {"state": "rolling_out"},
            (why, {"actor": actor}),
            ("retrain_approved", actor, f"run {run_id}: {why}", {}),
        )

    def cancel(self, run_id: int, actor: str, reason: str | None = None) -> RetrainRunRecord:
        """End a run; a rollout it started is rolled back (the champion keeps serving)."""
        run = self.get(run_id)
        if run.finished_at is not None:
            raise RetrainConflict(f"run {run_id} has already ended ({run.state})")
        why = f"cancelled by {actor}" + (f": {reason}" if reason else "")
        active = self.parts.rollouts.store.active(run.deployment) if run.candidate is not None else None
        # its own rollout, or one the worker started and had not yet recorded (none: it ended meanwhile)
        if active is not None and (
            active.id == run.rollout_id or (run.rollout_id is None and active.candidate == run.candidate)
        ):
            self.parts.rollouts.rollback(run.deployment, actor, f"retrain run {run_id} {why}")
        return self.parts.store.update(
            run,
            {"state": "cancelled", "reason": why, "finished_at": datetime.now(UTC)},
            (why, {"actor": actor}),
            ("retrain_cancelled", actor, f"run {run_id}: {why}", {}),
        )

    # -- the worker's round ----------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[tuple[int, str]]:
        """Start what triggers ask for, then move every active run one step; what happened to each run."""
        now = now or datetime.now(UTC)
        for deployment, policy in self.policies.items():
            try:
                self._trigger(deployment, policy, now)
            except Exception:
                log.exception("retraining triggers of %r could not be checked", deployment)
        done = []
        for run in self.parts.store.all_active():
            try:
                done.append((run.id, self.steps.advance(run, self.policies.get(run.deployment), now)))
            except Exception:  # one run's trouble (even in recording its failure) holds up no other run
                log.exception("retraining run %d could not be moved on", run.id)
                done.append((run.id, "error"))
        return done

    def on_alert(self, deployment: str, alert: AlertRecord) -> RetrainRunRecord | None:
        """A monitor whose actions name ``retrain`` opened ``alert``: a run if the guards allow it now."""
        return self._trigger(deployment, self.policy(deployment), datetime.now(UTC), _alert_trigger(alert))

    def _trigger(
        self, deployment: str, policy: RetrainPolicy, now: datetime, given: dict[str, Any] | None = None
    ) -> RetrainRunRecord | None:
        past = self.parts.store.list(deployment, limit=50)
        last = past[0] if past else None
        if last is not None and last.finished_at is None:
            return None  # one at a time: nothing to say
        trigger = given or self._due(deployment, policy, last, now)
        if trigger is None:
            return None
        why_not = blocked(policy.guards, [past_run(r) for r in past], now)
        if why_not is None and policy.triggers.min_new_labels:
            fresh = self.parts.log.count_labelled(
                deployment, labelled_since=last.created_at if last is not None else None
            )
            if fresh < policy.triggers.min_new_labels:
                why_not = f"min_new_labels: {fresh} labels since the last run, {policy.triggers.min_new_labels} needed"
        if why_not is not None:
            said = f"{trigger.get('alert') or trigger['kind']}: {why_not.partition(':')[0]}"  # the guard, not its countdown
            if self._said.get(deployment) != said:
                self._said[deployment] = said
                self.events.add(
                    "retrain_suppressed",
                    "retrain",
                    f"{_describe(trigger)} would start a run, but {why_not}",
                    {"trigger": trigger},
                    deployment=deployment,
                )
            return None
        self._said.pop(deployment, None)
        return self._start(deployment, trigger, "retrain", _describe(trigger))

    def _due(
        self, deployment: str, policy: RetrainPolicy, last: RetrainRunRecord | None, now: datetime
    ) -> dict[str, Any] | None:
        """The trigger that asks for a run now: a named monitor's alert opened since the last run, or the schedule."""
        if policy.triggers.monitors:
            since = last.created_at if last is not None else None
            for alert in sorted(self.firing(deployment), key=lambda a: a.opened_at):
                if alert.monitor in policy.triggers.monitors and (since is None or alert.opened_at > since):
                    return _alert_trigger(alert)
        if policy.triggers.schedule is not None:
            start = last.created_at if last is not None else self.parts.deployments.get(deployment).created_at
            if now >= start + timedelta(seconds=policy.triggers.schedule):
                return {"kind": "schedule", "every_seconds": policy.triggers.schedule}
        return None

    def _start(self, deployment: str, trigger: dict[str, Any], actor: str, reason: str) -> RetrainRunRecord:
        policy = self.policy(deployment)
        primary = self.parts.deployments.route(deployment).primary
        parent = primary.ref  # pinned: NAME:VERSION
        run = self.parts.store.create(
            deployment,
            trigger,
            actor,
            policy.model_dump(mode="json"),
            parent,
            ("retrain_queued", actor, f"retraining of {parent} queued: {reason}", {"trigger": trigger}),
        )
        log.info("retraining run %d of %r queued: %s", run.id, deployment, reason)
        return run


def _alert_trigger(alert: AlertRecord) -> dict[str, Any]:
    return {
        "kind": "monitor",
        "alert": alert.id,
        "monitor": alert.monitor,
        "metric": alert.metric,
        "value": alert.value,
        "message": alert.message,
    }


def _describe(trigger: dict[str, Any]) -> str:
    if trigger["kind"] == "monitor":
        value = trigger.get("value")
        shown = "" if value is None else f" ({trigger.get('metric')} = {value:.4g})"
        return f"alert {trigger['alert']} of monitor {trigger['monitor']}{shown}"
    if trigger["kind"] == "schedule":
        return f"the schedule (every {trigger['every_seconds']:.0f}s)"
    return str(trigger.get("reason") or trigger["kind"])
