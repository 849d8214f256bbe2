"""Rollout operations a person (CLI, HTTP) or the controller asks for: start, promote, roll back,
pause, resume, and the status with its live numbers. Every change writes an event with it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from matchday.monitoring import compare_arms, shadow_report
from matchday.registry import PinnedRef, Registry, Signature
from matchday.rollout.analysis import analyse, analyse_shadow
from matchday.rollout.deployments import Deployments
from matchday.rollout.errors import IncompatibleCandidate, NothingToDo, RolloutError
from matchday.rollout.plan import RolloutPlan, build_plan
from matchday.store import (
    EventRecord,
    EventStore,
    PredictionLogStore,
    RolloutNotFound,
    RolloutRecord,
    RolloutStore,
    StaleRollout,
)

T = TypeVar("T")
SHADOW_ROLES = ("shadow",)  # how mirrored rows are logged


@dataclass(frozen=True)
class RolloutStatus:
    rollout: RolloutRecord
    plan: RolloutPlan
    report: dict[str, Any] | None  # the live numbers (analysis, shadow report or per-arm numbers)
    events: list[EventRecord]

    def as_dict(self) -> dict[str, Any]:
        r = self.rollout
        return {
            "id": r.id,
            "deployment": r.deployment,
            "strategy": r.strategy,
            "baseline": r.baseline,
            "candidate": r.candidate,
            "state": r.state,
            "phase": r.phase,
            "step": r.step,
            "weight": r.weight,
            "failures": r.failures,
            "reason": r.reason,
            "started_at": r.started_at.isoformat(),
            "step_started_at": r.step_started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "plan": self.plan.model_dump(),
            "last_analysis": r.analysis,
            "report": self.report,
            "events": [event_dict(e) for e in self.events],
        }


def event_dict(e: EventRecord) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "deployment": e.deployment,
        "rollout": e.rollout_id,
        "kind": e.kind,
        "actor": e.actor,
        "reason": e.reason,
        "data": e.data,
    }


class Rollouts:
    def __init__(
        self,
        store: RolloutStore,
        events: EventStore,
        deployments: Deployments,
        registry: Registry,
        log_store: PredictionLogStore,
        defaults: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.deployments = deployments
        self.registry = registry
        self.log_store = log_store
        self.defaults = defaults or {}

    # -- starting ------------------------------------------------------------------------------
    def start(
        self, deployment: str, candidate: str, options: dict[str, Any] | None = None, actor: str = "user"
    ) -> RolloutRecord:
        """Begin moving ``deployment`` to ``candidate`` under a plan (options over matchday.yaml's)."""
        record = self.deployments.get(deployment)
        plan = build_plan(options or {}, self.defaults.get(deployment))
        baseline = self.registry.pin(record.model_ref)
        target = self.registry.pin(candidate)
        if target == baseline:
            raise RolloutError(
                f"deployment {deployment!r} already serves {baseline}; a rollout needs a different version"
            )
        baseline_ref, candidate_ref = str(baseline), str(target)
        check_compatible(
            self.registry.get_signature(baseline_ref),
            self.registry.get_signature(candidate_ref),
            baseline_ref,
            candidate_ref,
        )
        existing = self.store.active(deployment)
        if existing is not None:
            raise RolloutError(
                f"deployment {deployment!r} already has a {existing.strategy} rollout in progress "
                f"(rollout {existing.id}, {existing.baseline} -> {existing.candidate}); "
                "promote or roll it back first"
            )
        phase = plan.initial_phase()
        reason = f"{plan.strategy} rollout of {candidate_ref} started on {deployment!r} (baseline {baseline_ref})"
        if phase == "shadow":
            reason += f"; the candidate shadows all traffic for {plan.shadow_first:g}s before its first step"
        return self.store.create(
            deployment,
            plan.strategy,
            baseline_ref,
            candidate_ref,
            plan.model_dump(),
            phase=phase,
            weight=plan.initial_weight(),
            event=("started", actor, reason, {"plan": plan.model_dump()}),
        )

    # -- reading -------------------------------------------------------------------------------
    def current(self, deployment: str) -> RolloutRecord:
        """The active rollout, else the most recent one."""
        self.deployments.get(deployment)
        record = self.store.active(deployment) or self.store.latest(deployment)
        if record is None:
            raise RolloutNotFound(f"deployment {deployment!r} has never had a rollout")
        return record

    def active(self, deployment: str) -> RolloutRecord:
        self.deployments.get(deployment)
        record = self.store.active(deployment)
        if record is None:
            raise NothingToDo(f"deployment {deployment!r} has no rollout in progress")
        return record

    def status(self, deployment: str, events: int = 20) -> RolloutStatus:
        record = self.current(deployment)
        plan = RolloutPlan(**record.plan)
        return RolloutStatus(
            record, plan, self.report(record, plan), self.events.list(deployment, rollout_id=record.id, limit=events)
        )

    def report(self, record: RolloutRecord, plan: RolloutPlan | None = None) -> dict[str, Any] | None:
        """The live numbers: the canary's analysis of its current step (of its shadow phase, with the
        shadow report beside it), a shadow report, per-arm numbers."""
        plan = plan or RolloutPlan(**record.plan)
        task = self.task(record.candidate)
        since = record.step_started_at if record.strategy in ("canary", "bluegreen") else record.started_at
        if record.strategy == "shadow":
            return shadow_report(self.log_store, record.deployment, _pair(record.candidate), since, task).as_dict()
        if record.strategy == "canary" and record.active and record.phase == "shadow":
            mirrored = compare_arms(
                self.log_store,
                record.deployment,
                _pair(record.baseline),
                _pair(record.candidate),
                since,
                task,
                candidate_roles=SHADOW_ROLES,
            )
            report = analyse_shadow(mirrored, plan.gates, plan.min_requests).as_dict()
            mirror = shadow_report(self.log_store, record.deployment, _pair(record.candidate), since, task)
            return {**report, "shadow": mirror.as_dict()}
        comparison = compare_arms(
            self.log_store, record.deployment, _pair(record.baseline), _pair(record.candidate), since, task
        )
        if record.strategy == "canary" and record.active:
            return analyse(comparison, plan.gates, plan.min_requests, judged_only=plan.judged_only).as_dict()
        return comparison.as_dict()

    def task(self, ref: str) -> Any:
        return self.registry.get_signature(ref).output.task

    def history(self, deployment: str, limit: int = 20) -> list[RolloutRecord]:
        self.deployments.get(deployment)
        return self.store.history(deployment, limit)

    def list_events(self, deployment: str | None = None, limit: int = 100) -> list[EventRecord]:
        if deployment is not None:
            self.deployments.get(deployment)
        return self.events.list(deployment, limit=limit)

    # -- acting --------------------------------------------------------------------------------
    def promote(
        self,
        deployment: str,
        actor: str = "user",
        reason: str | None = None,
        data: dict[str, Any] | None = None,
        analysis: dict[str, Any] | None = None,
        *,
        expected: RolloutRecord | None = None,
    ) -> RolloutRecord:
        """Make the candidate the deployment's version: move its alias, or repoint it.

        ``expected``: act only on this rollout as it was read (else `StaleRollout`); see `_retry`.
        """

        def act(record: RolloutRecord) -> RolloutRecord:
            why = reason or f"{record.candidate} promoted"
            # claim the rollout first (revision-guarded): whoever loses a race moves no alias
            claimed = self.store.update(
                record,
                {
                    "state": "promoted",
                    "phase": "done",
                    "weight": 100.0,
                    "finished_at": _now(),
                    "reason": why,
                    **_analysis(analysis),
                },
            )
            try:
                where = self.deployments.promote(deployment, record.candidate, f"rollout {record.id} ({actor}): {why}")
            except Exception as exc:
                self.store.update(
                    claimed,
                    {
                        "state": "paused",
                        "phase": record.phase,
                        "weight": record.weight,
                        "finished_at": None,
                        "reason": f"promotion failed: {exc}",
                    },
                    (
                        "promotion_failed",
                        actor,
                        f"promotion of {record.candidate} failed, the rollout is paused where it was: {exc}",
                        {},
                    ),
                )
                raise
            self.events.add(
                "promoted",
                actor,
                f"{why}; {where}",
                {**(data or {}), "to": record.candidate, "from": record.baseline},
                deployment=deployment,
                rollout_id=record.id,
            )
            return claimed

        return self._retry(deployment, act, expected)

    def rollback(
        self,
        deployment: str,
        actor: str = "user",
        reason: str | None = None,
        data: dict[str, Any] | None = None,
        analysis: dict[str, Any] | None = None,
        failures: int | None = None,
        *,
        expected: RolloutRecord | None = None,
    ) -> RolloutRecord:
        """All traffic back to the baseline, at once; the rollout ends."""

        def act(record: RolloutRecord) -> RolloutRecord:
            why = reason or f"rolled back by {actor}"
            extra = {**_analysis(analysis), **({"failures": failures} if failures is not None else {})}
            return self.store.update(
                record,
                {"state": "rolled_back", "phase": "done", "weight": 0.0, "finished_at": _now(), "reason": why, **extra},
                ("rolled_back", actor, why, {**(data or {}), "to": record.baseline, "from": record.candidate}),
            )

        return self._retry(deployment, act, expected)

    def pause(
        self,
        deployment: str,
        actor: str = "user",
        reason: str | None = None,
        data: dict[str, Any] | None = None,
        analysis: dict[str, Any] | None = None,
        *,
        expected: RolloutRecord | None = None,
    ) -> RolloutRecord:
        """Hold the traffic split where it is until someone resumes, promotes or rolls back."""

        def act(record: RolloutRecord) -> RolloutRecord:
            if record.state == "paused":
                raise NothingToDo(f"the rollout on {deployment!r} is already paused")
            why = reason or f"paused by {actor}"
            return self.store.update(
                record, {"state": "paused", "reason": why, **_analysis(analysis)}, ("paused", actor, why, data or {})
            )

        return self._retry(deployment, act, expected)

    def resume(self, deployment: str, actor: str = "user", reason: str | None = None) -> RolloutRecord:
        """Continue a paused rollout; its current step starts a fresh window."""

        def act(record: RolloutRecord) -> RolloutRecord:
            if record.state != "paused":
                raise NothingToDo(f"the rollout on {deployment!r} is not paused (it is {record.state})")
            why = reason or f"resumed by {actor}"
            return self.store.update(
                record, {"state": "running", "reason": why, "step_started_at": _now()}, ("resumed", actor, why, {})
            )

        return self._retry(deployment, act)

    def _retry(self, deployment: str, act: Callable[[RolloutRecord], T], expected: RolloutRecord | None = None) -> T:
        """Run ``act`` on the freshest record; the controller may have moved it a moment ago.

        With ``expected`` (the controller's verdict on the record it read), act on that record only
        if nobody changed it since, else raise `StaleRollout`: a decision taken on one state must not
        land on another (a rollout a person paused meanwhile, or the next rollout after a rollback).
        """
        if expected is not None:
            fresh = self.store.get(expected.id)
            if fresh.revision != expected.revision:
                raise StaleRollout(f"rollout {expected.id} of {deployment!r} changed meanwhile; read it again")
            return act(fresh)
        for attempt in range(5):
            record = self.active(deployment)
            try:
                return act(record)
            except StaleRollout:
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")


def check_compatible(baseline: Signature, candidate: Signature, baseline_ref: str, candidate_ref: str) -> None:
    """The candidate must answer the baseline's requests: its inputs a subset of the baseline's, same task."""
    problems = []
    for column in candidate.inputs:
        try:
            mine = baseline.column(column.name)
        except KeyError:
            problems.append(f"input {column.name!r}: the candidate needs it, the baseline's requests do not carry it")
            continue
        if mine.type != column.type:
            problems.append(f"input {column.name!r}: {column.type} in the candidate, {mine.type} in the baseline")
    if baseline.output.task != candidate.output.task:
        problems.append(f"output: the candidate does {candidate.output.task}, the baseline {baseline.output.task}")
    elif (
        baseline.output.classes
        and candidate.output.classes
        and sorted(map(str, baseline.output.classes)) != sorted(map(str, candidate.output.classes))
    ):
        problems.append(f"output classes differ: {baseline.output.classes} vs {candidate.output.classes}")
    if problems:
        raise IncompatibleCandidate(f"{candidate_ref} cannot take over {baseline_ref}'s traffic", problems)


def _analysis(analysis: dict[str, Any] | None) -> dict[str, Any]:
    return {} if analysis is None else {"analysis": analysis}


def _pair(ref: str) -> tuple[str, int]:
    """A rollout's arm (``NAME:VERSION``) as the (model, version) that monitoring's arm comparisons take."""
    pinned = PinnedRef.parse(ref)
    return pinned.name, pinned.version


def _now() -> datetime:
    return datetime.now(UTC)
