"""The rollout controller: each tick, it judges every running rollout and moves it on.

It runs inside `matchday serve`, in one process among all replicas (the `LeaderLock`), and
keeps no state of its own that matters: the rollout's row says where it stands, so a restart,
or another process taking over, resumes at the same step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from matchday.monitoring import ArmComparison, compare_arms, shadow_report
from matchday.rollout.analysis import analyse, analyse_shadow
from matchday.rollout.plan import RolloutPlan
from matchday.rollout.rollouts import SHADOW_ROLES, Rollouts, _pair
from matchday.store import LeaderLock, RolloutRecord, StaleRollout

log = logging.getLogger("matchday.rollout")

WARM_HOLD_SECONDS = 2.0  # blue-green: time every process gets to see "warming" and load the new version
Warm = Callable[[str, list[dict[str, Any]]], float]  # (ref, input rows) -> seconds it took


class RolloutController:
    def __init__(
        self, rollouts: Rollouts, leader: LeaderLock | None = None, warm: Warm | None = None, interval: float = 1.0
    ) -> None:
        self.rollouts = rollouts
        self.leader = leader
        self.warm = warm
        self.interval = interval
        self._warmed: dict[int, tuple[float, int]] = {}

    async def run(self) -> None:
        """Tick forever (cancel to stop); only the leader acts."""
        try:
            while True:
                try:
                    if self.leader is None or await asyncio.to_thread(self.leader.acquire):
                        ticking = asyncio.ensure_future(asyncio.to_thread(self.tick))
                        try:
                            await asyncio.shield(ticking)
                        except asyncio.CancelledError:  # shutting down: let the decision in flight land
                            await asyncio.wait([ticking])  # before the lock (and the database) go away
                            raise
                except Exception:  # the database went away, a bug in one tick: keep the loop alive
                    log.exception("rollout controller tick failed; trying again in %.1fs", self.interval)
                await asyncio.sleep(self.interval)
        finally:
            if self.leader is not None:
                await asyncio.to_thread(self.leader.release)

    def tick(self) -> list[tuple[int, str]]:
        """Judge every running rollout once; returns what happened to each, for the log and tests."""
        done = []
        active = self.rollouts.store.all_active()
        for gone in set(self._warmed) - {r.id for r in active}:  # rolled back while warming
            del self._warmed[gone]
        for record in active:
            if record.state != "running":
                continue
            try:
                done.append((record.id, self.advance(record)))
            except StaleRollout:
                done.append((record.id, "stale"))  # a person acted meanwhile; judge again next tick
        return done

    def advance(self, record: RolloutRecord) -> str:
        plan = RolloutPlan(**record.plan)
        if record.strategy == "canary":
            return self._canary(record, plan)
        if record.strategy == "bluegreen" and record.phase == "warming":
            return self._bluegreen(record, plan)
        return "holding"  # shadow, ab, and a switched blue-green wait for a person

    def _canary(self, record: RolloutRecord, plan: RolloutPlan) -> str:
        """One look at a canary: its shadow phase (with ``shadow_first``) or its current step.

        Each is held for its time (``shadow_first``, or the step's ``interval``) and until both sides have
        ``min_requests`` rows, then judged: a pass moves on, a fail rolls back (past ``failure_limit``),
        an inconclusive verdict holds for more rows until the deadline and then pauses for a person.
        A failing error rate acts as soon as there are enough rows, without waiting for the hold.
        """
        now = _now()
        elapsed = (now - record.step_started_at).total_seconds()
        shadow = record.phase == "shadow"
        comparison = compare_arms(
            self.rollouts.log_store,
            record.deployment,
            _pair(record.baseline),
            _pair(record.candidate),
            record.step_started_at,
            self.rollouts.task(record.candidate),
            candidate_roles=SHADOW_ROLES if shadow else None,
        )
        if shadow:
            analysis = analyse_shadow(comparison, plan.gates, plan.min_requests)
            held = elapsed >= (plan.shadow_first or 0.0)
            where, at = "the shadow phase", "in the shadow phase"
        else:
            analysis = analyse(comparison, plan.gates, plan.min_requests, judged_only=plan.judged_only)
            held = elapsed >= plan.interval
            where = f"step {record.step + 1} of {len(plan.steps)} ({record.weight:g}%)"
            at = f"at {where}"
        numbers = analysis.as_dict()
        data: dict[str, Any] = {"step": record.step, "weight": record.weight, "analysis": numbers}
        if shadow:
            data = {"phase": "shadow", **data}
        enough = min(comparison.baseline.requests, comparison.candidate.requests) >= plan.min_requests
        if enough and analysis.outcome == "fail" and (held or analysis.failed("error_rate")):
            failures = record.failures + 1
            reasons = "; ".join(g for g in analysis.reasons if not g.startswith("traffic"))
            if shadow:
                data["shadow"] = self._shadow_numbers(record)
            if failures > plan.failure_limit:
                why = f"analysis failed {at}: {reasons}"
                self.rollouts.rollback(record.deployment, "controller", why, data, numbers, failures, expected=record)
                log.warning(
                    "rollout %d of %r rolled back to %s: %s", record.id, record.deployment, record.baseline, why
                )  # the alert, until monitors and webhooks arrive
                return "rolled_back"
            self.rollouts.store.update(
                record,
                {"failures": failures, "step_started_at": now, "analysis": numbers},
                (
                    "analysis_failed",
                    "controller",
                    f"analysis failed {at} ({failures} of {plan.failure_limit + 1} allowed before rollback): {reasons}",
                    data,
                ),
            )
            return "failed"
        if held and analysis.outcome == "pass" and shadow:
            return self._shadow_passed(record, plan, comparison, data, elapsed, now)
        if held and analysis.outcome == "pass":
            following = record.step + 1
            if following >= len(plan.steps) - 1:
                self.rollouts.promote(
                    record.deployment,
                    "controller",
                    f"all {len(plan.steps) - 1} analysed steps passed",
                    data,
                    numbers,
                    expected=record,
                )
                return "promoted"
            weight = plan.steps[following]
            self.rollouts.store.update(
                record,
                {"step": following, "weight": weight, "step_started_at": now, "analysis": numbers},
                (
                    "step_passed",
                    "controller",
                    f"{where} passed its analysis; the candidate now answers {weight:g}%",
                    data,
                ),
            )
            return "next_step"
        if held and elapsed >= plan.step_deadline:
            reasons = "; ".join(analysis.reasons) or "no verdict"
            why = (
                f"{where} still inconclusive after {elapsed:.0f}s ({reasons}); "
                "waiting for a person to resume, promote or roll back"
            )
            if shadow:
                data["shadow"] = self._shadow_numbers(record)
            self.rollouts.pause(record.deployment, "controller", why, data, numbers, expected=record)
            log.warning("rollout %d of %r paused: %s", record.id, record.deployment, why)
            return "paused"
        return "waiting"

    def _shadow_passed(
        self,
        record: RolloutRecord,
        plan: RolloutPlan,
        comparison: ArmComparison,
        data: dict[str, Any],
        elapsed: float,
        now: datetime,
    ) -> str:
        """The shadow matched the baseline: the candidate starts answering at the first step."""
        b, c = comparison.baseline, comparison.candidate
        weight = plan.steps[0]
        mirrored = self._shadow_numbers(record)
        agreement = mirrored.get("agreement")
        agreed = "" if agreement is None else f", agreement {agreement:.1%} on {mirrored['compared']} rows"
        self.rollouts.store.update(
            record,
            {"phase": "step", "step": 0, "weight": weight, "step_started_at": now, "analysis": data["analysis"]},
            (
                "shadow_passed",
                "controller",
                f"the shadow {record.candidate} passed its analysis after {elapsed:.0f}s on {c.requests} mirrored "
                f"rows (error rate {c.error_rate or 0:.2%} vs baseline {b.error_rate or 0:.2%}, prediction "
                f"divergence {comparison.prediction_divergence or 0:.3f}{agreed}); "
                f"the candidate now answers {weight:g}%",
                {**data, "shadow": mirrored},
            ),
        )
        return "shadow_passed"

    def _shadow_numbers(self, record: RolloutRecord) -> dict[str, Any]:
        """The shadow report of the phase's window (agreement, both accuracies on labelled requests)."""
        name, version = _pair(record.candidate)
        return shadow_report(
            self.rollouts.log_store,
            record.deployment,
            (name, version),
            record.step_started_at,
            self.rollouts.task(record.candidate),
        ).as_dict()

    def _bluegreen(self, record: RolloutRecord, plan: RolloutPlan) -> str:
        if record.id not in self._warmed:
            rows = [r.inputs for r in self.rollouts.log_store.recent(record.deployment, limit=plan.warmup_rows)]
            try:
                seconds = self.warm(record.candidate, rows) if self.warm else 0.0
            except Exception as exc:
                reason = f"{record.candidate} failed to warm up, so traffic never switched: {exc}"
                self.rollouts.rollback(record.deployment, "controller", reason, {"error": str(exc)}, expected=record)
                return "rolled_back"
            self._warmed[record.id] = (seconds, len(rows))
        if (_now() - record.started_at).total_seconds() < WARM_HOLD_SECONDS:
            return "warming"
        seconds, rows_scored = self._warmed.pop(record.id)
        self.rollouts.store.update(
            record,
            {"phase": "switched", "weight": 100.0, "step_started_at": _now()},
            (
                "switched",
                "controller",
                f"{record.candidate} warmed ({rows_scored} rows scored in {seconds:.3f}s); "
                f"all traffic switched from {record.baseline}",
                {"warm_seconds": seconds, "warm_rows": rows_scored},
            ),
        )
        return "switched"


def _now() -> datetime:
    return datetime.now(UTC)
